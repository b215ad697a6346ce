"""Class tables of classified rasters: values, names and colours.

A class table travels with every classified raster LandSeg writes, three ways at once:
the GeoTIFF colour table (any GIS shows the colours), a ``LANDSEG_CLASSES`` metadata tag
holding the table as JSON (names for LandSeg and for scripts), and a QGIS ``.qml`` style
sidecar (QGIS shows names and colours when the file is opened by hand). Model files hold
the same table in their metadata (:mod:`core.modelfile`).
"""

from __future__ import annotations

import colorsys
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

__all__ = [
    "ClassInfo",
    "class_entries",
    "classes_from_json",
    "classes_to_json",
    "complete_classes",
    "palette",
    "parse_classes",
    "read_raster_classes",
    "write_qml",
    "write_raster_classes",
]

#: GeoTIFF metadata tag holding the class table as JSON.
TAG = "LANDSEG_CLASSES"
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class ClassInfo:
    """One class of a classified raster.

    Attributes
    ----------
    value : int
        Pixel value (1..65535; 0 is reserved for nodata in LandSeg outputs).
    name : str
        Name shown in legends and attribute tables.
    color : str
        ``#rrggbb`` colour.
    """

    value: int
    name: str
    color: str


def palette(n: int, *, offset: int = 0) -> list[str]:
    """Return ``n`` distinct, evenly spread ``#rrggbb`` colours (golden-angle hues).

    Neighbouring indices get far-apart hues, and lightness alternates, so adjacent
    clusters stay distinguishable even with dozens of classes.
    """
    colors = []
    for i in range(offset, offset + n):
        hue = (i * 0.618033988749895) % 1.0
        lightness = (0.45, 0.62, 0.35)[i % 3]
        saturation = (0.75, 0.6, 0.85)[(i // 3) % 3]
        r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
        colors.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return colors


def parse_classes(text: str | None) -> list[ClassInfo]:
    """Parse ``VALUE:NAME[:#RRGGBB],...`` (the ``CLASSES`` parameter).

    Missing colours are generated with :func:`palette`. Names may contain spaces.

    Raises
    ------
    ValueError
        On a malformed entry, a repeated value, a value outside 1..65535 or a bad colour.
    """
    entries = class_entries(text)
    generated = iter(palette(len(entries)))
    return [ClassInfo(v, n, (c or next(generated)).lower()) for v, n, c in entries]


def class_entries(
    text: str | None, *, any_value: bool = False
) -> list[tuple[int, str, str | None]]:
    """Parse ``VALUE:NAME[:#RRGGBB],...`` into ``(value, name, colour or None)`` entries.

    The one parser of class lists. Values are 1..65535 (class values of LandSeg's
    rasters; 0 is nodata) unless ``any_value``: the accuracy command names the classes of
    any reference raster, whose codes may be 0 or negative. A missing name is
    ``class <value>``.

    Raises
    ------
    ValueError
        On a malformed entry, a repeated value, a value out of range or a bad colour.
    """
    if not text or not text.strip():
        return []
    entries: list[tuple[int, str, str | None]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        parts = [part.strip() for part in item.split(":")]
        try:
            value = int(parts[0])
        except ValueError:
            raise ValueError(
                f"Class entry {item!r} does not start with an integer value. Write classes "
                "as VALUE:NAME[:#RRGGBB], separated by commas, e.g. 1:forest:#1b7837,2:water"
            ) from None
        if not any_value and not 1 <= value <= 65535:
            raise ValueError(f"Class value {value} is outside 1..65535 (0 means nodata).")
        name = parts[1] if len(parts) > 1 and parts[1] else f"class {value}"
        color = parts[2] if len(parts) > 2 and parts[2] else None
        if len(parts) > 3:
            raise ValueError(f"Class entry {item!r} has more than VALUE:NAME:#RRGGBB.")
        if color is not None and not _COLOR.match(color):
            raise ValueError(f"Colour {color!r} of class {value} is not of the form #RRGGBB.")
        entries.append((value, name, color))
    values = [v for v, _, _ in entries]
    if len(set(values)) != len(values):
        raise ValueError("A class value appears twice in CLASSES; give each value once.")
    return entries


def complete_classes(values: Iterable[int], known: Sequence[ClassInfo] = ()) -> list[ClassInfo]:
    """Return a table for ``values``: known entries kept, others named and coloured.

    Generated names are ``class <value>``; generated colours avoid none of the known
    ones exactly but come from the same palette sequence.
    """
    by_value = {c.value: c for c in known}
    wanted = sorted({int(v) for v in values})
    missing = [v for v in wanted if v not in by_value]
    colors = iter(palette(len(missing), offset=len(by_value)))
    for value in missing:
        by_value[value] = ClassInfo(value, f"class {value}", next(colors))
    return [by_value[v] for v in sorted(by_value)]


def classes_to_json(classes: Sequence[ClassInfo]) -> list[dict[str, Any]]:
    """Return the table as a list of plain dicts (for model metadata and results)."""
    return [asdict(c) for c in classes]


def classes_from_json(items: Any) -> list[ClassInfo]:
    """Rebuild a table from :func:`classes_to_json`'s output (a JSON string or list)."""
    if isinstance(items, str):
        items = json.loads(items)
    try:
        return [ClassInfo(int(d["value"]), str(d["name"]), str(d["color"])) for d in items]
    except (KeyError, TypeError, ValueError):
        raise ValueError("Class table is not a list of {value, name, color} entries.") from None


def write_raster_classes(dataset: Any, classes: Sequence[ClassInfo], *, band: int = 1) -> None:
    """Store the table in an open, writable rasterio dataset (colour table and tag).

    GeoTIFF colour tables exist only for uint8 and uint16 bands; for other types only
    the tag is written.
    """
    dataset.update_tags(**{TAG: json.dumps(classes_to_json(classes))})
    if dataset.dtypes[band - 1] in ("uint8", "uint16") and classes:
        dataset.write_colormap(band, {c.value: (*_rgb(c.color), 255) for c in classes})


def read_raster_classes(dataset: Any, *, band: int = 1) -> list[ClassInfo]:
    """Read a class table from an open rasterio dataset.

    Uses the ``LANDSEG_CLASSES`` tag when present, else the colour table (entries that
    are not black-transparent filler), else returns an empty list.
    """
    tag = dataset.tags().get(TAG)
    if tag:
        try:
            return classes_from_json(tag)
        except ValueError:
            pass
    try:
        table = dataset.colormap(band)
    except ValueError:  # no colour table
        return []
    out = []
    for value, rgba in sorted(table.items()):
        if value == 0 or rgba[3] == 0:
            continue
        if tuple(rgba) == (0, 0, 0, 255) and len(table) == 256:
            continue  # padding of an 8-bit table
        out.append(ClassInfo(int(value), f"class {value}", "#{:02x}{:02x}{:02x}".format(*rgba[:3])))
    return out


def write_qml(path: str | os.PathLike[str], classes: Sequence[ClassInfo], *, band: int = 1) -> Path:
    """Write a QGIS ``.qml`` style (paletted renderer with names and colours).

    Parameters
    ----------
    path : path-like
        The raster's path; the style is written beside it with the ``.qml`` suffix.

    Returns
    -------
    pathlib.Path
        The style file.
    """
    entries = "\n".join(
        f"        <paletteEntry value={quoteattr(str(c.value))} color={quoteattr(c.color)} "
        f"alpha={quoteattr('255')} label={quoteattr(c.name)}/>"
        for c in classes
    )
    text = f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis styleCategories="Symbology" version="3.22">
  <pipe>
    <rasterrenderer type="paletted" band="{band}" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation colorizeOn="0" grayscaleMode="0" saturation="0"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""
    style = Path(path).with_suffix(".qml")
    style.write_text(text, encoding="utf-8")
    return style


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)
