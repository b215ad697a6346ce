"""The LandSeg panel: draw classes and scribbles on the map, preview, run the workflow.

The panel is glue: every action runs the Processing algorithms users run from the
toolbox, so the Processing history and models see the same steps.
"""

from __future__ import annotations

from typing import Any

from .dock import LandSegDock

__all__ = ["LandSegDock", "add_panel", "remove_panel"]


def add_panel(iface: Any) -> tuple[LandSegDock, Any]:
    """Add the panel to QGIS's main window (View > Panels) and a toolbar button.

    The panel starts hidden; the button (and View > Panels > LandSeg) shows it.

    Returns
    -------
    dock, toolbar
    """
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtGui import QIcon

    from ..resources import icon_path

    try:
        area = Qt.DockWidgetArea.RightDockWidgetArea
    except AttributeError:  # pragma: no cover - old PyQt5
        area = Qt.RightDockWidgetArea
    dock = LandSegDock(iface.mapCanvas(), iface, iface.mainWindow())
    iface.addDockWidget(area, dock)
    dock.hide()
    action = dock.toggleViewAction()
    action.setIcon(QIcon(icon_path("landseg")))
    action.setText("LandSeg panel")
    action.setToolTip("Show the LandSeg panel: draw classes, preview, train, classify")
    toolbar = iface.addToolBar("LandSeg")
    toolbar.setObjectName("LandSegToolbar")
    toolbar.addAction(action)
    return dock, toolbar


def remove_panel(iface: Any, dock: LandSegDock, toolbar: Any) -> None:
    """Remove what :func:`add_panel` added."""
    dock.close()
    iface.removeDockWidget(dock)
    dock.deleteLater()
    if toolbar is not None:
        toolbar.deleteLater()
