"""The raster under the current map view, at about the screen's resolution.

Preview runs an algorithm on a GDAL VRT of the visible part of the raster, resampled so
that it never has more pixels than the view shows (and never more than the raster has).
The VRT keeps the raster's CRS and places itself where the view is, so the result lies
on the map exactly. Images without georeferencing use QGIS's pixel coordinates
(x = column, y = -row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qgis.core import QgsCoordinateTransform, QgsProject, QgsRasterLayer, QgsRectangle
from qgis.gui import QgsMapCanvas

#: QGIS's geotransform of an image without georeferencing.
PIXEL_GEOTRANSFORM = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


@dataclass(frozen=True)
class ViewGrid:
    """The window of a raster a view shows and the grid of the preview.

    Attributes
    ----------
    window : (int, int, int, int)
        Column, row, columns, rows of the raster under the view.
    width, height : int
        Preview size in pixels (at most the view's pixels and the window's).
    bounds : (float, float, float, float)
        Upper-left x, upper-left y, lower-right x, lower-right y of the window.
    """

    window: tuple[int, int, int, int]
    width: int
    height: int
    bounds: tuple[float, float, float, float]

    @property
    def pixels(self) -> int:
        """Pixels of the preview."""
        return self.width * self.height


def geotransform(path: str) -> tuple[float, ...]:
    """Return the raster's geotransform as QGIS places it (pixel coordinates when it has none)."""
    from osgeo import gdal

    gdal.UseExceptions()
    dataset = gdal.Open(path)
    transform = dataset.GetGeoTransform(can_return_null=True)
    return tuple(transform) if transform else PIXEL_GEOTRANSFORM


def view_grid(
    transform: tuple[float, ...],
    size: tuple[int, int],
    extent: QgsRectangle,
    screen: tuple[int, int],
) -> ViewGrid | None:
    """Return the part of a raster (``size`` = columns, rows) a view shows.

    Parameters
    ----------
    transform : tuple of float
        GDAL geotransform of the raster (north up).
    size : (int, int)
        Raster columns and rows.
    extent : QgsRectangle
        The view in the raster's coordinates.
    screen : (int, int)
        The view's size in screen pixels.

    Returns
    -------
    ViewGrid or None
        None when the view does not overlap the raster.

    Raises
    ------
    ValueError
        For rotated rasters.
    """
    x0, dx, rx, y0, ry, dy = transform
    if rx or ry:
        raise ValueError("Preview needs a north-up raster (no rotation); warp it first.")
    columns, rows = size
    col0 = max(0, math.floor((extent.xMinimum() - x0) / dx))
    col1 = min(columns, math.ceil((extent.xMaximum() - x0) / dx))
    if dy < 0:
        row0 = max(0, math.floor((extent.yMaximum() - y0) / dy))
        row1 = min(rows, math.ceil((extent.yMinimum() - y0) / dy))
    else:
        row0 = max(0, math.floor((extent.yMinimum() - y0) / dy))
        row1 = min(rows, math.ceil((extent.yMaximum() - y0) / dy))
    if col1 <= col0 or row1 <= row0:
        return None
    n_cols, n_rows = col1 - col0, row1 - row0
    # Screen pixels covering the window: the window's share of the view.
    shown_w = screen[0] * (n_cols * abs(dx)) / max(extent.width(), 1e-12)
    shown_h = screen[1] * (n_rows * abs(dy)) / max(extent.height(), 1e-12)
    scale = min(1.0, shown_w / n_cols, shown_h / n_rows)
    width = max(1, min(n_cols, math.floor(n_cols * scale)))
    height = max(1, min(n_rows, math.floor(n_rows * scale)))
    bounds = (x0 + col0 * dx, y0 + row0 * dy, x0 + col1 * dx, y0 + row1 * dy)
    return ViewGrid((col0, row0, n_cols, n_rows), width, height, bounds)


def canvas_extent(canvas: QgsMapCanvas, layer: QgsRasterLayer) -> QgsRectangle:
    """Return the canvas's visible extent in the layer's coordinates."""
    extent = canvas.extent()
    source = canvas.mapSettings().destinationCrs()
    target = layer.crs()
    if source.isValid() and target.isValid() and source != target:
        transform = QgsCoordinateTransform(source, target, QgsProject.instance())
        extent = transform.transformBoundingBox(extent)
    return extent


def write_view_vrt(source: str, grid: ViewGrid, path: str) -> str:
    """Write a VRT of ``grid``'s window of ``source``, averaged down to its size."""
    from osgeo import gdal

    gdal.UseExceptions()
    options = gdal.TranslateOptions(
        format="VRT",
        srcWin=list(grid.window),
        width=grid.width,
        height=grid.height,
        outputBounds=list(grid.bounds),
        resampleAlg="average" if grid.width < grid.window[2] else "nearest",
    )
    dataset = gdal.Translate(path, gdal.Open(source), options=options)
    if dataset is None:
        raise RuntimeError(f"Cannot write the view of {source} to {path}.")
    dataset = None
    return path


def view_of_layer(
    canvas: QgsMapCanvas, layer: QgsRasterLayer, path: str
) -> tuple[str, ViewGrid] | None:
    """Write the VRT of what ``canvas`` shows of ``layer``; None when it shows none of it."""
    source = layer.source().split("|")[0]
    grid = view_grid(
        geotransform(source),
        (layer.width(), layer.height()),
        canvas_extent(canvas, layer),
        (canvas.mapSettings().outputSize().width(), canvas.mapSettings().outputSize().height()),
    )
    if grid is None:
        return None
    return write_view_vrt(source, grid, path), grid
