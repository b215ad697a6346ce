"""What keeps LandSeg working on every QGIS users run (3.22 to 3.44, and QGIS 4 / Qt6).

No direct PyQt imports, no warnings when the provider loads and runs, and an engine set-up
that cannot go wrong quietly: a too old Python, a stale engine and QGIS's own GDAL/PROJ
variables are caught before they break a run.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException
from rasters import parcels, write_tif

ROOT = Path(__file__).resolve().parents[2]
#: Qt bindings the plugin must reach only through ``qgis.PyQt`` (Qt5 and Qt6 builds).
QT_BINDINGS = ("PyQt5", "PyQt6", "PySide2", "PySide6", "sip")


def _plugin_files() -> list[Path]:
    """Every Python file the plugin package ships (what scripts/package.py zips)."""
    files = [ROOT / "__init__.py"]
    for folder in ("qgis_plugin", "core"):
        files += sorted((ROOT / folder).rglob("*.py"))
    return files


def test_no_plugin_file_imports_qt_bindings_directly():
    offenders = []
    for path in [*_plugin_files(), *sorted((ROOT / "scripts").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno}: {name}"
                for name in names
                if name.split(".")[0] in QT_BINDINGS
            ]
    assert offenders == [], "import Qt through qgis.PyQt: " + ", ".join(offenders)


_LOAD_AND_RUN = r"""
import gc, json, os, sys, warnings
from pathlib import Path

from qgis.core import QgsApplication

app = QgsApplication([], False)
app.initQgis()
sys.path.insert(0, "/usr/share/qgis/python/plugins")
from processing.core.Processing import Processing

