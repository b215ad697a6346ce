"""Class tables of classified rasters: values, names and colours.

A class table travels with every classified raster LandSeg writes, three ways at once:
the GeoTIFF colour table (any GIS shows the colours), a ``LANDSEG_CLASSES`` metadata tag
holding the table as JSON (names for LandSeg and for scripts), and a QGIS ``.qml`` style
sidecar (QGIS shows names and colours when the file is opened by hand). Model files hold
the same table in their metadata (:mod:`core.modelfile`).
"""

from __future__ import annotations

import colorsys
import contextlib
import json
import os
import re
import xml.etree.ElementTree as ET
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
    "colormap_colors",
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


def colormap_colors(dataset: Any, *, band: int = 1, skip_filler: bool = True) -> dict[int, str]:
    """Colours of a band's colour table by value (empty without one).

    ``skip_filler`` leaves out value 0, transparent entries and the black padding of an
    8-bit table (what a class table needs); ``False`` keeps every entry.
    """
    try:
        table = dataset.colormap(band)
    except ValueError:  # no colour table
        return {}
    colors = {}
    for value, rgba in sorted(table.items()):
        if skip_filler and (value == 0 or rgba[3] == 0):
            continue
        if skip_filler and tuple(rgba) == (0, 0, 0, 255) and len(table) == 256:
            continue  # padding of an 8-bit table
        colors[int(value)] = "#{:02x}{:02x}{:02x}".format(*rgba[:3])
    return colors


def read_raster_classes(dataset: Any, *, band: int = 1, sidecars: bool = False) -> list[ClassInfo]:
    """Read the class table a raster carries: the one reader of class tables.

    Without ``sidecars`` (LandSeg's own rasters, label rasters): the ``LANDSEG_CLASSES``
    tag when present, else the colour table (entries that are not filler), else an
    empty list.

    With ``sidecars`` (any classified raster, e.g. to vectorize): names and colours from
    every place LandSeg knows, in order of precedence the ``LANDSEG_CLASSES`` tag, a QGIS
    ``.qml`` sidecar with a paletted legend, GDAL category names (the PAM ``.aux.xml``),
    and the colour table for colours. Values without a name are named ``class <value>``;
    values without a colour get generated ones.
    """
    if sidecars:
        return _merged_class_table(dataset, band)
    tag = dataset.tags().get(TAG)
    if tag:
        try:
            return classes_from_json(tag)
        except ValueError:
            pass
    return [ClassInfo(v, f"class {v}", c) for v, c in colormap_colors(dataset, band=band).items()]


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


def _pam_category_names(path: str, band: int) -> dict[int, str]:
    """Category names of a band from GDAL's PAM sidecar ``<raster>.aux.xml``."""
    aux = Path(path + ".aux.xml")
    if not aux.is_file():
        return {}
    try:
        root = ET.parse(aux).getroot()
    except ET.ParseError:
        return {}
    for node in root.iter("PAMRasterBand"):
        if node.get("band", "1") == str(band):
            names = node.find("CategoryNames")
            if names is None:
                return {}
            return {
                i: (c.text or "").strip()
                for i, c in enumerate(names.findall("Category"))
                if (c.text or "").strip()
            }
    return {}


def _qml_entries(path: str) -> tuple[dict[int, str], dict[int, str]]:
    """Read names and colours of a ``.qml`` sidecar's paletted renderer.

    Labels that are only the value, as on segment rasters, give no name.
    """
    qml = Path(path).with_suffix(".qml")
    if not qml.is_file():
        return {}, {}
    try:
        root = ET.parse(qml).getroot()
    except ET.ParseError:
        return {}, {}
    names: dict[int, str] = {}
    colors: dict[int, str] = {}
    for entry in root.iter("paletteEntry"):
        try:
            value = int(float(entry.get("value", "")))
        except ValueError:
            continue
        label = (entry.get("label") or "").strip()
        if label and label != str(value):
            names[value] = label
        color = entry.get("color", "")
        if re.fullmatch(r"#[0-9a-fA-F]{6}", color):
            colors[value] = color.lower()
    if not names:  # a segment palette, not a class legend
        return {}, {}
    return names, colors


def _merged_class_table(src: Any, band: int) -> list[ClassInfo]:
    """Class names and colours a raster carries, from every place LandSeg knows.

    In order of precedence: the ``LANDSEG_CLASSES`` JSON metadata tag, a QGIS ``.qml``
    sidecar with a paletted legend, GDAL category names (the PAM ``.aux.xml``), and the
    colour table for colours. Values without a name are named ``class <value>``.

    Returns
    -------
    list of ClassInfo
        Empty when the raster carries no class information.
    """
    names: dict[int, str] = {}
    colors = colormap_colors(src, band=band)
    names.update(_pam_category_names(src.name, band))
    qml_names, qml_colors = _qml_entries(src.name)
    names.update(qml_names)
    colors.update(qml_colors)
    tag = src.tags().get("LANDSEG_CLASSES")
    if tag:
        with contextlib.suppress(ValueError, json.JSONDecodeError):
            for c in classes_from_json(tag):
                names[c.value] = c.name
                colors[c.value] = c.color
    values = sorted(set(names) | set(colors))
    generated = iter(palette(len(values)))
    return [
        ClassInfo(v, names.get(v, f"class {v}"), colors.get(v) or next(generated)) for v in values
    ]
