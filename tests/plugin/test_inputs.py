"""Inputs as QGIS's own algorithms take them, inside real QGIS.

Any vector layer (scratch, filtered GeoPackage, selected features only), an ``EXTENT`` in
any CRS (or in pixel coordinates without one), the checks that run before the engine
starts, the class table and device parameters, tags, and the example models' outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSourceDefinition,
    QgsProject,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QVariant
from rasters import parcels, read, write_tif

# write_tif's grid: origin (630000, 228000), 30 m pixels, EPSG:32119.
X0, Y0, PIXEL = 630000.0, 228000.0, 30.0
CLASSES = np.repeat(np.repeat(np.array([[1, 2], [3, 1]], np.uint8), 20, 0), 20, 1)


def _classes_tif(path: Path) -> Path:
    return write_tif(path, CLASSES[None])


def _square(col: int, row: int, size: int = 20) -> QgsGeometry:
    x, y = X0 + col * PIXEL, Y0 - row * PIXEL
    return QgsGeometry.fromRect(QgsRectangle(x, y - size * PIXEL, x + size * PIXEL, y))


def _polygons_layer() -> QgsVectorLayer:
    """A scratch layer: the four 20x20 blocks of CLASSES, field ``label``."""
    layer = QgsVectorLayer("Polygon?crs=EPSG:32119", "scratch", "memory")
    provider = layer.dataProvider()
    provider.addAttributes([QgsField("label", QVariant.Int)])
    layer.updateFields()
    features = []
    for col, row, value in ((0, 0, 1), (20, 0, 2), (0, 20, 3), (20, 20, 1)):
        feature = QgsFeature(layer.fields())
        feature.setGeometry(_square(col, row))
        feature.setAttribute("label", value)
        features.append(feature)
    provider.addFeatures(features)
    layer.updateExtents()
    return layer


def _write_gpkg(layer: QgsVectorLayer, path: Path) -> Path:
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    write = getattr(QgsVectorFileWriter, "writeAsVectorFormatV3", None) or (
        QgsVectorFileWriter.writeAsVectorFormatV2
    )
    error = write(layer, str(path), QgsProject.instance().transformContext(), options)
    assert error[0] == QgsVectorFileWriter.NoError, error
    return path


def _reference_classes(result: dict) -> set[int]:
    """Class values the reference held, from the accuracy JSON."""
    metrics = json.loads(Path(result["OUTPUT_JSON"]).read_text())
    return {int(value) for value in metrics["contingency"]["reference_values"]}


@pytest.fixture
def project_layers():
    added = []

    def _add(layer):
        QgsProject.instance().addMapLayer(layer)
        added.append(layer.id())
        return layer

    yield _add
    for layer_id in added:
        QgsProject.instance().removeMapLayer(layer_id)


def _accuracy(run, prediction: Path, polygons, tmp_path: Path, name: str) -> dict:
    return run(
        "landseg:accuracy",
        {
            "PREDICTION": str(prediction),
            "REFERENCE_POLYGONS": polygons,
            "CLASS_FIELD": "label",
            "OUTPUT_HTML": str(tmp_path / f"{name}.html"),
            "OUTPUT_JSON": str(tmp_path / f"{name}.json"),
        },
    )


def test_reference_polygons_from_a_scratch_layer(run, tmp_path, project_layers):
    prediction = _classes_tif(tmp_path / "pred.tif")
    layer = project_layers(_polygons_layer())
    result = _accuracy(run, prediction, layer, tmp_path, "memory")
    assert result["OVERALL_ACCURACY"] == pytest.approx(1.0)
    assert _reference_classes(result) == {1, 2, 3}


def test_reference_polygons_selected_features_only(run, tmp_path, project_layers):
    prediction = _classes_tif(tmp_path / "pred.tif")
    layer = project_layers(_polygons_layer())
    layer.selectByExpression('"label" = 2')
    source = QgsProcessingFeatureSourceDefinition(layer.id(), True)
    result = _accuracy(run, prediction, source, tmp_path, "selected")
    assert _reference_classes(result) == {2}


def test_reference_polygons_from_a_filtered_geopackage(run, tmp_path, project_layers):
    prediction = _classes_tif(tmp_path / "pred.tif")
    path = _write_gpkg(_polygons_layer(), tmp_path / "polygons.gpkg")
    layer = project_layers(QgsVectorLayer(str(path), "filtered", "ogr"))
    assert layer.setSubsetString('"label" <> 1')
    result = _accuracy(run, prediction, layer, tmp_path, "filtered")
    assert _reference_classes(result) == {2, 3}
    # the file itself is untouched and still has all classes
    plain = _accuracy(run, prediction, str(path), tmp_path, "plain")
    assert _reference_classes(plain) == {1, 2, 3}


def test_label_polygons_selected_features_train_unet(run, tmp_path, project_layers):
    """trainunet takes selected polygons of a scratch layer: the model knows their classes."""
    from landseg.core.modelfile import read_metadata

    image = write_tif(tmp_path / "image.tif", parcels((64, 64), 3, cell=16))
    layer = project_layers(_polygons_layer())
    layer.selectByExpression('"label" IN (1, 2)')
    result = run(
        "landseg:trainunet",
        {
            "INPUTS": [str(image)],
            "LABEL_POLYGONS": QgsProcessingFeatureSourceDefinition(layer.id(), True),
            "CLASS_FIELD": "label",
            "CLASSES": [1, "one", "#112233", 2, "two", ""],
            "EPOCHS": 1,
            "TILE_SIZE": 32,
            "BATCH_SIZE": 4,
            "PATIENCE": 0,
            "VALIDATION_FRACTION": 0.25,
            "DEVICE": "cpu",
            "OUTPUT_MODEL": str(tmp_path / "model.safetensors"),
        },
    )
    classes = read_metadata(result["OUTPUT_MODEL"])["classes"]
    assert {c["value"] for c in classes} == {1, 2}
    assert {(c["value"], c["name"]) for c in classes} == {(1, "one"), (2, "two")}
    assert next(c["color"] for c in classes if c["value"] == 1) == "#112233"


# --- EXTENT -------------------------------------------------------------------------------


def _assert_on_extent(path: str, col: int, row: int, width: int, height: int) -> None:
    _, facts = read(path)
    assert facts["size"] == (width, height)
    x, dx, _, y, _, dy = facts["transform"]
    assert (dx, dy) == (PIXEL, -PIXEL)
    assert (x, y) == (X0 + col * PIXEL, Y0 - row * PIXEL)


# columns 10..29, rows 5..19; the edges are not on the grid, so they snap outwards
EXTENT = f"{X0 + 10 * PIXEL + 7},{X0 + 30 * PIXEL - 4},{Y0 - 20 * PIXEL + 3},{Y0 - 5 * PIXEL - 1}"
WINDOW = (10, 5, 20, 15)


def test_slic_on_an_extent(run, tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((64, 64), 3))
    result = run(
        "landseg:slic",
        {
            "INPUT": str(src),
            "EXTENT": f"{EXTENT} [EPSG:32119]",
            "N_SEGMENTS": 12,
            "OUTPUT": str(tmp_path / "seg.tif"),
            "OUTPUT_MEAN": str(tmp_path / "mean.tif"),
        },
    )
    _assert_on_extent(result["OUTPUT"], *WINDOW)
    _assert_on_extent(result["OUTPUT_MEAN"], *WINDOW)
    assert result["N_SEGMENTS"] > 1


def test_extent_in_another_crs_is_reprojected(run, tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((64, 64), 3))
    rect = QgsRectangle(X0 + 10 * PIXEL, Y0 - 20 * PIXEL, X0 + 30 * PIXEL, Y0 - 5 * PIXEL)
    to_wgs84 = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem("EPSG:32119"),
        QgsCoordinateReferenceSystem("EPSG:4326"),
        QgsProject.instance(),
    )
    geo = to_wgs84.transformBoundingBox(rect)
    extent = (
        f"{geo.xMinimum():.9f},{geo.xMaximum():.9f},{geo.yMinimum():.9f},{geo.yMaximum():.9f}"
        " [EPSG:4326]"
    )
    result = run(
        "landseg:felzenszwalb",
        {"INPUT": str(src), "EXTENT": extent, "OUTPUT": str(tmp_path / "seg.tif")},
    )
    _, facts = read(result["OUTPUT"])
    x, _, _, y, _, _ = facts["transform"]
    width, height = facts["size"]
    # on the grid, and covering the requested rectangle (its bounding box in 4326 is larger)
    assert (x - X0) % PIXEL == 0 and (Y0 - y) % PIXEL == 0
    assert x <= rect.xMinimum() and x + width * PIXEL >= rect.xMaximum()
    assert y >= rect.yMaximum() and y - height * PIXEL <= rect.yMinimum()
    assert width < 64 and height < 64


def test_extent_without_crs_is_in_pixel_coordinates(run, tmp_path):
    src = write_tif(tmp_path / "plain.tif", parcels((40, 50), 3), epsg=None)
    result = run(
        "landseg:quickshift",
        {"INPUT": str(src), "EXTENT": "5,25,-30,-10", "OUTPUT": str(tmp_path / "seg.tif")},
    )
    _, facts = read(result["OUTPUT"])
    assert facts["size"] == (20, 20)


def test_extent_outside_the_raster_is_refused(run, tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((32, 32), 3))
    with pytest.raises(QgsProcessingException, match="does not overlap"):
        run(
            "landseg:slic",
            {
                "INPUT": str(src),
                "EXTENT": "0,10,0,10 [EPSG:32119]",
                "OUTPUT": str(tmp_path / "o.tif"),
            },
        )
    assert not (tmp_path / "o.tif").exists()


@pytest.mark.parametrize("method", ["isb", "dfc", "wnet"])
def test_unsupervised_on_an_extent(run, tmp_path, method):
    src = write_tif(tmp_path / "in.tif", parcels((64, 64), 3, cell=8))
    fast = {
        "isb": {"MAX_CLUSTERS": 8, "MAX_ITER": 4, "SEGMENT_SIZE": 12},
        "dfc": {"MAX_CLUSTERS": 8, "MAX_ITER": 4},
        "wnet": {"MAX_CLUSTERS": 4, "MAX_ITER": 2, "HIDDEN": 4},
    }[method]
    result = run(
        f"landseg:{method}",
        {
            "INPUT": str(src),
            "EXTENT": f"{EXTENT} [EPSG:32119]",
            **fast,
            "THREADS": 1,
            "DEVICE": "cpu",
            "OUTPUT": str(tmp_path / "clusters.tif"),
        },
    )
    _assert_on_extent(result["OUTPUT"], *WINDOW)


def test_accuracy_and_vectorize_on_an_extent(run, tmp_path):
    prediction = _classes_tif(tmp_path / "pred.tif")
    reference = write_tif(tmp_path / "ref.tif", np.full((1, 40, 40), 1, np.uint8))
    # columns 0..9 and rows 0..9: all class 1, so the assessment is perfect there only
    extent = f"{X0},{X0 + 10 * PIXEL},{Y0 - 10 * PIXEL},{Y0} [EPSG:32119]"
    whole = run(
        "landseg:accuracy",
        {"PREDICTION": str(prediction), "REFERENCE": str(reference),
         "OUTPUT_HTML": str(tmp_path / "whole.html")},
    )  # fmt: skip
    part = run(
        "landseg:accuracy",
        {"PREDICTION": str(prediction), "REFERENCE": str(reference), "EXTENT": extent,
         "OUTPUT_HTML": str(tmp_path / "part.html"),
         "OUTPUT_ERRORS": str(tmp_path / "errors.tif")},
    )  # fmt: skip
    assert whole["OVERALL_ACCURACY"] == pytest.approx(0.5)
    assert part["OVERALL_ACCURACY"] == pytest.approx(1.0)
    _assert_on_extent(part["OUTPUT_ERRORS"], 0, 0, 10, 10)
    polygons = run(
        "landseg:vectorize",
        {"INPUT": str(prediction), "EXTENT": extent, "OUTPUT": str(tmp_path / "p.gpkg")},
    )
    assert polygons["N_POLYGONS"] == 1


# --- checks before the engine starts --------------------------------------------------------


@pytest.fixture
def context():
    """A processing context whose layers are freed with the test, not at exit after QGIS."""
    context = QgsProcessingContext()
    yield context
    context.temporaryLayerStore().removeAllMapLayers()


@pytest.fixture
def no_engine(monkeypatch, tmp_path):
    """No engine: a run that passes the checks fails with 'not set up'."""
    monkeypatch.setenv("LANDSEG_ENGINE_PYTHON", str(tmp_path / "no-such-python"))


@pytest.mark.parametrize(
    ("algorithm", "parameters", "message"),
    [
        ("trainunet", {"TILE_FOLDER": "{tmp}", "INPUTS": ["{img}"]}, "not both"),
        ("trainunet", {}, "No training data"),
        ("trainunet", {"INPUTS": ["{img}"]}, "need labels"),
        ("trainunet", {"INPUTS": ["{img}", "{img}"], "LABELS": ["{cls}"]}, "2 images but 1"),
        ("trainunet", {"INPUTS": ["{img}", "{cls}"], "LABELS": ["{cls}", "{cls}"]}, "band counts"),
        ("trainunet", {"INPUTS": ["{img}"], "LABELS": ["{cls}"], "CLASSES": "1-forest"}, "CLASSES"),
        ("trainunet", {"TILE_FOLDER": "{tmp}", "CLASSES": "1:a:#12345"}, "#RRGGBB"),
        ("trainunet", {"TILE_FOLDER": "{tmp}", "CLASSES": "1:a,1:b"}, "twice"),
        ("trainunet", {"TILE_FOLDER": "{tmp}", "OUTPUT_MODEL": "{tmp}/m.pt"}, "safetensors"),
        ("trainunet", {"TILE_FOLDER": "{tmp}", "VALIDATION_INPUT": "{img}"}, "VALIDATION_LABELS"),
        ("slic", {"INPUT": "{img}", "BANDS": [1, 5]}, "Band 5 does not exist"),
        ("slic", {"INPUT": "{img}", "OUTPUT": "{tmp}/seg.png"}, r"\.tif"),
        ("slic", {"INPUT": "{img}", "OUTPUT": "{tmp}/a.tif", "OUTPUT_MEAN": "{tmp}/a.tif"},
         "same file"),
        ("slic", {"INPUT": "{img}", "OUTPUT": "{img}"}, "overwrite the input"),
        ("accuracy", {"PREDICTION": "{cls}"}, "either a reference"),
        ("accuracy", {"PREDICTION": "{cls}", "REFERENCE": "{cls}", "IGNORE_VALUE": "0,x"},
         "not a number"),
        ("accuracy", {"PREDICTION": "{cls}", "REFERENCE_POLYGONS": "{gpkg}"}, "CLASS_FIELD"),
        ("predictunet", {"INPUT": "{img}", "INPUTS": ["{img}"]}, "only one"),
        ("predictunet", {"INPUTS": ["{img}"], "EXTENT": "0,1,0,1"}, "EXTENT"),
        ("predictunet", {"INPUTS": ["{img}"], "OUTPUT_MOSAIC": "{tmp}/m.tif"}, r"\.vrt"),
        ("dfc", {"INPUT": "{img}", "SCRIBBLES": "{gpkg}"}, "SCRIBBLE_FIELD"),
        ("dfc", {"INPUT": "{img}", "REFERENCE_CLASSES": "a:b"}, "integer"),
        ("vectorize", {"INPUT": "{cls}", "BAND": 3, "OUTPUT": "{tmp}/p.gpkg"}, "Band 3"),
        ("vectorize", {"INPUT": "{cls}", "OUTPUT": "memory:"}, "vector files"),
    ],
)  # fmt: skip
def test_checks_run_before_the_engine(
    provider, run, no_engine, context, tmp_path, algorithm, parameters, message
):
    img = write_tif(tmp_path / "img.tif", parcels((16, 16), 3))
    cls = _classes_tif(tmp_path / "cls.tif")
    gpkg = _write_gpkg(_polygons_layer(), tmp_path / "p.gpkg")

    def fill(value):
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, str):
            return value.format(tmp=tmp_path, img=img, cls=cls, gpkg=gpkg)
        return value

    defaults = {
        "trainunet": {"OUTPUT_MODEL": "{tmp}/m.safetensors"},
        "accuracy": {"OUTPUT_HTML": "{tmp}/report.html"},
        "predictunet": {"MODEL": "{tmp}/m.safetensors"},
    }.get(algorithm, {"OUTPUT": "TEMPORARY_OUTPUT"})
    params = {key: fill(value) for key, value in {**defaults, **parameters}.items()}
    alg = provider.algorithm(algorithm)
    ok, text = alg.checkParameterValues(params, context)
    assert not ok
    assert __import__("re").search(message, text), text
    # processing.run shows the same message and never reaches the (missing) engine. (No
    # `pytest.raises(...) as error`: its traceback cycle would keep processing's context,
    # and its layers, alive until after QGIS has exited, and crash the interpreter there.)
    try:
        run(f"landseg:{algorithm}", params)
    except QgsProcessingException as error:
        message = str(error)
    else:
        pytest.fail("processing.run accepted the values")
    assert "not set up" not in message


def test_valid_values_pass_the_checks(provider, no_engine, context, tmp_path):
    img = write_tif(tmp_path / "img.tif", parcels((16, 16), 3))
    train = provider.algorithm("trainunet")
    for classes in ("1:forest:#1b7837,2:water", [1, "forest", "#1b7837", 2, "water", ""]):
        for device in ("auto", "cpu", "cuda"):
            ok, text = train.checkParameterValues(
                {"INPUTS": [str(img)], "LABELS": [str(img)], "CLASSES": classes,
                 "IGNORE_VALUE": "0", "DEVICE": device,
                 "OUTPUT_MODEL": str(tmp_path / "m.safetensors")},
                context,
            )  # fmt: skip
            assert ok, text
    slic = provider.algorithm("slic")
    ok, text = slic.checkParameterValues(
        {"INPUT": str(img), "BANDS": [3, 1], "OUTPUT": "TEMPORARY_OUTPUT"}, context
    )
    assert ok, text


def test_class_table_matrix_and_text_give_the_same_engine_text(provider):
    from landseg.qgis_plugin.checks import classes_text

    text = "1:forest:#1b7837,2:water:#2166ac,3:urban"
    assert classes_text(text.split(",")) == text
    assert classes_text([1, "forest", "#1b7837", 2, "water", "#2166ac", 3, "urban", ""]) == text
    assert classes_text(["", "", ""]) == ""


def test_device_is_a_list_of_names(provider):
    for name in ("isb", "dfc", "wnet", "trainunet", "predictunet"):
        definition = provider.algorithm(name).parameterDefinition("DEVICE")
        assert definition.type() == "enum" and definition.usesStaticStrings()
        assert definition.options()[:3] == ["auto", "cpu", "cuda"]
        assert definition.defaultValue() == "auto"


# --- toolbox: tags, descriptions, labels ------------------------------------------------------


def _toolbox_ids(text: str) -> set[str]:
    from qgis.gui import QgsProcessingToolboxProxyModel

    model = QgsProcessingToolboxProxyModel(None, QgsApplication.processingRegistry())
    model.setFilterString(text)
    source = model.toolboxModel()
    found: set[str] = set()

    def walk(parent):
        for row in range(model.rowCount(parent)):
            index = model.index(row, 0, parent)
            algorithm = source.algorithmForIndex(model.mapToSource(index))
            if algorithm is not None:
                found.add(algorithm.id())
            walk(index)

    from qgis.PyQt.QtCore import QModelIndex

    walk(QModelIndex())
    return found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("OBIA", {"landseg:slic", "landseg:quickshift", "landseg:felzenszwalb"}),
        ("object-based", {"landseg:slic", "landseg:felzenszwalb"}),
        ("k-means", {"landseg:slic"}),
        ("clustering", {"landseg:isb", "landseg:dfc", "landseg:wnet"}),
        ("deep learning", {"landseg:trainunet", "landseg:predictunet", "landseg:dfc"}),
        ("classification", {"landseg:trainunet", "landseg:accuracy", "landseg:isb"}),
        ("confusion matrix", {"landseg:accuracy"}),
        ("polygonize", {"landseg:vectorize"}),
    ],
)
def test_toolbox_search_finds_the_algorithms_by_tag(provider, text, expected):
    assert expected <= _toolbox_ids(text)


def test_every_algorithm_has_tags_a_short_description_and_short_labels(provider):
    for alg in provider.algorithms():
        if alg.id().count(" "):  # example models
            continue
        assert alg.tags(), alg.id()
        assert 10 < len(alg.shortDescription()) <= 90, alg.id()
        for definition in alg.parameterDefinitions():
            label = definition.description()
            assert len(label) <= 40 and not label.endswith("."), (alg.id(), label)


def test_advanced_parameters(provider):
    advanced = {
        "trainunet": {"TILE_SIZE", "BATCH_SIZE", "SEED", "DEVICE"},
        "predictunet": {"BATCH_SIZE", "DEVICE", "DASK_SCHEDULER"},
        "dfc": {"TILE_SIZE", "BATCH_SIZE", "SEED", "DEVICE", "THREADS"},
        "slic": {"SEED", "DASK_SCHEDULER"},
    }
    for name, keys in advanced.items():
        alg = provider.algorithm(name)
        flagged = {d.name() for d in alg.parameterDefinitions() if d.flags() & d.FlagAdvanced}
        assert keys <= flagged, (name, keys - flagged)


def test_mosaic_is_a_vrt_and_vectorize_writes_files_only(provider):
    mosaic = provider.algorithm("predictunet").parameterDefinition("OUTPUT_MOSAIC")
    assert mosaic.defaultFileExtension() == "vrt"
    assert "vrt" in mosaic.createFileFilter().lower()
    assert mosaic.clone().defaultFileExtension() == "vrt"
    output = provider.algorithm("vectorize").parameterDefinition("OUTPUT")
    assert not output.supportsNonFileBasedOutput()


def test_example_models_have_their_outputs(provider):
    models = [alg for alg in provider.algorithms() if alg.group() == "Example models"]
    assert len(models) >= 3
    for model in models:
        assert model.outputDefinitions(), model.id()


def test_readme_names_the_models_that_run_on_the_main_thread(provider):
    """QGIS runs these models without a background thread; the README says so."""
    from landseg.qgis_plugin.algorithms.base import LandSegAlgorithm

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("**Models run on QGIS's main thread.**", 1)[1].split("\n\n", 1)[0]
    section = " ".join(section.split())
    for model in provider.algorithms():
        if isinstance(model, LandSegAlgorithm):
            assert not model.flags() & model.FlagNoThreading, model.id()
        elif model.flags() & model.FlagNoThreading:
            assert f"*{model.displayName()}*" in section, model.displayName()
