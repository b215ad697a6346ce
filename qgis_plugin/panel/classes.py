"""The panel's class table (value, name, colour), kept in the QGIS project."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qgis.core import QgsProject
from qgis.PyQt.QtCore import QAbstractTableModel, QModelIndex, Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor

from ..styling import segment_color


@dataclass(frozen=True)
class ClassInfo:
    """One class of the panel's table: pixel value, name and ``#rrggbb`` colour."""

    value: int
    name: str
    color: str


def palette(n: int, *, offset: int = 0) -> list[str]:
    """Return ``n`` distinct colours for new classes (LandSeg's segment palette)."""
    return [segment_color(i + 1).name() for i in range(offset, offset + n)]


#: Project entry holding the table (``QgsProject.readEntry(SCOPE, KEY)``), JSON.
SCOPE = "landseg"
KEY = "classes"

try:  # Qt6 scoped enums, with the Qt5 names as fallback
    DISPLAY = Qt.ItemDataRole.DisplayRole
    EDIT = Qt.ItemDataRole.EditRole
    DECORATION = Qt.ItemDataRole.DecorationRole
    HORIZONTAL = Qt.Orientation.Horizontal
    EDITABLE = Qt.ItemFlag.ItemIsEditable
except AttributeError:  # pragma: no cover - old PyQt5
    DISPLAY, EDIT, DECORATION = Qt.DisplayRole, Qt.EditRole, Qt.DecorationRole
    HORIZONTAL, EDITABLE = Qt.Horizontal, Qt.ItemIsEditable

COLUMNS = ("Value", "Name", "Colour")


def classes_text(classes: Sequence[ClassInfo]) -> str:
    """Return the ``CLASSES`` parameter text ``1:forest:#1b7837,2:water:#2166ac``."""
    return ",".join(f"{c.value}:{_clean(c.name)}:{c.color}" for c in classes)


def _clean(name: str) -> str:
    return name.replace(",", " ").replace(":", " ").strip() or "class"


def read_project_classes(project: QgsProject | None = None) -> list[ClassInfo]:
    """Return the class table stored in the project (empty if none)."""
    project = project or QgsProject.instance()
    text, found = project.readEntry(SCOPE, KEY, "")
    if not found or not text:
        return []
    try:
        items = json.loads(text)
        return [ClassInfo(int(d["value"]), str(d["name"]), str(d["color"])) for d in items]
    except (ValueError, KeyError, TypeError):
        return []


def write_project_classes(classes: Sequence[ClassInfo], project: QgsProject | None = None) -> None:
    """Store the class table in the project (saved with the .qgz)."""
    project = project or QgsProject.instance()
    project.writeEntry(
        SCOPE,
        KEY,
        json.dumps([{"value": c.value, "name": c.name, "color": c.color} for c in classes]),
    )


class ClassTableModel(QAbstractTableModel):
    """Editable table of classes; every change is written to the project."""

    classesChanged = pyqtSignal()

    def __init__(self, project: QgsProject | None = None, parent: Any = None) -> None:
        super().__init__(parent)
        self._project = project
        self._classes: list[ClassInfo] = []
        self.reload()

    @property
    def project(self) -> QgsProject:
        """The project the table lives in."""
        return self._project or QgsProject.instance()

    def reload(self) -> None:
        """Read the table from the project."""
        self.beginResetModel()
        self._classes = read_project_classes(self.project)
        self.endResetModel()
        self.classesChanged.emit()

    def classes(self) -> list[ClassInfo]:
        """Return the table."""
        return list(self._classes)

    def set_classes(self, classes: Sequence[ClassInfo]) -> None:
        """Replace the table (and store it)."""
        self.beginResetModel()
        self._classes = sorted(classes, key=lambda c: c.value)
        self.endResetModel()
        self._store()

    def add_class(self, name: str = "", color: str = "") -> ClassInfo:
        """Append a class with the next free value."""
        value = max((c.value for c in self._classes), default=0) + 1
        info = ClassInfo(value, name or f"class {value}", color or palette(1, offset=value - 1)[0])
        row = len(self._classes)
        self.beginInsertRows(QModelIndex(), row, row)
        self._classes.append(info)
        self.endInsertRows()
        self._store()
        return info

    def remove_row(self, row: int) -> None:
        """Remove one class."""
        if 0 <= row < len(self._classes):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._classes[row]
            self.endRemoveRows()
            self._store()

    def class_at(self, row: int) -> ClassInfo | None:
        """Return the class of a row."""
        return self._classes[row] if 0 <= row < len(self._classes) else None

    def _store(self) -> None:
        write_project_classes(self._classes, self.project)
        self.classesChanged.emit()

    # Qt model interface -------------------------------------------------------------

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        """Return the number of classes."""
        return 0 if parent.isValid() else len(self._classes)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        """Return the number of columns: value, name, colour."""
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Any, role: int = DISPLAY) -> Any:
        """Column titles."""
        if orientation == HORIZONTAL and role == DISPLAY and 0 <= section < len(COLUMNS):
            return COLUMNS[section]
        return None

    def flags(self, index: QModelIndex) -> Any:
        """Value and name are edited in place; the colour with a colour dialog."""
        base = super().flags(index)
        return base | EDITABLE if index.column() in (0, 1) else base

    def data(self, index: QModelIndex, role: int = DISPLAY) -> Any:
        """Cell contents; the colour column shows a swatch."""
        info = self.class_at(index.row())
        if info is None:
            return None
        column = index.column()
        if role in (DISPLAY, EDIT):
            return (info.value, info.name, info.color)[column]
        if role == DECORATION and column == 2:
            return QColor(info.color)
        return None

    def setData(self, index: QModelIndex, value: Any, role: int = EDIT) -> bool:
        """Edit a value, a name or a colour (``#rrggbb``)."""
        info = self.class_at(index.row())
        if info is None or role != EDIT:
            return False
        column = index.column()
        if column == 0:
            try:
                number = int(value)
            except (TypeError, ValueError):
                return False
            taken = {c.value for i, c in enumerate(self._classes) if i != index.row()}
            if not 1 <= number <= 65535 or number in taken:
                return False
            info = ClassInfo(number, info.name, info.color)
        elif column == 1:
            info = ClassInfo(info.value, str(value).strip() or info.name, info.color)
        else:
            color = QColor(str(value) if not isinstance(value, QColor) else value)
            if not color.isValid():
                return False
            info = ClassInfo(info.value, info.name, color.name())
        self._classes[index.row()] = info
        self.dataChanged.emit(index, index)
        self._store()
        return True
