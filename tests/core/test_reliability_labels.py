"""Reliability sweep: label values outside what a class raster can hold.

docs/reliability.md, "Labels": class values are whole numbers from 1 to 65535 (0 is the
nodata of LandSeg's class rasters). Others are refused before training, naming the file,
the values and the fix; -1 no longer meets the internal "unlabelled" marker.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasters import write_tif
from shapely.geometry import box
from sweep import command, error_of, leftovers, make_scene, run

from core.labels import IGNORED, check_class_values, read_labels
from core.protocol import EngineError


@pytest.fixture
def scene(tmp_path):
    return make_scene(tmp_path / "in")


def labels_with(scene, tmp_path, value: int, dtype: str = "int32"):
    with rasterio.open(scene.labels) as src:
        labels = src.read(1).astype(dtype)
    labels[:10, :] = value  # a band of the odd value across every class
    return write_tif(tmp_path / "odd_labels.tif", labels[None])


@pytest.mark.parametrize(("value", "dtype"), [(-1, "int32"), (-5, "int16"), (70000, "int32")])
def test_trainunet_refuses_labels_outside_the_class_range(value, dtype, scene, tmp_path):
    odd = labels_with(scene, tmp_path, value, dtype)
    args, outputs = command("trainunet", scene, folder=tmp_path)
    args[args.index("--labels") + 1] = str(odd)
    rc, events = run(args)
    message = error_of(events)
    assert rc == 2, events
    assert "odd_labels.tif" in message and f"{value}" in message and "1..65535" in message
    assert "IGNORE_VALUE" in message
    assert not any(e.get("event") == "progress" and e["percent"] > 5 for e in events)
    assert not any(p.exists() for p in outputs) and not leftovers(tmp_path)


def test_minus_one_as_ignore_value_still_means_unlabelled(scene, tmp_path):
    odd = labels_with(scene, tmp_path, -1)
    args, outputs = command("trainunet", scene, folder=tmp_path)
    args[args.index("--labels") + 1] = str(odd)
    args[args.index("--ignore-value") + 1] = "-1"
    # 0 is unlabelled too here: it is refused with its own message unless ignored
    rc, events = run(args)
    assert rc == 2 and "Class value 0" in error_of(events), events
    with rasterio.open(odd) as src:
        labels = src.read(1)
    labels[labels == 0] = -1
    write_tif(odd, labels[None])
    rc, events = run(args)
    assert rc == 0, events
    assert outputs[0].exists()


def test_minus_one_labels_are_not_silently_dropped(scene, tmp_path):
    odd = labels_with(scene, tmp_path, -1)
    with rasterio.open(scene.image) as image, pytest.raises(EngineError, match="-1"):
        read_labels(str(odd), image, ignore_value=0)


def test_label_polygons_with_negative_classes_are_refused(scene, tmp_path):
    with rasterio.open(scene.image) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
    third = (right - left) / 3
    frame = gpd.GeoDataFrame(
        {"cls": [1, 2, -3]},
        geometry=[box(left + i * third, bottom, left + (i + 1) * third, top) for i in range(3)],
        crs=crs,
    )
    polygons = tmp_path / "marks.gpkg"
    frame.to_file(polygons)
    out = tmp_path / "m.safetensors"
    args = ["trainunet", str(out), "--input", str(scene.image), "--label-polygons",
            str(polygons), "--class-field", "cls", "--epochs", "1",
            "--tile-size", "32"]  # fmt: skip
    rc, events = run(args)
    assert rc == 2 and "marks.gpkg" in error_of(events) and "-3" in error_of(events), events
    assert not out.exists()
    # the same polygons with -3 declared unlabelled train
    rc, events = run([*args, "--ignore-value", "-3", "--threads", "1"])
    assert rc == 0, events


def test_check_class_values():
    check_class_values(np.array([0, 1, 2, 65535]), "ok.tif")
    for bad in (-1, 65536, -65536):
        with pytest.raises(EngineError, match=r"bad\.tif"):
            check_class_values(np.array([1, bad]), "bad.tif")
    assert IGNORED == -1


def test_dfc_scribbles_with_negative_values_are_refused(scene, tmp_path):
    marks = np.zeros((1, 64, 64), np.int16)
    marks[0, 5:8, 5:20] = 1
    marks[0, 40:43, 5:20] = -2
    scribbles = write_tif(tmp_path / "scribbles.tif", marks)
    args, outputs = command("dfc", scene, folder=tmp_path, extra=("--scribbles", str(scribbles)))
    rc, events = run(args)
    assert rc == 2 and "scribbles.tif" in error_of(events) and "-2" in error_of(events), events
    assert not any(p.exists() for p in outputs)