Processing.initialize()
root, src, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("error")  # importing and loading: any warning is an exception
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "landseg", root / "__init__.py", submodule_search_locations=[str(root)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["landseg"] = module
    spec.loader.exec_module(module)
    from landseg.qgis_plugin.plugin import LandSegPlugin

    plugin = LandSegPlugin(None)
    plugin.initProcessing()
    provider = QgsApplication.processingRegistry().providerById("landseg")
    for alg in provider.algorithms():
        fresh = alg.create()
        fresh.flags(), fresh.shortHelpString(), fresh.icon(), fresh.parameterDefinitions()
    # Running: warnings raised in destructors (unclosed pipes) cannot be exceptions,
    # so they are recorded and reported.
    warnings.simplefilter("always")
    import processing

    result = processing.run("landseg:slic", {"INPUT": src, "OUTPUT": out, "N_SEGMENTS": 20})
    del result
    gc.collect()
    plugin.unload()
    gc.collect()
print(json.dumps([f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught]))
app.exitQgis()
"""


def test_provider_loads_and_runs_without_warnings(engine_python, tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((48, 48), 3))
    env = {**os.environ, "PYTHONWARNINGS": "", "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_RUN, str(ROOT), str(src), str(tmp_path / "out.tif")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    warned = json.loads(proc.stdout.strip().splitlines()[-1])
    ours = [w for w in warned if "landseg" in w or "unclosed" in w or str(ROOT) in w]
    assert ours == []
    assert (tmp_path / "out.tif").exists()


def test_engine_runs_without_qgis_variables(provider, engine_python, monkeypatch):
    """QGIS's GDAL, PROJ and Python settings never reach the engine (OSGeo4W, macOS)."""
    from landseg.core import bootstrap
    from landseg.qgis_plugin import engine

    for key in bootstrap.QGIS_VARIABLES:
        monkeypatch.setenv(key, f"/qgis-install/{key.lower()}")
    proc = subprocess.run(
        [engine_python, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
        env=engine.engine_environment(engine_python),
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(proc.stdout)
    leaked = {k: v for k, v in seen.items() if "/qgis-install/" in v}
    assert leaked == {}
    assert seen["PYTHONPATH"] == str(ROOT)  # the plugin, nothing of QGIS's
    if engine.engine_folder(engine_python) is not None:  # a LandSeg environment
        cache = bootstrap.numba_cache_dir(engine.engine_folder(engine_python))
        assert seen["NUMBA_CACHE_DIR"] == os.environ.get("NUMBA_CACHE_DIR", str(cache))


def test_engine_runs_with_qgis_variables_set(run, tmp_path, monkeypatch):
    """A whole run works while QGIS's process has them pointing at nothing."""
    from landseg.core import bootstrap

    for key in bootstrap.QGIS_VARIABLES:
        if key not in ("PYTHONPATH", "PYTHONHOME"):  # QGIS's own Python needs these
            monkeypatch.setenv(key, str(tmp_path / "missing" / key))
    src = write_tif(tmp_path / "in.tif", parcels((40, 40), 3))
    result = run("landseg:slic", {"INPUT": str(src), "OUTPUT": str(tmp_path / "out.tif")})
    assert result["N_SEGMENTS"] >= 1


def _fake_engine(folder: Path, engine_python: str, pins: list[str]) -> str:
    """An engine environment whose stamp records ``pins`` (its Python is the real one)."""
    (folder / "bin").mkdir(parents=True)
    python = folder / "bin" / "python"
    python.symlink_to(engine_python)
    (folder / "landseg-engine.json").write_text(json.dumps({"landseg": "0.0.1", "pins": pins}))
    return str(python)


def test_stale_engine_makes_every_algorithm_say_so(run, engine_python, tmp_path, monkeypatch):
    from landseg.core import bootstrap

    current = bootstrap.pins([bootstrap.DEFAULT_REQUIREMENTS])
    old = [p for p in current if not p.startswith("numpy==")] + ["numpy==1.26.4"]
    monkeypatch.setenv("LANDSEG_ENGINE_PYTHON", _fake_engine(tmp_path / "venv", engine_python, old))
    src = write_tif(tmp_path / "in.tif", parcels((40, 40), 3))
    for algorithm in ("landseg:slic", "landseg:vectorize"):
        with pytest.raises(QgsProcessingException) as err:
            run(algorithm, {"INPUT": str(src), "OUTPUT": str(tmp_path / "out.tif")})
        message = str(err.value)
        assert "the engine is out of date: run set up the engine" in message.lower()
        assert "numpy==" in message
    assert not (tmp_path / "out.tif").exists()


def test_current_engine_with_extra_tools_is_not_stale(
    provider, engine_python, tmp_path, monkeypatch
):
    from landseg.core import bootstrap
    from landseg.qgis_plugin import engine

    pins = [*bootstrap.pins([bootstrap.DEFAULT_REQUIREMENTS]), "pytest==9.2.0"]
    python = _fake_engine(tmp_path / "venv", engine_python, pins)
    monkeypatch.setenv("LANDSEG_ENGINE_PYTHON", python)
    assert engine.check_engine() == python
    env = engine.engine_environment(python)
    if "NUMBA_CACHE_DIR" not in os.environ:  # the engine's own numba cache, not the plugin's
        assert env["NUMBA_CACHE_DIR"] == str(tmp_path / "venv" / "numba-cache")


def _old_python() -> str | None:
    sys.path.insert(0, str(ROOT / "tests" / "core"))
    try:
        from test_bootstrap import _old_python as find
    finally:
        sys.path.pop(0)
    return find()


def test_set_up_with_a_too_old_python_says_what_is_needed(run, tmp_path):
    old = _old_python()
    if old is None:
        pytest.skip("no Python 3.8-3.10 on this machine")
    folder = tmp_path / "engine-venv"
    with pytest.raises(QgsProcessingException, match=r"needs Python 3\.11 or newer") as err:
        run("landseg:setupengine", {"ENGINE_DIR": str(folder), "PYTHON": old})
    assert "Nothing was installed" in str(err.value) and "QGIS 3.34" in str(err.value)
    assert not folder.exists()


def test_setupengine_is_kept_out_of_the_modeler(provider):
    from landseg.qgis_plugin.algorithms.setup_engine import HIDE_FROM_MODELER

    alg = provider.algorithm("setupengine")
    assert int(alg.flags() & HIDE_FROM_MODELER)
    names = {p.name() for p in alg.parameterDefinitions()}
    assert {"ENGINE_DIR", "FORCE", "PYTHON", "EXTRA_INDEX_URL", "REQUIREMENTS"} <= names
    assert {"PROXY", "WHEEL_FOLDER", "OFFLINE"} <= names


def test_set_up_takes_qgis_proxy_without_logging_the_password(provider):
    from landseg.qgis_plugin.algorithms.setup_engine import qgis_proxy
    from qgis.core import QgsNetworkAccessManager
    from qgis.PyQt.QtNetwork import QNetworkProxy

    manager = QgsNetworkAccessManager.instance()
    before = manager.fallbackProxy()
    proxy = QNetworkProxy(QNetworkProxy.ProxyType.HttpProxy, "proxy.example", 3128, "me", "p@ss")
    manager.setFallbackProxyAndExcludes(proxy, [], [])
    try:
        url, shown = qgis_proxy()
    finally:
        manager.setFallbackProxyAndExcludes(before, [], [])
    assert url == "http://me:p%40ss@proxy.example:3128"
    assert shown == "http://me:***@proxy.example:3128"
    if before.type() != QNetworkProxy.ProxyType.HttpProxy:
        assert qgis_proxy() == ("", "")


def test_layers_are_looked_up_on_the_main_thread_before_the_task(provider, tmp_path):
    """A toolbox run gives project layer ids; the task's thread must not look them up.

    QGIS prepares an algorithm on the main thread and runs it in a task. In QGIS 3.40 a
    lookup in the project's layer store from the task's thread clears the project's
    expression scope while the canvas may be rebuilding it (a crash), so LandSeg looks
    its layers up while preparing.
    """
    import time

    from qgis.core import (
        QgsApplication,
        QgsProcessingAlgRunnerTask,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProject,
        QgsRasterLayer,
    )
    from qgis.PyQt.QtCore import QCoreApplication

    src = write_tif(tmp_path / "in.tif", parcels((40, 40), 3))
    layer = QgsRasterLayer(str(src), "scene", "gdal")
    QgsProject.instance().addMapLayer(layer)
    try:
        parameters = {"INPUT": layer.id(), "OUTPUT": str(tmp_path / "out.tif")}
        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        feedback = QgsProcessingFeedback()
        registry = QgsApplication.processingRegistry()

        # Prepared, the algorithm finds the layer without the project (as in the task).
        algorithm = registry.createAlgorithmById("landseg:slic")
        assert algorithm.prepare(parameters, context, feedback)
        found = algorithm.parameterAsRasterLayer(parameters, "INPUT", QgsProcessingContext())
        assert found is not None and found.id() == layer.id()
        # A value given since is looked up as it is.
        other = {**parameters, "INPUT": str(src)}
        assert algorithm.parameterAsRasterLayer(other, "INPUT", QgsProcessingContext()) != found
        # An EXTENT naming a layer is found the same way, with the layer's CRS.
        with_extent = {**parameters, "EXTENT": layer.id()}
        assert algorithm.prepare(with_extent, context, feedback)
        bare = QgsProcessingContext()
        assert algorithm.parameterAsExtent(with_extent, "EXTENT", bare) == layer.extent()
        assert algorithm.parameterAsExtentCrs(with_extent, "EXTENT", bare) == layer.crs()

        # The whole run in a task, as the toolbox dialog starts it.
        done: list[tuple[bool, dict]] = []
        task = QgsProcessingAlgRunnerTask(
            registry.createAlgorithmById("landseg:slic"), parameters, context, feedback
        )
        task.executed.connect(lambda ok, results: done.append((ok, results)))
        QgsApplication.taskManager().addTask(task)
        deadline = time.monotonic() + 300
        while not done and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            time.sleep(0.02)
        assert done and done[0][0], feedback.textLog()
        assert done[0][1]["N_SEGMENTS"] >= 1 and (tmp_path / "out.tif").is_file()
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
