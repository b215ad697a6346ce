"""The plugin object QGIS loads: the Processing provider and the LandSeg panel."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication

from .provider import LandSegProvider


class LandSegPlugin:
    """Register LandSeg's Processing provider, and in QGIS desktop its panel."""

    def __init__(self, iface: Any = None) -> None:
        self.iface = iface
        self.provider: LandSegProvider | None = None
        self.dock: Any = None
        self.toolbar: Any = None

    def initProcessing(self) -> None:
        """Add the provider to the Processing registry (also used by qgis_process)."""
        if self.provider is None:
            self.provider = LandSegProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)
            # Now in the registry: load again, with the example models and their outputs.
            self.provider.refreshAlgorithms()

    def initGui(self) -> None:
        """Add the provider and the LandSeg panel (View > Panels, and a toolbar button)."""
        self.initProcessing()
        if self.iface is None:
            return
        from .panel import add_panel

        self.dock, self.toolbar = add_panel(self.iface)

    def unload(self) -> None:
        """Remove the panel and the provider when the plugin is disabled or reloaded."""
        if self.dock is not None:
            from .panel import remove_panel

            remove_panel(self.iface, self.dock, self.toolbar)
            self.dock = self.toolbar = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
