"""Command-line options shared by several commands: bands, stretch, parameters, Dask, device.

Standard library only: building the parser never imports numpy, rasterio or torch.
"""

from __future__ import annotations

import argparse

from ..params import DEFAULT_PERCENTILES, NORMALIZATIONS, SEED, Param

__all__ = [
    "DEVICE_HELP",
    "add_bands",
    "add_dask_arguments",
    "add_device_arguments",
    "add_param",
    "add_seed",
    "add_stretch_arguments",
    "band_list",
]

DEVICE_HELP = "auto (GPU when present), cpu, cuda or cuda:N (default: auto)."


def band_list(text: str) -> list[int]:
    """Parse ``--bands``: 1-based band numbers separated by commas."""
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid band list {text!r}: give 1-based band numbers separated by commas, e.g. 1,2,3"
        ) from None


def add_bands(parser: argparse.ArgumentParser, *, help: str | None = None) -> None:
    """Add ``--bands B1,B2,...`` (default: every band)."""
    parser.add_argument("--bands", type=band_list, default=None, metavar="B1,B2,...", help=help)


def add_stretch_arguments(parser: argparse.ArgumentParser, *, verbose: bool = False) -> None:
    """Add ``--normalization``, ``--percentiles`` and ``--nodata-zero``.

    ``verbose`` selects the longer help texts of the superpixel commands.
    """
    parser.add_argument(
        "--normalization",
        choices=NORMALIZATIONS,
        default=NORMALIZATIONS[0],
        help="Per-band stretch before segmenting (default: percentile)." if verbose else None,
    )
    parser.add_argument(
        "--percentiles",
        type=float,
        nargs=2,
        default=DEFAULT_PERCENTILES,
        metavar=("LOW", "HIGH"),
        help="Percentiles of the percentile stretch (default: 2 98).",
    )
    parser.add_argument(
        "--nodata-zero",
        action="store_true",
        help="Also treat pixels that are 0 in every band as nodata."
        if verbose
        else "0 in every band = nodata.",
    )


def add_param(parser: argparse.ArgumentParser, param: Param) -> None:
    """Add one :class:`~core.params.Param` as an option (``--dashed-name``)."""
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


def add_seed(parser: argparse.ArgumentParser) -> None:
    """Add ``--seed`` (:data:`core.params.SEED`)."""
    add_param(parser, SEED)


def add_dask_arguments(parser: argparse.ArgumentParser, *, blocks: bool = False) -> None:
    """Add ``--dask-scheduler`` (and ``--dask-block-size``) to a command."""
    parser.add_argument(
        "--dask-scheduler",
        default=None,
        metavar="ADDRESS|local:N",
        help="Run the window work as Dask tasks: the address of a running scheduler "
        "(tcp://host:8786) or local:N for N local worker processes. The result equals the "
        "single-process result. Default: no Dask.",
    )
    if blocks:
        parser.add_argument(
            "--dask-block-size",
            type=int,
            default=None,
            metavar="N",
            help="Side of the blocks (one Dask task each), pixels, a multiple of 256 "
            "(default: 4096).",
        )


def add_device_arguments(
    parser: argparse.ArgumentParser, *, precision: bool = False, threads_help: bool = True
) -> None:
    """Add ``--device`` (and ``--precision``) and ``--threads`` for torch commands."""
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    if precision:
        parser.add_argument(
            "--precision",
            choices=("auto", "fp32", "bf16", "fp16"),
            default="auto",
            help="auto: bf16 on GPUs and CPUs with native bf16, else fp32.",
        )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch." if threads_help else None,
    )
