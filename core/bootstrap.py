"""Create or update the engine's Python environment (a venv with pinned requirements).

Run with the Python the environment should be based on (Python >= 3.11: the pinned packages
have no wheels for older ones), from the plugin folder::

    python3 -m core.bootstrap --venv ~/.local/share/landseg/engine-venv

``make setup`` and the Processing algorithm ``landseg:setupengine`` both run this module,
so desktop users on Windows and macOS need no terminal. Standard library only: it runs
before any dependency exists, and on old interpreters too, so that it can say which
Python is needed instead of failing inside pip. Idempotent: an environment whose stamp
matches the requirements is left alone.

The stamp (``landseg-engine.json`` in the environment) records the pins it was set up
with; the plugin compares them with its own ``requirements/engine.txt`` before every run
(:func:`stale_reason`). Set-up also compiles the numba kernels once into the
environment's own cache folder (:func:`numba_cache_dir`), so the first segmentation after
set-up is as fast as the second.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .protocol import EngineError, Reporter

PLUGIN_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REQUIREMENTS = PLUGIN_ROOT / "requirements" / "engine.txt"
STAMP_NAME = "landseg-engine.json"
#: Oldest Python the pins of ``requirements/engine.txt`` have wheels for.
MIN_PYTHON = (3, 11)
#: Variables a QGIS installation sets for its own GDAL, PROJ and Python. Passed on, they
#: point the engine's rasterio/pyproj at QGIS's data files of another version (OSGeo4W,
#: macOS) or put QGIS's Python packages on the engine's path.
QGIS_VARIABLES = (
    "PYTHONHOME",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "VIRTUAL_ENV",
    "QGIS_PREFIX_PATH",
    "PROJ_LIB",
    "PROJ_DATA",
    "GDAL_DATA",
    "GDAL_DRIVER_PATH",
)

__all__ = [
    "MIN_PYTHON",
    "QGIS_VARIABLES",
    "check_python",
    "clean_environment",
    "default_venv_dir",
    "engine_python",
    "numba_cache_dir",
    "pins",
    "pins_fingerprint",
    "read_stamp",
    "requirements_digest",
    "setup_engine",
    "stale_reason",
]


def check_python(version: Sequence[int] | None = None, executable: str | None = None) -> None:
    """Refuse, before installing anything, a Python too old for the pinned packages.

    Raises
    ------
    EngineError
        Naming the interpreter, its version and which QGIS or Python to use instead.
    """
    found = tuple(version if version is not None else sys.version_info[:3])
    if found[:2] >= MIN_PYTHON:
        return
    need = ".".join(map(str, MIN_PYTHON))
    raise EngineError(
        f"LandSeg's engine needs Python {need} or newer (its pinned packages, numpy 2 and "
        f"PyTorch among them, have no wheels for older ones), but "
        f"{executable or sys.executable} is Python {'.'.join(map(str, found))}. Nothing "
        f"was installed. QGIS 3.22 to 3.28 on Windows and macOS bring Python 3.9: use QGIS "
        f"3.34 or newer there (on Windows it brings Python 3.12), a Linux QGIS whose "
        f"system Python is {need}+ (Debian 12 and later, Ubuntu 24.04 and later), or give "
        f"any Python {need}+ as the base interpreter (advanced parameter 'Base Python "
        f"interpreter' of Set up the engine, or run this module with that Python)."
    )


def default_venv_dir() -> Path:
    """Return the standard location of the engine environment for this user and platform."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "landseg" / "engine-venv"


def engine_python(venv_dir: str | os.PathLike[str]) -> Path:
    """Path of the Python interpreter inside an engine environment."""
    folder = Path(venv_dir)
    if sys.platform == "win32":
        return folder / "Scripts" / "python.exe"
    return folder / "bin" / "python"


def numba_cache_dir(venv_dir: str | os.PathLike[str]) -> Path:
    """Folder of the compiled numba kernels: inside the engine environment.

    Not the plugin folder, which every plugin upgrade replaces, and recreated with the
    environment, so kernels compiled by another numba version never linger.
    """
    return Path(venv_dir) / "numba-cache"


