"""SLIC end to end through ``qgis_process`` against scikit-image on the same pixels.

For each size, one 3-band uint8 GeoTIFF (the Dubai aerial tile 7 image mirrored to the
size when ../shared/data is present, else synthetic fields with noise), about 1,000
pixels per segment (65,000 segments at 8192²), compactness 1 on bands stretched to 0-1:

- ``qgis_process``: ``qgis_process.bin run landseg:slic`` with the plugin deployed
  (``make deploy``) into a throw-away QGIS configuration folder; process wall seconds,
  median of ``--repeats``. The engine's own "N segments in X s" line is kept.
- scikit-image: ``skimage.segmentation.slic`` in this process, on the very array LandSeg
  segments (read, percentile-stretched to 0-1), with the same ``n_segments`` and
  ``compactness`` (``channel_axis=0``, ``convert2lab=False``); median of ``--sk-repeats``.
- the breakdown of LandSeg's run: QGIS start (``qgis_process.bin help landseg:slic``:
  QGIS, its providers and the plugin, no engine), engine start (a fresh engine Python
  importing the engine and loading its cached kernels on an 8x8 image), and in this
  process on the same pixels: read (rasterio), stretch (``core.normalize.stretch``),
  segment (``core.superpixels.slic`` without connectivity), connectivity (with minus
  without), write (int32 DEFLATE GeoTIFF, 256 px tiles, as the engine writes).
  Rasters larger than a block (2048 px) go through the engine's block path in
  ``qgis_process``, so ``qgis_process`` minus the in-memory sum shows what streaming costs.

Usage: ``python bench/end_to_end.py [--sizes 2048 8192 16384] [--repeats 3]
[--sk-repeats 1] [--json PATH]``; the default (2048, one run each) takes about a minute.
Needs QGIS (``qgis_process.bin``) and the engine venv; run it with the engine Python.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import normalize, superpixels  # noqa: E402

PIXELS_PER_SEGMENT = 8192 * 8192 / 65000
COMPACTNESS = 1.0


def source_image(size: int) -> np.ndarray:
    """(3, size, size) uint8: Dubai tile 7 image 1 mirrored, or synthetic fields."""
    jpg = ROOT.parent / "shared" / "data" / "dubai-aerial" / "tile7" / "images"
    if (jpg / "image_part_001.jpg").exists():
        from PIL import Image

        rgb = np.moveaxis(np.asarray(Image.open(jpg / "image_part_001.jpg").convert("RGB")), -1, 0)
        reps = [rgb if i % 2 == 0 else rgb[:, ::-1] for i in range(-(-size // rgb.shape[1]))]
        column = np.concatenate(reps, axis=1)
        reps = [
            column if j % 2 == 0 else column[:, :, ::-1] for j in range(-(-size // rgb.shape[2]))
        ]
        return np.ascontiguousarray(np.concatenate(reps, axis=2)[:, :size, :size])
    rng = np.random.default_rng(0)
    cell = 24
    n = -(-size // cell)
    colours = rng.integers(20, 230, size=(3, n, n))
    image = np.repeat(np.repeat(colours, cell, 1), cell, 2)[:, :size, :size]
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def write_geotiff(path: Path, array: np.ndarray, **extra: Any) -> float:
    """Write (C, H, W) as a tiled GeoTIFF; return the seconds it took."""
    import rasterio
    from rasterio.transform import from_origin

    profile = {
        "driver": "GTiff",
        "width": array.shape[2],
        "height": array.shape[1],
        "count": array.shape[0],
        "dtype": array.dtype.name,
        "crs": "EPSG:32640",
        "transform": from_origin(300000, 2800000, 0.5, 0.5),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        **extra,
    }
    started = time.perf_counter()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array)
    return time.perf_counter() - started


def wall(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return seconds, done.stdout + done.stderr


def deploy(config: Path) -> dict[str, str]:
    subprocess.run(
        ["make", "-s", "deploy", f"QGIS_CONFIG={config}"], cwd=ROOT, check=True, capture_output=True
    )
    env = {**os.environ, "QGIS_CUSTOM_CONFIG_PATH": str(config), "QT_QPA_PLATFORM": "offscreen"}
    env.setdefault("LANDSEG_ENGINE_PYTHON", sys.executable)
    return env


def in_process(src: Path, out: Path, n_segments: int) -> tuple[dict[str, float], np.ndarray]:
    """Read, stretch, segment, connectivity and write on the pixels LandSeg sees."""
    import rasterio

    times: dict[str, float] = {}
    started = time.perf_counter()
    with rasterio.open(src) as raster:
        image = raster.read(out_dtype="float32")
        valid = np.all(raster.read_masks() > 0, axis=0)
    times["read"] = time.perf_counter() - started
    started = time.perf_counter()
    stretched = normalize.stretch(image, valid).astype(np.float32)
    times["stretch"] = time.perf_counter() - started
    del image
    kwargs = {"n_segments": n_segments, "compactness": COMPACTNESS, "mask": valid}
    superpixels.slic(stretched[:, :64, :64], n_segments=4)  # kernels loaded, not timed
    started = time.perf_counter()
    superpixels.slic(stretched, enforce_connectivity=False, **kwargs)
    times["segment"] = time.perf_counter() - started
    started = time.perf_counter()
    labels = superpixels.slic(stretched, **kwargs)
    times["connectivity"] = max(time.perf_counter() - started - times["segment"], 0.0)
    times["write"] = write_geotiff(out, labels[np.newaxis].astype(np.int32), nodata=0)
    return times, stretched


def run_size(size: int, folder: Path, env: dict[str, str], args: argparse.Namespace) -> dict:
    src = folder / f"input_{size}.tif"
    write_geotiff(src, source_image(size))
    n_segments = max(round(size * size / PIXELS_PER_SEGMENT), 1)
    qgis = []
    engine_line = ""
    for i in range(args.repeats):
        seconds, text = wall(
            ["qgis_process.bin", "run", "landseg:slic", "--", f"INPUT={src}",
             f"N_SEGMENTS={n_segments}", f"COMPACTNESS={COMPACTNESS}",
             f"OUTPUT={folder / f'qgis_{size}_{i}.tif'}"],
            env,
        )  # fmt: skip
        qgis.append(seconds)
        # qgis_process prints its progress ("...70...80") without a newline before a log
        # line, so the count is read from the result (N_SEGMENTS), not from the log line.
        counts = re.findall(r"^N_SEGMENTS:\s*(\d+)", text, flags=re.MULTILINE)
        ours = int(counts[-1]) if counts else 0
        timing = re.findall(r"segments in (?:\d+ blocks? in )?[\d.]+ s", text)
        engine_line = f"{ours} {timing[0]}" if timing else ""
    qgis_start, _ = wall(["qgis_process.bin", "help", "landseg:slic"], env)
    engine_start, _ = wall(
        [env["LANDSEG_ENGINE_PYTHON"], "-c",
         "import numpy as np, rasterio; from core import superpixels; "
         "superpixels.slic(np.zeros((1, 8, 8), np.float32), n_segments=1)"],
    )  # fmt: skip
    breakdown, stretched = in_process(src, folder / f"memory_{size}.tif", n_segments)
    from skimage.segmentation import slic as sk_slic

    sk_times = []
    for _ in range(args.sk_repeats):
        started = time.perf_counter()
        theirs = sk_slic(stretched, n_segments=n_segments, compactness=COMPACTNESS,
                         channel_axis=0, convert2lab=False, start_label=1)  # fmt: skip
        sk_times.append(time.perf_counter() - started)
    del stretched
    qgis_s = statistics.median(qgis)
    sk_s = statistics.median(sk_times)
    memory_s = sum(breakdown.values())
    row = {
        "size": size,
        "n_segments": n_segments,
        "landseg_segments": ours,
        "qgis_process_s": qgis_s,
        "qgis_process_runs": qgis,
        "engine_log": engine_line,
        "qgis_start_s": qgis_start,
        "engine_start_s": engine_start,
        **{f"{k}_s": v for k, v in breakdown.items()},
        "in_memory_total_s": memory_s,
        "skimage_slic_s": sk_s,
        "skimage_segments": int(theirs.max()),
        "speedup_end_to_end": sk_s / qgis_s,
        "speedup_in_memory": sk_s / (breakdown["segment"] + breakdown["connectivity"]),
    }
    print(json.dumps(row), flush=True)
    return row


def markdown(rows: list[dict]) -> str:
    lines = [
        "| size | segments (LandSeg / skimage) | qgis_process s | scikit-image slic s | "
        "end-to-end speed-up | QGIS start | engine start | read | stretch | segment | "
        "connectivity | write | engine log |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']}² | {r['landseg_segments']:,} / {r['skimage_segments']:,} | "
            f"{r['qgis_process_s']:.1f} | "
            f"{r['skimage_slic_s']:.1f} | **{r['speedup_end_to_end']:.1f}x** | "
            f"{r['qgis_start_s']:.1f} | {r['engine_start_s']:.1f} | {r['read_s']:.2f} | "
            f"{r['stretch_s']:.2f} | {r['segment_s']:.2f} | {r['connectivity_s']:.2f} | "
            f"{r['write_s']:.2f} | {r['engine_log']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[2048])
    parser.add_argument("--repeats", type=int, default=1, help="qgis_process runs per size")
    parser.add_argument("--sk-repeats", type=int, default=1, help="scikit-image runs per size")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_1min_at_start": os.getloadavg()[0],
    }
    print(json.dumps(meta), flush=True)
    with tempfile.TemporaryDirectory(prefix="landseg-e2e-") as tmp:
        folder = Path(tmp)
        env = deploy(folder / "qgis-config")
        # One untimed run: the deployed copy compiles (or loads) its numba kernel cache.
        warm = folder / "warm.tif"
        write_geotiff(warm, source_image(256))
        wall(["qgis_process.bin", "run", "landseg:slic", "--", f"INPUT={warm}",
              f"OUTPUT={folder / 'warm_out.tif'}"], env)  # fmt: skip
        rows = [run_size(size, folder, env, args) for size in args.sizes]
    meta["load_average_1min_at_end"] = os.getloadavg()[0]
    print(markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
