"""Superpixels of large rasters, block by block (core.superpixel_blocks through run_superpixels).

The NC Landsat scene (489 x 443, 5 bands, a 15 % nodata frame) is segmented with blocks of
128 px (4 x 4 blocks), so every property below is exercised across 6 block borders.

Seam test. For a line between two pixel rows (or columns), its boundary fraction is the
fraction of vertically (horizontally) adjacent pixel pairs straddling it, both valid, that
have different ids. A seam is a line where segments are cut: its fraction jumps towards 1.
The block borders form a grid of lines at offset 0 (rows and columns ``k * 128``); the same
grid shifted by 1..127 px gives 127 other grids of as many lines over the same image.
Criteria: (1) the mean fraction of the block-border grid is at most the 95th percentile of
the shifted grids' means (a seam on even one of the 6 border lines lifts the border grid
above all of them, as the naive per-block control shows), and (2) no single border line
has a higher fraction than the highest other line of the raster ("no higher than on any
other pixel row/column").
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasters import parcels, write_tif
from scipy import ndimage

from core import superpixels
from core.commands.superpixels import run_superpixels
from core.normalize import stretch
from core.protocol import EngineError, Reporter

ROOT = Path(__file__).resolve().parents[2]
NC_CANDIDATES = [
    ROOT / "data" / "nc-landsat7" / "landsat_multiband.tif",
    ROOT.parent / "shared" / "data" / "nc-landsat7" / "landsat_multiband.tif",
]
NC = next((p for p in NC_CANDIDATES if p.exists()), None)
needs_nc = pytest.mark.skipif(NC is None, reason="NC Landsat sample absent (run `make data`)")
BLOCK = 128
PARAMS = {
    "slic": {"n_segments": 1500},
    "quickshift": {},
    "felzenszwalb": {},
}


class Quiet(Reporter):
    """Reporter that records progress and messages instead of printing them."""

    def __init__(self) -> None:
        super().__init__("text")
        self.percents: list[float] = []
        self.messages: list[str] = []

    def progress(self, percent: float) -> None:
        self.percents.append(percent)

    def _log(self, level: str, message: str) -> None:
        self.messages.append(message)


def line_fractions(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boundary fraction of each line between rows (``r[i]``: rows i, i+1) and columns."""
    both_r = (labels[1:] > 0) & (labels[:-1] > 0)
    both_c = (labels[:, 1:] > 0) & (labels[:, :-1] > 0)
    r = ((labels[1:] != labels[:-1]) & both_r).sum(1) / np.maximum(both_r.sum(1), 1)
    c = ((labels[:, 1:] != labels[:, :-1]) & both_c).sum(0) / np.maximum(both_c.sum(0), 1)
    return r, c


def seam_statistics(labels: np.ndarray, block: int) -> dict[str, float]:
    """Block-border grid against the shifted grids (see the module docstring)."""
    r, c = line_fractions(labels)
    grids = []
    for offset in range(block):
        first = offset - 1 if offset else block - 1  # line index between rows k*block-1, k*block
        grids.append(np.concatenate([r[first::block], c[first::block]]))
    means = np.array([g.mean() for g in grids])
    border_r = np.arange(block - 1, r.size, block)
    border_c = np.arange(block - 1, c.size, block)
    others = np.concatenate([np.delete(r, border_r), np.delete(c, border_c)])
    return {
        "border": float(means[0]),
        "shifted_p95": float(np.percentile(means[1:], 95)),
        "shifted_max": float(means[1:].max()),
        "border_line_max": float(grids[0].max()),
        "other_line_max": float(others.max()),
    }


