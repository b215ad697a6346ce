"""Rasters for plugin tests, written with QGIS's own GDAL bindings (numpy 1.x side)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal, osr

_TYPES = {
    "uint8": gdal.GDT_Byte,
    "uint16": gdal.GDT_UInt16,
    "int16": gdal.GDT_Int16,
    "int32": gdal.GDT_Int32,
    "float32": gdal.GDT_Float32,
}


def write_tif(
    path: Path, array: np.ndarray, *, epsg: int | None = 32119, nodata: float | None = None
) -> Path:
    """Write a (C, H, W) array; ``epsg=None`` gives a plain image without georeferencing."""
    count, height, width = array.shape
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), width, height, count, _TYPES[array.dtype.name]
    )
    if epsg is not None:
        ds.SetGeoTransform((630000.0, 30.0, 0.0, 228000.0, 0.0, -30.0))
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        ds.SetProjection(srs.ExportToWkt())
    for index in range(count):
        band = ds.GetRasterBand(index + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(array[index])
    ds = None
    return path


def parcels(
    shape: tuple[int, int], bands: int, *, seed: int = 0, cell: int = 12, scale: float = 200.0
) -> np.ndarray:
    """Blocky fields with noise, float32 (bands, H, W)."""
    rng = np.random.default_rng(seed)
    height, width = shape
    rows, cols = -(-height // cell), -(-width // cell)
    colours = rng.uniform(0, scale, size=(bands, rows, cols))
    image = np.repeat(np.repeat(colours, cell, axis=1), cell, axis=2)[:, :height, :width]
    return (image + rng.normal(0, scale / 60, size=image.shape)).astype(np.float32)


def read(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read band 1 and the grid facts of a raster."""
    ds = gdal.Open(str(path))
    band = ds.GetRasterBand(1)
    facts = {
        "transform": ds.GetGeoTransform(),
        "wkt": ds.GetProjection(),
        "nodata": band.GetNoDataValue(),
        "dtype": gdal.GetDataTypeName(band.DataType),
        "size": (ds.RasterXSize, ds.RasterYSize),
        "count": ds.RasterCount,
        "block": band.GetBlockSize(),
        "compression": ds.GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION"),
    }
    return band.ReadAsArray(), facts
