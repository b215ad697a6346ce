"""Training labels on an image's grid: label rasters resampled, polygons rasterized.

Labels are returned as int64 class values on the image's pixel grid, with ``IGNORED``
(-1) where a pixel is unlabelled: the label raster's nodata or ignore value, outside the
label raster's extent, or outside every polygon. Class names and colours come with them
when the source has some (a raster's colour table or ``LANDSEG_CLASSES`` tag, a text
class field).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.vrt import WarpedVRT

from . import io
from .classes import ClassInfo, palette, read_raster_classes
from .protocol import EngineError, Reporter

__all__ = [
    "IGNORED",
    "describe_counts",
    "rasterize_labels",
    "read_labels",
]

#: Value of unlabelled pixels in the arrays this module returns.
IGNORED = -1

#: Class values LandSeg's class rasters can hold (0 is their nodata).
CLASS_RANGE = (1, 65535)


def check_class_values(values: np.ndarray, source: str) -> None:
    """Refuse label values outside :data:`CLASS_RANGE` before they are used.

    0 is left to the class table's own message (it is often "unlabelled"); negative
    values would otherwise meet :data:`IGNORED` and too large ones could not be written.

    Raises
    ------
    EngineError
        Naming the source, the values and the fix.
    """
    low, high = CLASS_RANGE
    bad = values[((values < low) & (values != 0)) | (values > high)]
    if bad.size == 0:
        return
    found = np.unique(bad)
    shown = ", ".join(f"{v:g}" for v in found[:5]) + (", ..." if len(found) > 5 else "")
    raise EngineError(
        f"The labels {source} hold class values outside {low}..{high} ({shown}; "
        f"{bad.size:,} pixels or polygons). Class values must be whole numbers from {low} "
        f"to {high}: set IGNORE_VALUE to {found[0]:g} if it means unlabelled, or recode "
        "the classes."
    )


def _same_grid(a: Any, b: Any) -> bool:
    same_crs = (a.crs is None and b.crs is None) or (
        a.crs is not None and b.crs is not None and a.crs == b.crs
    )
    return (
        same_crs
        and a.width == b.width
        and a.height == b.height
        and np.allclose(tuple(a.transform)[:6], tuple(b.transform)[:6], rtol=0, atol=1e-6)
    )


def read_labels(
    path: str,
    image: Any,
    *,
    ignore_value: float | None,
    reporter: Reporter | None = None,
) -> tuple[np.ndarray, list[ClassInfo]]:
    """Read a label raster onto an image's grid.

    Parameters
    ----------
    path : str
        Label raster (band 1, integer class values).
    image : rasterio dataset
        The open image whose grid the labels must match.
    ignore_value : float or None
        Value of unlabelled pixels (besides the label raster's nodata).
    reporter : Reporter, optional
        Receives the warning when the labels are resampled.

    Returns
    -------
    labels : (H, W) int64 ndarray
        Class values on the image grid; :data:`IGNORED` where unlabelled.
    classes : list of ClassInfo
        The label raster's class table, if it has one.

    Raises
    ------
    EngineError
        When the grids differ and cannot be related (one has no georeferencing), or the
        labels hold non-integer values.
    """
    report = reporter or Reporter("text")
    with io.open_raster(path) as src, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        classes = read_raster_classes(src)
        if _same_grid(src, image):
            values = src.read(1, out_dtype="float64")
            valid = src.read_masks(1) > 0
        else:
            if src.crs is None or image.crs is None:
                raise EngineError(
                    f"The labels {path} ({src.width}x{src.height}) are not on the grid of the "
                    f"image {image.name} ({image.width}x{image.height}) and "
                    f"{'the labels have' if src.crs is None else 'the image has'} no "
                    "georeferencing, so they cannot be resampled onto it. Give labels with the "
                    "image's size, or georeferenced labels."
                )
            what = "CRS" if src.crs != image.crs else "grid"
            report.warning(
                f"The labels {path} are on another {what} than the image {image.name}: "
                "resampling them (nearest neighbour) onto the image's grid."
            )
            with WarpedVRT(
                src,
                crs=image.crs,
                transform=image.transform,
                width=image.width,
                height=image.height,
                resampling=Resampling.nearest,
            ) as vrt:
                values = vrt.read(1, out_dtype="float64")
                valid = vrt.read_masks(1) > 0
    valid &= np.isfinite(values)
    if ignore_value is not None:
        valid &= values != ignore_value
    if np.any(valid) and not np.all(values[valid] == np.round(values[valid])):
        raise EngineError(
            f"The labels {path} hold non-integer values; give a raster of integer class values."
        )
    check_class_values(values[valid], path)
    labels = np.full(values.shape, IGNORED, dtype=np.int64)
    labels[valid] = values[valid].astype(np.int64)
    return labels, classes


def rasterize_labels(
    path: str,
    class_field: str,
    image: Any,
    *,
    ignore_value: float | None = None,
    reporter: Reporter | None = None,
) -> tuple[np.ndarray, list[ClassInfo]]:
    """Rasterize labelled polygons onto an image's grid.

    An integer field gives the class values directly; a text field gives classes
    1..N in the names' sorted order, named after the field's values.

    Parameters
    ----------
    path : str
        Vector file (any OGR format; ``path|layername=name`` picks a layer).
    class_field : str
        Field holding each polygon's class.
    image : rasterio dataset
        The open image whose grid the labels must match. Polygons are reprojected to
        its CRS when they have another one.
    ignore_value : float, optional
        Class value of polygons that mark unlabelled areas (left out).

    Returns
    -------
    labels : (H, W) int64 ndarray
        Class values; :data:`IGNORED` outside every polygon.
    classes : list of ClassInfo
        Named classes for a text field, else empty.
    """
    import geopandas as gpd
    from pandas.api.types import is_numeric_dtype
    from rasterio.features import rasterize

    report = reporter or Reporter("text")
    source, _, layer = path.partition("|layername=")
    options = {"layer": layer.split("|")[0]} if layer else {}
    try:
        frame = gpd.read_file(source, engine="pyogrio", **options)
    except Exception as err:
        raise EngineError(f"Cannot read label polygons {path}: {err}") from None
    if class_field not in frame.columns:
        raise EngineError(
            f"{path} has no field {class_field!r}; its fields are "
            f"{', '.join(c for c in frame.columns if c != 'geometry')}."
        )
    frame = frame[frame.geometry.notna() & frame[class_field].notna()]
    column = frame[class_field]
    classes: list[ClassInfo] = []
    if is_numeric_dtype(column.dtype):
        if not np.all(np.isclose(column % 1, 0)):
            raise EngineError(
                f"Field {class_field!r} of {path} holds fractional values; give integer "
                "class values or class names."
            )
        values = column.astype(np.int64).to_numpy()
        if ignore_value is not None:
            keep = values != ignore_value
            frame, values = frame[keep], values[keep]
        check_class_values(values, f"{path} (field {class_field!r})")
    else:
        names = sorted({str(v) for v in column})
        lookup = {name: i for i, name in enumerate(names, start=1)}
        values = np.array([lookup[str(v)] for v in column], dtype=np.int64)
        colors = palette(len(names))
        classes = [ClassInfo(i, n, c) for (n, i), c in zip(lookup.items(), colors, strict=True)]
    if image.crs is not None and frame.crs is not None and not frame.crs.equals(image.crs):
        report.info(
            f"Reprojecting the label polygons from {frame.crs.to_string()} to the image's CRS."
        )
        frame = frame.to_crs(image.crs.to_wkt())
    shape = (image.height, image.width)
    if len(frame) == 0:
        return np.full(shape, IGNORED, dtype=np.int64), classes
    transform = image.transform
    if image.crs is None and transform == Affine.identity():
        # No georeferencing: polygons drawn in QGIS use its pixel coordinates
        # (x = column, y = -row), as the vectorized outputs do.
        transform = Affine(1, 0, 0, 0, -1, 0)
    labels = rasterize(
        list(zip(frame.geometry, values.tolist(), strict=True)),
        out_shape=shape,
        transform=transform,
        fill=IGNORED,
        dtype="int64",
    )
    return labels, classes


def describe_counts(labels: np.ndarray) -> dict[int, int]:
    """Labelled pixels per class value (ignored pixels left out)."""
    values, counts = np.unique(labels[labels != IGNORED], return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}