def pins(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Return the requirement lines of pip requirement files, normalised and sorted.

    Comments, blank lines and spacing do not count: only what would be installed.
    """
    found = set()
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                found.add(re.sub(r"\s+", "", line).lower().replace("_", "-"))
    return sorted(found)


def pins_fingerprint(paths: Sequence[str | os.PathLike[str]]) -> str:
    """Short fingerprint of :func:`pins` (what the stamp records and the plugin checks)."""
    return hashlib.sha256("\n".join(pins(paths)).encode()).hexdigest()[:16]


def requirements_digest(paths: Sequence[str | os.PathLike[str]]) -> str:
    """SHA-256 of the requirement files' contents (what the stamp records)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def read_stamp(venv_dir: str | os.PathLike[str]) -> dict[str, object] | None:
    """Read the stamp a finished set-up left in the environment, if any."""
    try:
        data = json.loads((Path(venv_dir) / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stale_reason(
    venv_dir: str | os.PathLike[str],
    requirements: str | os.PathLike[str] = DEFAULT_REQUIREMENTS,
) -> str | None:
    """Say why an engine environment does not match this plugin's requirements, if it doesn't.

    An environment is up to date when every pin of ``requirements`` was installed at its
    set-up (it may hold more, e.g. the test tools).

    Returns
    -------
    str or None
        ``None`` when the environment was set up with the current ``engine.txt``.
    """
    stamp = read_stamp(venv_dir)
    if stamp is None:
        return f"{venv_dir} was not set up by LandSeg (no {STAMP_NAME})."
    installed = stamp.get("pins")
    if isinstance(installed, list):
        missing = sorted(set(pins([requirements])) - set(installed))
        if not missing:
            return None
        shown = ", ".join(missing[:4]) + (", …" if len(missing) > 4 else "")
        return (
            f"{venv_dir} was set up for LandSeg {stamp.get('landseg', '?')} with other "
            f"packages than this version needs ({shown})."
        )
    # Stamps written before the pins were recorded: compare the file's digest.
    files = stamp.get("files")
    current = requirements_digest([requirements])
    if not isinstance(files, dict) or files.get(Path(requirements).name) != current:
        return (
            f"{venv_dir} was set up for LandSeg {stamp.get('landseg', '?')} with other "
            "requirements than this version needs."
        )
    return None


def clean_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment without QGIS's Python, GDAL and PROJ settings.

    What the engine and pip run with: their own packages bring their own GDAL and PROJ
    data, and QGIS's (another version, on Windows and macOS) must not override them.
    """
    env = dict(os.environ if base is None else base)
    for key in QGIS_VARIABLES:
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _stream(
    cmd: list[str], reporter: Reporter, *, expected_lines: int, start: float, span: float
) -> None:
    """Run a command, forwarding its output as log lines and rough progress."""
    reporter.info("$ " + " ".join(cmd))
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=clean_environment(),
    )
    assert proc.stdout is not None
    seen = 0
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        if not line:
            continue
        tail = [*tail[-30:], line]
        if re.match(
            r"^(Collecting|Processing|Downloading|Installing|Successfully|Requirement)", line
        ):
            seen += 1
            reporter.info(line)
            reporter.progress(start + span * min(seen / expected_lines, 1.0))
    if proc.wait() != 0:
        raise EngineError(
            f"{cmd[0]} {' '.join(cmd[1:3])} ... failed (exit status {proc.returncode}). "
            "Last output:\n" + "\n".join(tail)
        )


def _write_launcher(venv_dir: Path) -> Path:
    """Put a ``landseg`` command into the environment for headless users."""
    python = engine_python(venv_dir)
    if sys.platform == "win32":
        launcher = venv_dir / "Scripts" / "landseg.cmd"
        launcher.write_text(
            f'@echo off\r\nset "PYTHONPATH={PLUGIN_ROOT}"\r\n'
            f'if not defined NUMBA_CACHE_DIR set "NUMBA_CACHE_DIR={numba_cache_dir(venv_dir)}"\r\n'
            f'"{python}" -m core %*\r\n',
            encoding="utf-8",
        )
        return launcher
    cache = numba_cache_dir(venv_dir)
    launcher = venv_dir / "bin" / "landseg"
    code = (
        f"import sys; sys.path.insert(0, {str(PLUGIN_ROOT)!r}); "
        "sys.argv[0] = 'landseg'; from core.cli import main; sys.exit(main())"
    )
    launcher.write_text(
        "#!/bin/sh\n# LandSeg engine command line (written by core.bootstrap)\n"
        f': "${{NUMBA_CACHE_DIR:={cache}}}"\nexport NUMBA_CACHE_DIR\n'
        f'exec "{python}" -c "{code}" "$@"\n',
        encoding="utf-8",
    )
    launcher.chmod(0o755)
    return launcher


_WARM_UP = """
import runpy, sys, tempfile
from pathlib import Path
import numpy as np
import rasterio
from rasterio.transform import from_origin


def main(args):  # `python -m core ARGS`, the command the plugin runs, in this process
    sys.argv = ["core", *args]
    try:
        runpy.run_module("core", run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        return stop.code
    return 0


# Inputs of the dtypes QGIS users give (8-bit and float imagery): the kernels compile
# for what the engine makes of them, exactly as in a real run.
rng = np.random.default_rng(0)
with tempfile.TemporaryDirectory(prefix="landseg-warm-up-") as tmp:
    for dtype in ("uint8", "float32"):
        image = (rng.random((3, 48, 56)) * 200).astype(dtype)
        src = Path(tmp) / f"{dtype}.tif"
        with rasterio.open(src, "w", driver="GTiff", width=56, height=48, count=3,
                           dtype=dtype, crs="EPSG:32617",
                           transform=from_origin(0, 0, 30, 30)) as dst:
            dst.write(image)
        for method in ("slic", "felzenszwalb", "quickshift"):
            out = Path(tmp) / f"{dtype}-{method}"
            code = main(["--progress", "json", method, str(src), f"{out}.tif",
                         "--polygons", f"{out}.gpkg", "--mean", f"{out}-mean.tif"])
            if code:
                sys.exit(code)
    # A raster larger than a block: the streamed path's own kernels (claims, stretch table).
    image = (rng.random((3, 96, 80)) * 200).astype("uint8")
    src = Path(tmp) / "blocks.tif"
    with rasterio.open(src, "w", driver="GTiff", width=80, height=96, count=3, dtype="uint8",
                       crs="EPSG:32617", transform=from_origin(0, 0, 30, 30)) as dst:
        dst.write(image)
    code = main(["--progress", "json", "felzenszwalb", str(src), str(Path(tmp) / "blocks-out.tif"),
                 "--block-size", "64"])
    if code:
        sys.exit(code)
"""


def warm_up(venv_dir: str | os.PathLike[str], *, reporter: Reporter | None = None) -> float:
    """Compile the numba kernels into the environment's cache by segmenting a small image.

    Returns
    -------
    float
        Seconds it took (the compile time the user's first run no longer pays).
    """
    report = reporter or Reporter("text")
    folder = Path(venv_dir)
    env = clean_environment()
    env["PYTHONPATH"] = str(PLUGIN_ROOT)
    env["NUMBA_CACHE_DIR"] = str(numba_cache_dir(folder))
    started = time.monotonic()
    proc = subprocess.run(
        [str(engine_python(folder)), "-c", _WARM_UP],
        capture_output=True,
        text=True,
        env=env,
        cwd=PLUGIN_ROOT,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-15:])
        raise EngineError(f"The engine is installed but its first segmentation failed:\n{tail}")
    seconds = time.monotonic() - started
    report.info(f"Compiled the segmentation kernels in {seconds:.0f} s ({env['NUMBA_CACHE_DIR']}).")
    return seconds


def setup_engine(
    venv_dir: str | os.PathLike[str] | None = None,
    *,
    requirements: Sequence[str | os.PathLike[str]] = (DEFAULT_REQUIREMENTS,),
    force: bool = False,
    extra_index_url: str | None = None,
    find_links: str | os.PathLike[str] | None = None,
    offline: bool = False,
    warm: bool = True,
    reporter: Reporter | None = None,
) -> dict[str, str]:
    """Create the engine environment and install the pinned requirements into it.

    The interpreter running this function is the one the environment is based on: it is
    checked first (:func:`check_python`), before anything is created. pip reaches the
    network as configured in the environment (``PIP_PROXY``, ``HTTPS_PROXY``, pip's own
    configuration files).

    Parameters
    ----------
    venv_dir : path, optional
        Where to create it; :func:`default_venv_dir` by default.
    requirements : sequence of paths
        pip requirement files to install.
    force : bool
        Recreate the environment from scratch even if it is up to date.
    extra_index_url : str, optional
        Extra package index for pip, e.g. PyTorch's CPU-only or CUDA wheel index.
    find_links : path, optional
        A folder of wheels pip looks in first (``pip download -r engine.txt -d DIR`` on a
        machine with network fills it).
    offline : bool
        Install from ``find_links`` only, never from the network.
    warm : bool
        Compile the numba kernels after installing (:func:`warm_up`).
    reporter : Reporter, optional
        Progress and log sink.

    Returns
    -------
    dict
        ``ENGINE_PYTHON`` (interpreter path), ``VENV`` and ``STATUS`` ("created",
        "updated" or "up to date").
    """
    report = reporter or Reporter("text")
    check_python()
    folder = Path(venv_dir) if venv_dir else default_venv_dir()
    files = [Path(p) for p in requirements]
    for path in files:
        if not path.is_file():
            raise EngineError(f"Requirements file not found: {path}.")
    if find_links and not Path(find_links).is_dir():
        raise EngineError(f"The wheel folder {find_links} does not exist.")
    if offline and not find_links:
        raise EngineError("An offline set-up needs a wheel folder (--find-links).")
    digest = requirements_digest(files)
    python = engine_python(folder)
    stamp = read_stamp(folder)
    if not force and stamp and stamp.get("requirements_sha256") == digest and python.exists():
        report.info(f"The engine environment {folder} is up to date.")
        report.progress(100)
        return {"ENGINE_PYTHON": str(python), "VENV": str(folder), "STATUS": "up to date"}

    status = "updated" if python.exists() and not force else "created"
    if force and folder.exists():
        report.info(f"Removing {folder} to recreate it.")
        shutil.rmtree(folder)
    if not python.exists():
        report.info(
            f"Creating the environment {folder} with Python {platform.python_version()}"
            f" ({sys.executable})."
        )
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            venv.EnvBuilder(with_pip=True, clear=False).create(folder)
        except (OSError, subprocess.CalledProcessError) as err:
            raise EngineError(
                f"Could not create a Python environment in {folder}: {err}. On Debian/Ubuntu "
                "install python3-venv; elsewhere check that the folder is writable."
            ) from None
    # A set-up that stops half-way must not look finished.
    (folder / STAMP_NAME).unlink(missing_ok=True)
    report.progress(5)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    sources: list[str] = []
    if find_links:
        sources += ["--find-links", str(find_links)]
    if offline:
        sources.append("--no-index")
    if extra_index_url:
        sources += ["--extra-index-url", extra_index_url]
    if not offline:
        _stream(
            [*pip, "install", "--upgrade", "pip", *sources],
            report,
            expected_lines=3,
            start=5,
            span=5,
        )
    install = [*pip, "install", *sources]
    for path in files:
        install += ["-r", str(path)]
    _stream(install, report, expected_lines=80, start=10, span=75)

    launcher = _write_launcher(folder)
    report.info(f"Engine command line: {launcher}")
    env = clean_environment()
    env["PYTHONPATH"] = str(PLUGIN_ROOT)
    check = subprocess.run(
        [str(python), "-m", "core", "info"],
        capture_output=True,
        text=True,
        env=env,
        cwd=PLUGIN_ROOT,
        check=False,
    )
    if check.returncode != 0:
        raise EngineError(
            "The engine environment was installed but does not start:\n" + check.stderr[-2000:]
        )
    report.info("Engine check: " + " ".join(check.stdout.split()))
    report.progress(88)
    if warm:
        warm_up(folder, reporter=report)
    (folder / STAMP_NAME).write_text(
        json.dumps(
            {
                "requirements_sha256": digest,
                "landseg": __version__,
                "python": platform.python_version(),
                "files": {path.name: requirements_digest([path]) for path in files},
                "pins": pins(files),
                "pins_fingerprint": pins_fingerprint(files),
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    report.progress(100)
    return {"ENGINE_PYTHON": str(python), "VENV": str(folder), "STATUS": status}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``python -m core.bootstrap --help``."""
    parser = argparse.ArgumentParser(
        prog="python -m core.bootstrap",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--venv", default=None, help=f"Default: {default_venv_dir()}")
    parser.add_argument(
        "--requirements",
        action="append",
        default=None,
        help=f"Requirement file(s) (default: {DEFAULT_REQUIREMENTS}).",
    )
    parser.add_argument("--force", action="store_true", help="Recreate from scratch.")
    parser.add_argument(
        "--extra-index-url",
        default=None,
        help="Extra pip index, e.g. https://download.pytorch.org/whl/cpu for a CPU-only "
        "PyTorch (about 1 GB smaller on Linux) or a CUDA index on Windows.",
    )
    parser.add_argument(
        "--find-links",
        default=None,
        metavar="DIR",
        help="A folder of wheels to install from first (made with pip download).",
    )
    parser.add_argument(
        "--offline", action="store_true", help="Install from --find-links only (no network)."
    )
    parser.add_argument(
        "--proxy",
        default=None,
        help="HTTP(S) proxy for pip, [user:password@]host:port (default: PIP_PROXY, "
        "HTTPS_PROXY or pip's configuration).",
    )
    parser.add_argument(
        "--no-warm-up", action="store_true", help="Do not compile the numba kernels now."
    )
    parser.add_argument("--progress", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    reporter = Reporter(args.progress)
    reporter.start("setup", __version__)
    if args.proxy:
        os.environ["PIP_PROXY"] = args.proxy
    try:
        result = setup_engine(
            args.venv,
            requirements=args.requirements or [DEFAULT_REQUIREMENTS],
            force=args.force,
            extra_index_url=args.extra_index_url,
            find_links=args.find_links,
            offline=args.offline,
            warm=not args.no_warm_up,
            reporter=reporter,
        )
    except EngineError as err:
        reporter.error(str(err))
        return 2
    except KeyboardInterrupt:
        reporter.error("Cancelled.", kind="Cancelled")
        return 130
    reporter.result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
