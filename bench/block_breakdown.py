"""Where the streamed superpixel path spends its time, against the in-memory command.

Runs the engine's ``run_superpixels`` (the command behind ``python -m core slic`` and
``qgis_process run landseg:slic``) on one raster twice per repeat, each run in a fresh
process with the numba kernels loaded before the clock starts: streamed in
``--block-size`` blocks, and in memory (block size = raster size). Each row also has the
process's peak RSS (``VmHWM``, polled). The stages are timed by
wrapping the functions that do them (exclusive times: a stage called inside another is
taken out of the outer one):

- ``statistics``: the stretch limits from a subsample of the whole raster (streamed),
- ``read``: reading bands and masks (each window with its halo, or the whole raster),
- ``stretch``: the percentile stretch with the limits,
- ``smooth``: Gaussian pre-smoothing (Felzenszwalb's sigma 0.8),
- ``kernel``: the segmenter (SLIC's k-means and assignment, QuickShift, Felzenszwalb),
- ``connectivity``: SLIC's connectivity enforcement (``connected_relabel``),
- ``claims``: claiming local segments (ids, hints; streamed),
- ``scratch read`` / ``scratch write``: the labels and hints planes on disk (streamed),
- ``write``: the output GeoTIFF (streamed: copying the labels out, compression included;
  in memory: ``io.write_raster``),
- ``wait``: waiting for the reader thread's next window,
- ``other``: the rest of the command's wall time (opening, checks, style, commit).

``engine_log_s`` is the time in the engine's own log line: the block loop ("N segments in
16 blocks in X s": reading, stretching, segmenting and claiming, without the statistics
and the output) or, in memory, the segmenter call ("N segments in X s").

Stages run by a reader thread (preparing the next window while this one is segmented)
are reported apart as ``reader <stage>``: they overlap the main thread's stages.

The raster is the one of ``bench/end_to_end.py`` (Dubai tile 7 mirrored, 3 bands uint8,
tiled DEFLATE GeoTIFF). SLIC runs with about 1,032 px per segment (65,000 at 8192²) and
compactness 1; Felzenszwalb and QuickShift with their defaults.

Example::

    nice -n 19 ~/.local/share/landseg/engine-venv/bin/python bench/block_breakdown.py \\
        --size 8192 --methods slic --repeats 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STAGES = (
    "statistics", "read", "stretch", "smooth", "kernel", "connectivity", "claims",
    "scratch read", "scratch write", "write", "wait",
)  # fmt: skip


class StageTimer:
    """Exclusive wall time per stage of wrapped functions (nested calls subtracted).

    Times in the main thread go to :attr:`totals`; times in other threads (the reader
    thread that prepares the next window) to :attr:`background`.
    """

    def __init__(self) -> None:
        import threading

        self.totals: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.background: dict[str, float] = {}
        self.local = threading.local()  # per thread: time spent in children, per open call
        self.main = threading.main_thread()

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        """Replace ``owner.name`` by a timed wrapper counting towards ``stage``."""
        import threading

        inner: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = self.local.__dict__.setdefault("stack", [])
            stack.append(0.0)
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                children = stack.pop()
                if threading.current_thread() is self.main:
                    self.totals[stage] += spent - children
                else:
                    key = f"reader {stage}"
                    self.background[key] = self.background.get(key, 0.0) + spent - children
                if stack:
                    stack[-1] += spent

        setattr(owner, name, timed)


def instrument() -> StageTimer:
    """Wrap the engine's stage functions (call before running the command)."""
    from core import io, normalize, superpixel_blocks, superpixels

    timer = StageTimer()
    timer.wrap(normalize, "global_statistics", "statistics")
    timer.wrap(io, "read_bands", "read")
    timer.wrap(normalize, "stretch", "stretch")
    timer.wrap(superpixels, "_smooth", "smooth")
    for name in ("slic", "quickshift", "felzenszwalb", "slic_steps"):
        timer.wrap(superpixels, name, "kernel")
    timer.wrap(superpixels, "connected_relabel", "connectivity")
    timer.wrap(superpixel_blocks, "claim_segments", "claims")
    try:  # the block path's own modules (their names before and after issue 18)
        from core import block_io

        timer.wrap(superpixel_blocks, "read_stretched", "read")
        timer.wrap(block_io.Scratch, "read", "scratch read")
        timer.wrap(block_io.Scratch, "write", "scratch write")
        timer.wrap(superpixel_blocks, "copy_out", "write")
        timer.wrap(superpixel_blocks._Prefetcher, "take", "wait")
    except ImportError:
        timer.wrap(superpixel_blocks._Scratch, "read", "scratch read")
        timer.wrap(superpixel_blocks._Scratch, "write", "scratch write")
        timer.wrap(superpixel_blocks, "_copy_out", "write")
    timer.wrap(io, "write_raster", "write")
    return timer


