"""landseg:trainunet and landseg:predictunet inside real QGIS (processing.run, qgis_process.bin).

Real data: a 128x128 crop of the NC Landsat scene with its sparse labelled pixels (585
pixels of 6 classes), a resnet18 U-Net trained for two epochs on 64x64 tiles.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
from pathlib import Path

import pytest
from landseg.core.modelfile import read_metadata
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsRasterLayer

NAMES = (
    "1:developed:#d7191c,2:agriculture:#fdae61,3:herbaceous:#ffffbf,4:shrubland:#a6d96a,"
    "5:forest:#1a9641,6:water:#2b83ba,7:sediment:#bababa"
)
ROOT = Path(__file__).resolve().parents[2]
FAST = {"ENCODER": 0, "EPOCHS": 2, "TILE_SIZE": 64, "BATCH_SIZE": 4, "PATIENCE": 0}


def _crop(src: Path, dst: Path, bands: list[int] | None = None) -> Path:
    options = gdal.TranslateOptions(srcWin=[256, 208, 128, 128], bandList=bands)
    gdal.Translate(str(dst), str(src), options=options)
    return dst


@pytest.fixture(scope="module")
def crop(tmp_path_factory, nc_dir) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("unet")
    return {
        "image": _crop(nc_dir / "landsat_multiband.tif", folder / "image.tif"),
        "labels": _crop(nc_dir / "landsat96_labelled_pixels.tif", folder / "labels.tif"),
        "three": _crop(nc_dir / "landsat_multiband.tif", folder / "three.tif", [1, 2, 3]),
        "folder": folder,
    }


@pytest.fixture(scope="module")
def model(crop, provider) -> tuple[Path, dict]:
    import processing

    path = crop["folder"] / "model.safetensors"
    result = processing.run(
        "landseg:trainunet",
        {
            "INPUTS": [str(crop["image"])],
            "LABELS": [str(crop["labels"])],
            "CLASSES": NAMES,
            **FAST,
            "OUTPUT_MODEL": str(path),
            "OUTPUT_REPORT": str(crop["folder"] / "report.html"),
        },
    )
    return path, result


def test_train_writes_model_and_report(model, crop):
    path, result = model
    assert result["OUTPUT_MODEL"] == str(path) and path.exists()
    assert 0 <= result["VAL_MIOU"] <= 1 and result["BEST_EPOCH"] in (1, 2)
    meta = read_metadata(path)
    assert meta["architecture"] == "unet" and meta["architecture_args"]["encoder"] == "resnet18"
    assert meta["bands"]["count"] == 5 and meta["training"]["tile_size"] == 64
    assert len(meta["normalization"]["offsets"]) == 5
    assert {c["name"] for c in meta["classes"]} <= set(n.split(":")[1] for n in NAMES.split(","))
    assert meta["training"]["epochs_run"] == 2
    page = (crop["folder"] / "report.html").read_text()
    assert "Validation" in page and page.count("data:image/png;base64,") >= 1


def test_predict_styles_classes(model, crop, run, tmp_path):
    path, _ = model
    out = tmp_path / "classes.tif"
    result = run(
        "landseg:predictunet",
        {
            "INPUT": str(crop["image"]),
            "MODEL": str(path),
            "OUTPUT": str(out),
            "OUTPUT_CONFIDENCE": str(tmp_path / "conf.tif"),
        },
    )
    assert result["OUTPUT"] == str(out)
    meta = read_metadata(path)
    layer = QgsRasterLayer(str(out), "c")
    assert layer.isValid() and layer.renderer().type() == "paletted"
    entries = {c.value: (c.label, c.color.name()) for c in layer.renderer().classes()}
    for item in meta["classes"]:
        assert entries[item["value"]] == (item["name"], item["color"])
    ds = gdal.Open(str(out))
    values = set(ds.GetRasterBand(1).ReadAsArray().ravel().tolist())
    assert values <= {0} | {c["value"] for c in meta["classes"]} and len(values - {0}) >= 2
    assert ds.GetRasterBand(1).GetColorTable() is not None
    conf_ds = gdal.Open(str(tmp_path / "conf.tif"))  # keep the dataset alive while reading
    conf = conf_ds.GetRasterBand(1).ReadAsArray()
    assert conf.max() <= 1.0001 and conf.max() > 0.2


def test_predict_on_a_local_dask_cluster_equals_single_process(model, crop, run, tmp_path):
    """DASK_SCHEDULER=local:2 (advanced) runs the blocks on two worker processes."""
    path, _ = model
    arrays = []
    for name, scheduler in (("single", ""), ("dask", "local:2")):
        out = tmp_path / f"{name}.tif"
        run(
            "landseg:predictunet",
            {"INPUT": str(crop["image"]), "MODEL": str(path), "OUTPUT": str(out),
             "DASK_SCHEDULER": scheduler},
        )  # fmt: skip
        ds = gdal.Open(str(out))
        arrays.append(ds.GetRasterBand(1).ReadAsArray())
        assert ds.GetRasterBand(1).GetColorTable() is not None
    assert (arrays[0] == arrays[1]).all()


@pytest.fixture(scope="module")
def halves(crop) -> Path:
    """The crop's west and east halves (128 x 64 px each) in a folder of their own."""
    folder = crop["folder"] / "halves"
    folder.mkdir()
    for name, offset in (("west", 0), ("east", 64)):
        options = gdal.TranslateOptions(srcWin=[offset, 0, 64, 128])
        gdal.Translate(str(folder / f"{name}.tif"), str(crop["image"]), options=options)
    return folder


