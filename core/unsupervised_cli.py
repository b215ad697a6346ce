"""Command-line subcommands ``isb``, ``dfc`` and ``wnet`` (added by :mod:`core.cli`).

Standard library only at import time; the handler imports the engine lazily.
"""

from __future__ import annotations

import argparse
from typing import Any

from .cli import _add_param, _bands
from .params import (
    DEFAULT_PERCENTILES,
    NORMALIZATIONS,
    SEED,
    UNSUPERVISED,
    UNSUPERVISED_COMMON,
)
from .protocol import Reporter

__all__ = ["DESCRIPTIONS", "add_commands"]

#: One line per method, for ``--help``.
DESCRIPTIONS = {
    "isb": "Unsupervised segmentation by backpropagation (Kanezaki 2018): a CNN trained on "
    "the raster itself, its argmax refined inside SLIC superpixels.",
    "dfc": "Differentiable feature clustering (Kim, Kanezaki & Tanaka 2020): a CNN trained "
    "on the raster with feature-similarity and spatial-continuity losses; optional scribbles.",
    "wnet": "W-Net (Xia & Kulis 2017): encoder U-Net to K soft clusters, decoder U-Net back "
    "to the image; soft normalized cut and reconstruction losses.",
}
DEVICE_HELP = "auto (GPU when present), cpu, cuda or cuda:N (default: auto)."


def add_commands(commands: Any) -> None:
    """Add ``isb``, ``dfc`` and ``wnet`` to the CLI's subparsers."""
    for method, params in UNSUPERVISED.items():
        sub = commands.add_parser(
            method, help=DESCRIPTIONS[method].split(":")[0] + ".", description=DESCRIPTIONS[method]
        )
        sub.add_argument("input", help="Input raster (any GDAL format, any band count).")
        sub.add_argument(
            "output", help="Cluster GeoTIFF: ids 1..K by decreasing area, nodata 0, styled."
        )
        sub.add_argument("--bands", type=_bands, default=None, metavar="B1,B2,...")
        sub.add_argument("--normalization", choices=NORMALIZATIONS, default=NORMALIZATIONS[0])
        sub.add_argument(
            "--percentiles",
            type=float,
            nargs=2,
            default=DEFAULT_PERCENTILES,
            metavar=("LOW", "HIGH"),
            help="Percentiles of the percentile stretch (default: 2 98).",
        )
        sub.add_argument("--nodata-zero", action="store_true", help="0 in every band = nodata.")
        sub.add_argument(
            "--mode",
            choices=("auto", "image", "dataset"),
            default="auto",
            help="image: train on the whole raster (the papers); dataset: train on sampled "
            "tiles, then label every window with the frozen network; auto: image up to "
            "512 x 512 pixels (default).",
        )
        for param in (*params, *UNSUPERVISED_COMMON):
            _add_param(sub, param)
        _add_param(sub, SEED)
        sub.add_argument("--device", default="auto", help=DEVICE_HELP)
        sub.add_argument(
            "--precision",
            choices=("auto", "fp32", "bf16", "fp16"),
            default="auto",
            help="auto: bf16 on GPUs and CPUs with native bf16, else fp32.",
        )
        sub.add_argument("--threads", type=int, default=None, help="CPU threads for torch.")
        if method == "dfc":
            sub.add_argument(
                "--scribbles",
                help="Scribbles: a raster (class values > 0) or lines/polygons (with "
                "--scribble-field) marking a few pixels of some classes.",
            )
            sub.add_argument("--scribble-field", help="Class field of vector scribbles.")
        sub.add_argument("--reference", help="Reference class raster: map clusters to classes.")
        sub.add_argument(
            "--assignment",
            choices=("hungarian", "majority"),
            default="hungarian",
            help="Cluster mapping: one-to-one (Hungarian) or many-to-one (majority).",
        )
        sub.add_argument(
            "--reference-classes", help="VALUE:NAME[:#RRGGBB],... names of reference classes."
        )
        sub.add_argument(
            "--reference-ignore",
            type=float,
            action="append",
            default=[],
            metavar="VALUE",
            help="Reference value left out of the mapping (repeatable), e.g. 0.",
        )
        sub.add_argument("--model", help="Also write the trained model (.safetensors).")
        sub.add_argument("--mapped", help="Clusters as reference classes (GeoTIFF).")
        sub.add_argument("--mapping-csv", help="Cluster-to-class table (CSV).")
        sub.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")
        sub.set_defaults(handler=_run, method=method)


def _run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from .unsupervised import run_unsupervised

    params = {
        p.name: getattr(args, p.name) for p in (*UNSUPERVISED[args.method], *UNSUPERVISED_COMMON)
    }
    return run_unsupervised(
        args.method,
        src=args.input,
        dst=args.output,
        params=params,
        bands=args.bands,
        normalization=args.normalization,
        percentiles=tuple(args.percentiles),
        nodata_zero=args.nodata_zero,
        mode=args.mode,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        threads=args.threads,
        scribbles=getattr(args, "scribbles", None),
        scribble_field=getattr(args, "scribble_field", None),
        reference=args.reference,
        assignment=args.assignment,
        reference_classes=args.reference_classes,
        reference_ignore=args.reference_ignore,
        dst_model=args.model,
        dst_mapped=args.mapped,
        dst_mapping_csv=args.mapping_csv,
        overwrite=args.overwrite,
        reporter=reporter,
    )
