"""landseg:isb, landseg:dfc and landseg:wnet inside real QGIS (processing.run, qgis_process.bin).

Real data: a 64 x 64 crop of the NC Landsat scene (5 bands) and the 1996 land-cover map
as reference. Small networks and a few iterations keep each run to seconds.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (
    QgsFeature,
    QgsGeometry,
    QgsPalettedRasterRenderer,
    QgsPointXY,
    QgsProcessingException,
    QgsRasterLayer,
    QgsVectorLayer,
)
from rasters import read, write_tif

ROOT = Path(__file__).resolve().parents[2]
NAMES = (
    "1:developed:#d7191c,2:agriculture:#fdae61,3:herbaceous:#ffffbf,4:shrubland:#a6d96a,"
    "5:forest:#1a9641,6:water:#2b83ba,7:sediment:#bababa"
)
FAST = {
    "isb": {"MAX_CLUSTERS": 12, "MAX_ITER": 8, "SEGMENT_SIZE": 12, "THREADS": 1},
    "dfc": {"MAX_CLUSTERS": 12, "MAX_ITER": 8, "THREADS": 1},
    "wnet": {"MAX_CLUSTERS": 5, "MAX_ITER": 4, "HIDDEN": 4, "THREADS": 1},
}


def _crop(src: Path, dst: Path, bands: list[int] | None = None) -> Path:
    options = gdal.TranslateOptions(srcWin=[200, 180, 64, 64], bandList=bands)
    gdal.Translate(str(dst), str(src), options=options)
    return dst


@pytest.fixture(scope="module")
def crop(tmp_path_factory, nc_dir) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("unsupervised")
    return {
        "image": _crop(nc_dir / "landsat_multiband.tif", folder / "image.tif"),
        "band4": _crop(nc_dir / "landsat_multiband.tif", folder / "band4.tif", [4]),
        "strata": nc_dir / "strata.tif",
        "folder": folder,
    }


def _palette(path: Path) -> dict[int, str]:
    layer = QgsRasterLayer(str(path), "x", "gdal")
    assert layer.isValid()
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer), type(renderer)
    return {int(c.value): c.label for c in renderer.classes()}


@pytest.mark.parametrize("method", ["isb", "dfc", "wnet"])
def test_each_algorithm_segments_and_styles(method, crop, run, tmp_path):
    out = tmp_path / f"{method}.tif"
    result = run(
        f"landseg:{method}", {"INPUT": str(crop["image"]), **FAST[method], "OUTPUT": str(out)}
    )
    labels, facts = read(out)
    n = result["N_CLUSTERS"]
    assert 2 <= n <= FAST[method]["MAX_CLUSTERS"] and result["ITERATIONS"] >= 1
    assert sorted(np.unique(labels).tolist()) == list(range(1, n + 1))
    assert facts["nodata"] == 0 and facts["wkt"]
    palette = _palette(out)  # the .qml beside the raster: one colour per cluster
    assert sorted(palette) == list(range(1, n + 1)) and palette[1] == "cluster 1"


def test_same_seed_same_clusters(crop, run, tmp_path):
    params = {"INPUT": str(crop["image"]), **FAST["dfc"], "SEED": 3}
    run("landseg:dfc", {**params, "OUTPUT": str(tmp_path / "a.tif")})
    run("landseg:dfc", {**params, "OUTPUT": str(tmp_path / "b.tif")})
    np.testing.assert_array_equal(read(tmp_path / "a.tif")[0], read(tmp_path / "b.tif")[0])


def test_dfc_mapped_to_the_reference_with_model(crop, run, tmp_path):
    result = run(
        "landseg:dfc",
        {
            "INPUT": str(crop["image"]),
            **FAST["dfc"],
            "REFERENCE": str(crop["strata"]),
            "REFERENCE_CLASSES": NAMES,
            "OUTPUT": str(tmp_path / "c.tif"),
            "OUTPUT_MAPPED": str(tmp_path / "mapped.tif"),
            "OUTPUT_MAPPING": str(tmp_path / "mapping.csv"),
            "OUTPUT_MODEL": str(tmp_path / "dfc.safetensors"),
        },
    )
    assert -1 <= result["ARI"] <= 1 and 0 < result["OVERALL_ACCURACY"] <= 1
    names = {int(v): n for v, n, _ in (item.split(":") for item in NAMES.split(","))}
    legend = _palette(Path(result["OUTPUT_MAPPED"]))
    assert legend and all(names[v] == label for v, label in legend.items())
    with open(result["OUTPUT_MAPPING"], newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == result["N_CLUSTERS"]
    matched = [r["class"] for r in rows if r["class"]]
    assert len(matched) == len(set(matched)), "Hungarian: one cluster per class"
    # The saved model classifies a raster through landseg:predictunet, with the same ids.
    again = run(
        "landseg:predictunet",
        {
            "INPUT": str(crop["image"]),
            "MODEL": result["OUTPUT_MODEL"],
            "OUTPUT": str(tmp_path / "again.tif"),
        },
    )
    first, second = read(result["OUTPUT"])[0], read(again["OUTPUT"])[0]
    assert (first[:-2, :-2] == second[:-2, :-2]).mean() >= 0.99


def test_dfc_with_scribbles_drawn_in_a_scratch_layer(crop, run, tmp_path):
    layer = QgsVectorLayer("LineString?crs=EPSG:32119&field=cover:integer", "scribbles", "memory")
    ds = gdal.Open(str(crop["image"]))
    x0, dx, _, y0, _, dy = ds.GetGeoTransform()
    features = []
    for cover, row, cols in ((1, 10, (5, 30)), (2, 50, (30, 60))):
        feature = QgsFeature(layer.fields())
        feature.setAttribute("cover", cover)
        points = [QgsPointXY(x0 + (c + 0.5) * dx, y0 + (row + 0.5) * dy) for c in cols]
        feature.setGeometry(QgsGeometry.fromPolylineXY(points))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    result = run(
        "landseg:dfc",
        {
            "INPUT": str(crop["image"]),
            **FAST["dfc"],
            "SCRIBBLES": layer,
            "SCRIBBLE_FIELD": "cover",
            "OUTPUT": str(tmp_path / "s.tif"),
        },
    )
    legend = _palette(Path(result["OUTPUT"]))
    assert {"scribble class 1", "scribble class 2"} <= set(legend.values())


def test_bad_inputs_give_clear_errors(crop, run, tmp_path):
    with pytest.raises(QgsProcessingException, match=r"MIN_CLUSTERS \(20\) is larger"):
        run(
            "landseg:dfc",
            {
                "INPUT": str(crop["image"]),
                "MIN_CLUSTERS": 20,
                "MAX_CLUSTERS": 10,
                "OUTPUT": str(tmp_path / "x.tif"),
            },
        )
    empty = write_tif(tmp_path / "empty.tif", np.full((3, 40, 40), -9999, np.float32), nodata=-9999)
    with pytest.raises(QgsProcessingException, match="no valid pixel"):
        run(
            "landseg:wnet", {"INPUT": str(empty), **FAST["wnet"], "OUTPUT": str(tmp_path / "e.tif")}
        )
    assert not (tmp_path / "x.tif").exists() and not (tmp_path / "e.tif").exists()
    # One band: ISB's superpixels work on the single band.
    result = run(
        "landseg:isb",
        {"INPUT": str(crop["band4"]), **FAST["isb"], "OUTPUT": str(tmp_path / "1.tif")},
    )
    assert result["N_CLUSTERS"] >= 2


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Path:
    config = tmp_path_factory.mktemp("cfg")
    subprocess.run(
        ["make", "-s", "deploy", f"QGIS_CONFIG={config}"], cwd=ROOT, check=True, capture_output=True
    )
    return config


def test_qgis_process_runs_dfc_and_reports_errors(crop, deployed, engine_python, tmp_path):
    from test_qgis_process import qgis_process

    out = tmp_path / "qp.tif"
    proc = qgis_process(
        deployed,
        "--json",
        "run",
        "landseg:dfc",
        "--",
        f"INPUT={crop['image']}",
        "MAX_CLUSTERS=12",
        "MAX_ITER=6",
        "THREADS=1",
        f"REFERENCE={crop['strata']}",
        f"OUTPUT={out}",
        f"OUTPUT_MAPPED={tmp_path / 'qp-mapped.tif'}",
    )
    results = json.loads(proc.stdout)["results"]
    assert results["OUTPUT"] == str(out) and results["N_CLUSTERS"] >= 2
    assert out.with_suffix(".qml").exists() and (tmp_path / "qp-mapped.tif").exists()
    bad = qgis_process(
        deployed,
        "run",
        "landseg:isb",
        "--",
        f"INPUT={crop['image']}",
        "MAX_CLUSTERS=4",
        "MIN_CLUSTERS=5",
        f"OUTPUT={tmp_path / 'bad.tif'}",
        check=False,
    )
    assert bad.returncode != 0
    assert "MIN_CLUSTERS (5) is larger than MAX_CLUSTERS (4)" in bad.stdout + bad.stderr


def test_algorithms_are_grouped_documented_and_have_icons(provider):
    from landseg.qgis_plugin.algorithms.base import ADVANCED

    for name in ("isb", "dfc", "wnet"):
        alg = provider.algorithm(name)
        assert alg is not None, name
        assert alg.group() == "Unsupervised deep" and alg.groupId() == "unsuperviseddeep"
        assert len(alg.shortHelpString()) > 200 and Path(alg.svgIconPath()).name == f"{name}.svg"
        params = {p.name(): p for p in alg.parameterDefinitions()}
        assert {"INPUT", "BANDS", "MAX_CLUSTERS", "MIN_CLUSTERS", "MAX_ITER", "SEED"} <= set(params)
        assert {"REFERENCE", "OUTPUT", "OUTPUT_MAPPED", "OUTPUT_MAPPING", "OUTPUT_MODEL"} <= set(
            params
        )
        assert {"N_TILES", "MODE", "DEVICE", "LEARNING_RATE"} <= set(params)
        for key in ("N_TILES", "TILE_SIZE", "MODE", "DEVICE", "SEED"):
            assert params[key].flags() & ADVANCED, key
        assert not params["MAX_CLUSTERS"].flags() & ADVANCED
    dfc = {p.name() for p in provider.algorithm("dfc").parameterDefinitions()}
    assert {"MU", "SCRIBBLES", "SCRIBBLE_FIELD"} <= dfc
    isb = {p.name() for p in provider.algorithm("isb").parameterDefinitions()}
    assert {"SEGMENT_SIZE", "COMPACTNESS"} <= isb


@pytest.mark.parametrize("method", ["dfc", "isb"])
def test_scribbles_give_classes_with_their_names_and_colours(method, crop, run, tmp_path):
    layer = QgsVectorLayer("LineString?crs=EPSG:32119&field=class:integer", "strokes", "memory")
    ds = gdal.Open(str(crop["image"]))
    x0, dx, _, y0, _, dy = ds.GetGeoTransform()
    features = []
    for value, row, cols in ((5, 10, (5, 30)), (6, 50, (30, 60))):
        feature = QgsFeature(layer.fields())
        feature.setAttribute("class", value)
        points = [QgsPointXY(x0 + (c + 0.5) * dx, y0 + (row + 0.5) * dy) for c in cols]
        feature.setGeometry(QgsGeometry.fromPolylineXY(points))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    result = run(
        f"landseg:{method}",
        {
            "INPUT": str(crop["image"]),
            **FAST[method],
            "SCRIBBLES": layer,
            "SCRIBBLE_FIELD": "class",
            "SCRIBBLE_CLASSES": "5:forest:#1a9641,6:water:#2b83ba",
            "UNSCRIBBLED": 1,  # merge into the most similar named class
            "OUTPUT": str(tmp_path / "clusters.tif"),
            "OUTPUT_CLASSES": str(tmp_path / "classes.tif"),
        },
    )
    assert Path(result["OUTPUT"]).exists() and result["N_CLUSTERS"] >= 2
    assert result["OUTPUT_CLASSES"] == str(tmp_path / "classes.tif")
    assert set(np.unique(read(result["OUTPUT_CLASSES"])[0])) <= {5, 6}
    legend = _palette(Path(result["OUTPUT_CLASSES"]))
    assert legend == {5: "forest", 6: "water"}
    # Without scribbles there is no class map, and no error.
    plain = run(
        f"landseg:{method}",
        {
            "INPUT": str(crop["image"]),
            **FAST[method],
            "OUTPUT": str(tmp_path / "plain.tif"),
            "OUTPUT_CLASSES": str(tmp_path / "none.tif"),
        },
    )
    assert "OUTPUT_CLASSES" not in plain and not (tmp_path / "none.tif").exists()