def _array(path: Path):
    ds = gdal.Open(str(path))
    return ds.GetRasterBand(1).ReadAsArray()


def test_predict_batch_with_mosaic_on_dask(model, halves, run, tmp_path):
    """INPUTS on local:2 with a VRT mosaic equals INPUT_FOLDER in one process."""
    path, _ = model
    inputs = [str(halves / "west.tif"), str(halves / "east.tif")]
    result = run(
        "landseg:predictunet",
        {"INPUTS": inputs, "MODEL": str(path), "OUTPUT_FOLDER": str(tmp_path / "dask"),
         "OUTPUT_MOSAIC": str(tmp_path / "dask" / "all.vrt"), "DASK_SCHEDULER": "local:2"},
    )  # fmt: skip
    assert result["OUTPUT_FOLDER"] == str(tmp_path / "dask")
    assert result["OUTPUT_MOSAIC"] == str(tmp_path / "dask" / "all.vrt")
    single = run(
        "landseg:predictunet",
        {"INPUT_FOLDER": str(halves), "MODEL": str(path), "OUTPUT_FOLDER": str(tmp_path / "one")},
    )
    assert "OUTPUT_MOSAIC" not in single
    for name in ("west", "east"):
        alone = _array(Path(single["OUTPUT_FOLDER"]) / f"{name}.tif")
        assert (_array(tmp_path / "dask" / f"{name}.tif") == alone).all()
        assert (tmp_path / "dask" / f"{name}.qml").exists()
    mosaic = _array(tmp_path / "dask" / "all.vrt")
    assert mosaic.shape == (128, 128)
    assert (mosaic[:, :64] == _array(tmp_path / "dask" / "west.tif")).all()
    assert (mosaic[:, 64:] == _array(tmp_path / "dask" / "east.tif")).all()
    layer = QgsRasterLayer(str(tmp_path / "dask" / "all.vrt"), "m")
    assert layer.isValid() and layer.renderer().type() == "paletted"
    names = {c["name"] for c in read_metadata(path)["classes"]}
    assert {c.label for c in layer.renderer().classes()} == names


