"""What the U-Net trains on: images with labels on their grid, the class table, scenes.

:func:`load_scenes` reads each image with its labels (:mod:`core.labels`);
:func:`class_table` names the label values found; :func:`standardize_scenes` turns them
into :class:`core.training.Scene` objects standardised with the training images'
statistics and splits off validation blocks.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.errors import NotGeoreferencedWarning

from . import io
from .classes import ClassInfo, complete_classes, parse_classes
from .labels import IGNORED, describe_counts, rasterize_labels, read_labels
from .protocol import EngineError, Reporter
from .training import Scene, band_statistics, split_blocks

__all__ = [
    "band_count",
    "class_table",
    "holdout_pair",
    "load_scene",
    "load_scenes",
    "log_class_counts",
    "standardize_scenes",
    "tile_folder_pairs",
    "training_pairs",
]


_IMAGE_DIRS = ("images", "image", "imgs", "img", "s2", "x", "inputs")


_LABEL_DIRS = ("labels", "label", "masks", "mask", "lc", "gt", "y", "targets")


_RASTER_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".img", ".vrt")


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


def training_pairs(
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


def _last_number(stem: str) -> str | None:
    numbers = re.findall(r"\d+", stem)
    return numbers[-1] if numbers else None


def load_scene(
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
    """Read one training image (bands, valid mask) and its labels on the image's grid."""
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
            labels, classes = rasterize_labels(
                polygons, class_field, src, ignore_value=ignore_value, reporter=report
            )
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


def load_scenes(
    pairs: list[tuple[str, str | None]],
    *,
    bands: Sequence[int] | None,
    label_polygons: str | None,
    class_field: str | None,
    ignore_value: float | None,
    nodata_zero: bool,
    report: Reporter,
) -> list[dict[str, Any]]:
    """Read each image with its labels on its grid (progress 0-5 %)."""
    loaded = []
    for index, (image_path, label_path) in enumerate(pairs):
        loaded.append(
            load_scene(
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


def band_count(every: list[dict[str, Any]]) -> int:
    """Return the band count every input shares (or refuse a mixed layout)."""
    count = len(every[0]["bands"])
    for item in every[1:]:
        if len(item["bands"]) != count:
            raise EngineError(
                f"{item['path']} has {len(item['bands'])} bands but {every[0]['path']} has "
                f"{count}: every input must have the same band layout."
            )
    return count


def class_table(
    train_data: list[dict[str, Any]], val_data: list[dict[str, Any]], classes: str | None
) -> list[ClassInfo]:
    """Classes: the values found, named from CLASSES, the labels' tables, or generated."""
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
        known_tables = [c for d in train_data + val_data for c in d["classes"] if c.value in found]
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
    return table


def _class_indices(values: np.ndarray, lookup_keys: np.ndarray) -> np.ndarray:
    """Class values -> indices 0..K-1 of the class table; -1 where unlabelled or unknown."""
    out = np.full(values.shape, -1, dtype=np.int64)
    labelled = values != IGNORED
    positions = np.searchsorted(lookup_keys, values[labelled])
    positions = np.clip(positions, 0, len(lookup_keys) - 1)
    ok = lookup_keys[positions] == values[labelled]
    out[labelled] = np.where(ok, positions, -1)
    return out


def standardize_scenes(
    train_data: list[dict[str, Any]],
    val_data: list[dict[str, Any]],
    table: list[ClassInfo],
    *,
    seed: int,
    tile_size: int,
    validation_fraction: float,
    report: Reporter,
    normalization: str = "training",
) -> tuple[np.ndarray, np.ndarray, list[Any], int]:
    """Standardise the images with the training statistics; split off validation blocks.

    ``normalization`` ``"image"`` or ``"percentile"`` normalises each image with its own
    statistics instead (:func:`core.acquisition.image_statistics`).

    Returns the offsets and scales (the training statistics), the scenes and the
    validation block side.
    """
    from .acquisition import image_statistics

    lookup_keys = np.array([c.value for c in table], dtype=np.int64)
    offsets, scales = band_statistics([(d["image"], d["valid"]) for d in train_data], seed=seed)

    def make_scene(item: dict[str, Any], train: bool) -> Scene:
        off, scl = offsets, scales
        if normalization != "training":
            off, scl = image_statistics(item["image"], item["valid"], mode=normalization)
        image = (item["image"] - off[:, None, None].astype(np.float32)) / scl[:, None, None].astype(
            np.float32
        )
        image[:, ~item["valid"]] = 0.0
        targets = _class_indices(item["labels"], lookup_keys)
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
    return offsets, scales, scenes, block


def log_class_counts(
    train_data: list[dict[str, Any]], table: list[ClassInfo], report: Reporter
) -> dict[int, int]:
    """Log the labelled pixels per class; warn about classes without any."""
    counts = describe_counts(np.concatenate([d["labels"].ravel() for d in train_data]))
    report.info(
        "Labelled pixels per class: "
        + ", ".join(f"{c.name} ({c.value}): {counts.get(c.value, 0):,}" for c in table)
    )
    for c in table:
        if counts.get(c.value, 0) == 0:
            report.warning(f"Class {c.name} ({c.value}) has no labelled training pixel.")
    return counts
