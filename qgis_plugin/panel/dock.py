"""The LandSeg dock panel: classes, drawing tools, preview and the whole workflow.

Every button runs a LandSeg Processing algorithm (the ones in the toolbox) as a
background task; the panel only chooses inputs and parameters and shows the results.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsFeatureRequest,
    QgsMapLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.gui import QgsDockWidget, QgsFileWidget, QgsMapCanvas, QgsMapLayerComboBox
from qgis.PyQt.QtCore import QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QColorDialog,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .classes import ClassInfo, ClassTableModel, classes_text
from .layers import CLASS_FIELD, drawing_layer, find_layer, save_edits, style_drawing_layer
from .runner import AlgorithmRun
from .tools import PolygonTool, ScribbleTool
from .view import view_of_layer

try:
    from qgis.core import Qgis

    RASTER_FILTER = Qgis.LayerFilter.RasterLayer
    ADVANCED = Qgis.ProcessingParameterFlag.Advanced
    HIDDEN = Qgis.ProcessingParameterFlag.Hidden
    INTEGER = Qgis.ProcessingNumberParameterType.Integer
except AttributeError:
    from qgis.core import QgsMapLayerProxyModel, QgsProcessingParameterDefinition

    RASTER_FILTER = QgsMapLayerProxyModel.RasterLayer
    ADVANCED = QgsProcessingParameterDefinition.FlagAdvanced
    HIDDEN = QgsProcessingParameterDefinition.FlagHidden
    INTEGER = QgsProcessingParameterNumber.Integer
try:
    from qgis.PyQt.QtWidgets import QAbstractItemView as _View

    SELECT_ROWS = _View.SelectionBehavior.SelectRows
    SINGLE = _View.SelectionMode.SingleSelection
except AttributeError:  # pragma: no cover - old PyQt5
    SELECT_ROWS, SINGLE = QAbstractItemView.SelectRows, QAbstractItemView.SingleSelection

#: The algorithm chooser: label, algorithm id.
ALGORITHMS = (
    ("SLIC superpixels", "landseg:slic"),
    ("QuickShift superpixels", "landseg:quickshift"),
    ("Felzenszwalb segmentation", "landseg:felzenszwalb"),
    ("DFC with the drawn scribbles", "landseg:dfc"),
    ("ISB with the drawn scribbles", "landseg:isb"),
    ("W-Net", "landseg:wnet"),
    ("U-Net model", "landseg:predictunet"),
)
#: The panel's starting values where the toolbox's defaults are slow for a preview loop:
#: 32 output channels and 30 iterations make a DFC preview of a 512 x 512 view take
#: seconds on a CPU instead of minutes (the toolbox's 100 and 100). Raise them in the form.
PANEL_DEFAULTS = {
    "landseg:dfc": {"MAX_CLUSTERS": 32, "MAX_ITER": 30},
    "landseg:isb": {"MAX_CLUSTERS": 32, "MAX_ITER": 30},
}
#: Parameters the panel fills itself (never shown in its parameter form).
_FILLED = {"INPUT", "BANDS", "SEED", "THREADS", "MODE", "ASSIGNMENT", "NODATA_ZERO"}
PREVIEW_NAME = "LandSeg preview"


def _is_advanced(definition: Any) -> bool:
    return bool(definition.flags() & ADVANCED) or bool(definition.flags() & HIDDEN)


class ParameterForm(QWidget):
    """Numbers, switches and choices of one algorithm, with the toolbox's defaults.

    Only the main (non-advanced) parameters are shown: the ones worth tuning between
    previews. Others keep their defaults; the toolbox dialog has them all.
    """

    def __init__(self, algorithm: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.algorithm = algorithm
        self.widgets: dict[str, QWidget] = {}
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        try:
            layout.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        except AttributeError:  # pragma: no cover - old PyQt5
            layout.setRowWrapPolicy(QFormLayout.WrapLongRows)
        for definition in algorithm.parameterDefinitions():
            name = definition.name()
            if name in _FILLED or _is_advanced(definition):
                continue
            widget = self._widget(definition)
            if widget is None:
                continue
            widget.setToolTip(definition.help() or definition.description())
            self.widgets[name] = widget
            label = QLabel(_short(definition.description()))
            label.setToolTip(widget.toolTip())
            layout.addRow(label, widget)

    @staticmethod
    def _widget(definition: Any) -> QWidget | None:
        default = definition.defaultValue()
        if isinstance(definition, QgsProcessingParameterBoolean):
            box = QCheckBox()
            box.setChecked(bool(default))
            return box
        if isinstance(definition, QgsProcessingParameterEnum) and not definition.allowMultiple():
            combo = QComboBox()
            _narrow(combo)
            combo.addItems(definition.options())
            combo.setCurrentIndex(int(default or 0))
            return combo
        if isinstance(definition, QgsProcessingParameterNumber):
            low = definition.minimum()
            high = definition.maximum()
            if definition.dataType() == INTEGER:
                spin: QSpinBox | QDoubleSpinBox = QSpinBox()
                spin.setRange(int(max(low, -(2**31))), int(min(high, 2**31 - 1)))
            else:
                spin = QDoubleSpinBox()
                spin.setDecimals(4)
                spin.setRange(max(low, -1e12), min(high, 1e12))
            if default is not None:
                spin.setValue(type(spin.value())(default))
            return spin
        return None

    def values(self) -> dict[str, Any]:
        """Return the form's values by parameter name."""
        out: dict[str, Any] = {}
        for name, widget in self.widgets.items():
            if isinstance(widget, QCheckBox):
                out[name] = widget.isChecked()
            elif isinstance(widget, QComboBox):
                out[name] = widget.currentIndex()
            else:
                out[name] = widget.value()
        return out

    def set_value(self, name: str, value: Any) -> None:
        """Set one parameter (tests and scripts)."""
        widget = self.widgets[name]
        if isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QComboBox):
            widget.setCurrentIndex(int(value))
        else:
            widget.setValue(value)


