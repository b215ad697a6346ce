"""run_accuracy: rasters on other grids and CRSs, polygons, cluster mode, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasters import write_tif

from core.accuracy import parse_classes
from core.classes import read_raster_classes
from core.commands.accuracy import run_accuracy
from core.protocol import EngineError


def worked_example(tmp_path):
    """The standard 3x3 example as rasters: rows prediction, columns reference."""
    matrix = np.array([[8, 10, 1], [5, 60, 50], [3, 30, 83]])
    pred, ref = [], []
    for p in range(3):
        for r in range(3):
            pred += [p + 1] * matrix[p, r]
            ref += [r + 1] * matrix[p, r]
    pred = np.array(pred, np.uint8).reshape(1, 10, 25)
    ref = np.array(ref, np.uint8).reshape(1, 10, 25)
    return write_tif(tmp_path / "pred.tif", pred), write_tif(tmp_path / "ref.tif", ref)


def test_worked_example_through_files(tmp_path):
    pred, ref = worked_example(tmp_path)
    out = run_accuracy(
        prediction=str(pred),
        reference=str(ref),
        dst_json=str(tmp_path / "m.json"),
        dst_csv=str(tmp_path / "m.csv"),
        dst_html=str(tmp_path / "r.html"),
        dst_errors=str(tmp_path / "e.tif"),
    )
    assert out["OVERALL_ACCURACY"] == pytest.approx(151 / 250)
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["overall_accuracy"] == pytest.approx(151 / 250)
    csv = (tmp_path / "m.csv").read_text().splitlines()
    assert csv[1].split(",")[1:] == ["8", "10", "1"]
    assert (tmp_path / "r.html").read_text().count("data:image/png;base64,") >= 2
    with rasterio.open(tmp_path / "e.tif") as errors:
        values = errors.read(1)
        assert (values == 1).sum() == 151 and (values == 2).sum() == 99
        assert errors.colormap(1)[2][:3] == (215, 48, 39)
        names = {c.value: c.name for c in read_raster_classes(errors)}
    assert names == {1: "correct", 2: "wrong"}
    assert 'label="wrong"' in (tmp_path / "e.qml").read_text()


def test_reference_on_another_grid_and_crs_is_warped(tmp_path, nc_dir):
    strata = nc_dir / "strata.tif"
    with rasterio.open(strata) as src:
        data = src.read(1)
        profile = src.profile
    # Same labels stored in EPSG:3358 vs EPSG:32119 (identical coordinates), and a copy
    # of the prediction on a coarser grid: both must be brought onto the prediction grid.
    coarse = data[::2, ::2][np.newaxis]
    transform = profile["transform"] * rasterio.Affine.scale(2)
    ref = write_tif(
        tmp_path / "coarse.tif",
        coarse,
        crs="EPSG:32119",
        nodata=profile["nodata"],
        transform=transform,
    )
    logs = []

    class Collect:
        def info(self, message):
            logs.append(message)

        def progress(self, percent):
            pass

    out = run_accuracy(prediction=str(strata), reference=str(ref), reporter=Collect())
    assert 0.75 < out["OVERALL_ACCURACY"] < 1.0
    assert any("Reprojecting" in m or "Resampling" in m for m in logs)


def test_polygons_reference_and_cluster_mode(tmp_path, nc_dir):
    out = run_accuracy(
        prediction=str(nc_dir / "strata.tif"),
        reference_polygons=str(nc_dir / "landsat96_polygons.shp"),
        class_field="id",
    )
    assert out["OVERALL_ACCURACY"] > 0.8 and out["N_PIXELS"] > 1000
    clusters = run_accuracy(
        prediction=str(nc_dir / "strata.tif"),
        reference_polygons=str(nc_dir / "landsat96_polygons.shp"),
        class_field="id",
        mode="clusters",
    )
    assert clusters["OVERALL_ACCURACY"] >= out["OVERALL_ACCURACY"] - 1e-9
    with pytest.raises(EngineError, match=r"choose an integer field.*id"):
        run_accuracy(
            prediction=str(nc_dir / "strata.tif"),
            reference_polygons=str(nc_dir / "landsat96_polygons.shp"),
            class_field="label",
        )


@pytest.mark.parametrize("case", ["no_overlap", "no_common_class", "all_ignored", "both"])
def test_bad_inputs_are_explained(tmp_path, case):
    pred, ref = worked_example(tmp_path)
    kwargs = {"prediction": str(pred), "reference": str(ref)}
    message = {
        "no_overlap": "overlap",
        "no_common_class": "cluster",
        "all_ignored": "No pixel is valid",
        "both": "either",
    }[case]
    if case == "no_overlap":
        kwargs["reference"] = str(
            write_tif(
                tmp_path / "far.tif",
                np.ones((1, 10, 25), np.uint8),
                transform=from_origin(900000, 500000, 30, 30),
            )
        )
    elif case == "no_common_class":
        kwargs["reference"] = str(
            write_tif(tmp_path / "other.tif", np.full((1, 10, 25), 9, np.uint8))
        )
    elif case == "all_ignored":
        kwargs["ignore_values"] = [1, 2, 3]
    else:
        kwargs["reference_polygons"] = str(ref)
    kwargs["dst_html"] = str(tmp_path / "report.html")
    with pytest.raises((EngineError, ValueError), match=message):
        run_accuracy(**kwargs)
    assert not (tmp_path / "report.html").exists()


def test_parse_classes():
    names, colors = parse_classes("1:forest:#1b7837, 2:water")
    assert names == {1: "forest", 2: "water"} and colors == {1: "#1b7837"}
    with pytest.raises(EngineError, match="VALUE:NAME"):
        parse_classes("forest")
