"""Processing algorithm ``landseg:setupengine``: create the engine environment from QGIS."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgorithm,
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

try:  # scoped enum (QGIS 3.36+, QGIS 4), else the 3.22 name
    from qgis.core import Qgis

    HIDE_FROM_MODELER = Qgis.ProcessingAlgorithmFlag.HideFromModeler
except AttributeError:
    HIDE_FROM_MODELER = QgsProcessingAlgorithm.FlagHideFromModeler


def qgis_proxy() -> tuple[str, str]:
    """Return QGIS's HTTP proxy as a pip proxy URL, and the same without the password.

    From Settings > Options > Network (empty when no HTTP proxy is set there: pip then
    uses the system's, ``HTTPS_PROXY`` and its own configuration).
    """
    from qgis.core import QgsNetworkAccessManager
    from qgis.PyQt.QtNetwork import QNetworkProxy

    proxy = QgsNetworkAccessManager.instance().fallbackProxy()
    http = (QNetworkProxy.ProxyType.HttpProxy, QNetworkProxy.ProxyType.HttpCachingProxy)
    if proxy.type() not in http or not proxy.hostName():
        return "", ""
    address = f"{proxy.hostName()}:{proxy.port()}"
    if not proxy.user():
        return f"http://{address}", f"http://{address}"
    user = quote(proxy.user(), safe="")
    password = quote(proxy.password(), safe="")
    return f"http://{user}:{password}@{address}", f"http://{user}:***@{address}"


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
        "No Python interpreter found to create the engine environment. Install Python "
        f"{'.'.join(map(str, bootstrap.MIN_PYTHON))} or newer and give it in the advanced "
        "parameter 'Base Python interpreter' (PYTHON)."
    )


class SetupEngineAlgorithm(LandSegAlgorithm):
    """Create or update the engine's Python environment with its pinned packages."""

    algorithm_id = "setupengine"
    display_name = "Set up the engine"
    group_id = "setup"
    short_description = "Create LandSeg's Python environment (PyTorch etc.); run once."
    keywords = ("install", "setup", "environment", "engine", "PyTorch", "GPU", "CUDA")

    def flags(self) -> Any:
        """Not for the modeler (it installs software), but listed by ``qgis_process list``.

        ``qgis_process list`` leaves out every algorithm with a hiding flag (it tests the
        flags against ``Deprecated``, which is HideFromToolbox | HideFromModeler), and it
        has no modeler: there, the flag is not set.
        """
        flags = super().flags()
        app = QgsApplication.instance()
        if app is not None and app.platform() == "qgis_process":
            return flags
        return flags | HIDE_FROM_MODELER

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
            QgsProcessingParameterFile(
                "PYTHON",
                self.tr("Base Python interpreter"),
                optional=True,
                # not the default "*.*", which refuses python3 (no extension)
                fileFilter="All files (*)",
            )
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
            QgsProcessingParameterString(
                "PROXY",
                self.tr("HTTP proxy for pip"),
                optional=True,
            )
        )
        self.parameterDefinition("PROXY").setHelp(
            self.tr("[user:password@]host:port. Empty: QGIS's proxy (Settings > Network).")
        )
        self.add_advanced(
            QgsProcessingParameterFile(
                "WHEEL_FOLDER",
                self.tr("Local wheel folder"),
                behavior=FOLDER,
                optional=True,
            )
        )
        self.parameterDefinition("WHEEL_FOLDER").setHelp(
            self.tr("A folder of wheels that pip installs from first (offline installs).")
        )
        self.add_advanced(
            QgsProcessingParameterBoolean(
                "OFFLINE",
                self.tr("Offline (wheel folder only)"),
                defaultValue=False,
            )
        )
        self.parameterDefinition("OFFLINE").setHelp(
            self.tr("Install from the local wheel folder only, without the network.")
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
        wheels = self.parameterAsFile(parameters, "WHEEL_FOLDER", context)
        if wheels:
            args += ["--find-links", wheels]
        if self.parameterAsBoolean(parameters, "OFFLINE", context):
            args.append("--offline")
        # The proxy goes through the environment, so its password stays out of the log.
        env = {}
        proxy = (self.parameterAsString(parameters, "PROXY", context) or "").strip()
        shown = proxy.split("@")[-1] if proxy else ""
        if not proxy:
            proxy, shown = qgis_proxy()
        if proxy:
            env["PIP_PROXY"] = proxy
            feedback.pushInfo(self.tr(f"pip uses the proxy {shown}."))
        result = run_engine(args, feedback, python=python, module="core.bootstrap", env=env)
        engine = str(result["ENGINE_PYTHON"])
        if Path(folder) != bootstrap.default_venv_dir():
            set_engine_python(engine)
            feedback.pushInfo(self.tr(f"LandSeg now uses {engine}."))
        return {"ENGINE_PYTHON": engine, "STATUS": result.get("STATUS", "")}
