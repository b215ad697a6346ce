"""The example models in resources/models: loaded by the provider, run headless."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from qgis.core import QgsVectorLayer
from rasters import parcels, write_tif
from test_qgis_process import qgis_config, qgis_process  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
MODELS = sorted((ROOT / "resources" / "models").glob("*.model3"))
SLIC_POLYGONS = "landseg:SLIC superpixels to polygons"


def test_every_example_model_is_listed_and_complete(provider):
    from qgis.core import QgsApplication

    registry = QgsApplication.processingRegistry()
    models = [a for a in provider.algorithms() if a.group() == "Example models"]
    assert len(models) == len(MODELS) >= 1
    for model in models:
        assert model.id().startswith("landseg:")
        assert model.shortDescription() or model.shortHelpString()
        for child in model.childAlgorithms().values():
            assert registry.algorithmById(child.algorithmId()) is not None, child.algorithmId()


def test_models_are_up_to_date(tmp_path):
    """resources/models holds exactly what scripts/build_models.py writes today."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_models.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "skip" not in proc.stdout, proc.stdout
    built = sorted(p.name for p in tmp_path.glob("*.model3"))
    assert built == [p.name for p in MODELS]
    for path in MODELS:
        # Qt writes XML attributes in hash order: compare canonical forms (sorted attributes)
        fresh = ET.canonicalize(from_file=str(tmp_path / path.name), strip_text=True)
        assert fresh == ET.canonicalize(from_file=str(path), strip_text=True), (
            f"{path.name} is stale: run `make models`"
        )


def test_slic_polygons_model_runs_in_processing(run, tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((64, 72), 3))
    out = tmp_path / "polygons.gpkg"
    result = run(
        SLIC_POLYGONS,
        {
            "image": str(src),
            "segments": 40,
            "vectorize:Polygons": str(out),
            "slic:Segments": "TEMPORARY_OUTPUT",
        },
    )
    layer = QgsVectorLayer(result["vectorize:Polygons"], "p", "ogr")
    assert layer.isValid() and 20 <= layer.featureCount() <= 80
    assert "value" in layer.fields().names()


@pytest.mark.parametrize("model", [SLIC_POLYGONS])
def test_example_model_runs_headless(qgis_config, tmp_path, model):  # noqa: F811
    src = write_tif(tmp_path / "in.tif", parcels((64, 72), 3))
    out = tmp_path / "polygons.gpkg"
    proc = qgis_process(
        qgis_config,
        "--json",
        "run",
        model,
        "--",
        f"image={src}",
        "segments=40",
        f"vectorize:Polygons={out}",
    )
    results = json.loads(proc.stdout)["results"]
    assert Path(results["vectorize:Polygons"]) == out
    layer = QgsVectorLayer(str(out), "p", "ogr")
    assert layer.isValid() and layer.featureCount() >= 20


def test_unet_workflow_model_runs_headless(qgis_config, nc_dir, tmp_path):  # noqa: F811
    """Train -> predict -> accuracy -> vectorize on a crop of the NC scene, 2 epochs."""
    from osgeo import gdal

    def crop(name: str) -> Path:
        out = tmp_path / name
        gdal.Translate(str(out), str(nc_dir / name), srcWin=[256, 208, 128, 128])
        return out

    image, labels = crop("landsat_multiband.tif"), crop("landsat96_labelled_pixels.tif")
    proc = qgis_process(
        qgis_config,
        "--json",
        "run",
        "landseg:U-Net land cover workflow",
        "--",
        f"images={image}",
        f"labels={labels}",
        "ignore=0",
        "epochs=2",
        f"image={image}",
        f"reference={nc_dir / 'strata.tif'}",
        f"train:Model={tmp_path / 'model.safetensors'}",
        f"accuracy:Accuracy report={tmp_path / 'accuracy.html'}",
        f"vectorize:Land cover polygons={tmp_path / 'classes.gpkg'}",
    )
    results = json.loads(proc.stdout)["results"]
    assert (tmp_path / "model.safetensors").exists()
    assert "<img" in (tmp_path / "accuracy.html").read_text()
    layer = QgsVectorLayer(results["vectorize:Land cover polygons"], "p", "ogr")
    assert layer.isValid() and layer.featureCount() > 0


def test_dfc_accuracy_model_runs_headless(qgis_config, nc_dir, tmp_path):  # noqa: F811
    """DFC -> accuracy in cluster mode on a 64 x 64 crop of the NC scene, 5 iterations."""
    from osgeo import gdal

    image = tmp_path / "image.tif"
    gdal.Translate(str(image), str(nc_dir / "landsat_multiband.tif"), srcWin=[200, 180, 64, 64])
    proc = qgis_process(
        qgis_config,
        "--json",
        "run",
        "landseg:DFC clusters and their accuracy",
        "--",
        f"image={image}",
        f"reference={nc_dir / 'strata.tif'}",
        "iterations=5",
        f"dfc:Clusters={tmp_path / 'clusters.tif'}",
        f"accuracy:Accuracy report={tmp_path / 'accuracy.html'}",
    )
    results = json.loads(proc.stdout)["results"]
    assert Path(results["dfc:Clusters"]) == tmp_path / "clusters.tif"
    report = (tmp_path / "accuracy.html").read_text()
    assert "<img" in report and "Hungarian" in report