def test_predict_needs_one_kind_of_input(model, crop, halves, run, tmp_path):
    base = {"MODEL": str(model[0]), "OUTPUT": str(tmp_path / "x.tif")}
    with pytest.raises(QgsProcessingException, match="No input"):
        run("landseg:predictunet", base)
    with pytest.raises(QgsProcessingException, match="only one of them"):
        run("landseg:predictunet", {**base, "INPUT": str(crop["image"]),
                                    "INPUT_FOLDER": str(halves)})  # fmt: skip
    with pytest.raises(QgsProcessingException, match="for a batch"):
        run("landseg:predictunet", {**base, "INPUT": str(crop["image"]),
                                    "OUTPUT_MOSAIC": str(tmp_path / "m.vrt")})  # fmt: skip
    assert not (tmp_path / "x.tif").exists()


def test_band_count_mismatch_is_a_clear_error(model, crop, run, tmp_path):
    with pytest.raises(QgsProcessingException, match="trained on 5 bands"):
        run(
            "landseg:predictunet",
            {
                "INPUT": str(crop["three"]),
                "MODEL": str(model[0]),
                "OUTPUT": str(tmp_path / "x.tif"),
            },
        )


def test_corrupt_and_pickle_models_are_refused(crop, run, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(QgsProcessingException, match="corrupt"):
        run(
            "landseg:predictunet",
            {"INPUT": str(crop["image"]), "MODEL": str(broken), "OUTPUT": str(tmp_path / "a.tif")},
        )
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.safetensors"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(QgsProcessingException, match="pickle"):
        run(
            "landseg:predictunet",
            {"INPUT": str(crop["image"]), "MODEL": str(evil), "OUTPUT": str(tmp_path / "b.tif")},
        )
    assert not marker.exists() and not (tmp_path / "b.tif").exists()


def test_label_values_outside_classes(crop, run, tmp_path):
    with pytest.raises(QgsProcessingException, match="not in CLASSES"):
        run(
            "landseg:trainunet",
            {
                "INPUTS": [str(crop["image"])],
                "LABELS": [str(crop["labels"])],
                "CLASSES": "1:developed,5:forest",
                **FAST,
                "OUTPUT_MODEL": str(tmp_path / "m.safetensors"),
            },
        )
    assert not (tmp_path / "m.safetensors").exists()


def test_all_ignored_labels(crop, run, tmp_path):
    with pytest.raises(QgsProcessingException, match="nothing to train on"):
        run(
            "landseg:trainunet",
            {
                "INPUTS": [str(crop["image"])],
                "LABELS": [str(_constant_labels(crop, tmp_path))],
                "IGNORE_VALUE": "3",
                **FAST,
                "OUTPUT_MODEL": str(tmp_path / "m.safetensors"),
            },
        )


def _constant_labels(crop: dict[str, Path], tmp_path: Path) -> Path:
    path = tmp_path / "constant.tif"
    ds = gdal.Translate(
        str(path), str(crop["labels"]), options=gdal.TranslateOptions(noData="none")
    )
    band = ds.GetRasterBand(1)
    band.Fill(3)
    ds = None
    return path


def test_labels_on_another_crs_are_resampled(crop, run, tmp_path):
    """Labels in EPSG:4326 are warped onto the image grid, with a warning in the log."""
    from qgis.core import QgsProcessingFeedback

    warped = tmp_path / "labels_4326.tif"
    gdal.Warp(str(warped), str(crop["labels"]), dstSRS="EPSG:4326", resampleAlg="near")
    messages: list[str] = []

    class Feedback(QgsProcessingFeedback):
        def reportError(self, error, fatalError=False):
            messages.append(error)

        def pushWarning(self, warning):
            messages.append(warning)

        def pushInfo(self, info):
            messages.append(info)

    result = run(
        "landseg:trainunet",
        {
            "INPUTS": [str(crop["image"])],
            "LABELS": [str(warped)],
            **FAST,
            "EPOCHS": 1,
            "OUTPUT_MODEL": str(tmp_path / "m.safetensors"),
        },
        feedback=Feedback(),
    )
    assert Path(result["OUTPUT_MODEL"]).exists()
    assert any("another CRS" in m for m in messages), messages


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Path:
    config = tmp_path_factory.mktemp("cfg")
    subprocess.run(
        ["make", "-s", "deploy", f"QGIS_CONFIG={config}"], cwd=ROOT, check=True, capture_output=True
    )
    return config


@pytest.fixture(scope="module")
def process_model(crop, deployed, engine_python) -> Path:
    from test_qgis_process import qgis_process

    model = crop["folder"] / "qp.safetensors"
    proc = qgis_process(
        deployed,
        "--json",
        "run",
        "landseg:trainunet",
        "--",
        f"INPUTS={crop['image']}",
        f"LABELS={crop['labels']}",
        "EPOCHS=1",
        "TILE_SIZE=64",
        "BATCH_SIZE=4",
        f"OUTPUT_MODEL={model}",
    )
    assert json.loads(proc.stdout)["results"]["OUTPUT_MODEL"] == str(model)
    return model


def test_qgis_process_train_and_band_check(crop, deployed, process_model, tmp_path):
    from test_qgis_process import qgis_process

    assert read_metadata(process_model)["training"]["epochs_run"] == 1
    bad = qgis_process(
        deployed,
        "run",
        "landseg:predictunet",
        "--",
        f"INPUT={crop['three']}",
        f"MODEL={process_model}",
        f"OUTPUT={tmp_path / 'bad.tif'}",
        check=False,
    )
    assert bad.returncode != 0 and "trained on 5 bands" in (bad.stdout + bad.stderr)


def test_qgis_process_predict(crop, deployed, process_model, tmp_path):
    from test_qgis_process import qgis_process

    out = tmp_path / "c.tif"
    proc = qgis_process(
        deployed,
        "--json",
        "run",
        "landseg:predictunet",
        "--",
        f"INPUT={crop['image']}",
        f"MODEL={process_model}",
        f"OUTPUT={out}",
    )
    assert json.loads(proc.stdout)["results"]["OUTPUT"] == str(out)
    assert out.with_suffix(".qml").exists()


def test_qgis_process_predict_batch(halves, deployed, process_model, tmp_path):
    """A folder of rasters and a temporary mosaic (named .vrt) through qgis_process.bin."""
    from test_qgis_process import qgis_process

    proc = qgis_process(
        deployed,
        "--json",
        "run",
        "landseg:predictunet",
        "--",
        f"INPUT_FOLDER={halves}",
        f"MODEL={process_model}",
        f"OUTPUT_FOLDER={tmp_path / 'out'}",
        "OUTPUT_MOSAIC=TEMPORARY_OUTPUT",
    )
    results = json.loads(proc.stdout)["results"]
    assert results["OUTPUT_FOLDER"] == str(tmp_path / "out")
    assert results["OUTPUT_MOSAIC"].endswith(".vrt")  # gone with qgis_process's temp folder
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tif")) == ["east.tif", "west.tif"]


def test_algorithms_are_grouped_documented_and_have_icons(provider):
    for name in ("trainunet", "predictunet"):
        alg = provider.algorithm(name)
        assert alg is not None, name
        assert alg.group() == "Supervised" and alg.groupId() == "supervised"
        assert len(alg.shortHelpString()) > 200 and Path(alg.svgIconPath()).name == f"{name}.svg"
    keys = {p.name() for p in provider.algorithm("trainunet").parameterDefinitions()}
    assert {"INPUTS", "LABELS", "LABEL_POLYGONS", "CLASS_FIELD", "TILE_FOLDER"} <= keys
    assert {"IGNORE_VALUE", "CLASSES", "ENCODER", "VALIDATION_FRACTION", "SEED"} <= keys
    assert {"OUTPUT_MODEL", "OUTPUT_REPORT"} <= keys


def test_predict_on_an_extent(model, crop, run, tmp_path):
    """EXTENT (here in WGS 84) classifies only the pixels inside it, on the input's grid."""
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransform,
        QgsProject,
        QgsRectangle,
    )

    image = gdal.Open(str(crop["image"]))
    x0, dx, _, y0, _, dy = image.GetGeoTransform()
    rect = QgsRectangle(x0 + 10 * dx, y0 + 90 * dy, x0 + 70 * dx, y0 + 30 * dy)
    transform = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem(image.GetProjection()),
        QgsCoordinateReferenceSystem("EPSG:4326"),
        QgsProject.instance(),
    )
    geo = transform.transformBoundingBox(rect)
    result = run(
        "landseg:predictunet",
        {
            "INPUT": str(crop["image"]),
            "MODEL": str(model[0]),
            "EXTENT": f"{geo.xMinimum()},{geo.xMaximum()},{geo.yMinimum()},{geo.yMaximum()} "
            "[EPSG:4326]",
            "OUTPUT": str(tmp_path / "part.tif"),
        },
    )
    part = gdal.Open(result["OUTPUT"])
    px, pdx, _, py, _, pdy = part.GetGeoTransform()
    assert (pdx, pdy) == (dx, dy)
    col, row = (px - x0) / dx, (py - y0) / dy
    assert col == int(col) and row == int(row)  # on the input's grid
    assert px <= rect.xMinimum() and px + part.RasterXSize * dx >= rect.xMaximum()
    assert py >= rect.yMaximum() and py + part.RasterYSize * dy <= rect.yMinimum()
    assert part.RasterXSize < 128 and part.RasterYSize < 128


