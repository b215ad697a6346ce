"""Styles of LandSeg outputs when QGIS loads them: names, class legends, outlines.

The engine writes a ``.qml`` style beside each raster output (so the style comes back
whenever the file is opened, including results of ``qgis_process``); here a layer
post-processor gives the loaded layer a readable name and its legend, on QGIS's main
thread, at the end of an algorithm.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
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


def segment_color(segment_id: int) -> QColor:
    """Colour of a segment id: golden-angle hues, so neighbouring ids differ clearly."""
    hue = (segment_id * 0.618033988749895) % 1.0
    saturation = 0.55 + 0.35 * ((segment_id * 7) % 3) / 2
    value = 0.75 + 0.2 * ((segment_id * 5) % 2)
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return QColor(int(red * 255), int(green * 255), int(blue * 255))


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
            layer.loadDefaultStyle()  # the engine's palette, in the .qml beside the raster
            layer.triggerRepaint()
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
