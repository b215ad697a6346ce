"""First ``landseg:slic`` right after engine set-up, against a warm run.

Runs the engine command that ``landseg:slic`` runs (``python -m core slic``, with the
environment the plugin gives the engine) on the NC Landsat scene, timing the whole engine
process (start, imports, numba kernels, segmentation, writing):

``cold``
    an empty numba cache, no warm-up: what the first run cost before set-up warmed it;
``warm-up``
    :func:`core.bootstrap.warm_up`, the last step of set-up, into another empty cache;
``first``, ``second``, ...
    the runs after that warm-up.

Set-up is not redone (it downloads gigabytes): the engine environment is shared through a
folder that links to it, with its own empty ``numba-cache``, exactly where set-up puts it.

Run: ``python bench/first_run.py [--engine-python PY] [--image TIF] [--runs 3] [--json PATH]``
(default ``bench/results/first_run.json``)
with any Python 3.11+ (standard library only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import bootstrap  # noqa: E402


def linked_environment(engine_python: Path, folder: Path) -> Path:
    """A folder that is the engine environment, with its own (empty) numba cache."""
    real = Path(engine_python).parent.parent
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").symlink_to(engine_python)
    shutil.copy(real / "pyvenv.cfg", folder / "pyvenv.cfg")
    for name in ("lib", "lib64"):
        if (real / name).exists():
            (folder / name).symlink_to((real / name).resolve())
    return folder


def run_slic(folder: Path, image: Path, out: Path) -> float:
    """Time one engine run of ``slic`` with the plugin's engine environment."""
    env = bootstrap.clean_environment()
    env["PYTHONPATH"] = str(ROOT)
    env["NUMBA_CACHE_DIR"] = str(bootstrap.numba_cache_dir(folder))
    started = time.monotonic()
    subprocess.run(
        [
            str(folder / "bin" / "python"),
            "-m",
            "core",
            "--progress",
            "json",
            "slic",
            str(image),
            str(out),
            "--overwrite",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def main() -> int:
    """Measure and print (and optionally save) the timings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--engine-python",
        type=Path,
        default=Path(
            os.environ.get("LANDSEG_ENGINE_PYTHON")
            or bootstrap.engine_python(bootstrap.default_venv_dir())
        ),
    )
    parser.add_argument(
        "--image", type=Path, default=ROOT / "data" / "nc-landsat7" / "landsat_multiband.tif"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "first_run.json")
    args = parser.parse_args()
    if not args.image.exists():
        parser.error(f"{args.image} does not exist: run `make data`.")
    with tempfile.TemporaryDirectory(prefix="landseg-first-run-") as tmp:
        tmp = Path(tmp)
        cold_env = linked_environment(args.engine_python, tmp / "cold")
        cold = run_slic(cold_env, args.image, tmp / "cold.tif")
        env = linked_environment(args.engine_python, tmp / "set-up")
        started = time.monotonic()
        bootstrap.warm_up(env)
        warm_up = time.monotonic() - started
        runs = [run_slic(env, args.image, tmp / f"run{i}.tif") for i in range(args.runs)]
    result = {
        "image": args.image.name,
        "cold_s": round(cold, 2),
        "warm_up_s": round(warm_up, 2),
        "runs_after_set_up_s": [round(t, 2) for t in runs],
        "first_over_second": round(runs[0] / runs[1], 2) if len(runs) > 1 else None,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": [round(x, 1) for x in os.getloadavg()],
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