class LandSegDock(QgsDockWidget):
    """Draw classes and scribbles, preview on the view, train, classify, assess, vectorize.

    Parameters
    ----------
    canvas : QgsMapCanvas
        The map canvas the tools draw on and Preview reads its extent from.
    iface : QgisInterface, optional
        QGIS's interface (message bar); None in scripts and tests.

    Signals
    -------
    runFinished(str, bool)
        Action ("preview", "train", "classify", "assess", "polygons") and success.
    """

    runFinished = pyqtSignal(str, bool)

    def __init__(self, canvas: QgsMapCanvas, iface: Any = None, parent: Any = None) -> None:
        super().__init__("LandSeg", parent)
        self.setObjectName("LandSegDock")
        self.canvas = canvas
        self.iface = iface
        #: Open HTML reports in the browser when a run finishes.
        self.open_reports = True
        #: Extra trainunet parameters (encoder, tile size…); the toolbox defaults otherwise.
        self.train_options: dict[str, Any] = {}
        self.run: AlgorithmRun | None = None
        self.action = ""
        self.result_path = ""
        self.result_is_classes = False
        self.model_path = ""
        self.report_path = ""
        self.preview_layer_id = ""
        self._pending_files: list[str] = []
        self._forms: dict[str, ParameterForm] = {}

        body = QWidget()
        layout = QVBoxLayout(body)
        self.raster_combo = QgsMapLayerComboBox()
        self.raster_combo.setFilters(RASTER_FILTER)
        self.raster_combo.setToolTip("The image to segment (a raster file).")
        row = QHBoxLayout()
        row.addWidget(QLabel("Raster"))
        row.addWidget(self.raster_combo, 1)
        layout.addLayout(row)

        # Classes -----------------------------------------------------------------
        self.classes = ClassTableModel(QgsProject.instance(), self)
        group = QGroupBox("Classes")
        box = QVBoxLayout(group)
        self.table = QTableView()
        self.table.setModel(self.classes)
        self.table.setSelectionBehavior(SELECT_ROWS)
        self.table.setSelectionMode(SINGLE)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMinimumHeight(120)
        self.table.doubleClicked.connect(self._pick_color)
        box.addWidget(self.table)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add class")
        self.remove_button = QPushButton("Remove")
        self.add_button.clicked.connect(lambda: self._select(self.classes.add_class()))
        self.remove_button.clicked.connect(self._remove_class)
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        row.addStretch(1)
        box.addLayout(row)
        row = QHBoxLayout()
        self.polygon_button = QToolButton()
        self.polygon_button.setText("Polygon")
        self.polygon_button.setToolTip(
            "Draw training polygons of the selected class: click the vertices, right-click "
            "to close. Backspace removes a vertex, Esc drops the polygon."
        )
        self.scribble_button = QToolButton()
        self.scribble_button.setText("Scribble")
        self.scribble_button.setToolTip(
            "Draw scribbles of the selected class: press, drag along the class, release."
        )
        self.undo_button = QToolButton()
        self.undo_button.setText("Undo")
        self.undo_button.setToolTip("Undo the last drawing (as Edit > Undo).")
        for button in (self.polygon_button, self.scribble_button):
            button.setCheckable(True)
        row.addWidget(QLabel("Draw"))
        row.addWidget(self.polygon_button)
        row.addWidget(self.scribble_button)
        row.addWidget(self.undo_button)
        row.addStretch(1)
        box.addLayout(row)
        layout.addWidget(group)

        self.polygon_tool = PolygonTool(
            canvas, lambda: self.drawing_layer("polygons"), self.current_class
        )
        self.scribble_tool = ScribbleTool(
            canvas, lambda: self.drawing_layer("scribbles"), self.current_class
        )
        self.polygon_button.toggled.connect(lambda on: self._use_tool(self.polygon_tool, on))
        self.scribble_button.toggled.connect(lambda on: self._use_tool(self.scribble_tool, on))
        self.undo_button.clicked.connect(self.undo)
        canvas.mapToolSet.connect(self._tool_changed)
        self.classes.classesChanged.connect(self._restyle)

        # Algorithm ---------------------------------------------------------------
        group = QGroupBox("Segment")
        box = QVBoxLayout(group)
        self.algorithm_combo = QComboBox()
        _narrow(self.algorithm_combo)
        for label, algorithm_id in ALGORITHMS:
            self.algorithm_combo.addItem(label, algorithm_id)
        self.algorithm_combo.currentIndexChanged.connect(self._algorithm_changed)
        box.addWidget(self.algorithm_combo)
        self.model_widget = QgsFileWidget()
        self.model_widget.setFilter("LandSeg model (*.safetensors)")
        self.model_widget.setToolTip("Model file of U-Net (Train writes one).")
        self.model_row = QWidget()
        row = QHBoxLayout(self.model_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Model"))
        row.addWidget(self.model_widget, 1)
        box.addWidget(self.model_row)
        self.form_holder = QVBoxLayout()
        box.addLayout(self.form_holder)
        row = QHBoxLayout()
        self.preview_button = QPushButton("Preview")
        self.preview_button.setToolTip(
            "Run the algorithm on the current view at the screen's resolution."
        )
        self.classify_button = QPushButton("Classify")
        self.classify_button.setToolTip("Run the algorithm on the whole raster.")
        self.preview_button.clicked.connect(self.preview)
        self.classify_button.clicked.connect(self.classify)
        row.addWidget(self.preview_button)
        row.addWidget(self.classify_button)
        box.addLayout(row)
        layout.addWidget(group)

        # Workflow ----------------------------------------------------------------
        group = QGroupBox("U-Net workflow")
        box = QFormLayout(group)
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 1000)
        self.epochs_spin.setValue(20)
        self.train_button = QPushButton("Train")
        self.train_button.setToolTip(
            "Train a U-Net from the training polygons on the raster; opens the training report."
        )
        self.train_button.clicked.connect(self.train)
        row = QHBoxLayout()
        row.addWidget(QLabel("Epochs"))
        row.addWidget(self.epochs_spin)
        row.addWidget(self.train_button, 1)
        box.addRow(row)
        self.reference_combo = QgsMapLayerComboBox()
        self.reference_combo.setFilters(RASTER_FILTER)
        self.reference_combo.setAllowEmptyLayer(True)
        self.reference_combo.setLayer(None)
        self.reference_combo.setToolTip("Reference classes for Assess (a raster).")
        self.assess_button = QPushButton("Assess")
        self.assess_button.setToolTip("Accuracy of the last result against the reference.")
        self.assess_button.clicked.connect(self.assess)
        row = QHBoxLayout()
        row.addWidget(self.reference_combo, 1)
        row.addWidget(self.assess_button)
        box.addRow("Reference", row)
        self.polygons_button = QPushButton("Polygons")
        self.polygons_button.setToolTip("Vectorize the last result.")
        self.polygons_button.clicked.connect(self.polygons)
        box.addRow(self.polygons_button)
        layout.addWidget(group)

        # Progress ----------------------------------------------------------------
        row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.status = QLabel("Add classes, draw on the map, then Preview.")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.setWidget(body)

        QgsProject.instance().readProject.connect(self._project_read)
        QgsProject.instance().cleared.connect(self.classes.reload)
        self._algorithm_changed()
        if self.classes.rowCount():
            self.table.selectRow(0)

    # Classes and drawing ---------------------------------------------------------

    def current_class(self) -> ClassInfo | None:
        """Return the selected class (the first one when none is selected)."""
        rows = self.table.selectionModel().selectedRows()
        row = rows[0].row() if rows else 0
        return self.classes.class_at(row)

    def select_class(self, value: int) -> None:
        """Select the class with ``value``."""
        for row, info in enumerate(self.classes.classes()):
            if info.value == value:
                self.table.selectRow(row)

    def _select(self, info: ClassInfo) -> None:
        self.select_class(info.value)

    def _remove_class(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.classes.remove_row(rows[0].row())

    def _pick_color(self, index: Any) -> None:
        if index.column() != 2:
            return
        info = self.classes.class_at(index.row())
        color = QColorDialog.getColor(parent=self, initial=self._qcolor(info.color))
        if color.isValid():
            self.classes.setData(index, color.name())

    @staticmethod
    def _qcolor(text: str) -> Any:
        from qgis.PyQt.QtGui import QColor

        return QColor(text)

    def raster_layer(self) -> QgsRasterLayer | None:
        """Return the chosen raster."""
        layer = self.raster_combo.currentLayer()
        return layer if isinstance(layer, QgsRasterLayer) else None

    def drawing_layer(self, kind: str) -> QgsVectorLayer | None:
        """Return the polygons or scribbles layer, created in the raster's CRS on first use."""
        layer = find_layer(kind)
        if layer is not None:
            return layer
        raster = self.raster_layer()
        crs = raster.crs() if raster is not None else self.canvas.mapSettings().destinationCrs()
        try:
            return drawing_layer(kind, crs, self.classes.classes())
        except RuntimeError as err:
            self._say(str(err), error=True)
            return None

    def _use_tool(self, tool: Any, on: bool) -> None:
        if on:
            if self.current_class() is None:
                self._say("Add a class first: drawings carry the selected class.", error=True)
            other = self.scribble_button if tool is self.polygon_tool else self.polygon_button
            other.setChecked(False)
            self.canvas.setMapTool(tool)
        elif self.canvas.mapTool() is tool:
            self.canvas.unsetMapTool(tool)

    def _tool_changed(self, new: Any, old: Any = None) -> None:
        if new is not self.polygon_tool:
            self.polygon_button.setChecked(False)
        if new is not self.scribble_tool:
            self.scribble_button.setChecked(False)

    def undo(self) -> None:
        """Undo the last edit of the active drawing layer."""
        kind = "polygons" if self.polygon_button.isChecked() else "scribbles"
        layer = find_layer(kind) or find_layer("polygons")
        if layer is not None and layer.undoStack() is not None:
            layer.undoStack().undo()
            layer.triggerRepaint()

    def _restyle(self) -> None:
        for kind in ("polygons", "scribbles"):
            layer = find_layer(kind)
            if layer is not None:
                style_drawing_layer(layer, self.classes.classes())

    def _project_read(self, *args: Any) -> None:
        self.classes.reload()
        if self.classes.rowCount():
            self.table.selectRow(0)

    # Algorithms ------------------------------------------------------------------

    def algorithm_id(self) -> str:
        """Return the chosen algorithm's id."""
        return str(self.algorithm_combo.currentData())

    def set_algorithm(self, algorithm_id: str) -> None:
        """Choose an algorithm by id."""
        index = self.algorithm_combo.findData(algorithm_id)
        if index >= 0:
            self.algorithm_combo.setCurrentIndex(index)

    def form(self, algorithm_id: str | None = None) -> ParameterForm | None:
        """Return the parameter form of an algorithm (the chosen one by default)."""
        algorithm_id = algorithm_id or self.algorithm_id()
        if algorithm_id not in self._forms:
            from qgis.core import QgsApplication

            algorithm = QgsApplication.processingRegistry().algorithmById(algorithm_id)
            if algorithm is None:
                return None
            form = ParameterForm(algorithm)
            for name, value in PANEL_DEFAULTS.get(algorithm_id, {}).items():
                if name in form.widgets:
                    form.set_value(name, value)
            self._forms[algorithm_id] = form
            self.form_holder.addWidget(self._forms[algorithm_id])
        return self._forms[algorithm_id]

    def _algorithm_changed(self, *args: Any) -> None:
        chosen = self.algorithm_id()
        self.model_row.setVisible(chosen == "landseg:predictunet")
        self.form(chosen)
        for algorithm_id, form in self._forms.items():
            form.setVisible(algorithm_id == chosen)

    def parameters(self, algorithm_id: str, source: str, output: str) -> dict[str, Any]:
        """Return the Processing parameters of a run: the form, the drawings, the classes."""
        form = self.form(algorithm_id)
        parameters: dict[str, Any] = form.values() if form is not None else {}
        algorithm = form.algorithm if form is not None else None
        parameters["INPUT"] = source
        parameters["OUTPUT"] = output

        def defines(name: str) -> bool:
            return algorithm is not None and algorithm.parameterDefinition(name) is not None

        scribbles = find_layer("scribbles")
        if defines("SCRIBBLES") and scribbles is not None and scribbles.featureCount() > 0:
            save_edits(scribbles)
            parameters["SCRIBBLES"] = scribbles.source()
            parameters["SCRIBBLE_FIELD"] = CLASS_FIELD
            if defines("SCRIBBLE_CLASSES"):
                parameters["SCRIBBLE_CLASSES"] = classes_text(self.classes.classes())
            if defines("OUTPUT_CLASSES"):
                parameters["OUTPUT_CLASSES"] = _sibling(output, "-classes")
        if algorithm_id == "landseg:predictunet":
            model = self.model_widget.filePath()
            if not model:
                raise ValueError("Choose a model file (Train writes one).")
            parameters["MODEL"] = model
        return parameters

    # Actions ---------------------------------------------------------------------

    def preview(self) -> bool:
        """Run the chosen algorithm on the current view; the result replaces the last preview.

        Returns False (and says why) when nothing was started.
        """
        raster = self._checked_raster()
        if raster is None:
            return False
        folder = Path(QgsProcessingUtils.tempFolder()) / "landseg-preview"
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"preview-{uuid.uuid4().hex[:12]}"
        try:
            view = view_of_layer(self.canvas, raster, str(folder / f"{stem}-view.vrt"))
        except (RuntimeError, ValueError) as err:
            self._say(str(err), error=True)
            return False
        if view is None:
            self._say("The view shows none of the raster: pan to it first.", error=True)
            return False
        vrt, grid = view
        algorithm_id = self.algorithm_id()
        try:
            parameters = self.parameters(algorithm_id, vrt, str(folder / f"{stem}.tif"))
        except (RuntimeError, ValueError) as err:
            _remove(vrt)
            self._say(str(err), error=True)
            return False
        if "SCRIBBLES" in parameters and not self._scribbles_in_view(raster):
            for key in ("SCRIBBLES", "SCRIBBLE_FIELD", "SCRIBBLE_CLASSES", "OUTPUT_CLASSES"):
                parameters.pop(key, None)
        self._say(f"Preview on {grid.width} x {grid.height} px of the view…")
        return self._start("preview", algorithm_id, parameters, cleanup=[vrt])

    def classify(self) -> bool:
        """Run the chosen algorithm on the whole raster."""
        raster = self._checked_raster()
        if raster is None:
            return False
        algorithm_id = self.algorithm_id()
        output = self._output_file(algorithm_id.split(":")[1], ".tif")
        try:
            parameters = self.parameters(algorithm_id, _source(raster), output)
        except (RuntimeError, ValueError) as err:
            self._say(str(err), error=True)
            return False
        return self._start("classify", algorithm_id, parameters)

    def train(self) -> bool:
        """Train a U-Net from the training polygons; opens the training report."""
        raster = self._checked_raster()
        if raster is None:
            return False
        polygons = find_layer("polygons")
        if polygons is None or polygons.featureCount() == 0:
            self._say("Draw training polygons of at least two classes first.", error=True)
            return False
        save_edits(polygons)
        parameters = {
            "INPUTS": [_source(raster)],
            "LABEL_POLYGONS": polygons.source(),
            "CLASS_FIELD": CLASS_FIELD,
            "CLASSES": classes_text(self.classes.classes()),
            "EPOCHS": self.epochs_spin.value(),
            "OUTPUT_MODEL": self._output_file("unet", ".safetensors"),
            "OUTPUT_REPORT": self._output_file("unet-training-report", ".html"),
            **self.train_options,
        }
        return self._start("train", "landseg:trainunet", parameters)

    def assess(self) -> bool:
        """Accuracy of the last result against the reference raster; opens the report."""
        reference = self.reference_combo.currentLayer()
        if not self.result_path:
            self._say("Classify first: Assess scores the last result.", error=True)
            return False
        if not isinstance(reference, QgsRasterLayer):
            self._say("Choose a reference raster.", error=True)
            return False
        parameters = {
            "PREDICTION": self.result_path,
            "REFERENCE": _source(reference),
            "MODE": 0 if self.result_is_classes else 1,
            "CLASSES": classes_text(self.classes.classes()),
            "OUTPUT_HTML": self._output_file("accuracy-report", ".html"),
        }
        return self._start("assess", "landseg:accuracy", parameters)

    def polygons(self) -> bool:
        """Vectorize the last result into a GeoPackage, styled by class."""
        if not self.result_path:
            self._say("Classify first: Polygons vectorizes the last result.", error=True)
            return False
        parameters = {
            "INPUT": self.result_path,
            "OUTPUT": self._output_file("polygons", ".gpkg"),
        }
        return self._start("polygons", "landseg:vectorize", parameters)

    def cancel(self) -> None:
        """Cancel the running task; it leaves no output behind."""
        if self.run is not None:
            self.run.cancel()
            self._say("Cancelling…")

    # Running ---------------------------------------------------------------------

    def _checked_raster(self) -> QgsRasterLayer | None:
        if self.run is not None:
            self._say("A LandSeg task is running: wait for it or cancel it.", error=True)
            return None
        raster = self.raster_layer()
        if raster is None:
            self._say("Choose a raster layer first.", error=True)
            return None
        if raster.providerType() != "gdal":
            self._say(
                f"{raster.name()} is not a raster file; save it as GeoTIFF first.", error=True
            )
            return None
        return raster

    def _scribbles_in_view(self, raster: QgsRasterLayer) -> bool:
        from .view import canvas_extent

        layer = find_layer("scribbles")
        if layer is None:
            return False
        request = QgsFeatureRequest().setFilterRect(canvas_extent(self.canvas, raster))
        request.setLimit(1)
        return any(True for _ in layer.getFeatures(request))

    def _output_file(self, stem: str, suffix: str) -> str:
        """Return a new file in the project's LandSeg folder (never an existing one)."""
        project = QgsProject.instance().fileName()
        if project:
            folder = Path(project).parent / f"{Path(project).stem}_landseg"
        else:
            folder = Path(QgsProcessingUtils.tempFolder()) / "landseg"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}{suffix}"
        number = 1
        while path.exists():
            number += 1
            path = folder / f"{stem}-{number}{suffix}"
        return str(path)

    def _start(
        self,
        action: str,
        algorithm_id: str,
        parameters: dict[str, Any],
        *,
        cleanup: list[str] | None = None,
    ) -> bool:
        if self.run is not None:
            self._say("A LandSeg task is running: wait for it or cancel it.", error=True)
            return False
        try:
            run = AlgorithmRun(algorithm_id, parameters, self)
            run.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
            run.finished.connect(self._finished)
            self.run = run
            self.action = action
            self._pending_files = list(cleanup or [])
            self._set_busy(True)
            run.start()
        except (RuntimeError, ValueError) as err:
            self.run = None
            self._set_busy(False)
            for path in cleanup or []:
                _remove(path)
            self._say(str(err), error=True)
            return False
        return True

    def _set_busy(self, busy: bool) -> None:
        for button in (
            self.preview_button,
            self.classify_button,
            self.train_button,
            self.assess_button,
            self.polygons_button,
        ):
            button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.progress.setValue(0)

    def _finished(self, ok: bool, results: dict[str, Any]) -> None:
        run, action = self.run, self.action
        self.run = None
        self._set_busy(False)
        for path in self._pending_files:
            _remove(path)
        self._pending_files = []
        if not ok:
            messages = run.messages if run is not None else []
            cancelled = run is not None and run.feedback.isCanceled()
            if action == "preview" or cancelled:
                for key, value in (run.parameters if run is not None else {}).items():
                    if key.startswith("OUTPUT") and isinstance(value, str):
                        _remove_output(value)
            self._say(
                "Cancelled; nothing was written."
                if cancelled
                else "Failed: " + (messages[-1] if messages else "see the log."),
                error=not cancelled,
            )
            self.runFinished.emit(action, False)
            return
        handler = getattr(self, f"_show_{action}")
        handler(run, results)
        self.runFinished.emit(action, True)

    def _show_preview(self, run: AlgorithmRun, results: dict[str, Any]) -> None:
        path, is_classes = _main_output(results)
        project = QgsProject.instance()
        old = project.mapLayer(self.preview_layer_id) if self.preview_layer_id else None
        if old is not None:
            stale = old.customProperty("landseg/files") or []
            project.removeMapLayer(old.id())
            for file in stale:
                _remove_output(str(file))
        label = self.algorithm_combo.itemText(self.algorithm_combo.findData(run.algorithm_id))
        layer = _load_raster(path, f"{PREVIEW_NAME}: {label}")
        files = [str(v) for k, v in results.items() if k.startswith("OUTPUT") and v]
        layer.setCustomProperty("landseg/files", files)
        project.addMapLayer(layer)
        self.preview_layer_id = layer.id()
        self._say(
            f"Preview: {label} on {layer.width()} x {layer.height()} px."
            + (" Classes from the scribbles." if is_classes else "")
        )

    def _show_classify(self, run: AlgorithmRun, results: dict[str, Any]) -> None:
        path, is_classes = _main_output(results)
        self.result_path = path
        self.result_is_classes = is_classes or run.algorithm_id == "landseg:predictunet"
        label = self.algorithm_combo.itemText(self.algorithm_combo.findData(run.algorithm_id))
        QgsProject.instance().addMapLayer(_load_raster(path, f"LandSeg: {label}"))
        self._say(f"{label} on the whole raster: {path}.")

    def _show_train(self, run: AlgorithmRun, results: dict[str, Any]) -> None:
        self.model_path = str(results.get("OUTPUT_MODEL", ""))
        self.report_path = str(results.get("OUTPUT_REPORT", ""))
        self.model_widget.setFilePath(self.model_path)
        self.set_algorithm("landseg:predictunet")
        miou = results.get("VAL_MIOU")
        self._say(
            f"Model written to {self.model_path}"
            + (f" (validation mIoU {float(miou):.2f})" if miou is not None else "")
            + ". Classify applies it."
        )
        self._open(self.report_path)

    def _show_assess(self, run: AlgorithmRun, results: dict[str, Any]) -> None:
        self.report_path = str(results.get("OUTPUT_HTML", ""))
        oa = results.get("OVERALL_ACCURACY")
        self._say(
            "Accuracy report written"
            + (f": overall accuracy {float(oa):.3f}." if oa is not None else ".")
        )
        self._open(self.report_path)

    def _show_polygons(self, run: AlgorithmRun, results: dict[str, Any]) -> None:
        from ..algorithms.vectorize import style_vector

        path = str(results["OUTPUT"])
        layer = QgsVectorLayer(path, "LandSeg polygons", "ogr")
        classes = [
            {"value": c.value, "name": c.name, "color": c.color} for c in self.classes.classes()
        ]
        style_vector(layer, classes if self.result_is_classes else [])
        QgsProject.instance().addMapLayer(layer)
        self._say(f"{int(results.get('N_POLYGONS', 0)):,} polygons written to {path}.")

    def _open(self, path: str) -> None:
        if path and self.open_reports:
            QDesktopServices.openUrl(QUrl.fromLocalFile(path))

    def _say(self, message: str, *, error: bool = False) -> None:
        self.status.setText(message)
        if error and self.iface is not None:
            with contextlib.suppress(AttributeError):
                self.iface.messageBar().pushWarning("LandSeg", message)

    def closeEvent(self, event: Any) -> None:
        """Leave the drawing tools when the panel closes."""
        for tool in (self.polygon_tool, self.scribble_tool):
            if self.canvas.mapTool() is tool:
                self.canvas.unsetMapTool(tool)
        super().closeEvent(event)


