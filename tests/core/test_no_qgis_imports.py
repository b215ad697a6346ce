"""core/ must never import QGIS, Qt or GDAL's Python bindings (it runs outside QGIS)."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"
FORBIDDEN = ("qgis", "PyQt5", "PyQt6", "PySide2", "PySide6", "osgeo", "processing")


def test_core_imports_nothing_from_qgis():
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_plugin_light_modules_import_only_the_standard_library():
    """The QGIS side imports these; they must not pull numpy, rasterio or torch."""
    for name in ("__init__.py", "protocol.py", "params.py", "bootstrap.py"):
        tree = ast.parse((CORE / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] not in (
                    "numpy",
                    "rasterio",
                    "torch",
                    "numba",
                    "skimage",
                    "scipy",
                ), (name, module)