def test_generalisation_options_exist_and_reach_the_engine(crop, provider, run, tmp_path):
    import shutil

    from qgis.core import QgsProcessingParameterDefinition

    advanced = QgsProcessingParameterDefinition.FlagAdvanced
    if hasattr(QgsProcessingParameterDefinition, "Flag"):  # QGIS 3.36+ scoped enum
        advanced = getattr(QgsProcessingParameterDefinition.Flag, "FlagAdvanced", advanced)
    train = provider.algorithm("trainunet")
    predict = provider.algorithm("predictunet")
    for alg, key in (
        (train, "NORMALIZATION"),
        (train, "HARMONIZE"),
        (train, "ACQUISITION_AUGMENT"),
        (train, "HOLDOUT_IMAGE"),
        (train, "WEIGHT_AVERAGING"),
        (predict, "TTA"),
    ):
        definition = alg.parameterDefinition(key)
        assert definition is not None, key
        assert definition.flags() & advanced and len(definition.help()) > 40, key
    second = tmp_path / "second.tif"
    shutil.copy(crop["image"], second)
    path = tmp_path / "m.safetensors"
    report = tmp_path / "r.html"
    run(
        "landseg:trainunet",
        {
            "INPUTS": [str(crop["image"]), str(second)],
            "LABELS": [str(crop["labels"]), str(crop["labels"])],
            "CLASSES": NAMES,
            **FAST,
            "NORMALIZATION": 2,  # percentile
            "HARMONIZE": False,
            "ACQUISITION_AUGMENT": True,
            "HOLDOUT_IMAGE": 2,
            "WEIGHT_AVERAGING": 1,  # ema
            "OUTPUT_MODEL": str(path),
            "OUTPUT_REPORT": str(report),
        },
    )
    meta = read_metadata(path)
    assert meta["normalization"]["mode"] == "percentile"
    assert meta["normalization"]["harmonize"] is False
    assert meta["training"]["acquisition_augment"] is True
    assert meta["training"]["weight_averaging"] == "ema"
    assert meta["training"]["validation_images"] == ["second.tif"]
    assert "Held-out image" in report.read_text()
    out = tmp_path / "classes.tif"
    run("landseg:predictunet", {"INPUT": str(crop["image"]), "MODEL": str(path), "TTA": True,
                                "OUTPUT": str(out)})  # fmt: skip
    ds = gdal.Open(str(out))
    assert ds.GetRasterBand(1).ReadAsArray().max() >= 1
