"""What an ISB, DFC or W-Net run writes once its network is trained.

The clusters (:func:`label_image`: the whole raster in one pass; :func:`label_dataset`:
every window through the tiled inference engine), renumbered by area with their class
table; the clusters as the scribbles' classes (:func:`write_class_map`); and the clusters
mapped to the classes of a reference raster (:func:`map_to_reference`, :mod:`core.metrics`).
The command that calls them is :mod:`core.commands.unsupervised`.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window

from . import io
from .accuracy import assess, count_confusion, open_pair
from .classes import ClassInfo, classes_to_json, palette, parse_classes, read_raster_classes
from .clusters import (
    cluster_classes,
    read_scribbles,
    remap_clusters,
    scribble_names,
    write_clusters,
)
from .inference import predict_raster
from .metrics import to_json_dict
from .protocol import EngineError, Reporter
from .scribbles import write_scribble_classes
from .tiling import DEFAULT_OVERLAP
from .unsupervised import _autocast, merge_small_segments, renumber_by_area
from .unsupervised_data import TrainingData, scale

__all__ = ["Labelled", "label_dataset", "label_image", "map_to_reference", "write_class_map"]


@dataclass
class Labelled:
    """The clusters written: their count, class table and channel -> id table."""

    n_clusters: int
    table: list[ClassInfo]
    channel_lut: np.ndarray


def label_image(
    net: Any,
    data: TrainingData,
    info: io.RasterInfo,
    dev: Any,
    autocast: Any,
    dst: Any,
    max_clusters: int,
    *,
    min_segment: int = 0,
) -> Labelled:
    """Image mode: label the whole raster in one pass and write it.

    With ``min_segment`` > 1 (W-Net), connected segments smaller than that many pixels
    join the nearest larger one (:func:`core.unsupervised.merge_small_segments`).
    """
    import torch

    with torch.no_grad(), _autocast(dev, autocast):
        scores = net.to(dev)(torch.from_numpy(data.images).to(dev)).float()
    raw = scores.argmax(dim=1)[0].cpu().numpy()[: info.height, : info.width]
    valid_px = data.valids[0][: info.height, : info.width]
    if min_segment > 1:
        raw = merge_small_segments(raw, valid_px, min_size=min_segment)
    counts = np.bincount(raw[valid_px], minlength=max_clusters)
    lut = renumber_by_area(counts)
    labels = np.where(valid_px, lut[raw], 0)
    n_clusters = int(lut.max())
    names = scribble_names(lut, data.scribble_values or [], data.scribble_table)
    table = cluster_classes(n_clusters, names)
    write_clusters(dst, labels, info, table)
    return Labelled(n_clusters, table, lut)


def label_dataset(
    net: Any,
    src: str,
    raw_path: Any,
    dst: Any,
    data: TrainingData,
    info: io.RasterInfo,
    band_list: list[int],
    max_clusters: int,
    *,
    device: str,
    precision: str,
    nodata_zero: bool,
    threads: int,
    report: Reporter,
) -> Labelled:
    """Dataset mode: label every window with the frozen network, then renumber by area."""
    result = _predict(
        net, src, raw_path, band_list, data.low, data.span, max_clusters, data.tile, device,
        precision, nodata_zero, threads, report,
    )  # fmt: skip
    counts = np.zeros(max_clusters + 1, np.int64)
    for value, count in result["COUNTS"].items():
        counts[int(value)] = count
    channel_lut = renumber_by_area(counts[1:])
    lut = np.concatenate([[0], channel_lut])
    n_clusters = int(lut.max())
    names = scribble_names(lut[1:], data.scribble_values or [], data.scribble_table)
    table = cluster_classes(n_clusters, names)
    remap_clusters(raw_path, dst, lut, info, table)
    return Labelled(n_clusters, table, channel_lut)


def _predict(
    net: Any,
    src: str,
    dst: Any,
    band_list: list[int],
    low: np.ndarray,
    span: np.ndarray,
    n_clusters: int,
    tile: int,
    device: str,
    precision: str,
    nodata_zero: bool,
    threads: int,
    report: Reporter,
) -> dict[str, Any]:
    """Label every window with the frozen network (tiled inference engine)."""
    overlap = min(DEFAULT_OVERLAP, max(0, tile // 4 - 1))
    return predict_raster(
        net,
        src,
        os.fspath(dst),
        bands=band_list,
        offsets=low.tolist(),
        scales=span.tolist(),
        n_classes=n_clusters,
        tile_size=tile,
        overlap=overlap,
        device=device,
        precision=precision,
        nodata_zero=nodata_zero,
        overwrite=True,
        reporter=report.part(80, 88),
        threads=threads,
    )


def write_class_map(
    clusters_path: Any,
    dst: Any,
    *,
    src: str,
    band_list: list[int],
    data: TrainingData,
    nodata_zero: bool,
    scribbles: str | None,
    scribble_field: str | None,
    scribble_classes: str | None,
    rule: str,
    report: Reporter,
) -> list[ClassInfo]:
    """Write the clusters as the scribbles' classes; return the class table."""
    if not scribbles:
        raise EngineError("The class map needs SCRIBBLES.")
    try:
        given = parse_classes(scribble_classes)
    except ValueError as err:
        raise EngineError(f"SCRIBBLE_CLASSES: {err}") from None
    with io.open_raster(src) as raster:
        index, table, values = read_scribbles(scribbles, scribble_field, raster, report)
        marks = np.where(index >= 0, np.asarray(values)[np.clip(index, 0, None)], 0)
        known = {c.value: c for c in table}
        known.update({c.value: c for c in given})

        def features(row: int, height: int) -> np.ndarray:
            window = Window(0, row, raster.width, height)
            image, valid = io.read_bands(raster, band_list, window=window, nodata_zero=nodata_zero)
            return scale(image, valid, data.low, data.span)

        try:
            assignment = write_scribble_classes(
                clusters_path,
                dst,
                marks,
                [known[v] for v in sorted(known)],
                rule=rule,
                features=features if rule == "merge" else None,
            )
        except ValueError as err:
            raise EngineError(str(err)) from None
    scribbled = int(assignment.scribbled.sum())
    extra = sum(c.name.startswith("unnamed") for c in assignment.classes)
    report.info(
        f"Class map: {scribbled} of {len(assignment.lut) - 1} clusters hold scribbles; "
        + (
            f"the others became {extra} unnamed classes."
            if rule == "extra"
            else "the others merged into the most similar named class."
        )
    )
    return assignment.classes


