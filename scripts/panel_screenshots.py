"""Screenshots of the LandSeg panel in use, for the README (run under Xvfb).

Opens a QGIS map canvas with the LandSeg panel docked beside it, on the North Carolina
Landsat scene with the NC classes, then:

1. ``panel-drawing.png``: training polygons and scribbles drawn by class, a scribble
   being drawn with the mouse;
2. ``panel-dfc-preview.png``: Preview of DFC with the scribbles on the current view, the
   clusters named by the scribbles' classes;
3. ``panel-unet.png``: a U-Net trained from the polygons (Train), applied to the scene
   (Classify).

Run: ``xvfb-run -a -s "-screen 0 1400x900x24" python3 scripts/panel_screenshots.py
--data data/nc-landsat7 --output docs`` (QGIS's Python; the engine as for ``make test``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


def main() -> None:
    """Take the three screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "nc-landsat7")
    parser.add_argument("--output", type=Path, default=ROOT / "docs")
    parser.add_argument("--epochs", type=int, default=25)
    args = parser.parse_args()

    from qgis.core import (
        QgsApplication,
        QgsContrastEnhancement,
        QgsMultiBandColorRenderer,
        QgsPointXY,
        QgsProject,
        QgsRasterLayer,
        QgsRasterMinMaxOrigin,
        QgsRectangle,
    )
    from qgis.gui import QgsMapCanvas
    from qgis.PyQt.QtCore import QCoreApplication, QEvent, QPointF, Qt
    from qgis.PyQt.QtGui import QImage, QMouseEvent
    from qgis.PyQt.QtWidgets import QApplication, QMainWindow

    app = QgsApplication([], True)
    app.initQgis()
    sys.path.insert(0, "/usr/share/qgis/python/plugins")  # Processing, as in QGIS desktop
    from processing.core.Processing import Processing

    Processing.initialize()
    import demo

    demo._import_plugin()
    from landseg.qgis_plugin.panel import LandSegDock
    from landseg.qgis_plugin.panel.layers import find_layer
    from landseg.qgis_plugin.plugin import LandSegPlugin

    plugin = LandSegPlugin(None)
    plugin.initProcessing()
    work = Path(tempfile.mkdtemp(prefix="landseg-shots-"))
    scene_path = work / "landsat_multiband.tif"
    shutil.copy(args.data / "landsat_multiband.tif", scene_path)

    project = QgsProject.instance()
    scene = QgsRasterLayer(str(scene_path), "Landsat 7 (bands 3, 2, 1)", "gdal")
    scene.setRenderer(QgsMultiBandColorRenderer(scene.dataProvider(), 3, 2, 1))
    scene.setContrastEnhancement(
        QgsContrastEnhancement.StretchToMinimumMaximum, QgsRasterMinMaxOrigin.CumulativeCut
    )
    project.addMapLayer(scene)
    project.setCrs(scene.crs())
    project.setFileName(str(work / "nc.qgz"))
    demo.add_panel_drawings(project, scene, args.data)
    project.write()

    window = QMainWindow()
    window.setWindowTitle("LandSeg panel")
    canvas = QgsMapCanvas(window)
    canvas.setCanvasColor(Qt.white)
    window.setCentralWidget(canvas)
    dock = LandSegDock(canvas)
    dock.open_reports = False
    window.addDockWidget(Qt.RightDockWidgetArea, dock)
    window.resize(1280, 760)
    window.show()
    canvas.setDestinationCrs(scene.crs())

    def settle(seconds: float = 1.5) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline or canvas.isDrawing():
            QCoreApplication.processEvents()
            time.sleep(0.02)

    def show(layers: list, extent: QgsRectangle) -> None:
        canvas.setLayers(layers)
        canvas.setExtent(extent)
        canvas.refresh()
        settle()

    def wait() -> bool:
        finished: list[bool] = []
        dock.runFinished.connect(lambda action, ok: finished.append(ok))
        while not finished:
            QCoreApplication.processEvents()
            time.sleep(0.05)
        dock.runFinished.disconnect()
        return finished[0]

    def save(name: str) -> None:
        settle(0.5)
        image = window.grab().toImage()
        image = image.convertToFormat(QImage.Format_Indexed8, Qt.ThresholdDither)
        path = args.output / name
        image.save(str(path))
        print(f"{path}: {path.stat().st_size // 1024} KiB")

    def mouse(kind: QEvent.Type, point: QgsPointXY, button: Qt.MouseButton, held: int) -> None:
        pixel = canvas.getCoordinateTransform().transform(point)
        event = QMouseEvent(kind, QPointF(pixel.x(), pixel.y()), button, held, Qt.NoModifier)
        QApplication.sendEvent(canvas.viewport(), event)

    dock.raster_combo.setLayer(scene)
    polygons, scribbles = find_layer("polygons"), find_layer("scribbles")
    project.layerTreeRoot().findLayer(polygons.id()).setItemVisibilityChecked(True)
    extent = scene.extent()
    # Zoom on the middle of the scene: about 300 x 220 Landsat pixels.
    middle = QgsRectangle(
        extent.xMinimum() + 110 * 28.5,
        extent.yMaximum() - 370 * 28.5,
        extent.xMinimum() + 410 * 28.5,
        extent.yMaximum() - 150 * 28.5,
    )

    # 1. Drawing -----------------------------------------------------------------------
    show([scribbles, polygons, scene], middle)
    dock.select_class(5)
    dock.scribble_button.click()
    c = middle.center()
    stroke = [QgsPointXY(c.x() - 1500 + 120 * i, c.y() + 900 + 25 * (i % 5)) for i in range(20)]
    mouse(QEvent.MouseButtonPress, stroke[0], Qt.LeftButton, Qt.LeftButton)
    for point in stroke[1:]:
        mouse(QEvent.MouseMove, point, Qt.NoButton, Qt.LeftButton)
    dock.status.setText("Scribble: press, drag along the class, release.")
    save("panel-drawing.png")
    mouse(QEvent.MouseButtonRelease, stroke[-1], Qt.LeftButton, Qt.NoButton)
    dock.undo()  # keep the example strokes only
    canvas.unsetMapTool(canvas.mapTool())

    # 2. DFC preview with scribbles ------------------------------------------------------------
    dock.set_algorithm("landseg:dfc")
    dock.preview()
    if not wait():
        sys.exit(f"DFC preview failed: {dock.status.text()}")
    preview = project.mapLayer(dock.preview_layer_id)
    preview.setOpacity(0.8)
    show([scribbles, preview, scene], middle)
    save("panel-dfc-preview.png")

    # 3. U-Net: Train, then Classify --------------------------------------------------------
    dock.epochs_spin.setValue(args.epochs)
    dock.train_options = {"ENCODER": 0, "TILE_SIZE": 64, "BATCH_SIZE": 8, "PATIENCE": 0}
    dock.train()
    if not wait():
        sys.exit(f"Training failed: {dock.status.text()}")
    dock.classify()
    if not wait():
        sys.exit(f"Classify failed: {dock.status.text()}")
    result = next(
        layer
        for layer in project.mapLayers().values()
        if layer.source().split("|")[0] == dock.result_path
    )
    result.setOpacity(0.85)
    show([polygons, result, scene], extent)
    save("panel-unet.png")
    window.close()
    shutil.rmtree(work, ignore_errors=True)
    sys.stdout.flush()
    # Leave without tearing QGIS down: its exit with live map-canvas threads can crash,
    # and the screenshots are written.
    os._exit(0)


if __name__ == "__main__":
    main()
