"""landseg:accuracy through processing.run inside real QGIS."""

from __future__ import annotations

import json

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsRasterLayer
from rasters import read, write_tif


@pytest.fixture(scope="module")
def clusters(tmp_path_factory, nc_dir):
    """A Felzenszwalb segmentation of the NC scene: a cluster raster to assess."""
    import processing

    out = tmp_path_factory.mktemp("acc") / "fz.tif"
    processing.run(
        "landseg:felzenszwalb",
        {"INPUT": str(nc_dir / "landsat_multiband.tif"), "SCALE": 300, "OUTPUT": str(out)},
    )
    return out


def test_cluster_mode_against_the_reference_raster(run, clusters, nc_dir, tmp_path):
    result = run(
        "landseg:accuracy",
        {
            "PREDICTION": str(clusters),
            "REFERENCE": str(nc_dir / "strata.tif"),
            "MODE": 1,
            "ASSIGNMENT": 1,
            "CLASSES": "1:developed:#d7191c,5:forest:#1a9641",
            "OUTPUT_HTML": str(tmp_path / "r.html"),
            "OUTPUT_JSON": str(tmp_path / "m.json"),
            "OUTPUT_CSV": str(tmp_path / "m.csv"),
            "OUTPUT_ERRORS": str(tmp_path / "e.tif"),
        },
    )
    for key in ("OVERALL_ACCURACY", "KAPPA", "MEAN_IOU", "MACRO_F1", "ARI"):
        assert isinstance(result[key], float)
    assert 0.49 < result["OVERALL_ACCURACY"] <= 1
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["overall_accuracy"] == pytest.approx(result["OVERALL_ACCURACY"])
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 and "forest" in page
    errors, facts = read(tmp_path / "e.tif")
    assert set(np.unique(errors)) <= {0, 1, 2} and facts["nodata"] == 0
    assert QgsRasterLayer(str(tmp_path / "e.tif")).renderer().type() == "paletted"


def test_classes_mode_with_polygons(run, nc_dir, tmp_path):
    result = run(
        "landseg:accuracy",
        {
            "PREDICTION": str(nc_dir / "strata.tif"),
            "REFERENCE_POLYGONS": str(nc_dir / "landsat96_polygons.shp"),
            "CLASS_FIELD": "id",
            "OUTPUT_HTML": str(tmp_path / "p.html"),
        },
    )
    assert result["OVERALL_ACCURACY"] > 0.8


def test_dask_scheduler_gives_the_same_numbers(run, nc_dir, tmp_path):
    """DASK_SCHEDULER=local:2 counts the windows on two worker processes."""
    params = {
        "PREDICTION": str(nc_dir / "strata.tif"),
        "REFERENCE_POLYGONS": str(nc_dir / "landsat96_polygons.shp"),
        "CLASS_FIELD": "id",
    }
    texts = []
    for name, scheduler in (("one", ""), ("dask", "local:2")):
        run(
            "landseg:accuracy",
            {**params, "DASK_SCHEDULER": scheduler, "OUTPUT_HTML": str(tmp_path / f"{name}.html"),
             "OUTPUT_JSON": str(tmp_path / f"{name}.json")},
        )  # fmt: skip
        texts.append((tmp_path / f"{name}.json").read_text())
    assert texts[0] == texts[1]


def _bad(run, tmp_path, params, message):
    with pytest.raises(QgsProcessingException, match=message):
        run("landseg:accuracy", {**params, "OUTPUT_HTML": str(tmp_path / "bad.html")})
    assert not (tmp_path / "bad.html").exists()


def test_bad_inputs(run, tmp_path):
    pred = write_tif(tmp_path / "p.tif", np.ones((1, 20, 20), np.uint8))
    other = write_tif(tmp_path / "o.tif", np.full((1, 20, 20), 7, np.uint8))
    far = write_tif(tmp_path / "f.tif", np.ones((1, 20, 20), np.uint8), epsg=4326)
    _bad(run, tmp_path, {"PREDICTION": str(pred), "REFERENCE": str(far)}, "overlap")
    _bad(run, tmp_path, {"PREDICTION": str(pred), "REFERENCE": str(other)}, "cluster")
    _bad(
        run,
        tmp_path,
        {"PREDICTION": str(pred), "REFERENCE": str(pred), "IGNORE_VALUE": "1"},
        "No pixel is valid",
    )
    _bad(run, tmp_path, {"PREDICTION": str(pred)}, "either a reference")
    _bad(
        run,
        tmp_path,
        {"PREDICTION": str(pred), "REFERENCE": str(pred), "IGNORE_VALUE": "zero"},
        "not a number",
    )


def test_reference_in_another_crs_is_reprojected(run, tmp_path, nc_dir):
    from osgeo import gdal

    warped = tmp_path / "strata_utm.tif"
    gdal.Warp(str(warped), str(nc_dir / "strata.tif"), dstSRS="EPSG:32617", resampleAlg="near")
    result = run(
        "landseg:accuracy",
        {
            "PREDICTION": str(nc_dir / "strata.tif"),
            "REFERENCE": str(warped),
            "OUTPUT_HTML": str(tmp_path / "w.html"),
        },
    )
    assert result["OVERALL_ACCURACY"] > 0.8
