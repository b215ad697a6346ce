"""Styles of LandSeg outputs: segment palettes, outline polygons, sidecar QML files.

Outputs are styled twice: a ``.qml`` file is written beside each raster output (so the
style comes back whenever the file is opened, including results of ``qgis_process``),
and a layer post-processor applies the style and a readable name when QGIS loads the
result at the end of an algorithm.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsFillSymbol,
    QgsMapLayer,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

#: Above this many segments a palette is too heavy; the layer keeps QGIS's default style.
MAX_PALETTE_CLASSES = 50_000


def segment_color(segment_id: int) -> QColor:
    """Colour of a segment id: golden-angle hues, so neighbouring ids differ clearly."""
    hue = (segment_id * 0.618033988749895) % 1.0
    saturation = 0.55 + 0.35 * ((segment_id * 7) % 3) / 2
    value = 0.75 + 0.2 * ((segment_id * 5) % 2)
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return QColor(int(red * 255), int(green * 255), int(blue * 255))


def segment_renderer(layer: QgsRasterLayer, n_segments: int) -> QgsPalettedRasterRenderer | None:
    """Paletted renderer giving each segment id 1..N a distinct colour."""
    if n_segments < 1 or n_segments > MAX_PALETTE_CLASSES:
        return None
    classes = [
        QgsPalettedRasterRenderer.Class(i, segment_color(i), str(i))
        for i in range(1, n_segments + 1)
    ]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes)


def style_segments(layer: QgsRasterLayer, n_segments: int) -> bool:
    """Apply the segment palette to a layer; False if there are too many segments."""
    renderer = segment_renderer(layer, n_segments)
    if renderer is None:
        return False
    layer.setRenderer(renderer)
    layer.triggerRepaint()
    return True


def style_outlines(layer: QgsVectorLayer) -> None:
    """Draw polygons as outlines only, so the image stays visible underneath."""
    symbol = QgsFillSymbol.createSimple(
        {
            "style": "no",
            "outline_color": "255,221,0,255",
            "outline_width": "0.2",
            "outline_width_unit": "MM",
        }
    )
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))
    layer.triggerRepaint()


def style_polygon_classes(
    layer: QgsVectorLayer, classes: Sequence[Mapping[str, Any]], *, field: str = "value"
) -> bool:
    """Categorize polygons by their class ``field`` with the class table's names and colours.

    Returns False when the table is empty.
    """
    from qgis.core import QgsCategorizedSymbolRenderer, QgsRendererCategory, QgsSymbol

    if not classes:
        return False
    categories = []
    for c in classes:
        symbol = QgsSymbol.defaultSymbol(layer.geometryType())
        symbol.setColor(QColor(str(c["color"])))
        categories.append(QgsRendererCategory(int(c["value"]), symbol, str(c["name"])))
    layer.setRenderer(QgsCategorizedSymbolRenderer(field, categories))
    layer.triggerRepaint()
    return True


def style_classes(layer: QgsRasterLayer, classes: Sequence[Mapping[str, Any]]) -> bool:
    """Apply a class table (``[{"value", "name", "color"}, ...]``, as the engine returns it).

    Gives each class value its colour and its name in the legend; False when the table
    is empty.
    """
    if not classes:
        return False
    entries = [
        QgsPalettedRasterRenderer.Class(int(c["value"]), QColor(str(c["color"])), str(c["name"]))
        for c in classes
    ]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, entries))
    layer.triggerRepaint()
    return True


def write_class_style(raster_path: str, classes: Sequence[Mapping[str, Any]]) -> str | None:
    """Write ``<raster>.qml`` beside a classified raster with its class names and colours."""
    layer = QgsRasterLayer(raster_path, "classes", "gdal")
    if not layer.isValid() or not style_classes(layer, classes):
        return None
    qml = str(Path(raster_path).with_suffix(".qml"))
    layer.saveNamedStyle(qml)
    return qml


def write_segment_style(raster_path: str, n_segments: int) -> str | None:
    """Write ``<raster>.qml`` beside a segment raster with its palette.

    QGIS reads a ``.qml`` with the raster's base name as the layer's default style.

    Returns
    -------
    str or None
        The QML path, or None when there are too many segments for a palette.
    """
    layer = QgsRasterLayer(raster_path, "segments", "gdal")
    if not layer.isValid() or not style_segments(layer, n_segments):
        return None
    qml = str(Path(raster_path).with_suffix(".qml"))
    layer.saveNamedStyle(qml)
    return qml


class LayerStyler(QgsProcessingLayerPostProcessorInterface):
    """Rename and style an output layer when QGIS loads it after an algorithm."""

    def __init__(
        self,
        name: str,
        *,
        n_segments: int = 0,
        outlines: bool = False,
        classes: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__()
        self.name = name
        self.n_segments = n_segments
        self.outlines = outlines
        self.classes = list(classes)

    def postProcessLayer(
        self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> None:
        """Apply the style to the loaded layer."""
        layer.setName(self.name)
        if isinstance(layer, QgsRasterLayer) and self.classes:
            style_classes(layer, self.classes)
        elif isinstance(layer, QgsRasterLayer) and self.n_segments:
            style_segments(layer, self.n_segments)
        elif isinstance(layer, QgsVectorLayer) and self.outlines:
            style_outlines(layer)


_KEEP_ALIVE: list[LayerStyler] = []


def attach_styler(context: QgsProcessingContext, layer_id: str, styler: LayerStyler) -> None:
    """Attach a post-processor to an output if QGIS will load it.

    A Python reference is kept, or the post-processor would be garbage-collected before
    QGIS calls it.
    """
    if context.willLoadLayerOnCompletion(layer_id):
        _KEEP_ALIVE.append(styler)
        del _KEEP_ALIVE[:-64]
        details = context.layerToLoadOnCompletionDetails(layer_id)
        details.name = styler.name
        details.setPostProcessor(styler)
