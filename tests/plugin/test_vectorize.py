"""landseg:vectorize through processing.run, qgis_process.bin and a modeler chain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingException,
    QgsVectorLayer,
    QgsWkbTypes,
)
from rasters import parcels, read, write_tif
from test_qgis_process import qgis_process, write_model

ROOT = Path(__file__).resolve().parents[2]


def _layer(path) -> QgsVectorLayer:
    layer = QgsVectorLayer(str(path), "polygons", "ogr")
    assert layer.isValid(), path
    return layer


def test_nc_land_cover_to_styled_polygons(run, nc_dir, tmp_path):
    out = tmp_path / "strata.gpkg"
    result = run(
        "landseg:vectorize",
        {"INPUT": str(nc_dir / "strata.tif"), "MIN_SIZE": 3, "OUTPUT": str(out)},
    )
    layer = _layer(result["OUTPUT"])
    assert layer.featureCount() == result["N_POLYGONS"] > 100
    assert [f.name() for f in layer.fields()][-4:] == ["value", "class_name", "pixels", "area"]
    assert layer.crs() == QgsCoordinateReferenceSystem("EPSG:3358")
    assert QgsWkbTypes.geometryType(layer.wkbType()) == QgsWkbTypes.PolygonGeometry
    strata, facts = read(nc_dir / "strata.tif")
    pixels = sum(f["pixels"] for f in layer.getFeatures())
    assert pixels == int((strata != facts["nodata"]).sum())  # nodata excluded, sieve keeps pixels
    assert {f["value"] for f in layer.getFeatures()} == set(range(1, 8))
    assert abs(sum(f["area"] for f in layer.getFeatures()) - pixels * 28.5**2) < 1
    # the style comes with the file: categorized by class value
    assert out.with_suffix(".qml").exists()
    assert layer.renderer().type() == "categorizedSymbol"
    assert len(layer.renderer().categories()) == 7


def test_segments_sieved_and_simplified_load_as_outlines(run, tmp_path):
    ids = np.arange(1, 201, dtype=np.int32).reshape(10, 20).repeat(4, 0).repeat(4, 1)
    ids[5, 5] = 150  # a 1-pixel speck, sieved away
    src = write_tif(tmp_path / "seg.tif", ids[None], nodata=0)
    result = run(
        "landseg:vectorize",
        {
            "INPUT": str(src),
            "CONNECTIVITY": 1,
            "MIN_SIZE": 2 * 30 * 30,
            "MIN_SIZE_UNIT": 1,
            "SIMPLIFY": 20,
            "OUTPUT": str(tmp_path / "seg_polygons.shp"),
        },
    )
    layer = _layer(result["OUTPUT"])
    assert layer.featureCount() == result["N_POLYGONS"] == 200
    assert layer.renderer().type() == "singleSymbol"  # outlines
    assert layer.renderer().symbol().symbolLayer(0).brushStyle() == 0  # no fill
    # polygons named like the raster never replace the raster's own style
    style = tmp_path / "seg.qml"
    style.write_text("<qgis/>")
    run("landseg:vectorize", {"INPUT": str(src), "OUTPUT": str(tmp_path / "seg.gpkg")})
    assert style.read_text() == "<qgis/>" and (tmp_path / "seg.gpkg").exists()


def test_bad_inputs_are_explained(run, tmp_path):
    continuous = write_tif(tmp_path / "c.tif", parcels((20, 20), 1))
    with pytest.raises(QgsProcessingException, match="classify or segment it first"):
        run("landseg:vectorize", {"INPUT": str(continuous), "OUTPUT": str(tmp_path / "x.gpkg")})
    empty = write_tif(tmp_path / "e.tif", np.zeros((1, 8, 8), np.uint8), nodata=0)
    with pytest.raises(QgsProcessingException, match="no polygon"):
        run("landseg:vectorize", {"INPUT": str(empty), "OUTPUT": str(tmp_path / "e.gpkg")})
    assert not list(tmp_path.glob("*.gpkg"))


@pytest.fixture(scope="module")
def qgis_config(tmp_path_factory) -> Path:
    import subprocess

    config = tmp_path_factory.mktemp("qgis-config")
    subprocess.run(
        ["make", "-s", "deploy", f"QGIS_CONFIG={config}"], cwd=ROOT, check=True, capture_output=True
    )
    return config


def _slic_vectorize_model(path: Path) -> Path:
    """Build a .model3 with the modeler's API: landseg:slic -> landseg:vectorize."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterRasterLayer,
    )

    model = QgsProcessingModelAlgorithm("SLIC then vectorize", "LandSeg tests")
    model.addModelParameter(
        QgsProcessingParameterRasterLayer("image", "Image"), QgsProcessingModelParameter("image")
    )
    slic = QgsProcessingModelChildAlgorithm("landseg:slic")
    slic.setChildId("slic")
    slic.addParameterSources(
        "INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("image")]
    )
    slic.addParameterSources(
        "N_SEGMENTS", [QgsProcessingModelChildParameterSource.fromStaticValue(40)]
    )
    model.addChildAlgorithm(slic)
    vectorize = QgsProcessingModelChildAlgorithm("landseg:vectorize")
    vectorize.setChildId("vectorize")
    vectorize.addParameterSources(
        "INPUT", [QgsProcessingModelChildParameterSource.fromChildOutput("slic", "OUTPUT")]
    )
    vectorize.addParameterSources(
        "SIMPLIFY", [QgsProcessingModelChildParameterSource.fromStaticValue(15.0)]
    )
    polygons = QgsProcessingModelOutput("polygons", "Segment polygons")
    polygons.setChildId("vectorize")
    polygons.setChildOutputName("OUTPUT")
    vectorize.setModelOutputs({"polygons": polygons})
    model.addChildAlgorithm(vectorize)
    # written as `make models` writes them: outputs named step:output on every version
    assert write_model(model, path)
    return path


def test_qgis_process_and_a_slic_to_vectorize_model(qgis_config, provider, tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((72, 64), 3))
    labels = tmp_path / "classes.tif"
    write_tif(labels, (1 + (parcels((72, 64), 1) > 100)).astype(np.uint8))
    proc = qgis_process(
        qgis_config,
        "--json",
        "run",
        "landseg:vectorize",
        "--",
        f"INPUT={labels}",
        "CONNECTIVITY=1",
        f"OUTPUT={tmp_path / 'classes.gpkg'}",
    )
    results = json.loads(proc.stdout)["results"]
    assert results["N_POLYGONS"] == _layer(tmp_path / "classes.gpkg").featureCount() > 1

    model = _slic_vectorize_model(tmp_path / "slic_vectorize.model3")
    out = tmp_path / "segments.gpkg"
    proc = qgis_process(
        qgis_config,
        "--json",
        "run",
        str(model),
        "--",
        f"image={src}",
        f"vectorize:polygons={out}",
    )
    assert Path(json.loads(proc.stdout)["results"]["vectorize:polygons"]) == out
    layer = _layer(out)
    assert 20 <= layer.featureCount() <= 80
    assert sum(f["pixels"] for f in layer.getFeatures()) == 72 * 64
