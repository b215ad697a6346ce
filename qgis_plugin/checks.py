"""Checks of parameter values that need no engine (``checkParameterValues``).

Each function returns an error message naming the parameter and the fix, or ``None``.
The engine checks the same things again; these run in the dialog before "Run".
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

from qgis.core import QgsProcessingOutputLayerDefinition, QgsProperty

try:  # scoped enum of QGIS 3.36+ and QGIS 4
    from qgis.core import Qgis

    STATIC = Qgis.PropertyType.Static
except AttributeError:
    STATIC = QgsProperty.StaticProperty

__all__ = [
    "bands_error",
    "class_table_error",
    "classes_text",
    "destination_path",
    "duplicates_error",
    "extension_error",
    "numbers_error",
]

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_TEMPORARY = ("TEMPORARY_OUTPUT", "memory:")


def destination_path(value: Any) -> str:
    """Return the file a destination parameter value names ('' for temporary/unset).

    Reads the raw value without ``parameterAsOutputLayer`` (which would queue a layer to
    load), so it can run in ``checkParameterValues``.
    """
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink
    if isinstance(value, QgsProperty):
        if value.propertyType() != STATIC:
            return ""
        value = value.staticValue()
    text = "" if value is None else str(value).strip()
    if not text or text.startswith(_TEMPORARY) or "://" in text:
        return ""
    return os.path.abspath(text.split("|")[0])


def extension_error(name: str, value: Any, extensions: Sequence[str]) -> str | None:
    """Check that an output file ends with one of ``extensions`` (``("tif", "tiff")``)."""
    path = destination_path(value)
    if not path:
        return None
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    if suffix in extensions:
        return None
    wanted = " or ".join(f".{ext}" for ext in extensions)
    return f"{name}: {os.path.basename(path)} should be a {wanted} file (rename it, e.g. " + (
        f"{os.path.splitext(os.path.basename(path))[0]}.{extensions[0]})."
    )


def duplicates_error(paths: dict[str, str], inputs: Iterable[str] = ()) -> str | None:
    """Two outputs may not be the same file, nor may an output replace an input."""
    seen: dict[str, str] = {}
    for name, path in paths.items():
        if not path:
            continue
        key = os.path.normcase(os.path.abspath(path))
        if key in seen:
            return f"{seen[key]} and {name} are the same file ({path}): give each its own name."
        seen[key] = name
    for source in inputs:
        key = os.path.normcase(os.path.abspath(source.split("|")[0])) if source else ""
        if key in seen:
            return f"{seen[key]} would overwrite the input {source}: choose another output file."
    return None


def classes_text(values: Sequence[Any]) -> str:
    """Return the engine's ``VALUE:NAME:#RRGGBB,...`` form of a class-table parameter.

    ``values`` is the flat list ``parameterAsMatrix`` returns: rows of (value, name,
    colour) from the dialog's table, or today's string form ``1:forest:#1b7837,2:water``
    split at its commas (given by scripts and qgis_process), which passes unchanged.
    """
    cells = ["" if v is None else str(v).strip() for v in values]
    if any(":" in cell for cell in cells):
        return ",".join(cell for cell in cells if cell)
    entries = []
    for start in range(0, len(cells), 3):
        value, name, colour = [*cells[start : start + 3], "", ""][:3]
        if not (value or name or colour):
            continue
        entries.append(f"{value}:{name}" + (f":{colour}" if colour else ""))
    return ",".join(entries)


def class_table_error(name: str, text: str, *, allow_zero: bool = False) -> str | None:
    """Check ``VALUE:NAME[:#RRGGBB]`` entries: integer values once each, colours #rrggbb."""
    seen: set[int] = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        parts = [part.strip() for part in item.split(":")]
        example = "e.g. 1:forest:#1b7837,2:water:#2166ac"
        if len(parts) > 3:
            return f"{name}: {item!r} has more than VALUE:NAME:#RRGGBB ({example})."
        try:
            value = int(parts[0])
        except ValueError:
            return f"{name}: {item!r} does not start with an integer class value ({example})."
        if value in seen:
            return f"{name}: class value {value} appears twice; give each value once."
        if not allow_zero and not 1 <= value <= 65535:
            return f"{name}: class value {value} is outside 1..65535 (0 means nodata)."
        seen.add(value)
        if len(parts) == 3 and parts[2] and not _COLOR.match(parts[2]):
            return f"{name}: colour {parts[2]!r} of class {value} is not of the form #RRGGBB."
    return None


def numbers_error(name: str, values: Iterable[Any]) -> str | None:
    """Every value must be a number (``IGNORE_VALUE``, ``REFERENCE_IGNORE``)."""
    for value in values:
        text = "" if value is None else str(value).strip()
        if not text:
            continue
        try:
            float(text)
        except ValueError:
            return f"{name}: {text!r} is not a number; give values such as 0 or 0,255."
    return None


def bands_error(name: str, bands: Sequence[int], band_count: int, layer_name: str) -> str | None:
    """Band numbers must exist in the raster (1..band count)."""
    missing = [band for band in bands if not 1 <= band <= band_count]
    if missing:
        return (
            f"Band {', '.join(map(str, missing))} does not exist in {layer_name}, which has "
            f"{band_count} band{'s' if band_count != 1 else ''}: choose {name} among "
            f"1..{band_count}."
        )
    return None
