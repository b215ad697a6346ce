"""Screenshots of every LandSeg algorithm dialog, as QGIS's Processing toolbox opens them.

Runs QGIS's own ``AlgorithmDialog`` (the dialog the toolbox opens) for each algorithm with
a sample raster and polygon layer in the project, and saves ``docs/dialogs/<id>.png``. Run
under a virtual display with QGIS's Python: ``make screenshots`` (``xvfb-run``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _register_plugin() -> None:
    spec = importlib.util.spec_from_file_location(
        "landseg", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["landseg"] = module
    spec.loader.exec_module(module)


def _sample_layers(folder: Path) -> None:
    """Add a 4-band raster and a polygon layer, so the layer boxes show a choice."""
    import numpy as np
    from osgeo import gdal, osr
    from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer

    path = folder / "scene.tif"
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), 64, 64, 4, gdal.GDT_Byte)
    dataset.SetGeoTransform((630000.0, 30.0, 0.0, 228000.0, 0.0, -30.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32119)
    dataset.SetProjection(srs.ExportToWkt())
    for band in range(4):
        dataset.GetRasterBand(band + 1).WriteArray(np.full((64, 64), band * 40, np.uint8))
    dataset = None
    project = QgsProject.instance()
    project.addMapLayer(QgsRasterLayer(str(path), "scene"))
    polygons = QgsVectorLayer("Polygon?crs=EPSG:32119&field=label:integer", "fields", "memory")
    project.addMapLayer(polygons)


def main() -> int:
    """Save one PNG per algorithm dialog."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dialogs")
    parser.add_argument("--width", type=int, default=900)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    from qgis.core import QgsApplication

    app = QgsApplication([], True)
    app.initQgis()
    sys.path.insert(0, "/usr/share/qgis/python/plugins")
    from processing.core.Processing import Processing

    Processing.initialize()
    # The engine folder's default shows in "Set up the engine": a generic user's, not ours
    # (set after QGIS has found its own settings folder).
    os.environ["XDG_DATA_HOME"] = "/home/user/.local/share"
    _register_plugin()
    from landseg.qgis_plugin.plugin import LandSegPlugin
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QImage

    # flat colours: no dithering noise, which PNG compresses badly
    dither = Qt.ThresholdDither | Qt.AvoidDither | Qt.ThresholdAlphaDither

    plugin = LandSegPlugin(None)
    plugin.initProcessing()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _sample_layers(Path(tmp))
        for algorithm in plugin.provider.algorithms():
            if " " in algorithm.name():  # example models: the modeler's dialog
                continue
            dialog = AlgorithmDialog(algorithm.create(), False, None)
            dialog.resize(args.width, args.height)
            dialog.show()
            for _ in range(5):
                app.processEvents()
            path = args.out / f"{algorithm.name()}.png"
            # 8-bit palette: a fifth of the size, the text stays sharp
            image = dialog.grab().toImage().convertToFormat(QImage.Format_Indexed8, dither)
            image.save(str(path), "PNG", 9)
            dialog.close()
            print(f"{path} ({path.stat().st_size // 1024} KiB)")
    plugin.unload()
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
