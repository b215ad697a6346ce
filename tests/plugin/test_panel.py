"""The LandSeg panel in real QGIS with a real QgsMapCanvas.

The drawing tools are driven by mouse events sent to the canvas; Preview, Train, Classify,
Assess and Polygons run the Processing algorithms as background tasks in QGIS's task
manager, as in QGIS desktop.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from landseg.qgis_plugin.panel.classes import ClassInfo
from osgeo import gdal, ogr
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.PyQt.QtCore import QCoreApplication, QEvent, QPointF, Qt
from qgis.PyQt.QtGui import QMouseEvent
from qgis.PyQt.QtWidgets import QApplication
from rasters import parcels, write_tif

NC_CLASSES = [
    ClassInfo(1, "developed", "#d7191c"),
    ClassInfo(2, "agriculture", "#fdae61"),
    ClassInfo(3, "herbaceous", "#ffffbf"),
    ClassInfo(4, "shrubland", "#a6d96a"),
    ClassInfo(5, "forest", "#1a9641"),
    ClassInfo(6, "water", "#2b83ba"),
    ClassInfo(7, "sediment", "#bababa"),
]
try:
    LEFT, RIGHT, NO_BUTTON = Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton, Qt.NoButton
    NO_MOD = Qt.KeyboardModifier.NoModifier
    PRESS, MOVE, RELEASE = (
        QEvent.Type.MouseButtonPress,
        QEvent.Type.MouseMove,
        (QEvent.Type.MouseButtonRelease),
    )
    RIGHT_DOCK = Qt.DockWidgetArea.RightDockWidgetArea
except AttributeError:  # pragma: no cover
    RIGHT_DOCK = Qt.RightDockWidgetArea
    LEFT, RIGHT, NO_BUTTON, NO_MOD = Qt.LeftButton, Qt.RightButton, Qt.NoButton, Qt.NoModifier
    PRESS, MOVE, RELEASE = QEvent.MouseButtonPress, QEvent.MouseMove, QEvent.MouseButtonRelease


# --- helpers --------------------------------------------------------------------------


def _mouse(canvas, kind, point: QgsPointXY, button=LEFT, buttons=None) -> None:
    """Send a mouse event at a map point to the canvas's viewport, as a user's mouse does."""
    pixel = canvas.getCoordinateTransform().transform(point)
    pos = QPointF(pixel.x(), pixel.y())
    held = button if buttons is None else buttons
    event = QMouseEvent(kind, pos, button, held, NO_MOD)
    QApplication.sendEvent(canvas.viewport(), event)


def _click(canvas, point: QgsPointXY, button=LEFT) -> None:
    _mouse(canvas, PRESS, point, button)
    _mouse(canvas, RELEASE, point, button, NO_BUTTON)


def _scribble(canvas, points: list[QgsPointXY]) -> None:
    _mouse(canvas, PRESS, points[0])
    for point in points[1:]:
        _mouse(canvas, MOVE, point, NO_BUTTON, LEFT)
    _mouse(canvas, RELEASE, points[-1], LEFT, NO_BUTTON)


def _wait(dock, timeout: float = 600) -> tuple[str, bool]:
    finished: list[tuple[str, bool]] = []
    dock.runFinished.connect(lambda action, ok: finished.append((action, ok)))
    deadline = time.monotonic() + timeout
    while not finished and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.02)
    assert finished, f"no result after {timeout} s: {dock.status.text()}"
    return finished[0]


def _history() -> str:
    """The Processing history, as the History dialog shows it."""
    try:  # QGIS 3.24+
        from qgis.gui import QgsGui

        return str([entry.entry for entry in QgsGui.historyProviderRegistry().queryEntries()])
    except AttributeError:
        from processing.core.ProcessingLog import ProcessingLog

        return str([entry.text for entry in ProcessingLog.getLogEntries()])


def _layers(prefix: str) -> list:
    layers = QgsProject.instance().mapLayers().values()
    return [layer for layer in layers if layer.name().startswith(prefix)]


def _show(canvas, layer: QgsRasterLayer, extent: QgsRectangle | None = None) -> None:
    window = canvas.window()
    window.resize(1300, 860)
    window.show()
    for _ in range(5):  # let the viewport take its size
        QCoreApplication.processEvents()
    assert canvas.mapSettings().outputSize().width() > 300
    if layer.crs().isValid():
        canvas.setDestinationCrs(layer.crs())
    else:
        canvas.setDestinationCrs(QgsCoordinateReferenceSystem())
    canvas.setLayers([layer])
    canvas.setExtent(extent or layer.extent())
    canvas.refresh()
    QCoreApplication.processEvents()


@pytest.fixture
def dock(qgis_canvas, qgis_new_project, provider):
    from landseg.qgis_plugin.panel import LandSegDock

    widget = LandSegDock(qgis_canvas)
    widget.open_reports = False
    window = qgis_canvas.window()
    if window.centralWidget() is None:
        window.setCentralWidget(qgis_canvas)
    window.addDockWidget(RIGHT_DOCK, widget)
    yield widget
    if widget.run is not None:
        widget.cancel()
        _wait(widget, 60)
    qgis_canvas.unsetMapTool(qgis_canvas.mapTool())
    QgsProject.instance().clear()
    window.removeDockWidget(widget)
    widget.deleteLater()
    QCoreApplication.processEvents()


@pytest.fixture
def scene(tmp_path) -> QgsRasterLayer:
    """A 3-band 240 x 200 georeferenced raster of blocky fields, in the project."""
    path = write_tif(tmp_path / "fields.tif", parcels((200, 240), 3, cell=20))
    layer = QgsRasterLayer(str(path), "fields", "gdal")
    QgsProject.instance().addMapLayer(layer)
    return layer


def test_panel_docks_in_the_main_window_with_a_toolbar_button(qgis_iface, provider):
    from landseg.qgis_plugin.panel import add_panel, remove_panel
    from qgis.PyQt.QtWidgets import QDockWidget

    dock, toolbar = add_panel(qgis_iface)
    window = qgis_iface.mainWindow()
    assert dock in window.findChildren(QDockWidget) and dock.isHidden()
    action = toolbar.actions()[0]
    assert action is dock.toggleViewAction() and action.text() == "LandSeg panel"
    action.trigger()
    assert not dock.isHidden()
    remove_panel(qgis_iface, dock, toolbar)
    QCoreApplication.processEvents()


# --- classes and drawing --------------------------------------------------------------


def test_class_table_lives_in_the_project(dock, tmp_path):
    from landseg.qgis_plugin.panel.classes import classes_text, read_project_classes

    dock.classes.set_classes(NC_CLASSES[:2])
    added = dock.classes.add_class("forest", "#1a9641")
    assert added.value == 3
    assert read_project_classes() == [*NC_CLASSES[:2], ClassInfo(3, "forest", "#1a9641")]
    assert classes_text(dock.classes.classes()).startswith("1:developed:#d7191c,2:agriculture")
    project = tmp_path / "project.qgz"
    assert QgsProject.instance().write(str(project))
    QgsProject.instance().clear()
    assert dock.classes.rowCount() == 0
    assert QgsProject.instance().read(str(project))
    assert [c.name for c in dock.classes.classes()] == ["developed", "agriculture", "forest"]


def test_scribble_tool_draws_with_the_selected_class(dock, scene, qgis_canvas):
    _show(qgis_canvas, scene)
    dock.raster_combo.setLayer(scene)
    dock.classes.set_classes(NC_CLASSES[:3])
    dock.select_class(2)
    dock.scribble_button.click()
    assert qgis_canvas.mapTool() is dock.scribble_tool
    extent = scene.extent()
    x0, y0 = extent.xMinimum(), extent.yMinimum()
    points = [QgsPointXY(x0 + 600 + 90 * i, y0 + 3000 + 30 * i) for i in range(8)]
    _scribble(qgis_canvas, points)
    from landseg.qgis_plugin.panel.layers import find_layer, training_geopackage

    layer = find_layer("scribbles")
    assert layer is not None and layer.featureCount() == 1
    feature = next(layer.getFeatures())
    assert feature["class"] == 2
    line = feature.geometry().asPolyline()
    assert len(line) >= 8
    assert abs(line[0].x() - points[0].x()) < 2 * qgis_canvas.mapUnitsPerPixel()
    assert layer.crs() == scene.crs()
    assert training_geopackage().exists()
    # Undo goes through the layer's edit buffer.
    dock.undo()
    assert layer.featureCount() == 0


def test_polygon_tool_clicks_vertices_and_closes_on_right_click(dock, scene, qgis_canvas):
    _show(qgis_canvas, scene)
    dock.raster_combo.setLayer(scene)
    dock.classes.set_classes(NC_CLASSES)
    dock.select_class(5)
    dock.polygon_button.click()
    assert qgis_canvas.mapTool() is dock.polygon_tool
    c = scene.extent().center()
    for dx, dy in ((-300, -300), (300, -300), (300, 300), (-300, 300)):
        _click(qgis_canvas, QgsPointXY(c.x() + dx, c.y() + dy))
    _click(qgis_canvas, c, RIGHT)
    from landseg.qgis_plugin.panel.layers import find_layer

    layer = find_layer("polygons")
    features = list(layer.getFeatures())
    assert len(features) == 1 and features[0]["class"] == 5
    assert features[0].geometry().area() == pytest.approx(600 * 600, rel=0.05)
    # Switching tools leaves the other unchecked.
    dock.scribble_button.click()
    assert not dock.polygon_button.isChecked() and qgis_canvas.mapTool() is dock.scribble_tool


def test_drawing_needs_a_class(dock, scene, qgis_canvas):
    _show(qgis_canvas, scene)
    dock.raster_combo.setLayer(scene)
    dock.scribble_button.click()
    c = scene.extent().center()
    _scribble(qgis_canvas, [c, QgsPointXY(c.x() + 300, c.y())])
    from landseg.qgis_plugin.panel.layers import find_layer

    assert find_layer("scribbles") is None
    assert "Add a class" in dock.status.text()


# --- preview ----------------------------------------------------------------------------


def test_view_grid_never_has_more_pixels_than_the_view():
    from landseg.qgis_plugin.panel.view import view_grid

    transform = (1000.0, 10.0, 0.0, 5000.0, 0.0, -10.0)
    # Zoomed out: the 400 x 300 raster fills 200 x 150 screen pixels.
    grid = view_grid(transform, (400, 300), QgsRectangle(1000, 2000, 5000, 5000), (200, 150))
    assert (grid.width, grid.height) == (200, 150)
    assert grid.bounds == (1000, 5000, 5000, 2000)
    # Zoomed in beyond the raster's resolution: native pixels, never upsampled.
    grid = view_grid(transform, (400, 300), QgsRectangle(1500, 3000, 2000, 3400), (1000, 800))
    assert grid.window == (50, 160, 50, 40) and (grid.width, grid.height) == (50, 40)
    # Half the view off the raster: the covered half of the screen only.
    grid = view_grid(transform, (400, 300), QgsRectangle(-3000, 2000, 5000, 5000), (400, 150))
    assert grid.width == 200 and grid.window[0] == 0
    assert view_grid(transform, (400, 300), QgsRectangle(0, 0, 10, 10), (100, 100)) is None


def test_preview_shows_a_styled_layer_covering_the_view_and_replaces_the_last(
    dock, scene, qgis_canvas
):
    extent = scene.extent()
    view = QgsRectangle(
        extent.xMinimum() + 600, extent.yMinimum() + 600, extent.xMaximum(), extent.yMaximum()
    )
    _show(qgis_canvas, scene, view)
    dock.raster_combo.setLayer(scene)
    dock.set_algorithm("landseg:slic")
    dock.form().set_value("N_SEGMENTS", 60)
    assert dock.preview()
    # The task reads files, not project layers: no project on its context, so nothing in
    # the task's thread reaches the project (QGIS 3.40 race, see prepareAlgorithm). The
    # project's transform context still applies.
    assert dock.run.context.project() is None
    assert dock.run.context.transformContext() == QgsProject.instance().transformContext()
    assert _wait(dock) == ("preview", True), dock.status.text()
    layer = QgsProject.instance().mapLayer(dock.preview_layer_id)
    assert layer is not None and layer.name().startswith("LandSeg preview")
    visible = qgis_canvas.extent().intersect(extent)
    assert layer.extent().contains(visible.buffered(-30)) or layer.extent() == visible
    size = qgis_canvas.mapSettings().outputSize()
    assert layer.width() <= size.width() and layer.height() <= size.height()
    assert layer.renderer().type() == "paletted"
    assert "landseg:slic" in _history()
    first = Path(layer.source())
    # A second preview replaces the first layer and its files.
    dock.form().set_value("N_SEGMENTS", 30)
    assert dock.preview()
    assert _wait(dock) == ("preview", True)
    previews = _layers("LandSeg preview")
    assert len(previews) == 1 and not first.exists()
    assert not list(first.parent.glob("*.vrt"))


def test_preview_of_an_image_without_georeferencing(dock, tmp_path, qgis_canvas):
    path = write_tif(tmp_path / "photo.tif", parcels((150, 200), 3, cell=15), epsg=None)
    scene = QgsRasterLayer(str(path), "photo", "gdal")
    QgsProject.instance().addMapLayer(scene)
    assert not scene.crs().isValid() and scene.extent().yMaximum() == 0
    _show(qgis_canvas, scene, QgsRectangle(20, -120, 180, -10))
    dock.raster_combo.setLayer(scene)
    dock.classes.set_classes(NC_CLASSES[:2])
    dock.set_algorithm("landseg:felzenszwalb")
    assert dock.preview()
    assert _wait(dock) == ("preview", True), dock.status.text()
    layer = QgsProject.instance().mapLayer(dock.preview_layer_id)
    box = layer.extent()
    visible = qgis_canvas.extent().intersect(scene.extent())
    assert visible.width() < scene.extent().width()  # only part of the image is in view
    for ours, theirs in zip(
        (box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum()),
        (visible.xMinimum(), visible.yMinimum(), visible.xMaximum(), visible.yMaximum()),
        strict=True,
    ):
        assert abs(ours - theirs) <= 1  # whole pixels of the image
    # Scribbles drawn in pixel coordinates land in the same place.
    dock.select_class(1)
    dock.scribble_button.click()
    _scribble(qgis_canvas, [QgsPointXY(40, -40), QgsPointXY(80, -42), QgsPointXY(120, -45)])
    from landseg.qgis_plugin.panel.layers import find_layer

    line = next(find_layer("scribbles").getFeatures()).geometry()
    box = line.boundingBox()
    assert 39 <= box.xMinimum() and box.xMaximum() <= 121
    assert -46 <= box.yMinimum() and box.yMaximum() <= -39  # x = column, y = -row


def test_dfc_preview_with_scribbles(dock, scene, qgis_canvas):
    _show(qgis_canvas, scene)
    dock.raster_combo.setLayer(scene)
    dock.classes.set_classes(NC_CLASSES[:2])
    dock.scribble_button.click()
    extent = scene.extent()
    x0, y0 = extent.xMinimum(), extent.yMinimum()
    for value, row in ((1, 1000), (2, 4000)):
        dock.select_class(value)
        _scribble(qgis_canvas, [QgsPointXY(x0 + 300 + 200 * i, y0 + row) for i in range(10)])
    dock.set_algorithm("landseg:dfc")
    dock.form().set_value("MAX_ITER", 5)
    assert dock.preview()
    assert _wait(dock) == ("preview", True), dock.status.text()
    layer = QgsProject.instance().mapLayer(dock.preview_layer_id)
    assert layer.renderer().type() == "paletted"
    # The preview is the class map: the scribbles' values, names and colours.
    legend = {c.value: (c.label, c.color.name()) for c in layer.renderer().classes()}
    assert legend[1] == ("developed", "#d7191c") and legend[2] == ("agriculture", "#fdae61")
    assert "Classes from the scribbles" in dock.status.text()


def test_cancel_leaves_nothing_behind(dock, scene, qgis_canvas):
    from qgis.core import QgsProcessingUtils

    _show(qgis_canvas, scene)
    dock.raster_combo.setLayer(scene)
    dock.set_algorithm("landseg:dfc")
    dock.form().set_value("MAX_ITER", 5000)
    folder = Path(QgsProcessingUtils.tempFolder()) / "landseg-preview"
    before = set(folder.glob("*")) if folder.exists() else set()
    assert dock.preview()
    deadline = time.monotonic() + 30
    while dock.progress.value() < 6 and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.05)
    dock.cancel()
    assert _wait(dock, 120) == ("preview", False)
    assert "Cancelled" in dock.status.text()
    assert set(folder.glob("*")) == before
    assert not _layers("LandSeg preview")
    assert dock.preview_button.isEnabled() and not dock.cancel_button.isEnabled()


# --- the whole workflow on the NC scene ----------------------------------------------------


def _nc_polygons(nc_dir: Path, window: QgsRectangle) -> list[tuple[int, list[QgsPointXY]]]:
    """The NC training polygons inside ``window``: class value and a few vertices."""
    values = {c.name: c.value for c in NC_CLASSES}
    source = ogr.Open(str(nc_dir / "landsat96_polygons.shp"))
    out = []
    for feature in source.GetLayer():
        geometry = feature.GetGeometryRef().SimplifyPreserveTopology(40)
        ring = geometry.GetGeometryRef(0)
        points = [QgsPointXY(*ring.GetPoint_2D(i)) for i in range(ring.GetPointCount() - 1)]
        if len(points) >= 3 and all(window.contains(p) for p in points):
            out.append((values[feature.GetField("label")], points))
    return out


@pytest.mark.slow
def test_train_classify_assess_polygons_on_the_nc_scene(dock, nc_dir, tmp_path, qgis_canvas):
    image = tmp_path / "nc.tif"
    reference = tmp_path / "strata.tif"
    window = [160, 150, 192, 192]
    gdal.Translate(str(image), str(nc_dir / "landsat_multiband.tif"), srcWin=window)
    gdal.Translate(str(reference), str(nc_dir / "strata.tif"), srcWin=window)
    scene = QgsRasterLayer(str(image), "nc", "gdal")
    strata = QgsRasterLayer(str(reference), "strata", "gdal")
    QgsProject.instance().addMapLayers([scene, strata])
    assert QgsProject.instance().write(str(tmp_path / "nc.qgz"))
    _show(qgis_canvas, scene)
    dock.raster_combo.setLayer(scene)
    dock.reference_combo.setLayer(strata)
    dock.classes.set_classes(NC_CLASSES)
    dock.polygon_button.click()
    polygons = _nc_polygons(nc_dir, scene.extent())
    assert len({value for value, _ in polygons}) >= 4
    for value, points in polygons:
        dock.select_class(value)
        for point in points:
            _click(qgis_canvas, point)
        _click(qgis_canvas, points[0], RIGHT)
    from landseg.qgis_plugin.panel.layers import find_layer

    drawn = find_layer("polygons")
    assert drawn.featureCount() == len(polygons)
    assert Path(drawn.source().split("|")[0]).name == "nc_landseg.gpkg"

    dock.epochs_spin.setValue(2)
    dock.train_options = {"ENCODER": 0, "TILE_SIZE": 64, "BATCH_SIZE": 4, "PATIENCE": 0}
    assert dock.train()
    assert _wait(dock) == ("train", True), dock.status.text()
    assert Path(dock.model_path).is_file() and Path(dock.report_path).is_file()
    assert Path(dock.model_path).parent == tmp_path / "nc_landseg"
    assert dock.algorithm_id() == "landseg:predictunet"

    # The new model previews on the view like any algorithm.
    qgis_canvas.zoomByFactor(0.5)
    assert dock.preview()
    assert _wait(dock) == ("preview", True), dock.status.text()
    preview = QgsProject.instance().mapLayer(dock.preview_layer_id)
    assert preview.width() < 192 and preview.renderer().type() == "paletted"
    labels = {c.label for c in preview.renderer().classes()}
    assert labels & {c.name for c in NC_CLASSES}

    assert dock.classify()
    assert _wait(dock) == ("classify", True), dock.status.text()
    result = QgsRasterLayer(dock.result_path, "result", "gdal")
    assert result.width() == 192 and dock.result_is_classes
    values = gdal.Open(dock.result_path).ReadAsArray()
    assert set(np.unique(values)) - {0} <= {c.value for c in NC_CLASSES}

    assert dock.assess()
    assert _wait(dock) == ("assess", True), dock.status.text()
    page = Path(dock.report_path).read_text()
    assert "Overall accuracy" in page or "overall accuracy" in page.lower()

    assert dock.polygons()
    assert _wait(dock) == ("polygons", True), dock.status.text()
    layers = _layers("LandSeg polygons")
    assert layers and layers[0].featureCount() > 0
    assert layers[0].renderer().type() == "categorizedSymbol"
