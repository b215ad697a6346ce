"""Many rasters in, many out: input lists and a VRT mosaic of the outputs.

:func:`list_rasters` turns a prediction's input (one raster, a folder of rasters, a
``@list.txt`` file or a list of paths) into raster paths. :func:`write_vrt` writes a GDAL
VRT mosaic of class rasters on one pixel grid: no pixel is copied, QGIS and GDAL read
the VRT as one raster. Standard library and rasterio only (no GDAL Python bindings).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from . import io
from .classes import ClassInfo
from .protocol import EngineError

__all__ = ["RASTER_SUFFIXES", "batch_outputs", "class_outputs", "list_rasters", "write_vrt"]

#: File suffixes taken from a folder of input rasters.
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
_GDAL_TYPES = {
    "uint8": "Byte",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "float32": "Float32",
    "float64": "Float64",
}


def list_rasters(spec: str | Sequence[str]) -> tuple[list[str], bool]:
    """Input rasters of a run, and whether it is a batch (outputs go to a folder).

    Parameters
    ----------
    spec : str or sequence of str
        A raster; a folder (its ``*.tif``, ``*.tiff``, ``*.vrt``, ``*.jp2`` and ``*.img``
        files, sorted); ``@file`` (one raster per line, ``#`` comments); or a list.

    Raises
    ------
    EngineError
        For an empty folder or list, or a missing list file.
    """
    if not isinstance(spec, str):
        paths = [str(p) for p in spec]
        batch = len(paths) != 1
    elif spec.startswith("@"):
        listing = Path(spec[1:])
        if not listing.is_file():
            raise EngineError(f"The raster list {listing} does not exist.")
        lines = listing.read_text(encoding="utf-8").splitlines()
        paths = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        batch = True
    elif os.path.isdir(spec):
        paths = sorted(str(p) for p in Path(spec).iterdir() if p.suffix.lower() in RASTER_SUFFIXES)
        batch = True
    else:
        return [spec], False
    if not paths:
        raise EngineError(f"{spec} names no raster: give a raster, a folder of rasters or @list.")
    return paths, batch


def batch_outputs(sources: Sequence[str], folder: str, *, suffix: str = "") -> list[str]:
    """Output paths ``<folder>/<input stem><suffix>.tif``, one per input (distinct)."""
    if os.path.splitext(folder)[1].lower() in (".tif", ".tiff"):
        raise EngineError(
            f"{folder}: with several inputs the output is a folder (one GeoTIFF per input)."
        )
    stems = [Path(s).stem for s in sources]
    if len(set(stems)) != len(stems):
        raise EngineError("Two inputs have the same file name; their outputs would collide.")
    os.makedirs(folder, exist_ok=True)
    return [os.path.join(folder, f"{stem}{suffix}.tif") for stem in stems]


def class_outputs(
    sources: list[str], batch: bool, dst: str, dst_confidence: str | None
) -> tuple[list[str], list[str | None]]:
    """Class and confidence raster of every input of a prediction.

    One raster: ``dst`` and ``dst_confidence`` themselves; a batch: a file per input in
    those folders (:func:`batch_outputs`; confidence rasters ``<name>_confidence.tif``).
    """
    if not batch:
        return [dst], [dst_confidence]
    confs: list[str | None] = (
        list(batch_outputs(sources, dst_confidence, suffix="_confidence"))
        if dst_confidence
        else [None] * len(sources)
    )
    return batch_outputs(sources, dst), confs


def write_vrt(
    sources: Sequence[str],
    dst: str | os.PathLike[str],
    *,
    nodata: float = 0,
    classes: Sequence[ClassInfo] | None = None,
) -> Path:
    """Write a VRT mosaic of rasters that share a CRS, a pixel grid and their bands.

    Later rasters are drawn over earlier ones except where they are nodata. Paths are
    written relative to the VRT when they lie under its folder.

    Parameters
    ----------
    sources : sequence of str
        Rasters (same band count, CRS, pixel size and data type, no rotation).
    dst : path
        The ``.vrt`` file.
    nodata : float
        Nodata of the sources and the mosaic.
    classes : sequence of ClassInfo, optional
        Colour table of the mosaic (uint8/uint16 sources).

    Raises
    ------
    EngineError
        When the rasters do not share a CRS, pixel size, data type or pixel grid.
    """
    import rasterio

    infos = [io.inspect_raster(s) for s in sources]
    first = infos[0]
    a, _, _, _, e, _ = first.transform[:6]
    for info in infos:
        t = info.transform
        if t[1] or t[3]:
            raise EngineError(f"{info.path} is rotated; a VRT mosaic needs north-up rasters.")
        if (t[0], t[4]) != (a, e) or info.dtypes != first.dtypes:
            raise EngineError(
                f"{info.path} has another pixel size or other bands than {first.path}: "
                "reproject the inputs to one grid before predicting, or leave out the mosaic."
            )
        if not _same_crs(info.crs_wkt, first.crs_wkt):
            raise EngineError(f"{info.path} has another CRS than {first.path}: reproject it.")
    left = min(i.transform[2] for i in infos)
    top = max(i.transform[5] for i in infos)
    right = max(i.transform[2] + a * i.width for i in infos)
    bottom = min(i.transform[5] + e * i.height for i in infos)
    width, height = round((right - left) / a), round((bottom - top) / e)

    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    if first.crs_wkt:
        ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2").text = first.crs_wkt
    ET.SubElement(root, "GeoTransform").text = f"{left!r}, {a!r}, 0, {top!r}, 0, {e!r}"
    folder = Path(dst).resolve().parent
    places = []
    for info in infos:
        column = (info.transform[2] - left) / a
        row = (info.transform[5] - top) / e
        if abs(column - round(column)) > 1e-6 or abs(row - round(row)) > 1e-6:
            raise EngineError(
                f"{info.path} is not on the pixel grid of {first.path}: resample it onto "
                "one grid, or leave out the mosaic."
            )
        places.append((round(column), round(row)))
    for number, dtype in enumerate(first.dtypes, start=1):
        band = ET.SubElement(root, "VRTRasterBand", dataType=_GDAL_TYPES[dtype], band=str(number))
        ET.SubElement(band, "NoDataValue").text = f"{nodata:g}"
        if classes and first.count == 1 and dtype in ("uint8", "uint16"):
            _colour_table(band, classes)
        for info, (column, row) in zip(infos, places, strict=True):
            path = Path(info.path).resolve()
            source = ET.SubElement(band, "ComplexSource")
            relative = path.is_relative_to(folder)
            name = ET.SubElement(source, "SourceFilename", relativeToVRT="1" if relative else "0")
            name.text = path.relative_to(folder).as_posix() if relative else str(path)
            ET.SubElement(source, "SourceBand").text = str(number)
            size = {"xSize": str(info.width), "ySize": str(info.height)}
            ET.SubElement(source, "SrcRect", {"xOff": "0", "yOff": "0", **size})
            ET.SubElement(source, "DstRect", {"xOff": str(column), "yOff": str(row), **size})
            ET.SubElement(source, "NODATA").text = f"{nodata:g}"
    ET.indent(root)
    with io.atomic_output(dst, overwrite=True) as tmp:
        ET.ElementTree(root).write(tmp, encoding="utf-8")
        with rasterio.open(tmp) as check:  # GDAL reads it back
            check.read(1, window=((0, 1), (0, 1)))
    return Path(dst)


def _colour_table(band: ET.Element, classes: Sequence[ClassInfo]) -> None:
    ET.SubElement(band, "ColorInterp").text = "Palette"
    table = ET.SubElement(band, "ColorTable")
    colours = {c.value: c.color for c in classes}
    for value in range(max(colours) + 1):
        rgb = colours.get(value, "#000000").lstrip("#")
        r, g, b = (int(rgb[i : i + 2], 16) for i in (0, 2, 4))
        alpha = "255" if value in colours else "0"
        ET.SubElement(table, "Entry", c1=str(r), c2=str(g), c3=str(b), c4=alpha)


def _same_crs(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return a == b
    from rasterio.crs import CRS

    return CRS.from_wkt(a) == CRS.from_wkt(b)
