"""Small rasters for engine tests, written with rasterio."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin


def write_tif(
    path: Path,
    array: np.ndarray,
    *,
    crs: str | None = "EPSG:32119",
    nodata: float | None = None,
    transform: rasterio.Affine | None = None,
) -> Path:
    """Write a (C, H, W) array as a GeoTIFF (no georeferencing when crs is None)."""
    count, height, width = array.shape
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": array.dtype.name,
        "nodata": nodata,
    }
    if crs is not None:
        profile.update(crs=crs, transform=transform or from_origin(630000, 228000, 30, 30))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(array)
    return path


def parcels(shape: tuple[int, int], bands: int, *, seed: int = 0, cell: int = 16) -> np.ndarray:
    """Blocky 'fields' with noise: a (bands, H, W) float32 image with clear regions."""
    rng = np.random.default_rng(seed)
    height, width = shape
    rows, cols = (height + cell - 1) // cell, (width + cell - 1) // cell
    colours = rng.uniform(0, 200, size=(bands, rows, cols))
    image = np.repeat(np.repeat(colours, cell, axis=1), cell, axis=2)[:, :height, :width]
    return (image + rng.normal(0, 3, size=image.shape)).astype(np.float32)
