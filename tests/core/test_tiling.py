"""Tile windows: coverage, sizes, padding, blending and exact reassembly (property tests)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.tiling import blend_weights, make_windows, offsets, pad_tile, split, stitch

sizes = st.integers(min_value=1, max_value=700)
tiles = st.sampled_from([16, 32, 64, 256])


@st.composite
def layouts(draw: st.DrawFn) -> tuple[int, int, int, int]:
    tile = draw(tiles)
    overlap = draw(st.integers(min_value=0, max_value=(tile - 1) // 2))
    return draw(sizes), draw(sizes), tile, overlap


@settings(max_examples=150, deadline=None)
@given(layouts())
def test_windows_cover_the_raster_with_full_tiles(layout: tuple[int, int, int, int]) -> None:
    height, width, tile, overlap = layout
    windows = make_windows(height, width, tile_size=tile, overlap=overlap)
    covered = np.zeros((height, width), dtype=np.int32)
    for win in windows:
        r, c, h, w = int(win.row_off), int(win.col_off), int(win.height), int(win.width)
        assert h == min(tile, height) and w == min(tile, width)  # full tiles (or the axis)
        assert 0 <= r and r + h <= height and 0 <= c and c + w <= width  # snapped inside
        covered[r : r + h, c : c + w] += 1
    assert covered.min() >= 1
    # neighbouring tiles overlap by at least the requested overlap
    for axis_len in (height, width):
        starts = offsets(axis_len, tile_size=tile, overlap=overlap)
        assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts))


@settings(max_examples=100, deadline=None)
@given(layouts(), st.integers(min_value=1, max_value=3))
def test_stitch_split_is_identity(layout: tuple[int, int, int, int], channels: int) -> None:
    height, width, tile, overlap = layout
    x = np.random.default_rng(height * 1000 + width).random((channels, height, width))
    windows = make_windows(height, width, tile_size=tile, overlap=overlap)
    parts = split(x, windows, tile)
    assert all(p.shape == (channels, tile, tile) for p in parts)  # small rasters padded
    assert np.array_equal(stitch(parts, windows, (height, width)), x)
    blended = stitch(parts, windows, (height, width), overlap=overlap)
    np.testing.assert_allclose(blended, x, rtol=1e-5, atol=1e-6)


def test_blend_weights_are_smooth_and_positive() -> None:
    weights = blend_weights(256, 32)
    assert weights.shape == (256, 256) and weights.dtype == np.float32
    assert weights.min() > 0 and weights.max() == 1
    ramp = weights[128]
    # two tiles overlapping by exactly the overlap sum to one across it
    np.testing.assert_allclose(ramp[-32:] + ramp[:32], 1.0, atol=1e-6)
    assert np.all(np.diff(ramp[:33]) >= 0)


def test_pad_tile_mirrors() -> None:
    tile = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    padded = pad_tile(tile, 4)
    assert padded.shape == (1, 4, 4)
    assert padded[0, 2, 0] == tile[0, 1, 0] and padded[0, 0, 3] == tile[0, 0, 2]
    with pytest.raises(ValueError, match="larger"):
        pad_tile(np.zeros((1, 5, 5)), 4)


@pytest.mark.parametrize("overlap", [-1, 128, 200])
def test_bad_overlap(overlap: int) -> None:
    with pytest.raises(ValueError, match="overlap"):
        make_windows(500, 500, tile_size=256, overlap=overlap)
