"""Command-line subcommands ``trainunet`` and ``predictunet`` (added by :mod:`core.cli`).

Standard library only at import time; the handlers import the engine lazily.
"""

from __future__ import annotations

import argparse
from typing import Any

from .cli import _bands
from .networks import ENCODERS
from .protocol import Reporter

__all__ = ["TRAIN_DEFAULTS", "add_commands", "add_dask_arguments"]

#: Defaults of ``trainunet``'s tuning parameters, shared by the CLI, the engine and QGIS.
#: Chosen so that six 400x400 10-band scenes train in well under 15 minutes on 2 CPU
#: cores (docs/benchmarks.md, "Supervised U-Net").
TRAIN_DEFAULTS: dict[str, Any] = {
    "encoder": "resnet18",
    "epochs": 40,
    "batch_size": 8,
    "learning_rate": 1e-3,
    "patience": 8,
    "tile_size": 64,
    "validation_fraction": 0.2,
    "seed": 42,
}
DEVICE_HELP = "auto (GPU when present), cpu, cuda or cuda:N (default: auto)."


def add_commands(commands: Any) -> None:
    """Add ``trainunet`` and ``predictunet`` to the CLI's subparsers."""
    d = TRAIN_DEFAULTS
    train = commands.add_parser(
        "trainunet",
        help="Train a supervised U-Net on images with (partial) labels.",
        description="Train a U-Net (segmentation_models_pytorch encoder, random init or local "
        "weights) on image rasters with label rasters, label polygons or a tile folder. Writes a "
        "model file: safetensors weights + JSON description (never pickle).",
    )
    train.add_argument("output", help="Model file to write (.safetensors).")
    train.add_argument("--input", action="append", default=[], help="Image raster (repeatable).")
    train.add_argument(
        "--labels", action="append", default=[], help="Label raster per --input (repeatable)."
    )
    train.add_argument("--label-polygons", help="Labelled polygons (with --class-field).")
    train.add_argument("--class-field", help="Class field of --label-polygons (integer or text).")
    train.add_argument("--tile-folder", help="Folder with train/ val/ test/ image/label tiles.")
    train.add_argument(
        "--validation-input", action="append", default=[], help="Separate validation image."
    )
    train.add_argument("--validation-labels", action="append", default=[], help="Its label raster.")
    train.add_argument(
        "--ignore-value", type=float, default=None, help="Label value of unlabelled pixels."
    )
    train.add_argument("--classes", help="VALUE:NAME[:#RRGGBB],... class names and colours.")
    train.add_argument("--bands", type=_bands, default=None, metavar="B1,B2,...")
    train.add_argument("--nodata-zero", action="store_true", help="0 in every band = nodata.")
    train.add_argument("--encoder", choices=ENCODERS, default=d["encoder"])
    train.add_argument("--encoder-weights", help="Local encoder weights (.safetensors / .pth).")
    train.add_argument("--epochs", type=int, default=d["epochs"])
    train.add_argument("--batch-size", type=int, default=d["batch_size"])
    train.add_argument("--learning-rate", type=float, default=d["learning_rate"])
    train.add_argument(
        "--patience", type=int, default=d["patience"], help="Early-stopping patience (0: off)."
    )
    train.add_argument("--tile-size", type=int, default=d["tile_size"])
    train.add_argument("--validation-fraction", type=float, default=d["validation_fraction"])
    train.add_argument("--class-weighting", action=argparse.BooleanOptionalAction, default=True)
    train.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    train.add_argument("--seed", type=int, default=d["seed"])
    train.add_argument("--device", default="auto", help=DEVICE_HELP)
    train.add_argument("--threads", type=int, default=None, help="CPU threads for torch.")
    train.add_argument("--report", help="HTML training report.")
    train.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")
    train.set_defaults(handler=_run_train)

    predict = commands.add_parser(
        "predictunet",
        help="Classify a raster with a LandSeg model file.",
        description="Apply a model written by trainunet through the tiled inference engine; "
        "writes a class raster with the model's class values, colours and names.",
    )
    predict.add_argument(
        "input",
        help="Raster with the model's bands; or a folder of rasters, or @list.txt (one "
        "raster per line), for a batch.",
    )
    predict.add_argument("model", help="Model file (.safetensors written by LandSeg).")
    predict.add_argument(
        "output", help="Class raster (GeoTIFF); for a batch, a folder (<input name>.tif each)."
    )
    predict.add_argument(
        "--confidence",
        help="Raster of the winning class's probability (for a batch, a folder).",
    )
    predict.add_argument("--polygons", help="Class polygons (any OGR format).")
    predict.add_argument("--batch-size", type=int, default=8)
    predict.add_argument("--device", default="auto", help=DEVICE_HELP)
    predict.add_argument("--threads", type=int, default=None)
    predict.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")
    predict.add_argument("--mosaic", help="Also write a VRT mosaic of the class rasters (.vrt).")
    add_dask_arguments(predict, blocks=True)
    predict.set_defaults(handler=_run_predict)


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


def _run_train(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from .supervised import run_trainunet

    return run_trainunet(
        inputs=args.input,
        labels=args.labels,
        label_polygons=args.label_polygons,
        class_field=args.class_field,
        tile_folder=args.tile_folder,
        validation_inputs=args.validation_input,
        validation_labels=args.validation_labels,
        ignore_value=args.ignore_value,
        classes=args.classes,
        bands=args.bands,
        nodata_zero=args.nodata_zero,
        encoder=args.encoder,
        encoder_weights=args.encoder_weights,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        tile_size=args.tile_size,
        validation_fraction=args.validation_fraction,
        class_weighting=args.class_weighting,
        augment=args.augment,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        dst_model=args.output,
        dst_report=args.report,
        overwrite=args.overwrite,
        reporter=reporter,
    )


def _run_predict(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    from .supervised import run_predictunet

    return run_predictunet(
        src=args.input,
        model=args.model,
        dst=args.output,
        dst_confidence=args.confidence,
        dst_polygons=args.polygons,
        batch_size=args.batch_size,
        device=args.device,
        threads=args.threads,
        overwrite=args.overwrite,
        reporter=reporter,
        dask_scheduler=args.dask_scheduler,
        block_size=args.dask_block_size,
        dst_mosaic=args.mosaic,
    )
