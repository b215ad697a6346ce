"""Cluster rasters of the unsupervised methods: class tables, scribbles, streamed remapping.

Clusters are written as ids 1..K (0 is nodata) with a class table (``cluster <id>``, or
``scribble <class>`` for clusters that DFC's scribbles named). Large outputs are
remapped a few rows at a time (:func:`remap_clusters`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from . import io
from .classes import ClassInfo, palette, write_raster_classes
from .labels import IGNORED, rasterize_labels, read_labels
from .protocol import EngineError, Reporter

__all__ = [
    "cluster_classes",
    "read_scribbles",
    "remap_clusters",
    "scribble_names",
    "write_clusters",
]

#: Rows read at a time when remapping a streamed output.
ROWS = 256


def read_scribbles(
    path: str, class_field: str | None, src: rasterio.DatasetReader, report: Reporter
) -> tuple[np.ndarray, list[ClassInfo], list[int]]:
    """Scribbles as class indices 0..S-1 on the raster grid (-1 elsewhere)."""
    is_vector = os.path.splitext(path.partition("|")[0])[1].lower() in (
        ".gpkg",
        ".shp",
        ".geojson",
        ".json",
        ".fgb",
        ".gml",
        ".kml",
        ".sqlite",
    )
    if is_vector:
        if not class_field:
            raise EngineError(
                f"Scribbles {path} are vector features: give SCRIBBLE_FIELD, the field with "
                "each stroke's class."
            )
        labels, classes = rasterize_labels(path, class_field, src, reporter=report)
    else:
        labels, classes = read_labels(path, src, ignore_value=0, reporter=report)
    values = sorted(int(v) for v in np.unique(labels[labels != IGNORED]))
    if not values:
        raise EngineError(
            f"The scribbles {path} mark no pixel of the raster: draw them over the raster "
            "(lines or polygons with a class field, or a raster with class values > 0)."
        )
    lut = {v: i for i, v in enumerate(values)}
    out = np.full(labels.shape, -1, np.int16)
    for v, i in lut.items():
        out[labels == v] = i
    return out, classes, values


def cluster_classes(n: int, names: dict[int, str] | None = None) -> list[ClassInfo]:
    """Class table of clusters 1..n: ``cluster <id>`` unless ``names`` names it."""
    colors = palette(n)
    names = names or {}
    return [ClassInfo(v, names.get(v, f"cluster {v}"), colors[v - 1]) for v in range(1, n + 1)]


def write_clusters(
    path: os.PathLike[str] | str,
    labels: np.ndarray,
    info: io.RasterInfo,
    classes: Sequence[ClassInfo],
) -> None:
    """Write cluster ids (uint8 or uint16, nodata 0) with their class table."""
    dtype = "uint8" if labels.max(initial=0) <= 255 else "uint16"
    io.write_raster(path, labels.astype(dtype), like=info, nodata=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "r+") as ds:
            write_raster_classes(ds, classes)


def remap_clusters(
    src_path: os.PathLike[str] | str,
    dst_path: os.PathLike[str] | str,
    lut: np.ndarray,
    info: io.RasterInfo,
    classes: Sequence[ClassInfo],
) -> None:
    """Write ``lut[value]`` of a label raster, ``ROWS`` rows at a time."""
    top = int(lut.max(initial=0))
    dtype = "uint8" if top <= 255 else "uint16"
    profile = io.output_profile(info, count=1, dtype=dtype, nodata=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(src_path) as src, rasterio.open(dst_path, "w", **profile) as dst:
            for row in range(0, info.height, ROWS):
                window = Window(0, row, info.width, min(ROWS, info.height - row))
                values = src.read(1, window=window).astype(np.int64)
                values = np.clip(values, 0, len(lut) - 1)
                dst.write(lut[values].astype(dtype), 1, window=window)
            write_raster_classes(dst, classes)


def scribble_names(
    lut: np.ndarray, scribble_values: Sequence[int], table: Sequence[ClassInfo]
) -> dict[int, str]:
    """Name the clusters that scribble classes ended up in (``lut``: channel -> id)."""
    names = {c.value: c.name for c in table}
    out = {}
    for index, value in enumerate(scribble_values):
        if index < len(lut) and lut[index] > 0:
            out[int(lut[index])] = f"scribble {names.get(value, f'class {value}')}"
    return out
