"""The engine's command-line interface: ``python -m core <command> --help``.

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
from .params import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_PERCENTILES,
    MAX_IN_MEMORY_PIXELS,
    NORMALIZATIONS,
    SEED,
    SUPERPIXELS,
    Param,
)
from .protocol import EngineError, Reporter

__all__ = ["build_parser", "main"]

_DESCRIPTIONS = {
    "slic": "SLIC superpixels (Achanta et al. 2012): k-means in colour and image space.",
    "quickshift": "QuickShift superpixels (Vedaldi & Soatto 2008): mode seeking on a "
    "density estimate.",
    "felzenszwalb": "Felzenszwalb-Huttenlocher graph segmentation (2004): merges regions "
    "whose internal difference is below a size-scaled threshold.",
}


def _bands(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid band list {text!r}: give 1-based band numbers separated by commas, e.g. 1,2,3"
        ) from None


def _add_param(parser: argparse.ArgumentParser, param: Param) -> None:
    bounds = ""
    if param.minimum is not None or param.maximum is not None:
        low = "-inf" if param.minimum is None else f"{param.minimum:g}"
        high = "inf" if param.maximum is None else f"{param.maximum:g}"
        bounds = f" Range [{low}, {high}]."
    if param.kind == "bool":
        parser.add_argument(
            param.option,
            action=argparse.BooleanOptionalAction,
            default=param.default,
            help=f"{param.help} (default: {param.default})",
        )
        return
    parser.add_argument(
        param.option,
        type=int if param.kind == "int" else float,
        default=param.default,
        metavar="N" if param.kind == "int" else "X",
        help=f"{param.help}{bounds} (default: {param.default})",
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of every engine command."""
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

    for method, params in SUPERPIXELS.items():
        sub = commands.add_parser(
            method, help=_DESCRIPTIONS[method], description=_DESCRIPTIONS[method]
        )
        sub.add_argument("input", help="Input raster (any GDAL format, any band count).")
        sub.add_argument("output", help="Output segment-id GeoTIFF (int32, nodata 0).")
        sub.add_argument(
            "--bands",
            type=_bands,
            default=None,
            metavar="B1,B2,...",
            help="1-based bands to use (default: all).",
        )
        sub.add_argument(
            "--normalization",
            choices=NORMALIZATIONS,
            default=NORMALIZATIONS[0],
            help="Per-band stretch before segmenting (default: percentile).",
        )
        sub.add_argument(
            "--percentiles",
            type=float,
            nargs=2,
            default=DEFAULT_PERCENTILES,
            metavar=("LOW", "HIGH"),
            help="Percentiles of the percentile stretch (default: 2 98).",
        )
        sub.add_argument(
            "--nodata-zero",
            action="store_true",
            help="Also treat pixels that are 0 in every band as nodata.",
        )
        sub.add_argument(
            "--polygons",
            default=None,
            metavar="PATH",
            help="Also write one polygon per segment (GeoPackage or any OGR format by extension).",
        )
        sub.add_argument(
            "--mean",
            default=None,
            metavar="PATH",
            help="Also write a raster of segment mean values.",
        )
        sub.add_argument(
            "--overwrite",
            action="store_true",
            help="Replace existing outputs (refused by default).",
        )
        sub.add_argument(
            "--max-pixels",
            type=int,
            default=MAX_IN_MEMORY_PIXELS,
            help="Largest raster whose --polygons are built in memory (default: "
            f"{MAX_IN_MEMORY_PIXELS:,}); vectorize larger ones with the vectorize command.",
        )
        sub.add_argument(
            "--block-size",
            type=int,
            default=DEFAULT_BLOCK_SIZE,
            metavar="N",
            help="Rasters with more rows or columns than this are segmented block by block "
            f"(N x N plus a halo) in bounded memory (default: {DEFAULT_BLOCK_SIZE}).",
        )
        from .supervised_cli import add_dask_arguments

        add_dask_arguments(sub)
        _add_param(sub, SEED)
        for param in params:
            _add_param(sub, param)
        sub.set_defaults(handler=_run_superpixels, method=method)
    acc = commands.add_parser(
        "accuracy",
        help="Accuracy of a classified or cluster raster against a reference.",
        description="Confusion matrix, overall accuracy, kappa, per-class precision/recall/"
        "F1/IoU, Rand index and ARI, accumulated window by window.",
    )
    acc.add_argument("prediction", help="Classified or cluster raster (band 1).")
    ref = acc.add_mutually_exclusive_group(required=True)
    ref.add_argument("--reference", help="Reference raster (warped onto the prediction grid).")
    ref.add_argument("--reference-polygons", help="Reference polygons (with --class-field).")
    acc.add_argument("--class-field", help="Integer class field of the reference polygons.")
    acc.add_argument(
        "--ignore",
        type=float,
        action="append",
        default=[],
        metavar="VALUE",
        help="Value to leave out in either raster (repeatable), e.g. 0 or 255.",
    )
    acc.add_argument(
        "--mode",
        choices=("classes", "clusters"),
        default="classes",
        help="classes: values correspond; clusters: map clusters to classes.",
    )
    acc.add_argument(
        "--assignment",
        choices=("hungarian", "majority"),
        default="hungarian",
        help="Cluster mapping: one-to-one (Hungarian) or many-to-one.",
    )
    acc.add_argument("--classes", help="VALUE:NAME[:#RRGGBB],... class names and colours.")
    acc.add_argument("--html", help="HTML report.")
    acc.add_argument("--csv", help="Confusion matrix as CSV.")
    acc.add_argument("--json", help="Every metric as JSON.")
    acc.add_argument("--errors", help="GeoTIFF of correct (1) / wrong (2) pixels.")
    acc.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")
    from .supervised_cli import add_dask_arguments as add_accuracy_dask

    add_accuracy_dask(acc)
    acc.set_defaults(handler=_run_accuracy)
    vec = commands.add_parser(
        "vectorize",
        help="Polygons of a classified or segment raster (one per connected region).",
        description="Classified or segment raster -> polygons with value, class name, pixel "
        "count and area; optional sieve and topology-preserving simplification; read in strips "
        "(rasters larger than memory).",
    )
    vec.add_argument("input", help="Classified or segment raster.")
    vec.add_argument("output", help="Vector file (.gpkg, .shp, .geojson, .fgb, ...).")
    vec.add_argument("--band", type=int, default=1, help="Band to vectorize (default: 1).")
    vec.add_argument("--connectivity", type=int, choices=(4, 8), default=4)
    vec.add_argument("--min-pixels", type=int, default=0, help="Sieve: smallest region, pixels.")
    vec.add_argument(
        "--min-area", type=float, default=0.0, help="Sieve: smallest region, map units²."
    )
    vec.add_argument("--simplify", type=float, default=0.0, help="Tolerance in map units (0: off).")
    vec.add_argument("--strip-rows", type=int, default=None, help="Rows read at a time.")
    vec.add_argument("--overwrite", action="store_true", help="Replace an existing output.")
    vec.set_defaults(handler=_run_vectorize)
    from .supervised_cli import add_commands as add_supervised_commands

    add_supervised_commands(commands)
    from .unsupervised_cli import add_commands as add_unsupervised_commands

    add_unsupervised_commands(commands)
    return parser


