"""Benchmark the panel's Preview: the engine on a VRT of the visible part of a raster.

Preview writes a GDAL VRT of the raster under the map view, averaged down to at most the
view's pixels, and runs the algorithm on it (``qgis_plugin/panel/view.py``). This script
builds the same VRT with ``gdal_translate`` and times the engine on it:

* ``slic``: a 1000 x 800 view of a Dubai aerial image (RGB JPEG without georeferencing,
  1126 x 1058 px, so the view is at native resolution), default SLIC parameters
  (1000 segments). Target: under 1 s of engine time on 2 cores.
* ``dfc``: a 512 x 512 view of the same image with scribbles (a few short strokes per
  class, taken from the image's mask, as a user would draw them), with the panel's DFC
  values (32 output channels, at most 30 iterations; the other parameters at their
  defaults) on the CPU. Target: under 20 s.

"Engine time" is the engine's own work in one process (read the VRT, segment, write the
GeoTIFF and its style), after one untimed warm-up (numba compile, torch import). The
whole command (``python -m core ...``, interpreter start and imports included) is timed
too, as ``command_s``. Timings are medians of ``--repeats`` runs.

Run: ``python bench/preview.py [--methods slic dfc] [--repeats 3] [--json PATH]``
"""

from __future__ import annotations

import argparse
import io
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
sys.path.insert(0, str(ROOT / "tests"))

from conftest import find_data  # noqa: E402

#: Mask colours of the Dubai set -> class value (see ../shared/data/README.md).
DUBAI_COLOURS = {
    (0x3C, 0x10, 0x98): 1,
    (0x84, 0x29, 0xF6): 2,
    (0x6E, 0xC1, 0xE4): 3,
    (0xFE, 0xDD, 0x3A): 4,
    (0xE2, 0xA9, 0x29): 5,
}


#: The panel's DFC values (qgis_plugin/panel/dock.py, PANEL_DEFAULTS).
PANEL_DFC = {"max_clusters": 32, "max_iter": 30}


def view_vrt(
    source: Path, window: tuple[int, int, int, int], size: tuple[int, int], dst: Path
) -> Path:
    """Write the VRT Preview writes: a window of ``source`` averaged to ``size``."""
    col, row, width, height = window
    subprocess.run(
        [
            "gdal_translate",
            "-q",
            "-of",
            "VRT",
            "-srcwin",
            *map(str, window),
            "-outsize",
            str(size[0]),
            str(size[1]),
            "-a_ullr",
            str(col),
            str(-row),
            str(col + width),
            str(-(row + height)),
            "-r",
            "average",
            str(source),
            str(dst),
        ],
        check=True,
    )
    return dst


def scribble_raster(
    mask: Path, window: tuple[int, int, int, int], dst: Path, *, seed: int = 0
) -> int:
    """Strokes of 40 px along rows inside each class of the mask (3 per class)."""
    import rasterio

    col, row, width, height = window
    with rasterio.open(mask) as src:
        rgb = src.read(window=((row, row + height), (col, col + width)))
    classes = np.zeros((height, width), np.uint8)
    for colour, value in DUBAI_COLOURS.items():
        classes[(rgb.transpose(1, 2, 0) == colour).all(axis=2)] = value
    rng = np.random.default_rng(seed)
    strokes = np.zeros_like(classes)
    for value in np.unique(classes[classes > 0]):
        rows, cols = np.nonzero(classes == value)
        for index in rng.choice(len(rows), size=min(3, len(rows)), replace=False):
            r, c = rows[index], cols[index]
            segment = slice(c, min(width, c + 40))
            strokes[r, segment] = np.where(classes[r, segment] == value, value, 0)
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": "uint8",
        "nodata": 0,
        "transform": rasterio.Affine(1, 0, col, 0, -1, -row),
    }
    with rasterio.open(dst, "w", **profile) as out:
        out.write(strokes, 1)
    return int((strokes > 0).sum())


