"""Per-band stretching."""

import numpy as np
import pytest

from core.normalize import band_limits, stretch


def test_percentile_stretch_maps_each_band_to_range():
    rng = np.random.default_rng(1)
    image = np.stack([rng.uniform(0, 10000, (50, 50)), rng.uniform(100, 101, (50, 50))])
    valid = np.ones((50, 50), bool)
    out = stretch(image, valid, out_max=100.0)
    assert out.dtype == np.float32
    for band in out:
        assert band.min() == 0.0 and band.max() == 100.0
        assert 40 < np.median(band) < 60


def test_uint16_sentinel_values_are_stretched():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 12000, (3, 40, 40)).astype(np.uint16)
    out = stretch(image, np.ones((40, 40), bool))
    assert out.min() == 0.0 and out.max() == 1.0


def test_invalid_pixels_do_not_influence_limits_and_become_zero():
    image = np.full((1, 10, 10), 5.0)
    image[0, :5] = 10.0
    image[0, 0, 0] = -99999
    valid = np.ones((10, 10), bool)
    valid[0, 0] = False
    limits = band_limits(image, valid, method="minmax")
    assert limits.tolist() == [[5.0, 10.0]]
    out = stretch(image, valid, method="minmax")
    assert out[0, 0, 0] == 0 and out[0, 1, 0] == 1.0 and out[0, 9, 9] == 0.0


def test_constant_band_becomes_zero_and_none_keeps_values():
    image = np.full((2, 4, 4), 7.0, dtype=np.float32)
    valid = np.ones((4, 4), bool)
    assert not stretch(image, valid).any()
    np.testing.assert_array_equal(stretch(image, valid, method="none"), image)


@pytest.mark.parametrize("percentiles", [(50, 50), (-1, 98), (2, 101)])
def test_bad_percentiles_are_explained(percentiles):
    with pytest.raises(ValueError, match="0 <= low < high <= 100"):
        band_limits(np.ones((1, 3, 3)), np.ones((3, 3), bool), percentiles=percentiles)


def test_unknown_method_is_explained():
    with pytest.raises(ValueError, match="percentile, minmax, none"):
        stretch(np.ones((1, 3, 3)), np.ones((3, 3), bool), method="zscore")
