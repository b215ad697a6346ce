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
    WEIGHT_AVERAGING_MODES,
    validate_training,
)
from ..protocol import EngineError, Reporter
from ._options import add_bands, add_dask_arguments, add_device_arguments
from ._outputs import all_or_none

if TYPE_CHECKING:  # pragma: no cover
    from ..classes import ClassInfo
    from ..training import TrainingResult

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
        "--weight-averaging", choices=WEIGHT_AVERAGING_MODES, default=d["weight_averaging"],
        help=UNET_HELP["weight_averaging"],
    )  # fmt: skip
    train.add_argument(
        "--holdout-image", type=int, default=d["holdout_image"], help=UNET_HELP["holdout_image"]
    )
    train.add_argument("--seed", type=int, default=d["seed"])
    add_device_arguments(train)
    train.add_argument("--report", help="HTML training report.")
    train.add_argument(
        "--checkpoint",
        help="Save the training state here after every epoch and resume from it if it "
        "exists (long runs that may be interrupted); removed when training ends.",
    )
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
        weight_averaging=args.weight_averaging,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        dst_model=args.output,
        dst_report=args.report,
        checkpoint=args.checkpoint,
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
    weight_averaging: str = TRAIN_DEFAULTS["weight_averaging"],
    seed: int = TRAIN_DEFAULTS["seed"],
    device: str = "auto",
    threads: int | None = None,
    dst_model: str,
    dst_report: str | None = None,
    checkpoint: str | None = None,
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
    weight_averaging : {"none", "ema"}
        ``"ema"``: validate and keep an exponential moving average of the weights
        (:mod:`core.averaging`); the model file holds that one network.
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
    checkpoint : str, optional
        Training state saved after every epoch; an existing one is resumed (same
        settings and data) to the same model an uninterrupted run gives
        (:mod:`core.checkpoint`). Removed when training ends.
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
    from ..training import fit_unet, training_summary, unet_metadata
    from ..training_data import (
        band_count,
        class_table,
        holdout_pair,
        load_scenes,
        log_class_counts,
        standardize_scenes,
        training_pairs,
    )

    report = reporter or Reporter("text")
    validate_training(
        encoder=encoder, tile_size=tile_size, validation_fraction=validation_fraction,
        epochs=epochs, batch_size=batch_size, normalization=normalization,
        weight_averaging=weight_averaging,
    )  # fmt: skip
    io.check_outputs((dst_model, dst_report), overwrite=overwrite)

    train_pairs, val_pairs = training_pairs(
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

    result, torch_device = fit_unet(
        scenes, table, count, block, encoder=encoder, encoder_weights=encoder_weights,
        tile_size=tile_size, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        patience=patience, class_weighting=class_weighting, augment=augment,
        acquisition_augment=acquisition_augment, weight_averaging=weight_averaging, seed=seed,
        device=device, threads=threads, report=report, checkpoint=checkpoint,
    )  # fmt: skip
    settings = {
        "tile_size": tile_size,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "patience": patience,
        "class_weighting": class_weighting,
        "augment": augment,
        "acquisition_augment": acquisition_augment,
        "weight_averaging": weight_averaging,
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
    outputs = _write_model_and_report(
        dst_model, dst_report, result, metadata, table=table, train_data=train_data,
        encoder=encoder, epochs=epochs, summary=summary, device=str(torch_device),
        overwrite=overwrite,
    )  # fmt: skip
    report.progress(100.0)
    outputs.update(
        CLASSES=classes_to_json(table),
        BEST_EPOCH=result.best_epoch,
        EPOCHS_RUN=len(result.history),
        VAL_MIOU=summary["val_miou"],
        VAL_OA=summary["val_oa"],
    )
    return outputs


def _write_model_and_report(
    dst_model: str,
    dst_report: str | None,
    result: TrainingResult,
    metadata: dict[str, Any],
    *,
    table: list[ClassInfo],
    train_data: list[dict[str, Any]],
    encoder: str,
    epochs: int,
    summary: dict[str, Any],
    device: str,
    overwrite: bool,
) -> dict[str, Any]:
    """Write the model file and the HTML report: both files or neither.

    Each is written under a temporary name, the report first; they are moved into place
    together once both are complete. Returns ``OUTPUT_MODEL`` and ``OUTPUT_REPORT``.
    """
    from .. import io
    from ..modelfile import save_model
    from ..training_report import write_training_report

    outputs: dict[str, Any] = {"OUTPUT_MODEL": str(dst_model)}
    with contextlib.ExitStack() as stack:
        tmp_model = stack.enter_context(io.atomic_output(dst_model, overwrite=overwrite))
        if dst_report:
            tmp_report = stack.enter_context(io.atomic_output(dst_report, overwrite=overwrite))
            write_training_report(
                str(tmp_report), result, table, train_data, dst_model, encoder=encoder,
                epochs=epochs, summary=summary, device=device, overwrite=True,
            )  # fmt: skip
            outputs["OUTPUT_REPORT"] = str(dst_report)
        save_model(tmp_model, result.state_dict, metadata)
    return outputs


def _validation_text(val_data: list[dict[str, Any]], fraction: float) -> str:
    # the names of held-out images are in the summary's ``validation_images``
    return "separate rasters" if val_data else f"{fraction:g} of blocks"


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
    from .. import io
    from ..acquisition import model_bands, raster_normalization
    from ..batch import class_outputs, list_rasters
    from ..classes import classes_from_json, classes_to_json, complete_classes
    from ..modelfile import read_metadata

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
    dsts, confs = class_outputs(sources, batch, dst, dst_confidence)
    io.check_outputs(
        (*dsts, *confs, dst_polygons, dst_mosaic),
        rasters=(*dsts, *confs),
        overwrite=overwrite,
    )
    band_lists = [model_bands(metadata, path, report) for path in sources]
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
    jobs = list(zip(sources, dsts, confs, band_lists, norms, strict=True))
    options: dict[str, Any] = {
        "batch_size": batch_size,
        "device": device,
        "threads": threads,
        "overwrite": overwrite,
        "report": report,
    }
    if dask_scheduler:
        from ..distributed import predict_on_cluster

        results = predict_on_cluster(
            model, _dask_metadata(metadata, tta), jobs, classes, scheduler=dask_scheduler,
            block_size=block_size, **options,
        )  # fmt: skip
    else:
        results = _predict_here(model, jobs, classes, tta=tta, batch=batch, **options)
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


#: One raster to classify: source, class raster, confidence raster, bands, normalisation.
_Job = tuple[str, str, str | None, list[int], tuple[list[float], list[float]]]


def _predict_here(
    model: str,
    jobs: list[_Job],
    classes: Sequence[ClassInfo],
    *,
    tta: bool,
    batch: bool,
    batch_size: int,
    device: str,
    threads: int | None,
    overwrite: bool,
    report: Reporter,
) -> list[dict[str, Any]]:
    """Classify the rasters one after the other in this process."""
    import torch

    from ..modelfile import load_model
    from ..networks import build_network_checked

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
    for number, (path, out, conf, bands, norm) in enumerate(jobs):
        if batch:
            report.info(f"Raster {number + 1} of {len(jobs)}: {path}")
        results.append(
            _predict_one(
                network, metadata, classes, path, out, conf, bands, norm,
                batch_size=batch_size, device=device, threads=threads,
                overwrite=overwrite, report=report,
            )
        )  # fmt: skip
    return results


def _dask_metadata(metadata: dict[str, Any], tta: bool) -> dict[str, Any]:
    """Return the description the Dask workers apply (with ``tta``; rasters normalised per item)."""
    return {**metadata, "tta": bool(tta)}


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
