"""The engine's command-line interface: ``python -m core <command> --help``.

Each command lives in one module of :mod:`core.commands` (its options and its ``run_*``
function); this module assembles their parsers and runs one command with the JSON-lines
progress protocol (:mod:`core.protocol`).

Exit status: 0 on success, 2 for a problem with the input (the message says what to
do), 1 for an internal error (with a traceback on standard error), 130 when
interrupted or terminated.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

from . import __version__
from .commands import accuracy, superpixels, unet, unsupervised, vectorize
from .protocol import EngineError, Reporter

__all__ = ["build_parser", "environment_error", "main", "watch_parent"]


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of every engine command (one module of core.commands each)."""
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="LandSeg engine: segment rasters into superpixels and land-cover maps.",
    )
    parser.add_argument("--version", action="version", version=f"LandSeg engine {__version__}")
    parser.add_argument(
        "--progress",
        choices=("text", "json"),
        default="text",
        help="text: readable progress on stderr; json: one JSON event per line on stdout "
        "(what the QGIS plugin reads). Default: text.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="Show versions and the compute device.")
    info.set_defaults(handler=_run_info)
    for module in (superpixels, accuracy, vectorize, unet, unsupervised):
        module.add_commands(commands)
    return parser


def _run_info(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    import importlib.metadata as metadata
    import platform

    versions: dict[str, str | None] = {}
    for package in (
        "numpy",
        "numba",
        "scikit-image",
        "rasterio",
        "torch",
        "segmentation-models-pytorch",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "landseg": __version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "packages": versions,
    }


class _Terminated(Exception):
    """Raised in the main thread when the process receives SIGTERM."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


#: Environment variable naming the process that started the engine (set by the plugin):
#: the engine ends when that process ends.
PARENT_PID_VAR = "LANDSEG_PARENT_PID"

#: How often the watchdog looks for the parent, and how long a terminated engine may take
#: to clean up before it ends hard.
WATCH_INTERVAL = 0.5
GRACE_SECONDS = 20.0

_PR_SET_PDEATHSIG = 1


def watch_parent(environ: dict[str, str] | None = None) -> bool:
    """End this process when the program that started it ends (QGIS closed or killed).

    With :data:`PARENT_PID_VAR` set, Linux sends SIGTERM on the parent's death
    (``prctl(PR_SET_PDEATHSIG)``) and, on every POSIX system, a watchdog thread polls the
    parent: when it is gone the engine gets SIGTERM (it cancels and removes its partial
    files) and, if still alive :data:`GRACE_SECONDS` later, ends hard. Returns whether
    the watch was set up.
    """
    text = (environ if environ is not None else os.environ).get(PARENT_PID_VAR, "")
    if os.name != "posix" or not text.isdigit():
        return False
    parent = int(text)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    threading.Thread(
        target=_poll_parent, args=(parent,), name="landseg-parent-watch", daemon=True
    ).start()
    return True


def _poll_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_INTERVAL)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(GRACE_SECONDS)
    os._exit(130)


_PARTIAL = re.compile(
    r"(?P<dir>[^\s'\"]*?)\.(?P<stem>[^/\\\s'\"]+?)\.landseg-(?:partial|backup)-[0-9a-f]{8}"
)


def _user_name(text: str) -> str:
    """Replace LandSeg's hidden temporary names in a message by the outputs they stand for."""
    return _PARTIAL.sub(lambda m: m.group("dir") + m.group("stem"), text)


def _chain(err: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def environment_error(err: BaseException) -> str | None:
    """Return the user-facing message of an error that is not LandSeg's bug, or None.

    A damaged or cut raster, a full disk, a folder that refuses files and an engine
    without its packages are the user's to fix: the message names the file and the fix
    instead of asking for a bug report.
    """
    if isinstance(err, ModuleNotFoundError):
        if (err.name or "").split(".")[0] in ("core", "landseg", __package__ or "core"):
            return None  # one of LandSeg's own modules: a bug
        return (
            f"The engine is missing packages (no module {err.name!r} in {sys.executable}): "
            "run Set up the engine (LandSeg > Setup > Set up the engine, "
            "landseg:setupengine) once, or `make setup` in the plugin folder."
        )
    chain = _chain(err)
    texts = [_user_name(str(e)) for e in chain]
    for e in chain:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            where = _user_name(str(e.filename)) if e.filename else "an output"
            return (
                f"Cannot write {where}: the disk is full. Free some space or choose a folder "
                "on another disk; no output was written."
            )
    if any("No space left" in t or "Free disk space" in t for t in texts):
        return (
            f"Cannot write an output: the disk is full ({texts[-1]}). Free some space or "
            "choose a folder on another disk; no output was written."
        )
    for e in chain:
        if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            where = _user_name(str(e.filename)) if e.filename else "an output"
            return (
                f"Cannot open {where}: {e.strerror}. Check its permissions; for an output, "
                "choose a folder you can write to."
            )
    if not any(type(e).__module__.startswith("rasterio") for e in chain):
        return None
    detail = texts[-1]  # the innermost: GDAL's own words
    for text in texts:
        found = _BAD_BLOCK.search(text)
        if found:
            return (
                f"Cannot read {found.group('name')}: the file is damaged or incomplete "
                f"(GDAL: {detail}). Copy or download it again, or check it with "
                "`gdalinfo -checksum`."
            )
    if isinstance(err, Exception) and "Write failed" in str(err):
        return f"Cannot write an output ({detail}). Check the output folder and the disk."
    if isinstance(err, Exception) and "Read failed" in str(err):
        return (
            f"Cannot read an input raster: it is damaged or incomplete (GDAL: {detail}). "
            "Copy or download it again, or check it with `gdalinfo -checksum`."
        )
    return None


_BAD_BLOCK = re.compile(r"(?P<name>\S.*?), band \d+: IReadBlock failed")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one engine command; returns the process exit status.

    SIGINT (Ctrl+C) and SIGTERM cancel the command, also when the engine was started with
    SIGINT ignored (as a shell starts background jobs); the previous handlers are restored
    on return (for callers that run commands in their own process, such as tests).
    """
    args = build_parser().parse_args(argv)
    reporter = Reporter(args.progress)
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _run_command(args, reporter)
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def _interrupted(err: BaseException) -> bool:
    """Tell whether a cancel caused ``err``.

    Python wraps a KeyboardInterrupt raised inside some hooks, e.g. in a class
    definition while a module is being imported.
    """
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (KeyboardInterrupt, _Terminated)):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _run_command(args: argparse.Namespace, reporter: Reporter) -> int:
    try:
        reporter.start(args.command, __version__)
        watch_parent()
        if args.command == "info":
            outputs = args.handler(args, reporter)
        else:
            from .io import all_or_none

            with all_or_none():
                outputs = args.handler(args, reporter)
    except (EngineError, ValueError) as err:
        reporter.error(str(err), kind=type(err).__name__)
        return 2
    except (KeyboardInterrupt, _Terminated):
        reporter.error("Cancelled; no output was written.", kind="Cancelled")
        return 130
    except MemoryError:
        reporter.error(
            "Out of memory. Use a smaller raster or fewer bands, or close other programs.",
            kind="MemoryError",
        )
        return 1
    except Exception as err:
        if _interrupted(err):
            reporter.error("Cancelled; no output was written.", kind="Cancelled")
            return 130
        message = environment_error(err)
        if message is not None:
            reporter.error(message, kind=type(err).__name__)
            return 2
        traceback.print_exc(file=sys.stderr)
        reporter.error(
            f"Internal error ({type(err).__name__}: {err}). Please report it with the log.",
            kind="InternalError",
        )
        return 1
    reporter.result(outputs)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
