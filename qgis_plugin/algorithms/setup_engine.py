"""Processing algorithm ``landseg:setupengine``: create the engine environment from QGIS."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from ...core import bootstrap
from ..engine import run_engine, set_engine_python
from .base import FOLDER, LandSegAlgorithm


def find_base_python() -> str:
    """Find a Python interpreter of QGIS's installation to base the engine venv on.

    Inside QGIS ``sys.executable`` is often QGIS itself, so look beside the Python
    prefix (OSGeo4W's ``python3.exe``, QGIS.app's ``bin/python3``, Linux's
    ``/usr/bin/python3``), then on the PATH.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [Path(sys.executable)] if Path(sys.executable).name.startswith("python") else []
    for prefix in dict.fromkeys([sys.base_prefix, sys.prefix, sys.exec_prefix]):
        base = Path(prefix)
        candidates += [
            base / "bin" / f"python{version}",
            base / "bin" / "python3",
            base / "python3.exe",
            base / "python.exe",
            base.parent / "bin" / "python3.exe",
        ]
    for name in (f"python{version}", "python3", "python"):
        found = shutil.which(name)
        if found:
            candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise QgsProcessingException(
        "No Python interpreter found to create the engine environment. Install Python 3.10 "
        "or newer and give it in the PYTHON parameter."
    )


class SetupEngineAlgorithm(LandSegAlgorithm):
    """Create or update the engine's Python environment with its pinned packages."""

    algorithm_id = "setupengine"
    display_name = "Set up the engine"
    group_id = "setup"
    short_description = "Create LandSeg's Python environment (PyTorch etc.); run once."
    keywords = ("install", "setup", "environment", "engine", "PyTorch", "GPU", "CUDA")

    def flags(self) -> Any:
        """Not for the modeler: it installs software."""
        return super().flags() | self.FlagHideFromModeler

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        """Declare the parameters: where, with which Python, and what to install."""
        self.addParameter(
            QgsProcessingParameterFile(
                "ENGINE_DIR",
                self.tr("Environment folder"),
                behavior=FOLDER,
                defaultValue=str(bootstrap.default_venv_dir()),
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                "FORCE", self.tr("Recreate it from scratch"), defaultValue=False
            )
        )
        self.add_advanced(
            QgsProcessingParameterFile("PYTHON", self.tr("Base Python interpreter"), optional=True)
        )
        self.parameterDefinition("PYTHON").setHelp(self.tr("Empty: QGIS's own Python."))
        self.add_advanced(
            QgsProcessingParameterString(
                "EXTRA_INDEX_URL",
                self.tr("Extra package index"),
                optional=True,
            )
        )
        self.parameterDefinition("EXTRA_INDEX_URL").setHelp(
            self.tr("An extra pip index URL, e.g. PyTorch's CUDA wheels on Windows.")
        )
        self.add_advanced(
            QgsProcessingParameterFile(
                "REQUIREMENTS",
                self.tr("Requirements file"),
                extension="txt",
                defaultValue=str(bootstrap.DEFAULT_REQUIREMENTS),
                optional=True,
            )
        )
        self.addOutput(QgsProcessingOutputFile("ENGINE_PYTHON", self.tr("Engine interpreter")))
        self.addOutput(QgsProcessingOutputString("STATUS", self.tr("Status")))

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        """Run ``core.bootstrap`` with the base Python, then point LandSeg at the result."""
        folder = self.parameterAsFile(parameters, "ENGINE_DIR", context) or str(
            bootstrap.default_venv_dir()
        )
        python = self.parameterAsFile(parameters, "PYTHON", context) or find_base_python()
        requirements = self.parameterAsFile(parameters, "REQUIREMENTS", context) or str(
            bootstrap.DEFAULT_REQUIREMENTS
        )
        feedback.pushInfo(self.tr(f"Base Python: {python}"))
        args = ["--venv", folder, "--requirements", requirements]
        if self.parameterAsBoolean(parameters, "FORCE", context):
            args.append("--force")
        index = self.parameterAsString(parameters, "EXTRA_INDEX_URL", context)
        if index:
            args += ["--extra-index-url", index]
        result = run_engine(args, feedback, python=python, module="core.bootstrap")
        engine = str(result["ENGINE_PYTHON"])
        if Path(folder) != bootstrap.default_venv_dir():
            set_engine_python(engine)
            feedback.pushInfo(self.tr(f"LandSeg now uses {engine}."))
        return {"ENGINE_PYTHON": engine, "STATUS": result.get("STATUS", "")}
