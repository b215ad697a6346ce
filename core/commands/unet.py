"""The ``trainunet`` and ``predictunet`` commands: the supervised U-Net.

:func:`run_trainunet` reads images and their (partial) labels, brings the labels onto each
image's grid, normalises the bands with statistics of the training images, trains a U-Net
(:mod:`core.training`) and writes a self-describing model file (:mod:`core.modelfile`:
safetensors weights, JSON description) and an HTML training report.
:func:`run_predictunet` checks a raster against a model's description and classifies it
through the tiled inference engine (:func:`core.inference.predict_raster`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..params import (
    ENCODERS,
    PREDICT_BATCH_SIZE,
    PREDICT_DEFAULTS,
    TRAIN_DEFAULTS,
    UNET_HELP,
    UNET_NORMALIZATIONS,
)
from ..protocol import EngineError, Reporter
from ._options import add_bands, add_dask_arguments, add_device_arguments
from ._outputs import all_or_none

if TYPE_CHECKING:  # pragma: no cover
    from ..classes import (
        ClassInfo,
    )

__all__ = ["add_commands", "run_predictunet", "run_trainunet"]


def add_commands(commands: Any) -> None:
    """Add ``trainunet`` and ``predictunet`` to the CLI's subparsers."""
    _add_train(commands)
    _add_predict(commands)


def _add_train(commands: Any) -> None:
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
    add_bands(train)
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
    train.add_argument(
        "--normalization", choices=UNET_NORMALIZATIONS, default=d["normalization"],
        help=UNET_HELP["normalization"],
    )  # fmt: skip
    train.add_argument(
        "--harmonize", action=argparse.BooleanOptionalAction, default=d["harmonize"],
        help=UNET_HELP["harmonize"],
    )  # fmt: skip
    train.add_argument(
        "--acquisition-augment", action=argparse.BooleanOptionalAction,
        default=d["acquisition_augment"], help=UNET_HELP["acquisition_augment"],
    )  # fmt: skip
    train.add_argument(
        "--holdout-image", type=int, default=d["holdout_image"], help=UNET_HELP["holdout_image"]
    )
    train.add_argument("--seed", type=int, default=d["seed"])
    add_device_arguments(train)
    train.add_argument("--report", help="HTML training report.")
    train.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")
    train.set_defaults(handler=_run_train)


def _add_predict(commands: Any) -> None:
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
    predict.add_argument("--batch-size", type=int, default=PREDICT_BATCH_SIZE)
    predict.add_argument(
        "--tta", action=argparse.BooleanOptionalAction, default=PREDICT_DEFAULTS["tta"],
        help=UNET_HELP["tta"],
    )  # fmt: skip
    add_device_arguments(predict, threads_help=False)
    predict.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")
    predict.add_argument("--mosaic", help="Also write a VRT mosaic of the class rasters (.vrt).")
    add_dask_arguments(predict, blocks=True)
    predict.set_defaults(handler=_run_predict)


def _run_train(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
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
        normalization=args.normalization,
        harmonize=args.harmonize,
        acquisition_augment=args.acquisition_augment,
        holdout_image=args.holdout_image,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        dst_model=args.output,
        dst_report=args.report,
        overwrite=args.overwrite,
        reporter=reporter,
    )


