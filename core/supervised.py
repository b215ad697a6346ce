"""Pipeline entries of the supervised U-Net: ``trainunet`` and ``predictunet``.

:func:`run_trainunet` reads images and their (partial) labels, brings the labels onto each
image's grid, normalises the bands with statistics of the training images, trains a U-Net
(:mod:`core.training`) and writes a self-describing model file (:mod:`core.modelfile`:
safetensors weights, JSON description) and an HTML training report.
:func:`run_predictunet` checks a raster against a model's description and classifies it
through the tiled inference engine (:func:`core.inference.predict_raster`).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.errors import NotGeoreferencedWarning

from . import __version__, io
from .classes import ClassInfo, classes_from_json, classes_to_json, complete_classes, parse_classes
from .labels import IGNORED, describe_counts, rasterize_labels, read_labels
from .protocol import EngineError, Reporter
from .supervised_cli import TRAIN_DEFAULTS

__all__ = ["TRAIN_DEFAULTS", "run_predictunet", "run_trainunet", "tile_folder_pairs"]

_IMAGE_DIRS = ("images", "image", "imgs", "img", "s2", "x", "inputs")
_LABEL_DIRS = ("labels", "label", "masks", "mask", "lc", "gt", "y", "targets")
_RASTER_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".img", ".vrt")


def _select_device(name: str) -> Any:
    import torch

    try:
        from .inference import select_device

        device, reason = select_device(name)
        return device, reason
    except ImportError:  # pragma: no cover - the tiled engine ships with this module
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        return torch.device(name), name


def tile_folder_pairs(folder: str | os.PathLike[str]) -> dict[str, list[tuple[str, str]]]:
    """Find image/label tile pairs in ``folder/{train,val,test}/{images,labels}``.

    Image and label folders may be named ``images``/``labels``, ``masks``, ``s2``/``lc``
    (the Hunan land-cover set's layout) and similar. Pairs match by file name or, failing
    that, by the last number in the name (``s2_2604.tif`` with ``lc_2604.tif``).

    Returns
    -------
    dict
        ``{"train": [(image, label), ...], "val": [...], "test": [...]}`` (splits present).
    """
    root = Path(folder)
    if not root.is_dir():
        raise EngineError(f"Tile folder {root} does not exist.")
    splits: dict[str, list[tuple[str, str]]] = {}
    for split in ("train", "val", "test"):
        base = root / split
        if not base.is_dir():
            continue
        subdirs = {p.name.lower(): p for p in base.iterdir() if p.is_dir()}
        images = next((subdirs[n] for n in _IMAGE_DIRS if n in subdirs), None)
        labels = next((subdirs[n] for n in _LABEL_DIRS if n in subdirs), None)
        if images is None or labels is None:
            raise EngineError(
                f"{base} needs an image folder ({'/'.join(_IMAGE_DIRS[:3])}) and a label folder "
                f"({'/'.join(_LABEL_DIRS[:4])}); it has {', '.join(sorted(subdirs)) or 'none'}."
            )
        label_files = [p for p in sorted(labels.iterdir()) if p.suffix.lower() in _RASTER_SUFFIXES]
        by_name = {p.stem: p for p in label_files}
        by_number = {_last_number(p.stem): p for p in label_files}
        pairs = []
        for image in sorted(images.iterdir()):
            if image.suffix.lower() not in _RASTER_SUFFIXES:
                continue
            label = by_name.get(image.stem) or by_number.get(_last_number(image.stem))
            if label is not None:
                pairs.append((str(image), str(label)))
        if pairs:
            splits[split] = pairs
    if "train" not in splits:
        raise EngineError(
            f"{root} has no train/ folder with image/label pairs; lay tiles out as "
            "train/images + train/labels (and val/, test/)."
        )
    return splits


def _last_number(stem: str) -> str | None:
    numbers = re.findall(r"\d+", stem)
    return numbers[-1] if numbers else None


def _load_scene(
    image_path: str,
    bands: Sequence[int] | None,
    *,
    labels_path: str | None,
    polygons: str | None,
    class_field: str | None,
    ignore_value: float | None,
    nodata_zero: bool,
    report: Reporter,
) -> dict[str, Any]:
    with io.open_raster(image_path) as src, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        chosen = io.resolve_bands(bands, src.count)
        image, valid = io.read_bands(src, chosen, nodata_zero=nodata_zero)
        if labels_path is not None:
            labels, classes = read_labels(
                labels_path, src, ignore_value=ignore_value, reporter=report
            )
        else:
            assert polygons is not None and class_field is not None
            labels, classes = rasterize_labels(polygons, class_field, src, reporter=report)
            if ignore_value is not None:
                labels[labels == ignore_value] = IGNORED
        labels[~valid] = IGNORED
        return {
            "path": image_path,
            "image": image,
            "valid": valid,
            "labels": labels,
            "classes": classes,
            "bands": chosen,
            "descriptions": [src.descriptions[b - 1] or f"band {b}" for b in chosen],
            "dtypes": [src.dtypes[b - 1] for b in chosen],
            "resolution": [abs(src.res[0]), abs(src.res[1])],
            "crs": src.crs.to_string() if src.crs else None,
        }


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
        tile pairs (:func:`tile_folder_pairs`); ``val/`` replaces the block split.
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
    import torch

    from .modelfile import save_model
    from .networks import ENCODERS, build_unet, load_encoder_weights
    from .training import Scene, band_statistics, split_blocks, train_network

    report = reporter or Reporter("text")
    if encoder not in ENCODERS:
        raise EngineError(f"Unknown encoder {encoder!r}; choose one of {', '.join(ENCODERS)}.")
    if tile_size < 32 or tile_size % 32:
        raise EngineError(f"TILE_SIZE must be a multiple of 32 (e.g. 128 or 256), not {tile_size}.")
    if not 0 <= validation_fraction < 1:
        raise EngineError("VALIDATION_FRACTION must be between 0 and 1 (e.g. 0.2).")
    if epochs < 1 or batch_size < 1:
        raise EngineError("EPOCHS and BATCH_SIZE must be at least 1.")
    io.check_output_path(dst_model, overwrite=overwrite)
    if dst_report:
        io.check_output_path(dst_report, overwrite=overwrite)

    # Pairs of (image, labels) per role.
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
    else:
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

    def load(pairs: list[tuple[str, str | None]], role: str) -> list[dict[str, Any]]:
        loaded = []
        for index, (image_path, label_path) in enumerate(pairs):
            loaded.append(
                _load_scene(
                    image_path,
                    bands,
                    labels_path=label_path,
                    polygons=None if label_path else label_polygons,
                    class_field=class_field,
                    ignore_value=ignore_value,
                    nodata_zero=nodata_zero,
                    report=report,
                )
            )
            report.progress(5.0 * (index + 1) / max(len(pairs), 1))
        return loaded

    train_data = load(train_pairs, "train")
    val_data = load(val_pairs, "validation") if val_pairs else []
    every = train_data + val_data
    count = len(every[0]["bands"])
    for item in every[1:]:
        if len(item["bands"]) != count:
            raise EngineError(
                f"{item['path']} has {len(item['bands'])} bands but {every[0]['path']} has "
                f"{count}: every input must have the same band layout."
            )

    # Classes: the values found, named from CLASSES, the labels' tables, or generated.
    found = sorted(set().union(*(describe_counts(d["labels"]).keys() for d in train_data)))
    if not found:
        raise EngineError(
            "Every label pixel is unlabelled (IGNORE_VALUE, nodata, outside the image or on "
            "image nodata): there is nothing to train on. Check IGNORE_VALUE and that the "
            "labels cover the images."
        )
    given = parse_classes(classes)
    if given:
        known = {c.value for c in given}
        extra = sorted(set(found) - known)
        if extra:
            raise EngineError(
                f"Label values {', '.join(map(str, extra))} are not in CLASSES "
                f"({', '.join(str(c.value) for c in given)}): add them to CLASSES, or set "
                "IGNORE_VALUE if they mean unlabelled."
            )
        table = list(given)
    else:
        known_tables = [c for d in every for c in d["classes"] if c.value in found]
        unique: dict[int, ClassInfo] = {}
        for c in known_tables:
            unique.setdefault(c.value, c)
        table = complete_classes(found, list(unique.values()))
        table = [c for c in table if c.value in found]
    if any(c.value == 0 for c in table):
        raise EngineError(
            "Class value 0 is reserved for nodata in LandSeg's class rasters. Set IGNORE_VALUE "
            "to 0 if 0 means unlabelled, or recode the classes to start at 1."
        )
    class_values = [c.value for c in table]
    lookup_keys = np.array(class_values, dtype=np.int64)

    def to_indices(values: np.ndarray) -> np.ndarray:
        out = np.full(values.shape, -1, dtype=np.int64)
        labelled = values != IGNORED
        positions = np.searchsorted(lookup_keys, values[labelled])
        positions = np.clip(positions, 0, len(lookup_keys) - 1)
        ok = lookup_keys[positions] == values[labelled]
        idx = np.where(ok, positions, -1)
        out[labelled] = idx
        return out

    # Normalisation statistics from the training images.
    offsets, scales = band_statistics([(d["image"], d["valid"]) for d in train_data], seed=seed)

    def make_scene(item: dict[str, Any], train: bool) -> Scene:
        image = (item["image"] - offsets[:, None, None].astype(np.float32)) / scales[
            :, None, None
        ].astype(np.float32)
        image[:, ~item["valid"]] = 0.0
        targets = to_indices(item["labels"])
        mask = np.full(targets.shape, train, dtype=bool)
        return Scene(image.astype(np.float32), targets, mask, item["path"])

    scenes = [make_scene(d, True) for d in train_data]
    block = max(32, tile_size // 2)
    if val_data:
        scenes += [make_scene(d, False) for d in val_data]
        report.info(f"Validation on {len(val_data)} separate raster(s).")
    elif validation_fraction > 0:
        n_train, n_val = split_blocks(scenes, block=block, fraction=validation_fraction, seed=seed)
        if n_val:
            report.info(
                f"Validation: {n_val} of {n_train + n_val} labelled {block}x{block} blocks held "
                "out, spatially separate from the training labels."
            )
        else:
            report.warning(
                "Too few labelled blocks for a validation split: training without validation "
                "(no early stopping)."
            )
    counts = describe_counts(np.concatenate([d["labels"].ravel() for d in train_data]))
    report.info(
        "Labelled pixels per class: "
        + ", ".join(f"{c.name} ({c.value}): {counts.get(c.value, 0):,}" for c in table)
    )
    for c in table:
        if counts.get(c.value, 0) == 0:
            report.warning(f"Class {c.name} ({c.value}) has no labelled training pixel.")

    if threads:
        torch.set_num_threads(int(threads))
    torch_device, reason = _select_device(device)
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
        seed=seed,
        device=torch_device,
        reporter=report,
        on_epoch=on_epoch,
    )
    best = next(h for h in result.history if h["epoch"] == result.best_epoch)
    first = train_data[0]
    summary = {
        "epochs_run": len(result.history),
        "epochs_max": epochs,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "seconds": round(result.seconds, 1),
        "device": str(torch_device),
        "val_miou": _finite(best.get("val_miou")),
        "val_oa": _finite(best.get("val_oa")),
        "val_macro_f1": _finite(best.get("val_macro_f1")),
        "train_loss": _finite(best["loss"]),
        "labelled_pixels": {str(c.value): int(counts.get(c.value, 0)) for c in table},
        "inputs": [os.path.basename(d["path"]) for d in train_data],
        "validation": "separate rasters" if val_data else f"{validation_fraction:g} of blocks",
        "tile_size": tile_size,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "patience": patience,
        "class_weighting": class_weighting,
        "augment": augment,
        "seed": seed,
        "encoder_weights": os.path.basename(encoder_weights) if encoder_weights else None,
        "history": [{k: _finite(v) for k, v in h.items()} for h in result.history],
    }
    metadata = {
        "architecture": "unet",
        "architecture_args": {"encoder": encoder, "in_channels": count, "classes": len(table)},
        "bands": {
            "count": count,
            "indices": first["bands"],
            "names": first["descriptions"],
            "dtypes": first["dtypes"],
        },
        "normalization": {
            "method": "standardize",
            "offsets": [float(v) for v in offsets],
            "scales": [float(v) for v in scales],
        },
        "nodata_zero": nodata_zero,
        "resolution": first["resolution"],
        "crs": first["crs"],
        # Fully convolutional: prediction uses larger tiles than training (more context,
        # fewer seams) and any multiple of 32 works.
        "tile_size": max(256, tile_size),
        "overlap": max(256, tile_size) // 4,
        "classes": classes_to_json(table),
        "ignore_value": ignore_value,
        "training": summary,
        "landseg_version": __version__,
    }
    with io.atomic_output(dst_model, overwrite=overwrite) as tmp:
        save_model(tmp, result.state_dict, metadata)
    outputs: dict[str, Any] = {"OUTPUT_MODEL": str(dst_model)}
    if dst_report:
        from .training_report import render_training_html

        text = render_training_html(
            history=result.history,
            best_epoch=result.best_epoch,
            confusion=result.confusion,
            classes=table,
            inputs={"Images": ", ".join(d["path"] for d in train_data), "Model": dst_model},
            parameters={
                "Encoder": encoder,
                "Tile size": tile_size,
                "Epochs (max)": epochs,
                "Batch size": batch_size,
                "Learning rate": learning_rate,
                "Early-stopping patience": patience,
                "Validation": summary["validation"],
                "Class weighting": class_weighting,
                "Augmentation": augment,
                "Seed": seed,
                "Device": str(torch_device),
            },
        )
        with io.atomic_output(dst_report, overwrite=overwrite) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
        outputs["OUTPUT_REPORT"] = str(dst_report)
    report.progress(100.0)
    outputs.update(
        CLASSES=classes_to_json(table),
        BEST_EPOCH=result.best_epoch,
        EPOCHS_RUN=len(result.history),
        VAL_MIOU=summary["val_miou"],
        VAL_OA=summary["val_oa"],
    )
    return outputs


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_predictunet(
    *,
    src: str | Sequence[str],
    model: str,
    dst: str,
    dst_confidence: str | None = None,
    dst_polygons: str | None = None,
    batch_size: int = 8,
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
        a batch, a folder of rasters, ``@list.txt`` or a list (:func:`core.mosaic.list_rasters`).
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

    from .modelfile import load_model, read_metadata
    from .mosaic import batch_outputs, list_rasters

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
        confs = (
            batch_outputs(sources, dst_confidence, suffix="_confidence")
            if dst_confidence
            else [None] * len(sources)
        )
    else:
        dsts, confs = [dst], [dst_confidence]
    for path in (*dsts, *confs, dst_polygons, dst_mosaic):
        if path:
            io.check_output_path(path, overwrite=overwrite)
    band_lists = [_model_bands(metadata, path, report) for path in sources]
    classes = classes_from_json(metadata["classes"])
    if dask_scheduler:
        from .distributed import DEFAULT_BLOCK_SIZE, PredictItem, connect, predict_rasters

        def shared(path: str | None) -> str | None:  # workers have other working folders
            if not path or path.startswith("/vsi") or "://" in path:
                return path
            return os.path.abspath(path)

        items = [
            PredictItem(str(shared(s)), str(shared(d)), shared(c), tuple(b))
            for s, d, c, b in zip(sources, dsts, confs, band_lists, strict=True)
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
        results = []
        for number, (path, out, conf, bands) in enumerate(
            zip(sources, dsts, confs, band_lists, strict=True)
        ):
            if batch:
                report.info(f"Raster {number + 1} of {len(sources)}: {path}")
            results.append(
                _predict_one(
                    network, metadata, classes, path, out, conf, bands,
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
        from .classes import write_qml
        from .mosaic import write_vrt

        write_vrt(dsts, dst_mosaic, classes=complete_classes([], classes))
        write_qml(dst_mosaic, complete_classes([], classes))
        outputs["OUTPUT_MOSAIC"] = str(dst_mosaic)
    return outputs


def build_network_checked(metadata: dict[str, Any], state: dict[str, Any], model: str) -> Any:
    """Build a model file's network and load its weights (a clear error if they differ)."""
    from .networks import build_network

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
    *,
    batch_size: int,
    device: str,
    threads: int | None,
    overwrite: bool,
    report: Reporter,
) -> dict[str, Any]:
    """Classify one raster in this process (:func:`core.inference.predict_raster`)."""
    from .inference import predict_raster

    norm = metadata.get("normalization", {})
    return predict_raster(
        network,
        src,
        dst,
        bands=list(bands),
        offsets=norm.get("offsets"),
        scales=norm.get("scales"),
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