def method_params(method: str, size: int) -> dict[str, Any]:
    """The benchmark's parameters (end_to_end's SLIC; defaults otherwise)."""
    if method == "slic":
        return {"n_segments": max(round(size * size * 65000 / 8192**2), 1), "compactness": 1.0}
    return {}


def child(args: argparse.Namespace) -> None:
    """One timed command in this (fresh) process; prints a JSON line."""
    import numba
    import numpy as np

    numba.set_num_threads(args.threads)
    from core import superpixels
    from core.commands.superpixels import run_superpixels
    from core.protocol import Reporter

    tiny = np.random.default_rng(0).random((3, 64, 64), dtype=np.float32)
    superpixels.slic(tiny, n_segments=4)  # load the cached kernels before the clock
    superpixels.quickshift(tiny * 100, kernel_size=2, max_dist=4)
    superpixels.felzenszwalb(tiny)
    import io
    import re

    log = io.StringIO()
    timer = instrument()
    started = time.perf_counter()
    result = run_superpixels(
        args.method,
        src=args.src,
        dst=args.dst,
        params=method_params(args.method, args.size),
        block_size=args.block_size,
        overwrite=True,
        reporter=Reporter("json", out=log),
    )
    wall = time.perf_counter() - started
    stages = {k: round(v, 3) for k, v in timer.totals.items()}
    stages["other"] = round(wall - sum(timer.totals.values()), 3)
    stages.update({k: round(v, 3) for k, v in timer.background.items()})
    # The engine's own timing line: "N segments in B blocks in X s" (the block loop:
    # reading, stretching, segmenting, claiming) or "N segments in X s" (the kernel).
    found = re.findall(r"segments in (?:\d+ blocks? in )?([\d.]+) s", log.getvalue())
    stages["engine_log_s"] = float(found[-1]) if found else None
    print(json.dumps({"wall": round(wall, 3), "segments": result["N_SEGMENTS"], **stages}))


def run_child(
    method: str, src: Path, dst: Path, size: int, block_size: int, threads: int
) -> dict[str, Any]:
    """One fresh-process run of :func:`child`."""
    sys.path.insert(0, str(ROOT / "bench"))
    from large_superpixels import _high_water_kb as high_water_kb

    command = [sys.executable, __file__, "--child", "--method", method, "--src", str(src),
               "--dst", str(dst), "--size", str(size), "--block-size", str(block_size),
               "--threads", str(threads)]  # fmt: skip
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True, cwd=ROOT)
        peak_kb = 0
        while proc.poll() is None:
            peak_kb = max(peak_kb, high_water_kb(proc.pid))
            time.sleep(0.05)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(err.read()[-3000:])
        row = json.loads(out.read().strip().splitlines()[-1])
    return {**row, "peak_rss_mb": round(peak_kb / 1024, 1)}


def make_raster(size: int, folder: Path) -> Path:
    """The end-to-end benchmark's raster (Dubai tile 7 mirrored, 3 bands uint8)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from end_to_end import source_image, write_geotiff

    path = folder / f"dubai{size}.tif"
    if not path.exists():
        write_geotiff(path, source_image(size))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--methods", nargs="+", default=["slic"])
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2, help="numba threads (the product: all)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--paths", nargs="+", default=["blocks", "memory"])
    parser.add_argument(
        "--folder", type=Path, default=Path(tempfile.gettempdir()) / "landseg-breakdown"
    )
    parser.add_argument("--json", type=Path, default=None, help="Append the rows to this file.")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--dst", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    args.folder.mkdir(parents=True, exist_ok=True)
    src = make_raster(args.size, args.folder)
    for repeat in range(args.repeats):
        for method in args.methods:
            for path in args.paths:
                block = args.block_size if path == "blocks" else args.size
                dst = args.folder / f"{method}_{path}.tif"
                row = run_child(method, src, dst, args.size, block, args.threads)
                row = {"method": method, "path": path, "size": args.size, "block_size": block,
                       "threads": args.threads, "repeat": repeat, **row}  # fmt: skip
                print(json.dumps(row), flush=True)
                if args.json:
                    with args.json.open("a") as out:
                        out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
