"""Layers handed to the engine as files, the way QGIS's GDAL provider does it.

The engine reads files. A raster layer is given by its file; with an ``EXTENT`` it is a
small GDAL VRT holding only the pixels inside the extent, on the raster's own grid. A
vector layer is given by its file when it is one already (an OGR layer, no filter, no
selection), and as a temporary GeoPackage otherwise (a scratch layer, PostGIS, a
filtered layer, "selected features only").
"""

from __future__ import annotations

import math
import os
import shutil
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeatureSink,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingUtils,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorFileWriter,
    QgsVectorLayer,
)

__all__ = [
    "absolute",
    "clip_to_extent",
    "copy_polygons",
    "pixel_window",
    "raster_source",
    "vector_layer_path",
    "vector_source",
]

# Formats the engine reads as they are (pyogrio/GDAL); anything else is converted.
_VECTOR_FORMATS = ["gpkg", "shp", "geojson", "json", "fgb", "gml", "kml", "sqlite", "tab"]


def absolute(path: str) -> str:
    """Make a file path absolute: the engine runs in the plugin folder, not QGIS's."""
    file_part, sep, options = path.partition("|")
    if (
        file_part
        and not os.path.isabs(file_part)
        and "://" not in file_part
        and not file_part.startswith(("/vsi", "memory:"))
    ):
        return os.path.abspath(file_part) + sep + options
    return path


def raster_source(layer: QgsRasterLayer | None, parameter: str) -> str:
    """Return the file a raster layer reads, or explain why the engine cannot read it."""
    if layer is None:
        raise QgsProcessingException(f"No raster layer given for {parameter}.")
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"{layer.name()} is a {layer.providerType()} layer, not a file. LandSeg reads "
            "raster files: save the layer first (right-click > Export > Save As… GeoTIFF) "
            "and give that file."
        )
    return absolute(layer.source())


def vector_source(
    algorithm: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
    feedback: QgsProcessingFeedback | None = None,
) -> str | None:
    """Return a vector file the engine reads for a feature-source parameter, or ``None``.

    Any QGIS vector layer works: it is handed over as it is when it is a plain OGR file,
    and written to a temporary GeoPackage when it is a scratch or database layer, has a
    filter, or only its selected features are wanted (the GDAL provider's
    ``parameterAsCompatibleSourceLayerPath``). A layer of a multi-layer file is given as
    ``path|layername=name``, which the engine understands.
    """
    if parameters.get(name) in (None, ""):
        return None
    if algorithm.parameterAsSource(parameters, name, context) is None:
        return None
    path, layer_name = algorithm.parameterAsCompatibleSourceLayerPathAndLayerName(
        parameters, name, context, _VECTOR_FORMATS, "gpkg", feedback
    )
    if not path:
        raise QgsProcessingException(algorithm.invalidSourceError(parameters, name))
    path = absolute(path)
    return f"{path}|layername={layer_name}" if layer_name else path


def vector_layer_path(layer: QgsVectorLayer, context: QgsProcessingContext, stem: str) -> str:
    """Return a file for a vector layer: its own when plain OGR, else a temporary GeoPackage.

    For map-layer parameters (which cannot carry "selected features only"); feature-source
    parameters use :func:`vector_source`.
    """
    _, _, options = layer.source().partition("|")
    plain = layer.providerType() == "ogr" and not layer.subsetString()
    if plain and (not options or options.startswith("layername=")):
        return absolute(layer.source())
    path = QgsProcessingUtils.generateTempFilename(f"{stem}.gpkg")
    save = QgsVectorFileWriter.SaveVectorOptions()
    save.driverName = "GPKG"
    write = getattr(QgsVectorFileWriter, "writeAsVectorFormatV3", None) or (
        QgsVectorFileWriter.writeAsVectorFormatV2
    )
    error = write(layer, path, context.transformContext(), save)
    if error[0] != QgsVectorFileWriter.WriterError.NoError:
        raise QgsProcessingException(f"Cannot save {layer.name()} for the engine: {error[1]}")
    return path