def _run_vectorize(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from .vectorize import run_vectorize

    return run_vectorize(
        src=args.input,
        dst=args.output,
        band=args.band,
        connectivity=args.connectivity,
        min_pixels=args.min_pixels,
        min_area=args.min_area,
        simplify=args.simplify,
        strip_rows=args.strip_rows,
        overwrite=args.overwrite,
        reporter=reporter,
    )


def _run_accuracy(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from .accuracy import run_accuracy

    return run_accuracy(
        prediction=args.prediction,
        reference=args.reference,
        reference_polygons=args.reference_polygons,
        class_field=args.class_field,
        ignore_values=args.ignore,
        mode=args.mode,
        assignment=args.assignment,
        classes=args.classes,
        dst_html=args.html,
        dst_csv=args.csv,
        dst_json=args.json,
        dst_errors=args.errors,
        overwrite=args.overwrite,
        reporter=reporter,
        dask_scheduler=args.dask_scheduler,
    )


def _run_superpixels(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from .pipeline import run_superpixels

    return run_superpixels(
        args.method,
        src=args.input,
        dst=args.output,
        params={p.name: getattr(args, p.name) for p in SUPERPIXELS[args.method]},
        bands=args.bands,
        normalization=args.normalization,
        percentiles=tuple(args.percentiles),
        nodata_zero=args.nodata_zero,
        seed=args.seed,
        dst_polygons=args.polygons,
        dst_mean=args.mean,
        overwrite=args.overwrite,
        max_pixels=args.max_pixels,
        block_size=args.block_size,
        reporter=reporter,
        dask_scheduler=args.dask_scheduler,
    )


def _run_info(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    import importlib.metadata as metadata
    import platform

    versions = {}
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
