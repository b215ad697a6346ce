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
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from . import __version__
from .commands import accuracy, superpixels, unet, unsupervised, vectorize
from .protocol import EngineError, Reporter

__all__ = ["build_parser", "main"]


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run one engine command; returns the process exit status."""
    args = build_parser().parse_args(argv)
    reporter = Reporter(args.progress)
    signal.signal(signal.SIGTERM, _on_sigterm)
    reporter.start(args.command, __version__)
    try:
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
