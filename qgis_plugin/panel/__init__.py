"""The LandSeg panel: draw classes and scribbles on the map, preview, run the workflow.

The panel is glue: every action runs the Processing algorithms users run from the
toolbox, so the Processing history and models see the same steps.
"""

from __future__ import annotations

from .dock import LandSegDock

__all__ = ["LandSegDock"]