def pixel_window(layer: QgsRasterLayer, extent: QgsRectangle) -> tuple[int, int, int, int] | None:
    """Return ``(col, row, width, height)`` of the pixels of ``layer`` touching ``extent``.

    ``extent`` is in the layer's CRS (pixel coordinates for a raster without one, as QGIS
    shows it). The window is snapped outwards to whole pixels and clipped to the raster;
    ``None`` when the extent misses the raster.
    """
    bounds = layer.extent()
    width, height = layer.width(), layer.height()
    if width <= 0 or height <= 0 or bounds.isEmpty():
        return None
    dx = bounds.width() / width
    dy = bounds.height() / height
    eps = 1e-6
    col0 = max(0, math.floor((extent.xMinimum() - bounds.xMinimum()) / dx + eps))
    col1 = min(width, math.ceil((extent.xMaximum() - bounds.xMinimum()) / dx - eps))
    row0 = max(0, math.floor((bounds.yMaximum() - extent.yMaximum()) / dy + eps))
    row1 = min(height, math.ceil((bounds.yMaximum() - extent.yMinimum()) / dy - eps))
    if col1 <= col0 or row1 <= row0:
        return None
    return col0, row0, col1 - col0, row1 - row0


def layer_extent(
    algorithm: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    layer: QgsRasterLayer,
    context: QgsProcessingContext,
    name: str = "EXTENT",
) -> QgsRectangle | None:
    """Return the ``EXTENT`` parameter in the layer's CRS, or ``None`` when not given."""
    if parameters.get(name) in (None, ""):
        return None
    extent = algorithm.parameterAsExtent(parameters, name, context)
    if extent.isNull() or extent.isEmpty():
        return None
    extent_crs: QgsCoordinateReferenceSystem = algorithm.parameterAsExtentCrs(
        parameters, name, context
    )
    crs = layer.crs()
    if crs.isValid() and extent_crs.isValid() and crs != extent_crs:
        transform = QgsCoordinateTransform(extent_crs, crs, context.transformContext())
        extent = transform.transformBoundingBox(extent)
    return extent


def clip_to_extent(
    algorithm: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    layer: QgsRasterLayer,
    source: str,
    context: QgsProcessingContext,
    feedback: QgsProcessingFeedback | None = None,
    *,
    window_of: QgsRasterLayer | None = None,
) -> str:
    """Return ``source``, or a VRT of its pixels inside ``EXTENT`` (on the same grid).

    The extent is reprojected from its CRS to the layer's and snapped outwards to whole
    pixels, so the outputs cover the extent and keep the input's pixel grid. A raster
    without a CRS takes the extent in its pixel coordinates. ``window_of`` takes the
    window from another layer of the same grid (a reference raster without a CRS).
    """
    grid = window_of or layer
    extent = layer_extent(algorithm, parameters, grid, context)
    if extent is None:
        return source
    window = pixel_window(grid, extent)
    if window is None:
        raise QgsProcessingException(
            f"EXTENT {extent.toString(3)} does not overlap {layer.name()} "
            f"({layer.extent().toString(3)}): choose an extent over the raster."
        )
    from osgeo import gdal

    vrt = QgsProcessingUtils.generateTempFilename(
        f"{os.path.splitext(os.path.basename(source.split('|')[0]))[0]}_extent.vrt"
    )
    dataset = gdal.Translate(vrt, source.split("|")[0], format="VRT", srcWin=list(window))
    if dataset is None:
        raise QgsProcessingException(f"Cannot cut {source} to EXTENT: {gdal.GetLastErrorMsg()}")
    dataset = None
    # Class names may live in a QGIS style beside the raster: keep it beside the VRT.
    style = os.path.splitext(source.split("|")[0])[0] + ".qml"
    if os.path.exists(style):
        shutil.copyfile(style, os.path.splitext(vrt)[0] + ".qml")
    if feedback is not None:
        col, row, width, height = window
        feedback.pushInfo(
            f"EXTENT: {layer.name()} pixels {col}..{col + width - 1} x {row}..{row + height - 1}"
            f" ({width} x {height})."
        )
    return vrt


def copy_polygons(
    algorithm: QgsProcessingAlgorithm,
    path: str,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
    feedback: QgsProcessingFeedback,
) -> str:
    """Copy the polygons the engine wrote into the user's sink (any format, or memory).

    The engine's temporary file (and its GeoPackage journal files) is removed afterwards.
    """
    layer = QgsVectorLayer(path, "polygons", "ogr")
    if not layer.isValid():
        raise QgsProcessingException(f"Cannot read the polygons the engine wrote: {path}")
    sink, sink_id = algorithm.parameterAsSink(
        parameters, name, context, layer.fields(), layer.wkbType(), layer.crs()
    )
    if sink is None:
        raise QgsProcessingException(algorithm.invalidSinkError(parameters, name))
    total = max(layer.featureCount(), 1)
    for index, feature in enumerate(layer.getFeatures()):
        if feedback.isCanceled():
            break
        sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        if index % 1000 == 0:
            feedback.setProgress(100.0 * index / total)
    del layer
    file_part = path.split("|")[0]
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(file_part + suffix):
            os.remove(file_part + suffix)
    return sink_id
