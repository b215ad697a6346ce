"""Turn label rasters into polygons."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import rasterio.features
from affine import Affine
from shapely.geometry import MultiPolygon, Polygon, shape

__all__ = ["segment_polygons", "write_polygons"]


def segment_polygons(
    labels: np.ndarray, *, transform: Affine, connectivity: int = 4
) -> tuple[np.ndarray, list[Polygon | MultiPolygon]]:
    """Polygonize a label raster into one (multi)polygon per label.

    Parameters
    ----------
    labels : (H, W) int32 ndarray
        Labels; 0 means no label and gives no polygon.
    transform : affine.Affine
        Pixel-to-map transform of the raster.
    connectivity : {4, 8}
        Pixel connectivity of the regions traced.

    Returns
    -------
    ids : (M,) int64 ndarray
        Sorted labels that have a polygon.
    geometries : list of shapely geometries
        One Polygon or, when a label has several separate parts, MultiPolygon per id.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, not {connectivity}.")
    parts: dict[int, list[Polygon]] = {}
    for geom, value in rasterio.features.shapes(
        labels, mask=labels != 0, transform=transform, connectivity=connectivity
    ):
        parts.setdefault(int(value), []).append(shape(geom))
    ids = np.array(sorted(parts), dtype=np.int64)
    geometries: list[Polygon | MultiPolygon] = [
        polys[0] if len(polys) == 1 else MultiPolygon(polys)
        for polys in (parts[int(i)] for i in ids)
    ]
    return ids, geometries


def write_polygons(
    path: str | os.PathLike[str],
    geometries: Sequence[Polygon | MultiPolygon],
    attributes: dict[str, np.ndarray],
    *,
    crs_wkt: str | None,
    layer: str,
) -> None:
    """Write polygons and their attributes to a vector file (GeoPackage by default).

    The format follows the file extension (any OGR driver pyogrio knows).
    """
    import geopandas as gpd  # deferred: heavy import, only needed here

    frame = gpd.GeoDataFrame(attributes, geometry=list(geometries), crs=crs_wkt)
    options: dict[str, Any] = {"layer": layer} if str(path).lower().endswith(".gpkg") else {}
    frame.to_file(path, engine="pyogrio", **options)
