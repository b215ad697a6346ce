"""Dask scale-out benchmark: U-Net prediction with 1 and 2 local workers.

Writes ``bench/results/dask.json``. A random-weights resnet18 U-Net with the tiles that
``trainunet`` writes (256 px, 64 px overlap) classifies a synthetic 3-band raster:

- in one process (``predictunet`` without a scheduler, all CPU threads),
- on ``local:1`` and ``local:2`` (LocalCluster, one thread per worker process),

the clusters started beforehand and warmed up on a small raster (workers import torch
and build the network once), and checks that every output equals the single-process one.
Throughput is counted in the raster's own windows per second (windows computed twice
on block borders count once), and the per-window cost of one worker (one thread) is the
number docs/scaling.md uses for cluster estimates.

Usage::

    ~/.local/share/landseg/engine-venv/bin/python bench/dask.py [--size 2048] [--block 1024]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[1]
# This file is bench/dask.py: keep its folder off the path, or `import dask` finds it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from core.classes import ClassInfo, classes_to_json  # noqa: E402
from core.commands.unet import run_predictunet  # noqa: E402
from core.modelfile import save_model  # noqa: E402
from core.protocol import Reporter  # noqa: E402


class _Quiet(Reporter):
    def progress(self, percent: float) -> None:
        pass

    def _log(self, level: str, message: str) -> None:
        pass


def _model(path: Path, bands: int) -> Path:
    import torch

    from core.networks import build_unet

    torch.manual_seed(0)
    network = build_unet(encoder="resnet18", in_channels=bands, classes=5)
    colours = ("#1b7837", "#2166ac", "#d6604d", "#fee08b", "#762a83")
    classes = [ClassInfo(v, f"class {v}", c) for v, c in enumerate(colours, start=1)]
    save_model(
        path,
        network.state_dict(),
        {
            "architecture": "unet",
            "architecture_args": {"encoder": "resnet18", "in_channels": bands, "classes": 5},
            "bands": {"count": bands},
            "normalization": {"offsets": [100.0] * bands, "scales": [50.0] * bands},
            "tile_size": 256,
            "overlap": 64,
            "classes": classes_to_json(classes),
        },
    )
    return path


def _raster(path: Path, size: int, bands: int) -> Path:
    sys.path.insert(0, str(ROOT / "tests" / "core"))
    from rasters import parcels, write_tif

    return write_tif(path, parcels((size, size), bands, seed=1, cell=24))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="Raster side, pixels.")
    parser.add_argument("--bands", type=int, default=3)
    parser.add_argument("--block", type=int, default=1024, help="Dask block side, pixels.")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "dask.json"))
    args = parser.parse_args()

    import dask
    import distributed
    import torch

    from core.tiling import make_windows

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = _model(folder / "m.safetensors", args.bands)
        src = _raster(folder / "scene.tif", args.size, args.bands)
        windows = len(make_windows(args.size, args.size, tile_size=256, overlap=64))
        small = _raster(folder / "small.tif", 256, args.bands)
        reference = None
        for label, workers in (("single process", 0), ("local:1", 1), ("local:2", 2)):
            with contextlib.ExitStack() as stack:
                scheduler = None
                if workers:
                    cluster = stack.enter_context(
                        distributed.LocalCluster(
                            n_workers=workers, threads_per_worker=1, dashboard_address=None
                        )
                    )
                    scheduler = cluster.scheduler_address
                    run_predictunet(
                        src=str(small), model=str(model), dst=str(folder / f"warm{workers}.tif"),
                        dask_scheduler=scheduler, reporter=_Quiet("text"),
                    )  # fmt: skip
                dst = folder / f"out{workers}.tif"
                started = time.perf_counter()
                result = run_predictunet(
                    src=str(src), model=str(model), dst=str(dst), dask_scheduler=scheduler,
                    block_size=args.block, reporter=_Quiet("text"),
                )  # fmt: skip
                seconds = time.perf_counter() - started
            with rasterio.open(dst) as ds:
                labels = ds.read(1)
            if reference is None:
                reference = labels
            rows.append(
                {
                    "run": label,
                    "seconds": round(seconds, 2),
                    "windows": windows,
                    "tiles_computed": int(result["TILES"]),
                    "windows_per_s": round(windows / seconds, 2),
                    "equal_to_single_process": bool(np.array_equal(labels, reference)),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    one = next(r for r in rows if r["run"] == "local:1")
    two = next(r for r in rows if r["run"] == "local:2")
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end (shared machine)",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "dask": dask.__version__,
            "numpy": np.__version__,
        },
        "raster": f"{args.size} x {args.size} px, {args.bands} bands",
        "model": "resnet18 U-Net, 256 px tiles, 64 px overlap, 5 classes",
        "block": args.block,
        "speedup_2_vs_1_workers": round(one["seconds"] / two["seconds"], 2),
        "seconds_per_tile_one_worker": round(one["seconds"] / one["tiles_computed"], 4),
        "rows": rows,
    }
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