def _run_predict(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    return run_predictunet(
        src=args.input,
        model=args.model,
        dst=args.output,
        dst_confidence=args.confidence,
        dst_polygons=args.polygons,
        batch_size=args.batch_size,
        tta=args.tta,
        device=args.device,
        threads=args.threads,
        overwrite=args.overwrite,
        reporter=reporter,
        dask_scheduler=args.dask_scheduler,
        block_size=args.dask_block_size,
        dst_mosaic=args.mosaic,
    )


@all_or_none
def run_trainunet(
    *,
    inputs: Sequence[str] = (),
    labels: Sequence[str] = (),
    label_polygons: str | None = None,
    class_field: str | None = None,
    tile_folder: str | None = None,
    validation_inputs: Sequence[str] = (),
    validation_labels: Sequence[str] = (),
    ignore_value: float | None = None,
    classes: str | None = None,
    bands: Sequence[int] | None = None,
    nodata_zero: bool = False,
    encoder: str = TRAIN_DEFAULTS["encoder"],
    encoder_weights: str | None = None,
    epochs: int = TRAIN_DEFAULTS["epochs"],
    batch_size: int = TRAIN_DEFAULTS["batch_size"],
    learning_rate: float = TRAIN_DEFAULTS["learning_rate"],
    patience: int = TRAIN_DEFAULTS["patience"],
    tile_size: int = TRAIN_DEFAULTS["tile_size"],
    validation_fraction: float = TRAIN_DEFAULTS["validation_fraction"],
    class_weighting: bool = True,
    augment: bool = True,
    normalization: str = TRAIN_DEFAULTS["normalization"],
    harmonize: bool = TRAIN_DEFAULTS["harmonize"],
    acquisition_augment: bool = TRAIN_DEFAULTS["acquisition_augment"],
    holdout_image: int = TRAIN_DEFAULTS["holdout_image"],
    seed: int = TRAIN_DEFAULTS["seed"],
    device: str = "auto",
    threads: int | None = None,
    dst_model: str,
    dst_report: str | None = None,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Train a U-Net on images with partial labels and write a model file.

    Parameters
    ----------
    inputs : sequence of str
        Image rasters with the same band layout.
    labels : sequence of str
        Label rasters, one per input (integer class values; resampled nearest-neighbour
        onto each image's grid, with a warning, when the grids differ).
    label_polygons, class_field : str, optional
        Instead of ``labels``: polygons and their class field (integer values or names),
        rasterized onto each image.
    tile_folder : str, optional
        Instead of the above: ``train/``, ``val/`` (and ``test/``) folders of image/label
        tile pairs (:func:`core.training_data.tile_folder_pairs`); ``val/`` replaces the
        block split.
    validation_inputs, validation_labels : sequence of str
        Separate validation rasters (replace ``validation_fraction``).
    ignore_value : float, optional
        Label value of unlabelled pixels (besides nodata), e.g. 0 or 255.
    classes : str, optional
        ``VALUE:NAME[:#RRGGBB],...``; otherwise from the labels' colour table or class
        tag, a text class field, or generated. Label values outside a given list are an
        error.
    bands : sequence of int, optional
        1-based bands (all by default).
    nodata_zero : bool
        Treat pixels that are 0 in every band as nodata.
    encoder : str
        U-Net encoder (:data:`core.networks.ENCODERS`).
    encoder_weights : str, optional
        Local file of pretrained encoder weights (safetensors or a plain state_dict).
    epochs, batch_size, learning_rate, patience, tile_size : optional
        Training settings (:func:`core.training.train_network`).
    validation_fraction : float
        Share of labelled blocks (squares of ``max(32, tile_size // 2)`` pixels) held
        out for validation.
    class_weighting, augment : bool
        Inverse-frequency class weights; flips, rotations and radiometric jitter.
    normalization : {"training", "image", "percentile"}
        Band scaling (:mod:`core.acquisition`): the training images' statistics, or each
        image's own (stored in the model, so prediction does the same).
    harmonize : bool
        Subtract the Sentinel-2 baseline-04.00 +1000 offset from images that carry it
        (:mod:`core.harmonize`); prediction does the same per raster.
    acquisition_augment : bool
        With ``augment``, per-band gain/offset, brightness, blur and noise
        (:func:`core.augment.acquisition_jitter`).
    holdout_image : int
        1-based input held out whole for validation (0: none); replaces the block split.
    seed : int
        Random seed; the same seed gives the same model on CPU.
    device : str
        ``auto`` (GPU when present), ``cpu``, ``cuda``, ``cuda:1``, ...
    threads : int, optional
        CPU threads for torch.
    dst_model : str
        Model file to write (``.safetensors``).
    dst_report : str, optional
        HTML training report.
    overwrite : bool
        Replace existing outputs.
    reporter : Reporter, optional
        Progress and log sink.

    Returns
    -------
    dict
        ``OUTPUT_MODEL``, ``OUTPUT_REPORT``, ``CLASSES``, ``BEST_EPOCH``, ``EPOCHS_RUN``,
        ``VAL_MIOU``, ``VAL_OA`` (NaN without validation).
    """
    from .. import io
    from ..acquisition import harmonize_scenes
    from ..classes import classes_to_json
    from ..modelfile import save_model
    from ..training import training_summary, unet_metadata
    from ..training_data import (
        band_count,
        class_table,
        load_scenes,
        log_class_counts,
        standardize_scenes,
    )
    from ..training_report import write_training_report

    report = reporter or Reporter("text")
    if encoder not in ENCODERS:
        raise EngineError(f"Unknown encoder {encoder!r}; choose one of {', '.join(ENCODERS)}.")
    if tile_size < 32 or tile_size % 32:
        raise EngineError(f"TILE_SIZE must be a multiple of 32 (e.g. 128 or 256), not {tile_size}.")
    if not 0 <= validation_fraction < 1:
        raise EngineError("VALIDATION_FRACTION must be between 0 and 1 (e.g. 0.2).")
    if epochs < 1 or batch_size < 1:
        raise EngineError("EPOCHS and BATCH_SIZE must be at least 1.")
    if normalization not in UNET_NORMALIZATIONS:
        raise EngineError(
            f"Unknown NORMALIZATION {normalization!r}; use one of {', '.join(UNET_NORMALIZATIONS)}."
        )
    io.check_outputs((dst_model, dst_report), overwrite=overwrite)

    train_pairs, val_pairs = _training_pairs(
        inputs, labels, label_polygons, class_field, tile_folder, validation_inputs,
        validation_labels, report,
    )  # fmt: skip
    if holdout_image:
        train_pairs, val_pairs = holdout_pair(train_pairs, val_pairs, holdout_image, report)
    scene_args: dict[str, Any] = {
        "bands": bands,
        "label_polygons": label_polygons,
        "class_field": class_field,
        "ignore_value": ignore_value,
        "nodata_zero": nodata_zero,
        "report": report,
    }
    train_data = load_scenes(train_pairs, **scene_args)
    val_data = load_scenes(val_pairs, **scene_args) if val_pairs else []
    if harmonize:
        harmonize_scenes(train_data + val_data, report)
    count = band_count(train_data + val_data)
    table = class_table(train_data, val_data, classes)
    offsets, scales, scenes, block = standardize_scenes(
        train_data, val_data, table, seed=seed, tile_size=tile_size,
        validation_fraction=validation_fraction, report=report, normalization=normalization,
    )  # fmt: skip
    counts = log_class_counts(train_data, table, report)

    result, torch_device = _fit(
        scenes, table, count, block, encoder=encoder, encoder_weights=encoder_weights,
        tile_size=tile_size, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        patience=patience, class_weighting=class_weighting, augment=augment,
        acquisition_augment=acquisition_augment, seed=seed, device=device, threads=threads,
        report=report,
    )  # fmt: skip
    settings = {
        "tile_size": tile_size,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "patience": patience,
        "class_weighting": class_weighting,
        "augment": augment,
        "acquisition_augment": acquisition_augment,
        "normalization": normalization,
        "harmonize": harmonize,
        "seed": seed,
        "encoder_weights": os.path.basename(encoder_weights) if encoder_weights else None,
    }
    summary = training_summary(
        result, epochs=epochs, device=str(torch_device), counts=counts, table=table,
        train_data=train_data, validation=_validation_text(val_data, validation_fraction),
        settings=settings,
    )  # fmt: skip
    summary["validation_images"] = [os.path.basename(d["path"]) for d in val_data]
    metadata = unet_metadata(
        encoder, count, table, train_data[0], offsets, scales, nodata_zero=nodata_zero,
        tile_size=tile_size, ignore_value=ignore_value, summary=summary,
        normalization=normalization, harmonize=harmonize,
    )  # fmt: skip
    outputs: dict[str, Any] = {"OUTPUT_MODEL": str(dst_model)}
    # Both files or neither: each is written under a temporary name, the report first;
    # they are moved into place together once both are complete.
    with contextlib.ExitStack() as stack:
        tmp_model = stack.enter_context(io.atomic_output(dst_model, overwrite=overwrite))
        if dst_report:
            tmp_report = stack.enter_context(io.atomic_output(dst_report, overwrite=overwrite))
            write_training_report(
                str(tmp_report), result, table, train_data, dst_model, encoder=encoder,
                epochs=epochs, summary=summary, device=str(torch_device), overwrite=True,
            )  # fmt: skip
            outputs["OUTPUT_REPORT"] = str(dst_report)
        save_model(tmp_model, result.state_dict, metadata)
    report.progress(100.0)
    outputs.update(
        CLASSES=classes_to_json(table),
        BEST_EPOCH=result.best_epoch,
        EPOCHS_RUN=len(result.history),
        VAL_MIOU=summary["val_miou"],
        VAL_OA=summary["val_oa"],
    )
    return outputs


def _fit(
    scenes: list[Any],
    table: list[ClassInfo],
    count: int,
    block: int,
    *,
    encoder: str,
    encoder_weights: str | None,
    tile_size: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    patience: int,
    class_weighting: bool,
    augment: bool,
    acquisition_augment: bool,
    seed: int,
    device: str,
    threads: int | None,
    report: Reporter,
) -> tuple[Any, Any]:
    """Build the U-Net (random or local encoder weights) and train it (progress 5-95 %)."""
    import torch

    from ..device import select_device
    from ..networks import build_unet, load_encoder_weights
    from ..training import train_network

    if threads:
        torch.set_num_threads(int(threads))
    torch_device, reason = select_device(device)
    report.info(f"Training a U-Net ({encoder}, {count} bands, {len(table)} classes) on {reason}.")
    torch.manual_seed(seed)
    network = build_unet(encoder=encoder, in_channels=count, classes=len(table))
    if encoder_weights:
        skipped = load_encoder_weights(network, encoder_weights)
        if skipped:
            report.warning(
                f"{len(skipped)} encoder weights did not fit and keep their random values "
                f"(e.g. {skipped[0]})."
            )

    def on_epoch(entry: dict[str, float]) -> None:
        report.progress(5.0 + 90.0 * entry["epoch"] / epochs)

    result = train_network(
        network,
        scenes,
        n_classes=len(table),
        tile_size=tile_size,
        block_size=block,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        patience=patience,
        class_weighting=class_weighting,
        augment=augment,
        acquisition_augment=acquisition_augment,
        seed=seed,
        device=torch_device,
        reporter=report,
        on_epoch=on_epoch,
    )
    return result, torch_device


def _validation_text(val_data: list[dict[str, Any]], fraction: float) -> str:
    # the names of held-out images are in the summary's ``validation_images``
    return "separate rasters" if val_data else f"{fraction:g} of blocks"


def holdout_pair(
    train_pairs: list[tuple[str, str | None]],
    val_pairs: list[tuple[str, str | None]],
    index: int,
    report: Reporter,
) -> tuple[list[tuple[str, str | None]], list[tuple[str, str | None]]]:
    """Move the ``index``-th (1-based) training image, whole, to the validation images."""
    if val_pairs:
        raise EngineError(
            "HOLDOUT_IMAGE and a separate validation image (VALIDATION_INPUT or a tile "
            "folder's val/) both choose the validation data: give only one of them."
        )
    if not 1 <= index <= len(train_pairs) or len(train_pairs) < 2:
        raise EngineError(
            f"HOLDOUT_IMAGE is {index} but there are {len(train_pairs)} input images: give "
            "the number (1 for the first) of one of at least two inputs, or 0 for none."
        )
    held = train_pairs[index - 1]
    report.info(f"Validation on the held-out image {held[0]} (not used for training).")
    return [p for k, p in enumerate(train_pairs) if k != index - 1], [held]


def _training_pairs(
    inputs: Sequence[str],
    labels: Sequence[str],
    label_polygons: str | None,
    class_field: str | None,
    tile_folder: str | None,
    validation_inputs: Sequence[str],
    validation_labels: Sequence[str],
    report: Reporter,
) -> tuple[list[tuple[str, str | None]], list[tuple[str, str | None]]]:
    """Pairs of (image, label raster or None for polygons) for training and validation."""
    from ..training_data import tile_folder_pairs

    val_pairs: list[tuple[str, str | None]] = []
    if tile_folder:
        if inputs or labels or label_polygons:
            raise EngineError(
                "Give either TILE_FOLDER or INPUTS with LABELS/LABEL_POLYGONS, not both."
            )
        splits = tile_folder_pairs(tile_folder)
        train_pairs: list[tuple[str, str | None]] = list(splits["train"])
        val_pairs = list(splits.get("val", []))
        report.info(
            f"Tile folder: {len(train_pairs)} training and {len(val_pairs)} validation tile pairs."
        )
        return train_pairs, val_pairs
    if not inputs:
        raise EngineError("Give at least one input raster (INPUTS), or a TILE_FOLDER.")
    if label_polygons:
        if labels:
            raise EngineError("Give either LABELS or LABEL_POLYGONS, not both.")
        if not class_field:
            raise EngineError(
                "LABEL_POLYGONS need CLASS_FIELD, the field holding each polygon's class."
            )
        train_pairs = [(p, None) for p in inputs]
    else:
        if len(labels) != len(inputs):
            raise EngineError(
                f"Give one label raster per input: {len(inputs)} inputs but {len(labels)} "
                "label rasters (LABELS, in the same order as INPUTS)."
            )
        train_pairs = list(zip(inputs, labels, strict=True))
    if validation_inputs:
        if len(validation_labels) != len(validation_inputs):
            raise EngineError("Give one validation label raster per validation input.")
        val_pairs = list(zip(validation_inputs, validation_labels, strict=True))
    return train_pairs, val_pairs


@all_or_none
def run_predictunet(
    *,
    src: str | Sequence[str],
    model: str,
    dst: str,
    dst_confidence: str | None = None,
    dst_polygons: str | None = None,
    batch_size: int = PREDICT_BATCH_SIZE,
    tta: bool = PREDICT_DEFAULTS["tta"],
    device: str = "auto",
    threads: int | None = None,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    dask_scheduler: str | None = None,
    block_size: int | None = None,
    dst_mosaic: str | None = None,
) -> dict[str, Any]:
    """Classify rasters with a model file written by :func:`run_trainunet`.

    Parameters
    ----------
    src : str or sequence of str
        Raster with the model's band layout (the model's band indices are read); or, for
        a batch, a folder of rasters, ``@list.txt`` or a list (:func:`core.batch.list_rasters`).
    model : str
        Model file (safetensors + JSON; pickle files are refused).
    dst : str
        Class raster: the model's class values, colour table and class names embedded.
        For a batch, a folder: ``<dst>/<input name>.tif`` per input.
    dst_confidence : str, optional
        Float32 raster of the winning class's probability (for a batch, a folder).
    dst_polygons : str, optional
        One polygon per connected class region, with ``class`` and ``name`` fields (one
        raster only).
    batch_size, device, threads, overwrite, reporter
        See :func:`core.inference.predict_raster`.
    tta : bool
        Average the probabilities over the 8 flips and 90-degree rotations of each tile
        (:class:`core.tta.SymmetryAverage`; 8 times the compute). Not applied to
        ISB/DFC/W-Net model files, which give their clusters as trained.
    dask_scheduler : str, optional
        Run the tiles on a Dask cluster: ``tcp://host:8786`` or ``local:N``
        (:mod:`core.distributed`). The labels equal the single-process run's.
    block_size : int, optional
        Side of the blocks a raster is cut into on Dask, pixels
        (:data:`core.distributed.DEFAULT_BLOCK_SIZE` by default).
    dst_mosaic : str, optional
        A ``.vrt`` mosaic of the class rasters (they must share a CRS and pixel grid).

    Returns
    -------
    dict
        ``OUTPUT``, optional ``OUTPUT_CONFIDENCE`` / ``OUTPUT_POLYGONS`` /
        ``OUTPUT_MOSAIC``, and ``CLASSES``. For a batch ``OUTPUT`` is the folder and
        ``OUTPUTS`` lists the class rasters.
    """
    import torch

    from .. import io
    from ..acquisition import raster_normalization
    from ..batch import batch_outputs, list_rasters
    from ..classes import classes_from_json, classes_to_json, complete_classes
    from ..modelfile import load_model, read_metadata

    report = reporter or Reporter("text")
    metadata = read_metadata(model)
    sources, batch = list_rasters(src)
    if batch and dst_polygons:
        raise EngineError(
            "Polygons are written for one raster only; vectorize each class raster with "
            "landseg:vectorize, or leave the polygons out."
        )
    if dst_mosaic and os.path.splitext(dst_mosaic)[1].lower() != ".vrt":
        raise EngineError(f"{dst_mosaic}: the mosaic is a GDAL VRT; give a .vrt path.")
    if batch:
        dsts = batch_outputs(sources, dst)
        confs: list[str | None] = (
            list(batch_outputs(sources, dst_confidence, suffix="_confidence"))
            if dst_confidence
            else [None] * len(sources)
        )
    else:
        dsts, confs = [dst], [dst_confidence]
    io.check_outputs(
        (*dsts, *confs, dst_polygons, dst_mosaic),
        rasters=(*dsts, *confs),
        overwrite=overwrite,
    )
    band_lists = [_model_bands(metadata, path, report) for path in sources]
    classes = classes_from_json(metadata["classes"])
    if tta and metadata.get("task") == "unsupervised":
        # averaged probabilities name classes; a clustering network reproduces its clusters
        report.info("Test-time augmentation is for U-Net classes: this ISB/DFC/W-Net model "
                    "gives its clusters as trained.")  # fmt: skip
        tta = False
    norms = [
        raster_normalization(metadata, p, b, report=report)
        for p, b in zip(sources, band_lists, strict=True)
    ]
    if dask_scheduler:
        metadata = _dask_metadata(metadata, tta)
        from ..distributed import DEFAULT_BLOCK_SIZE, PredictItem, connect, predict_rasters

        def shared(path: str | None) -> str | None:  # workers have other working folders
            if not path or path.startswith("/vsi") or "://" in path:
                return path
            return os.path.abspath(path)

        items = [
            PredictItem(
                str(shared(s)), str(shared(d)), shared(c), tuple(b), tuple(n[0]), tuple(n[1])
            )
            for s, d, c, b, n in zip(sources, dsts, confs, band_lists, norms, strict=True)
        ]
        with connect(dask_scheduler, reporter=report) as client:
            results = predict_rasters(
                client,
                model=model,
                metadata=metadata,
                items=items,
                classes=classes,
                block_size=block_size or DEFAULT_BLOCK_SIZE,
                batch_size=batch_size,
                device=device,
                threads=threads,
                overwrite=overwrite,
                reporter=report,
            )
    else:
        if threads:
            torch.set_num_threads(int(threads))
        state, metadata = load_model(model)
        network = build_network_checked(metadata, state, model)
        if tta:
            from ..inference import fold_batchnorm
            from ..tta import SymmetryAverage

            report.info("Test-time augmentation: 8 flips and rotations per tile.")
            network = SymmetryAverage(fold_batchnorm(network.eval()))
        results = []
        for number, (path, out, conf, bands, norm) in enumerate(
            zip(sources, dsts, confs, band_lists, norms, strict=True)
        ):
            if batch:
                report.info(f"Raster {number + 1} of {len(sources)}: {path}")
            results.append(
                _predict_one(
                    network, metadata, classes, path, out, conf, bands, norm,
                    batch_size=batch_size, device=device, threads=threads,
                    overwrite=overwrite, report=report,
                )
            )  # fmt: skip
    outputs: dict[str, Any] = {"OUTPUT": str(dst), "CLASSES": classes_to_json(classes)}
    if dst_confidence:
        outputs["OUTPUT_CONFIDENCE"] = str(dst_confidence)
    if batch:
        outputs["OUTPUTS"] = [str(p) for p in dsts]
        outputs["TILES"] = sum(int(r.get("TILES", 0)) for r in results)
    else:
        for key in ("DEVICE", "PRECISION", "TILES", "SECONDS", "COUNTS"):
            if key in results[0]:
                outputs[key] = results[0][key]
    if dst_polygons:
        outputs["OUTPUT_POLYGONS"] = _class_polygons(dst, dst_polygons, classes, overwrite, report)
    if dst_mosaic:
        from ..batch import write_vrt
        from ..classes import write_qml

        write_vrt(dsts, dst_mosaic, classes=complete_classes([], classes))
        write_qml(dst_mosaic, complete_classes([], classes))
        outputs["OUTPUT_MOSAIC"] = str(dst_mosaic)
    return outputs


def _dask_metadata(metadata: dict[str, Any], tta: bool) -> dict[str, Any]:
    """Return the description the Dask workers apply (with ``tta``; rasters normalised per item)."""
    return {**metadata, "tta": bool(tta)}


def build_network_checked(metadata: dict[str, Any], state: dict[str, Any], model: str) -> Any:
    """Build a model file's network and load its weights (a clear error if they differ)."""
    from ..networks import build_network

    network = build_network(metadata)
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise EngineError(
            f"{model}: the weights do not fit the described network ({str(err)[:200]}). The "
            "file is damaged; train the model again."
        ) from None
    return network


def _model_bands(metadata: dict[str, Any], src: str, report: Reporter) -> list[int]:
    """Return the input bands a model reads from ``src`` (checks count, types, resolution)."""
    from .. import io

    wanted = metadata.get("bands", {})
    count = int(wanted.get("count", 0))
    info = io.inspect_raster(src)
    indices = [int(b) for b in wanted.get("indices") or range(1, count + 1)]
    if info.count != count and (max(indices) > info.count or len(indices) != count):
        raise EngineError(
            f"The model was trained on {count} bands "
            f"({', '.join(map(str, wanted.get('names') or []))}) "
            f"but {src} has {info.count}. Give a raster with the same bands, in the same order, "
            "as the training images."
        )
    if info.count != count:
        report.warning(f"{src} has {info.count} bands; using bands {indices} as at training time.")
    else:
        indices = list(range(1, count + 1))
    trained_dtypes = set(wanted.get("dtypes") or [])
    if trained_dtypes and not {info.dtypes[b - 1] for b in indices} <= trained_dtypes:
        report.warning(
            f"{src} stores {', '.join(sorted({info.dtypes[b - 1] for b in indices}))} values but "
            f"the model was trained on {', '.join(sorted(trained_dtypes))}: check that the "
            "values have the same scale (reflectance vs. digital numbers)."
        )
    resolution = metadata.get("resolution")
    if resolution and info.crs_wkt and metadata.get("crs"):
        res = abs(info.transform[0])
        if res > 0 and not 0.5 <= res / float(resolution[0]) <= 2.0:
            report.warning(
                f"{src} has pixels of {res:g} map units, the model was trained on "
                f"{float(resolution[0]):g}: results are usually poor far from the training "
                "resolution."
            )
    return indices


def _predict_one(
    network: Any,
    metadata: dict[str, Any],
    classes: Sequence[ClassInfo],
    src: str,
    dst: str,
    dst_confidence: str | None,
    bands: Sequence[int],
    normalization: tuple[list[float], list[float]],
    *,
    batch_size: int,
    device: str,
    threads: int | None,
    overwrite: bool,
    report: Reporter,
) -> dict[str, Any]:
    """Classify one raster in this process (:func:`core.inference.predict_raster`)."""
    from ..inference import predict_raster

    offsets, scales = normalization
    return predict_raster(
        network,
        src,
        dst,
        bands=list(bands),
        offsets=offsets,
        scales=scales,
        class_values=[c.value for c in classes],
        classes=classes,
        tile_size=int(metadata.get("tile_size", 256)),
        overlap=int(metadata.get("overlap", 64)),
        batch_size=batch_size,
        device=device,
        nodata_zero=bool(metadata.get("nodata_zero", False)),
        dst_confidence=dst_confidence,
        overwrite=overwrite,
        reporter=report,
        threads=threads,
    )


def _class_polygons(
    raster: str, dst: str, classes: Sequence[ClassInfo], overwrite: bool, report: Reporter
) -> str:
    """One polygon per connected class region, with class value and name (vectorize)."""
    from .vectorize import run_vectorize

    report.info("Vectorizing the classes.")
    result = run_vectorize(src=raster, dst=dst, overwrite=overwrite, reporter=report)
    return str(result.get("OUTPUT", dst))
