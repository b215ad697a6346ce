"""Raster I/O: checked reads, masks, atomic writes."""

import os

import numpy as np
import pytest
import rasterio
from rasters import parcels, write_tif

from core import io
from core.protocol import EngineError


def test_read_bands_masks_nodata_and_nan(tmp_path):
    image = parcels((20, 30), 2)
    image[0, 0, 0] = -1
    image[1, 5, 5] = np.nan
    path = write_tif(tmp_path / "a.tif", image, nodata=-1)
    with io.open_raster(path) as src:
        values, valid = io.read_bands(src, [1, 2])
    assert values.dtype == np.float32 and values.shape == (2, 20, 30)
    assert not valid[0, 0] and not valid[5, 5]
    assert valid.sum() == 20 * 30 - 2


def test_nodata_zero_masks_pixels_zero_in_every_band(tmp_path):
    image = parcels((10, 10), 3)
    image[:, 0, :] = 0
    image[0, 1, :] = 0  # zero in one band only: still valid
    path = write_tif(tmp_path / "z.tif", image)
    with io.open_raster(path) as src:
        _, valid = io.read_bands(src, [1, 2, 3], nodata_zero=True)
    assert not valid[0].any() and valid[1].all()


@pytest.mark.parametrize("bands", [[0], [4], [1, 1]])
def test_resolve_bands_rejects_bad_indices(bands):
    with pytest.raises(EngineError, match="band"):
        io.resolve_bands(bands, 3)


def test_resolve_bands_default_is_all():
    assert io.resolve_bands(None, 3) == [1, 2, 3]
    assert io.resolve_bands([3, 1], 3) == [3, 1]


def test_missing_and_non_raster_inputs_are_explained(tmp_path):
    with pytest.raises(EngineError, match="not found"):
        io.inspect_raster(tmp_path / "missing.tif")
    text = tmp_path / "notes.tif"
    text.write_text("this is not a raster")
    with pytest.raises(EngineError, match=r"Cannot read .* as a raster"):
        io.inspect_raster(text)


def test_atomic_output_moves_into_place_only_on_success(tmp_path):
    target = tmp_path / "out.tif"
    with io.atomic_output(target) as tmp:
        tmp.write_bytes(b"done")
        assert not target.exists()
    assert target.read_bytes() == b"done"
    with pytest.raises(RuntimeError), io.atomic_output(tmp_path / "x.tif") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert sorted(os.listdir(tmp_path)) == ["out.tif"]


def test_existing_output_is_not_overwritten_without_asking(tmp_path):
    target = tmp_path / "out.tif"
    target.write_bytes(b"precious")
    with pytest.raises(EngineError, match="already exists"), io.atomic_output(target):
        pass
    assert target.read_bytes() == b"precious"
    with io.atomic_output(target, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"


def test_unwritable_folders_are_refused_up_front(tmp_path):
    with pytest.raises(EngineError, match="does not exist"):
        io.check_output_path(tmp_path / "nope" / "out.tif", overwrite=False)


def test_write_raster_keeps_grid_and_is_tiled(tmp_path, small_tif):
    info = io.inspect_raster(small_tif)
    labels = np.arange(info.pixels, dtype=np.int32).reshape(info.height, info.width)
    io.write_raster(tmp_path / "l.tif", labels, like=info, nodata=0)
    with rasterio.open(tmp_path / "l.tif") as out, rasterio.open(small_tif) as src:
        assert out.crs == src.crs and out.transform == src.transform
        assert out.nodata == 0 and out.dtypes[0] == "int32"
        assert out.profile["compress"] == "deflate"
        np.testing.assert_array_equal(out.read(1), labels)
