"""Superpixels of large rasters: streamed block by block against in memory.

Makes mirror-tiled copies of the NC Landsat scene (uint8, nodata 0, 5 bands, tiled
DEFLATE GeoTIFF) of the given sizes, then runs the engine command line on each, once
streamed (``--block-size``) and once in memory (``--block-size`` = the size), each in a
fresh process, and records wall time and the process's peak RSS (``VmHWM``, polled). On the
streamed results it computes the seam statistics of ``tests/core/test_blocks.py`` (the
block-border grid of lines against the same grid shifted by 1..block-1 px) and how far
the streamed partition is from the in-memory one.

Example::

    ~/.local/share/landseg/engine-venv/bin/python bench/large_superpixels.py \\
        --sizes 4096 8192 --methods slic felzenszwalb quickshift
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

ROOT = Path(__file__).resolve().parents[1]
NC = ROOT / "data" / "nc-landsat7" / "landsat_multiband.tif"
PIXELS_PER_SEGMENT = 121  # SLIC: n_segments = pixels / 121 (a grid step of 11 px)


def tiled_nc(size: int, folder: Path) -> Path:
    """NC mirror-tiled to size x size (uint8, nodata 0)."""
    path = folder / f"nc{size}.tif"
    if path.exists():
        return path
    with rasterio.open(NC) as src:
        image = src.read()
        valid = np.all(src.read_masks() > 0, axis=0)
        crs = src.crs
    image = np.where(valid, image, 0).astype(np.uint8)
    tile = np.concatenate([image, image[:, ::-1]], axis=1)
    tile = np.concatenate([tile, tile[:, :, ::-1]], axis=2)
    reps = (1, -(-size // tile.shape[1]), -(-size // tile.shape[2]))
    big = np.tile(tile, reps)[:, :size, :size]
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": big.shape[0],
        "dtype": "uint8",
        "nodata": 0,
        "crs": crs,
        "transform": from_origin(630534.0, 228114.0, 28.5, 28.5),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(big)
    return path


def _high_water_kb(pid: int) -> int:
    """Peak resident set size of a running process (``VmHWM``, Linux), 0 once it has exited.

    Read from ``/proc`` rather than ``os.wait4``'s ``ru_maxrss``: Linux carries the
    parent's resident size over ``fork`` and ``exec`` into the child's ``ru_maxrss``, so a
    large benchmark process would inflate its children's figures.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def run_engine(method: str, src: Path, dst: Path, block_size: int, size: int) -> dict:
    """One engine run in a fresh process: wall time, peak RSS, segments."""
    args = [sys.executable, "-m", "core", "--progress", "json", method, str(src), str(dst)]
    args += ["--block-size", str(block_size), "--overwrite"]
    if method == "slic":
        args += ["--n-segments", str(size * size // PIXELS_PER_SEGMENT)]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out_file:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=out_file, stderr=subprocess.DEVNULL)
        peak_kb = 0
        while proc.poll() is None:
            peak_kb = max(peak_kb, _high_water_kb(proc.pid))
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        out_file.seek(0)
        out = out_file.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed: {out.decode()[-2000:]}")
    result = [json.loads(line) for line in out.decode().splitlines() if '"result"' in line][-1]
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "segments": result["outputs"]["N_SEGMENTS"],
    }


def seam_statistics(labels: np.ndarray, block: int) -> dict[str, float]:
    """Same statistics as tests/core/test_blocks.py (see its module docstring)."""
    both_r = (labels[1:] > 0) & (labels[:-1] > 0)
    both_c = (labels[:, 1:] > 0) & (labels[:, :-1] > 0)
    r = ((labels[1:] != labels[:-1]) & both_r).sum(1) / np.maximum(both_r.sum(1), 1)
    c = ((labels[:, 1:] != labels[:, :-1]) & both_c).sum(0) / np.maximum(both_c.sum(0), 1)
    means = []
    for offset in range(block):
        first = offset - 1 if offset else block - 1
        means.append(np.concatenate([r[first::block], c[first::block]]).mean())
    border_r = np.arange(block - 1, r.size, block)
    border_c = np.arange(block - 1, c.size, block)
    others = np.concatenate([np.delete(r, border_r), np.delete(c, border_c)])
    shifted = np.array(means[1:])
    return {
        "border_grid": round(float(means[0]), 4),
        "shifted_median": round(float(np.median(shifted)), 4),
        "shifted_p95": round(float(np.percentile(shifted, 95)), 4),
        "border_line_max": round(float(max(r[border_r].max(), c[border_c].max())), 4),
        "other_line_max": round(float(others.max()), 4),
    }


def partition_difference(a_path: Path, b_path: Path) -> float:
    """Fraction of segments in excess of a common partition: (pairs - max(Na, Nb)) / Nb."""
    with rasterio.open(a_path) as a, rasterio.open(b_path) as b:
        x = a.read(1).astype(np.int64)
        y = b.read(1).astype(np.int64)
    pairs = len(np.unique(x * (y.max() + 1) + y)) - 1
    return round((pairs - max(x.max(), y.max())) / y.max(), 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--methods", nargs="+", default=["slic", "felzenszwalb", "quickshift"])
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument(
        "--folder", type=Path, default=Path(tempfile.gettempdir()) / "landseg-large"
    )
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results" / "large_superpixels.json"
    )
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        src = tiled_nc(size, args.folder)
        for method in args.methods:
            streamed_path = args.folder / f"{method}_{size}_blocks.tif"
            memory_path = args.folder / f"{method}_{size}_memory.tif"
            streamed = run_engine(method, src, streamed_path, args.block_size, size)
            memory = run_engine(method, src, memory_path, size, size)
            with rasterio.open(streamed_path) as out:
                seams = seam_statistics(out.read(1), args.block_size)
            row = {
                "size": size,
                "method": method,
                "block_size": args.block_size,
                "streamed": streamed,
                "memory": memory,
                "seams": seams,
                "partition_difference": partition_difference(streamed_path, memory_path),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            for path in (streamed_path, memory_path):
                path.unlink()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                "runs": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