def read(path: str | Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def nc_valid() -> np.ndarray:
    with rasterio.open(NC) as src:
        return np.all(src.read_masks() > 0, axis=0)


@pytest.fixture(scope="module")
def streamed(tmp_path_factory) -> dict[str, dict]:
    """Each method on NC: streamed in 128 px blocks, and in memory (one block)."""
    if NC is None:
        pytest.skip("NC Landsat sample absent (run `make data`)")
    folder = tmp_path_factory.mktemp("blocks")
    results: dict[str, dict] = {}
    for method, params in PARAMS.items():
        reporter = Quiet()
        out = run_superpixels(
            method,
            src=str(NC),
            dst=str(folder / f"{method}.tif"),
            params=params,
            block_size=BLOCK,
            dst_mean=str(folder / f"{method}_mean.tif") if method == "slic" else None,
            reporter=reporter,
        )
        whole = run_superpixels(
            method, src=str(NC), dst=str(folder / f"{method}_mem.tif"), params=params
        )
        results[method] = {
            "result": out,
            "labels": read(out["OUTPUT"]),
            "memory": read(whole["OUTPUT"]),
            "reporter": reporter,
            "folder": folder,
        }
    return results


@needs_nc
@pytest.mark.parametrize("method", list(PARAMS))
def test_no_seam_along_block_borders(streamed, method):
    stats = seam_statistics(streamed[method]["labels"], BLOCK)
    assert stats["border"] <= stats["shifted_p95"], stats
    assert stats["border_line_max"] <= stats["other_line_max"], stats


@needs_nc
def test_the_seam_test_catches_naive_blocks():
    """Control: SLIC run on each block alone (no halo) leaves seams the test detects."""
    with rasterio.open(NC) as src:
        image = src.read(out_dtype="float32")
        valid = np.all(src.read_masks() > 0, axis=0)
    image = stretch(image, valid)
    labels = np.zeros(valid.shape, np.int32)
    for y in range(0, valid.shape[0], BLOCK):
        for x in range(0, valid.shape[1], BLOCK):
            part = (slice(y, y + BLOCK), slice(x, x + BLOCK))
            if valid[part].any():
                local = superpixels.slic(
                    image[:, part[0], part[1]], n_segments=100, mask=valid[part]
                )
                labels[part] = np.where(local > 0, local + labels.max(), 0)
    stats = seam_statistics(labels, BLOCK)
    assert stats["border"] > stats["shifted_max"], stats
    assert stats["border_line_max"] > stats["other_line_max"], stats


@needs_nc
@pytest.mark.parametrize("method", list(PARAMS))
def test_ids_are_unique_contiguous_and_nodata_is_zero(streamed, method):
    labels = streamed[method]["labels"]
    valid = nc_valid()
    assert labels.dtype == np.int32
    assert (labels[~valid] == 0).all() and (labels[valid] > 0).all()
    ids = np.unique(labels[valid])
    assert ids[0] == 1 and ids[-1] == len(ids) == streamed[method]["result"]["N_SEGMENTS"]
    # No id in two far-apart places: every id fits in a box smaller than a block.
    for box in ndimage.find_objects(labels):
        assert box is not None
        assert max(s.stop - s.start for s in box) < BLOCK
    # As many segments as in memory (within 15 %).
    assert abs(ids[-1] - streamed[method]["memory"].max()) <= 0.15 * ids[-1]


@needs_nc
def test_slic_ids_are_one_connected_region_each(streamed):
    labels = streamed["slic"]["labels"]
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        assert ndimage.label(labels[box] == i)[1] == 1, i


@needs_nc
def test_felzenszwalb_blocks_give_the_in_memory_partition(streamed):
    """Felzenszwalb's merging is local: with segments inside the halo it is exact."""
    ours, theirs = streamed["felzenszwalb"]["labels"], streamed["felzenszwalb"]["memory"]
    pairs = np.unique(ours.astype(np.int64) * (theirs.max() + 1) + theirs)
    assert len(pairs) - 1 == ours.max() == theirs.max()


@needs_nc
def test_quickshift_blocks_agree_with_memory_and_are_reproducible(streamed, tmp_path):
    ours, theirs = streamed["quickshift"]["labels"], streamed["quickshift"]["memory"]
    pairs = np.unique(ours.astype(np.int64) * (theirs.max() + 1) + theirs)
    assert len(pairs) - 1 <= 1.02 * theirs.max()  # the same partition up to 2 % of segments
    again = run_superpixels(
        "quickshift", src=str(NC), dst=str(tmp_path / "qs.tif"), block_size=BLOCK, seed=42
    )
    np.testing.assert_array_equal(read(again["OUTPUT"]), ours)


@needs_nc
def test_progress_per_block_and_mean_output(streamed):
    run = streamed["slic"]
    assert len([p for p in run["reporter"].percents if 5 < p <= 80]) == 16  # 4 x 4 blocks
    assert any("16 blocks of 128 px" in m for m in run["reporter"].messages)
    labels = run["labels"]
    with rasterio.open(NC) as src:
        image = src.read(out_dtype="float64")
    with rasterio.open(run["result"]["OUTPUT_MEAN"]) as src:
        mean = src.read()
        assert src.nodata == -9999
    n = labels.max()
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    for band in range(image.shape[0]):
        sums = np.bincount(labels.ravel(), weights=image[band].ravel(), minlength=n + 1)
        expected = (sums[1:] / counts[1:]).astype(np.float32)
        np.testing.assert_allclose(mean[band][labels > 0], expected[labels[labels > 0] - 1])
    assert (mean[:, labels == 0] == -9999).all()


def test_polygons_of_a_streamed_raster(tmp_path):
    import pyogrio

    src = write_tif(tmp_path / "in.tif", parcels((150, 200), 3), nodata=None)
    out = run_superpixels(
        "felzenszwalb",
        src=str(src),
        dst=str(tmp_path / "fz.tif"),
        dst_polygons=str(tmp_path / "fz.gpkg"),
        block_size=64,
        reporter=Quiet(),
    )
    table = pyogrio.read_dataframe(out["OUTPUT_POLYGONS"])
    assert len(table) == out["N_SEGMENTS"] > 20
    assert table["pixels"].sum() == 150 * 200
    assert sorted(table["id"]) == list(range(1, out["N_SEGMENTS"] + 1))


def test_polygons_of_rasters_above_the_limit_are_refused_before_any_work(tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((100, 100), 1))
    with pytest.raises(EngineError, match=r"10,000 pixels.*landseg:vectorize"):
        run_superpixels(
            "slic",
            src=str(src),
            dst=str(tmp_path / "o.tif"),
            dst_polygons=str(tmp_path / "o.gpkg"),
            max_pixels=5000,
            block_size=64,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_cancelling_between_blocks_leaves_nothing(tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((200, 200), 3))

    class Cancel(Quiet):
        def progress(self, percent: float) -> None:
            if percent > 30:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_superpixels(
            "slic",
            src=str(src),
            dst=str(tmp_path / "o.tif"),
            dst_mean=str(tmp_path / "m.tif"),
            block_size=64,
            reporter=Cancel(),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]  # no scratch, no partial


def test_small_blocks_are_refused(tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((100, 100), 1))
    with pytest.raises(EngineError, match="at least 64"):
        run_superpixels("slic", src=str(src), dst=str(tmp_path / "o.tif"), block_size=32)


def test_cli_block_size_streams_and_small_rasters_stay_in_memory(tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((160, 96), 2), nodata=None)
    args = [sys.executable, "-m", "core", "quickshift", str(src)]
    proc = subprocess.run(
        [*args, str(tmp_path / "a.tif"), "--block-size", "64"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Streaming 6 blocks of 64 px" in proc.stderr
    proc = subprocess.run(
        [*args, str(tmp_path / "b.tif")], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "Streaming" not in proc.stderr
    a, b = read(tmp_path / "a.tif"), read(tmp_path / "b.tif")
    assert a.max() > 1 and abs(int(a.max()) - int(b.max())) <= 0.05 * b.max()
