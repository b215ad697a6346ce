"""Import rules of the engine.

- core/ never imports QGIS, Qt or GDAL's Python bindings (it runs outside QGIS).
- The QGIS side imports only the engine modules listed in ``PLUGIN_IMPORTS``, and those
  import nothing but the standard library (QGIS's Python has no numpy 2, rasterio or torch).
- Science modules never import the commands (``core/commands/``) or the CLI.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core"
FORBIDDEN = ("qgis", "PyQt5", "PyQt6", "PySide2", "PySide6", "osgeo", "processing")
HEAVY = ("numpy", "rasterio", "torch", "numba", "skimage", "scipy", "shapely", "affine")
#: Every engine module the QGIS side may import (files of core/).
PLUGIN_IMPORTS = ("__init__.py", "protocol.py", "params.py", "bootstrap.py")


def _imports(path: Path) -> list[ast.Import | ast.ImportFrom]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def _absolute_modules(path: Path) -> list[str]:
    """Modules a file imports, relative imports resolved against the repository root."""
    package = path.parent.relative_to(ROOT).parts
    modules = []
    for node in _imports(path):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
            continue
        if node.level == 0:
            base = node.module.split(".") if node.module else []
        else:
            base = [*package[: len(package) - node.level + 1]]
            base += node.module.split(".") if node.module else []
        modules.append(".".join(base))
        # ``from . import x`` and ``from ..core import bootstrap`` name modules too
        modules += [".".join([*base, alias.name]) for alias in node.names]
    return modules


def _core_module_file(name: str) -> str | None:
    """``core.params`` -> ``params.py``; ``core`` -> ``__init__.py``; None for names."""
    parts = name.split(".")
    if parts[0] != "core":
        return None
    path = CORE.joinpath(*parts[1:])
    if path.is_dir():
        return str((path / "__init__.py").relative_to(CORE))
    if path.with_suffix(".py").is_file():
        return str(path.with_suffix(".py").relative_to(CORE))
    return None


def test_core_imports_nothing_from_qgis():
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in _imports(path):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_plugin_light_modules_import_only_the_standard_library():
    """The QGIS side imports these; they must not pull numpy, rasterio or torch."""
    for name in PLUGIN_IMPORTS:
        for module in _absolute_modules(CORE / name):
            assert module.split(".")[0] not in HEAVY, (name, module)
            engine_module = _core_module_file(module)
            # what they import of the engine is light too
            assert engine_module is None or engine_module in PLUGIN_IMPORTS, (name, module)


def test_plugin_imports_only_the_light_engine_modules():
    plugin_files = [ROOT / "__init__.py", *(ROOT / "qgis_plugin").rglob("*.py")]
    imported = set()
    for path in plugin_files:
        for module in _absolute_modules(path):
            found = _core_module_file(module)
            if found:
                imported.add((path.relative_to(ROOT).as_posix(), found))
    assert imported, "the guard found no engine import in the plugin: check the parser"
    assert {module for _, module in imported} <= set(PLUGIN_IMPORTS), sorted(imported)


def test_science_modules_never_import_the_commands_or_the_cli():
    offenders = []
    for path in CORE.rglob("*.py"):
        relative = path.relative_to(CORE).as_posix()
        if relative.startswith("commands/") or relative in ("cli.py", "__main__.py"):
            continue
        for module in _absolute_modules(path):
            if module in ("core.cli", "core.commands") or module.startswith(
                ("core.cli.", "core.commands.")
            ):
                offenders.append(f"{relative}: {module}")
    assert offenders == []