def logged_seconds(log: io.StringIO, pattern: str) -> float | None:
    """Return the last ``<pattern> <seconds> s`` the engine logged (JSON lines)."""
    found = re.findall(pattern + r" ([0-9.]+) s", log.getvalue())
    return float(found[-1]) if found else None


def timed(function: Any, repeats: int) -> tuple[float, list[float], float, Any]:
    """Warm up once, then time ``repeats`` calls.

    Returns the median wall time, every wall time, the median CPU time of this process
    (all its threads; less sensitive than wall time to other jobs on the machine) and the
    last result.
    """
    result = function()
    runs, cpu = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = function()
        runs.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return statistics.median(runs), runs, statistics.median(cpu), result


def command_seconds(args: list[str]) -> float:
    """Wall time of one ``python -m core`` command, interpreter start included."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "core", *args, "--overwrite"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    """Run the benchmark and print (and optionally save) the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["slic", "dfc"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads for DFC (default: all cores)"
    )
    args = parser.parse_args()
    dubai = find_data("dubai-aerial")
    if dubai is None:
        sys.exit("Needs ../shared/data/dubai-aerial (the Dubai aerial set).")
    image = dubai / "tile5" / "images" / "image_part_001.jpg"
    mask = dubai / "tile5" / "masks" / "image_part_001.png"
    from core.commands.superpixels import run_superpixels
    from core.commands.unsupervised import run_unsupervised
    from core.protocol import Reporter

    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "image": str(image.relative_to(dubai.parent)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "slic" in args.methods:
            window = (60, 100, 1000, 800)
            vrt = view_vrt(image, window, (1000, 800), folder / "view.vrt")
            out = str(folder / "slic.tif")
            log = io.StringIO()
            reporter = Reporter("json", out=log)
            median, runs, cpu, answer = timed(
                lambda: run_superpixels(
                    "slic", src=str(vrt), dst=out, overwrite=True, reporter=reporter
                ),
                args.repeats,
            )
            results["slic"] = {
                "view": "1000 x 800",
                "engine_s": round(median, 3),
                "engine_cpu_s": round(cpu, 3),
                "runs_s": [round(r, 3) for r in runs],
                "segments": answer["N_SEGMENTS"],
                "segmenting_s_last_run": logged_seconds(log, "segments in"),
                "command_s": round(command_seconds(["slic", str(vrt), out]), 2),
            }
            print("slic", results["slic"])
        if "dfc" in args.methods:
            window = (300, 300, 512, 512)
            vrt = view_vrt(image, window, (512, 512), folder / "view512.vrt")
            scribbles = folder / "scribbles.tif"
            n_scribbled = scribble_raster(mask, window, scribbles)
            out = str(folder / "dfc.tif")
            log = io.StringIO()
            reporter = Reporter("json", out=log)
            median, runs, cpu, answer = timed(
                lambda: run_unsupervised(
                    "dfc",
                    src=str(vrt),
                    dst=out,
                    scribbles=str(scribbles),
                    params=PANEL_DFC,
                    device="cpu",
                    threads=args.threads,
                    overwrite=True,
                    reporter=reporter,
                ),
                args.repeats,
            )
            results["dfc"] = {
                "view": "512 x 512",
                "scribbled_pixels": n_scribbled,
                "threads": args.threads,
                "engine_s": round(median, 2),
                "engine_cpu_s": round(cpu, 2),
                "runs_s": [round(r, 2) for r in runs],
                "iterations": answer["ITERATIONS"],
                "training_s_last_run": logged_seconds(log, "iterations in"),
                "clusters": answer["N_CLUSTERS"],
                "command_s": round(
                    command_seconds(
                        [
                            "dfc",
                            str(vrt),
                            out,
                            "--scribbles",
                            str(scribbles),
                            "--device",
                            "cpu",
                            *(["--threads", str(args.threads)] if args.threads else []),
                            "--max-clusters",
                            "32",
                            "--max-iter",
                            "30",
                        ]
                    ),
                    2,
                ),
            }
            print("dfc", results["dfc"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
