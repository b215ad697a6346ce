"""Run Processing algorithms from the panel as background tasks.

Each run is the same Processing algorithm a user runs from the toolbox, started as a
:class:`QgsProcessingAlgRunnerTask` in QGIS's task manager (progress and cancel in the
task bar) and written to the Processing history.
"""

from __future__ import annotations

import contextlib
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
)
from qgis.PyQt.QtCore import QObject, pyqtSignal


class AlgorithmRun(QObject):
    """One algorithm run in the background.

    Signals
    -------
    finished(bool, dict)
        Success and the algorithm's results (empty after a failure or cancel).
    progressChanged(float)
        Percent done.
    """

    finished = pyqtSignal(bool, dict)
    progressChanged = pyqtSignal(float)

    def __init__(self, algorithm_id: str, parameters: dict[str, Any], parent: Any = None) -> None:
        super().__init__(parent)
        self.algorithm_id = algorithm_id
        self.parameters = dict(parameters)
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(algorithm_id)
        if algorithm is None:
            raise RuntimeError(
                f"Processing algorithm {algorithm_id} is not available: is LandSeg enabled?"
            )
        self.algorithm = algorithm
        self.context = _context()
        self.feedback = _Feedback()
        self.feedback.progressChanged.connect(self.progressChanged)
        self.task: QgsProcessingAlgRunnerTask | None = None
        self.done = False
        self.ok = False
        self.results: dict[str, Any] = {}

    @property
    def messages(self) -> list[str]:
        """Errors the algorithm reported."""
        return self.feedback.errors

    def start(self) -> QgsProcessingAlgRunnerTask:
        """Queue the run in the task manager."""
        ok, message = self.algorithm.checkParameterValues(self.parameters, self.context)
        if not ok:
            raise ValueError(message)
        self.task = QgsProcessingAlgRunnerTask(
            self.algorithm, self.parameters, self.context, self.feedback
        )
        self.task.setDescription(f"LandSeg: {self.algorithm.displayName()}")
        self.task.executed.connect(self._executed)
        add_to_history(self.algorithm, self.parameters, self.context)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def cancel(self) -> None:
        """Cancel: the engine process ends and leaves no output."""
        self.feedback.cancel()
        if self.task is not None:
            with contextlib.suppress(RuntimeError):  # already deleted by the manager
                self.task.cancel()

    def _executed(self, successful: bool, results: dict[str, Any]) -> None:
        self.done = True
        self.ok = bool(successful) and not self.feedback.isCanceled()
        self.results = dict(results or {}) if self.ok else {}
        self.task = None
        self.finished.emit(self.ok, self.results)


def _context() -> QgsProcessingContext:
    """Return a context with the project's settings but not the project itself.

    Every input the panel gives is a file path, which the run loads itself, so it needs
    no project, and without one nothing in the task's thread can reach the project's
    layers (the QGIS 3.40 race described in ``LandSegAlgorithm.prepareAlgorithm``, which
    crashed panel runs now and then while the canvas refreshed).
    """
    project = QgsProject.instance()
    context = QgsProcessingContext()
    context.setTransformContext(project.transformContext())
    context.setEllipsoid(project.ellipsoid())
    return context


class _Feedback(QgsProcessingFeedback):
    """Feedback that keeps the reported errors for the panel's status line."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []

    def reportError(self, error: str, fatalError: bool = False) -> None:
        """Keep the error, and log it as QGIS does."""
        self.errors.append(error)
        super().reportError(error, fatalError)


def add_to_history(algorithm: Any, parameters: dict[str, Any], context: Any) -> None:
    """Log the run in the Processing history, as the toolbox dialog does."""
    try:
        command = algorithm.asPythonCommand(parameters, context)
    except Exception:
        return
    if not command:
        return
    try:  # QGIS 3.24+: the history registry
        from qgis.gui import QgsGui

        registry = QgsGui.historyProviderRegistry()
        entry = {"python_command": command, "algorithm_id": algorithm.id(), "parameters": {}}
        registry.addEntry("processing", entry)
        return
    except (ImportError, AttributeError, TypeError):
        pass
    with contextlib.suppress(ImportError, AttributeError):
        from processing.core.ProcessingLog import ProcessingLog

        ProcessingLog.addToLog(command)
