"""Fixtures for plugin tests inside real headless QGIS (pytest-qgis).

The repository root is registered as the package ``landseg``, the way QGIS imports the
installed plugin, so relative imports behave exactly as in QGIS.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _register_plugin_package() -> None:
    if "landseg" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "landseg", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["landseg"] = module
    spec.loader.exec_module(module)


_register_plugin_package()


@pytest.fixture(scope="session")
def engine_python() -> str:
    """The engine interpreter `make setup` created (LANDSEG_ENGINE_PYTHON)."""
    path = os.environ.get("LANDSEG_ENGINE_PYTHON", "")
    if not Path(path).is_file():
        pytest.fail(f"LANDSEG_ENGINE_PYTHON={path!r} is not an interpreter: run `make setup`.")
    return path


@pytest.fixture(scope="session")
def provider(qgis_processing, engine_python):
    """LandSeg's provider registered in QGIS's Processing registry, as the plugin does."""
    from landseg.qgis_plugin.plugin import LandSegPlugin
    from qgis.core import QgsApplication

    plugin = LandSegPlugin(None)
    plugin.initProcessing()
    yield QgsApplication.processingRegistry().providerById("landseg")
    plugin.unload()


@pytest.fixture
def run(provider):
    """Run an algorithm the way a user's script does: processing.run."""
    import processing

    def _run(algorithm: str, parameters: dict, **kwargs):
        return processing.run(algorithm, parameters, **kwargs)

    return _run