def _short(label: str) -> str:
    """Return a parameter label's first clause (the whole text is the tooltip)."""
    head = re.split(r"[:(;]| - ", label, maxsplit=1)[0].strip().rstrip(".")
    return head if len(head) <= 48 else head[:46].rstrip() + "…"


def _narrow(combo: QComboBox) -> None:
    """Let a combo box with long entries shrink with the panel."""
    try:
        policy = QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
    except AttributeError:  # pragma: no cover - old PyQt5
        policy = QComboBox.AdjustToMinimumContentsLengthWithIcon
    combo.setSizeAdjustPolicy(policy)
    combo.setMinimumContentsLength(12)


def _source(layer: QgsMapLayer) -> str:
    return layer.source().split("|")[0]


def _sibling(path: str, suffix: str) -> str:
    file = Path(path)
    return str(file.with_name(file.stem + suffix + file.suffix))


def _main_output(results: dict[str, Any]) -> tuple[str, bool]:
    """Return the output to show: the class map from scribbles when there is one."""
    if results.get("OUTPUT_CLASSES"):
        return str(results["OUTPUT_CLASSES"]), True
    return str(results["OUTPUT"]), False


def _load_raster(path: str, name: str) -> QgsRasterLayer:
    layer = QgsRasterLayer(path, name, "gdal")
    qml = Path(path).with_suffix(".qml")
    if qml.exists():
        layer.loadNamedStyle(str(qml))
    return layer


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        Path(path).unlink()


def _remove_output(path: str) -> None:
    """Remove an output and its sidecars (.qml, .aux.xml)."""
    file = Path(path)
    for candidate in (file, file.with_suffix(".qml"), Path(f"{file}.aux.xml")):
        _remove(str(candidate))
