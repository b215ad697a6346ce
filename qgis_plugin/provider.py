"""The LandSeg Processing provider (id ``landseg``)."""

from __future__ import annotations

from qgis.core import (
    QgsApplication,
    QgsMessageLog,
    QgsProcessingModelAlgorithm,
    QgsProcessingProvider,
)
from qgis.PyQt.QtGui import QIcon

from . import engine
from .algorithms import all_algorithms
from .resources import RESOURCES, icon_path


def example_models() -> list[QgsProcessingModelAlgorithm]:
    """Load the example models shipped in ``resources/models`` (skipping unreadable files)."""
    models = []
    for path in sorted((RESOURCES / "models").glob("*.model3")):
        model = QgsProcessingModelAlgorithm()
        if model.fromFile(str(path)):
            model.setSourceFilePath(str(path))
            models.append(model)
        else:
            QgsMessageLog.logMessage(f"Cannot read example model {path}", "LandSeg")
    return models


class LandSegProvider(QgsProcessingProvider):
    """Processing provider holding every LandSeg algorithm.

    The id ``landseg`` and the algorithm ids are public API (models and scripts use
    them): they never change.
    """

    def id(self) -> str:
        """Return the provider id used in algorithm ids (``landseg:slic``)."""
        return "landseg"

    def name(self) -> str:
        """Return the name shown in the Processing toolbox."""
        return "LandSeg"

    def longName(self) -> str:
        """Return the name with the version."""
        from ..core import __version__

        return f"LandSeg {__version__}"

    def icon(self) -> QIcon:
        """Return the provider icon."""
        return QIcon(icon_path("landseg"))

    def svgIconPath(self) -> str:
        """Return the provider icon's path."""
        return icon_path("landseg")

    def load(self) -> bool:
        """Register the engine settings, then the algorithms."""
        engine.add_settings(self)
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        """Remove the engine settings."""
        engine.remove_settings()

    def loadAlgorithms(self) -> None:
        """Add every algorithm, then the example models once the provider is registered.

        Algorithms list even when the engine is not set up. The example models in
        ``resources/models/*.model3`` appear in the toolbox group "Example models" with ids
        ``landseg:<model name>``; users open them in the modeler to start their own. A
        model finds its steps (``landseg:slic``...) through the Processing registry, so it
        is read only when this provider is in the registry: read earlier, it would have no
        outputs (``qgis_process help`` would list none). The plugin refreshes the provider
        right after adding it (:meth:`LandSegPlugin.initProcessing`).
        """
        for algorithm in all_algorithms():
            self.addAlgorithm(algorithm)
        if QgsApplication.processingRegistry().providerById(self.id()) is not None:
            for model in example_models():
                self.addAlgorithm(model)

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        """Return the raster formats the engine writes (tiled, compressed GeoTIFF)."""
        return ["tif"]
