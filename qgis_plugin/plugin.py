"""The plugin object QGIS loads: registers the Processing provider, nothing else."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication

from .provider import LandSegProvider


class LandSegPlugin:
    """Register LandSeg's Processing provider for the lifetime of the plugin."""

    def __init__(self, iface: Any = None) -> None:
        self.iface = iface
        self.provider: LandSegProvider | None = None

    def initProcessing(self) -> None:
        """Add the provider to the Processing registry (also used by qgis_process)."""
        if self.provider is None:
            self.provider = LandSegProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)
            # Now in the registry: load again, with the example models and their outputs.
            self.provider.refreshAlgorithms()

    def initGui(self) -> None:
        """Set up for QGIS desktop; LandSeg has no GUI beyond the Processing toolbox."""
        self.initProcessing()

    def unload(self) -> None:
        """Remove the provider when the plugin is disabled or reloaded."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
