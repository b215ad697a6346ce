"""Map tools that draw training polygons and scribble lines for the selected class."""

from __future__ import annotations

from collections.abc import Callable

from qgis.core import (
    QgsCoordinateTransform,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsVectorLayer,
)
from qgis.gui import QgsMapCanvas, QgsMapMouseEvent, QgsMapTool, QgsRubberBand
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QKeyEvent

from .classes import ClassInfo
from .layers import CLASS_FIELD

try:  # scoped enums (QGIS 3.30+, Qt6), the older names otherwise
    from qgis.core import Qgis

    LINE = Qgis.GeometryType.Line
    POLYGON = Qgis.GeometryType.Polygon
except AttributeError:
    from qgis.core import QgsWkbTypes

    LINE = QgsWkbTypes.LineGeometry
    POLYGON = QgsWkbTypes.PolygonGeometry
try:
    LEFT = Qt.MouseButton.LeftButton
    RIGHT = Qt.MouseButton.RightButton
    KEY_ESCAPE = Qt.Key.Key_Escape
    KEY_BACKSPACE = Qt.Key.Key_Backspace
    KEY_RETURN = (Qt.Key.Key_Return, Qt.Key.Key_Enter)
except AttributeError:  # pragma: no cover - old PyQt5
    LEFT, RIGHT = Qt.LeftButton, Qt.RightButton
    KEY_ESCAPE, KEY_BACKSPACE = Qt.Key_Escape, Qt.Key_Backspace
    KEY_RETURN = (Qt.Key_Return, Qt.Key_Enter)


class ClassDrawTool(QgsMapTool):
    """Base of the drawing tools: a rubber band, then one feature of the selected class.

    Parameters
    ----------
    canvas : QgsMapCanvas
        The map canvas.
    layer : callable
        Returns the layer to draw into (created on first use).
    current_class : callable
        Returns the selected class, or None (then nothing is drawn).
    """

    featureAdded = pyqtSignal(int)
    geometry_type = LINE
    min_points = 2
    description = "Draw"

    def __init__(
        self,
        canvas: QgsMapCanvas,
        layer: Callable[[], QgsVectorLayer | None],
        current_class: Callable[[], ClassInfo | None],
    ) -> None:
        super().__init__(canvas)
        self._layer = layer
        self._class = current_class
        self.points: list[QgsPointXY] = []
        self.band = QgsRubberBand(canvas, self.geometry_type)
        self.band.setWidth(3)

    def deactivate(self) -> None:
        """Drop an unfinished drawing when another tool takes over."""
        self.reset()
        super().deactivate()

    def reset(self) -> None:
        """Forget the unfinished drawing."""
        self.points = []
        self.band.reset(self.geometry_type)

    def _start(self) -> bool:
        info = self._class()
        if info is None:
            return False
        color = QColor(info.color)
        self.band.setStrokeColor(color)
        fill = QColor(color)
        fill.setAlpha(80)
        self.band.setFillColor(fill)
        return True

    def _add(self, point: QgsPointXY) -> None:
        self.points.append(QgsPointXY(point))
        self.band.addPoint(QgsPointXY(point), True)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Esc drops the drawing, Backspace removes the last vertex, Enter finishes."""
        if event.key() == KEY_ESCAPE:
            self.reset()
        elif event.key() == KEY_BACKSPACE and self.points:
            self.points.pop()
            self.band.removeLastPoint()
        elif event.key() in KEY_RETURN:
            self.finish()
        else:
            event.ignore()

    def geometry(self) -> QgsGeometry:
        """Return the drawn geometry in map coordinates."""
        if self.geometry_type == POLYGON:
            return QgsGeometry.fromPolygonXY([[*self.points, self.points[0]]])
        return QgsGeometry.fromPolylineXY(self.points)

    def finish(self) -> bool:
        """Add the drawing as a feature of the selected class; False when nothing is added."""
        info = self._class()
        layer = self._layer() if len(self.points) >= self.min_points and info else None
        if layer is None or info is None:
            self.reset()
            return False
        geometry = self.geometry()
        canvas_crs = self.canvas().mapSettings().destinationCrs()
        if canvas_crs.isValid() and layer.crs().isValid() and canvas_crs != layer.crs():
            transform = QgsCoordinateTransform(canvas_crs, layer.crs(), QgsProject.instance())
            geometry.transform(transform)
        feature = QgsFeature(layer.fields())
        feature.setGeometry(geometry)
        feature.setAttribute(CLASS_FIELD, info.value)
        if not layer.isEditable():
            layer.startEditing()
        layer.beginEditCommand(f"{self.description} {info.name}")
        added = layer.addFeature(feature)
        if added:
            layer.endEditCommand()
        else:
            layer.destroyEditCommand()
        layer.triggerRepaint()
        self.reset()
        if added:
            self.featureAdded.emit(info.value)
        return bool(added)


class PolygonTool(ClassDrawTool):
    """Training polygons: click the vertices, right-click (or Enter) to close."""

    geometry_type = POLYGON
    min_points = 3
    description = "Draw polygon"

    def canvasReleaseEvent(self, event: QgsMapMouseEvent) -> None:
        """Left click adds a vertex; right click finishes."""
        if event.button() == LEFT:
            if not self.points and not self._start():
                return
            self._add(event.mapPoint())
        elif event.button() == RIGHT:
            self.finish()


class ScribbleTool(ClassDrawTool):
    """Scribbles: press, drag along the class, release."""

    geometry_type = LINE
    min_points = 2
    description = "Scribble"

    def canvasPressEvent(self, event: QgsMapMouseEvent) -> None:
        """Start a stroke."""
        if event.button() == LEFT and self._start():
            self.reset()
            self._add(event.mapPoint())

    def canvasMoveEvent(self, event: QgsMapMouseEvent) -> None:
        """Extend the stroke while the button is down."""
        if self.points:
            self._add(event.mapPoint())

    def canvasReleaseEvent(self, event: QgsMapMouseEvent) -> None:
        """Finish the stroke."""
        if event.button() == LEFT and self.points:
            self._add(event.mapPoint())
            self.finish()