def map_to_reference(
    clusters_path: os.PathLike[str] | str,
    *,
    reference: str,
    assignment: str,
    classes_text: str | None,
    ignore_values: Sequence[float],
    mapped_path: os.PathLike[str] | str | None,
    csv_path: os.PathLike[str] | str | None,
    info: io.RasterInfo,
    report: Reporter,
) -> dict[str, Any]:
    """Map clusters to reference classes (:mod:`core.accuracy`, :mod:`core.metrics`)."""
    quiet = Reporter.quiet()
    ignore = [float(v) for v in ignore_values]
    with contextlib.ExitStack() as stack:
        pair = open_pair(stack, os.fspath(clusters_path), reference=reference, reporter=quiet)
        accumulator = count_confusion(pair, ignore, reporter=quiet)
    result = assess(accumulator, mode="clusters", assignment=assignment, ignore=ignore)
    rows = to_json_dict(result)["mapping"] or []
    with io.open_raster(reference) as ref:
        known = read_raster_classes(ref)
    given = parse_classes(classes_text)
    by_value = {c.value: c for c in known}
    by_value.update({c.value: c for c in given})
    targets = sorted({r["class"] for r in rows if r["class"] is not None})
    extra = iter(palette(len(targets), offset=len(by_value)))
    table = [
        by_value.get(v) or ClassInfo(v, f"class {v}", next(extra))
        for v in targets
        if 1 <= v <= 65535
    ]
    names = {c.value: c.name for c in table}
    report.info(f"Clusters mapped to reference classes ({assignment}):")
    report.info("cluster -> class (name): pixels, agreeing pixels")
    for r in rows:
        target = r["class"]
        name = names.get(target, "-") if target is not None else "unmatched"
        report.info(
            f"  {r['cluster']} -> {target if target is not None else '-'} ({name}): "
            f"{r['pixels']}, {r['agreeing_pixels']}"
        )
    unmatched = sum(r["pixels"] for r in rows if r["class"] is None)
    if unmatched:
        report.warning(
            f"{unmatched:,} pixels are in clusters that the one-to-one (Hungarian) mapping "
            "leaves unmatched; they are nodata in OUTPUT_MAPPED. Use the many-to-one "
            "(majority) assignment to give every cluster a class."
        )
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(["cluster", "class", "class_name", "pixels", "agreeing_pixels"])
            for r in rows:
                target = r["class"]
                writer.writerow(
                    [
                        r["cluster"],
                        "" if target is None else target,
                        names.get(target, "") if target is not None else "",
                        r["pixels"],
                        r["agreeing_pixels"],
                    ]
                )
    if mapped_path:
        top = max([r["cluster"] for r in rows] + [0])
        lut = np.zeros(top + 1, np.int64)
        for r in rows:
            if r["class"] is not None and 1 <= r["class"] <= 65535:
                lut[r["cluster"]] = r["class"]
        remap_clusters(clusters_path, mapped_path, lut, info, table)
    return {
        "ARI": result.adjusted_rand_index,
        "OVERALL_ACCURACY": result.overall_accuracy,
        "MAPPING": [
            {"cluster": r["cluster"], "class": r["class"], "pixels": r["pixels"]} for r in rows
        ],
        "MAPPED_CLASSES": classes_to_json(table),
    }
