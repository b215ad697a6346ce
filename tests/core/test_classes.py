"""Class tables: parsing, palettes, colour tables, tags and QML sidecars."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio

from core.classes import (
    ClassInfo,
    classes_from_json,
    classes_to_json,
    complete_classes,
    palette,
    parse_classes,
    read_raster_classes,
    write_qml,
    write_raster_classes,
)


def test_parse_classes() -> None:
    classes = parse_classes("1:forest:#1B7837, 2:open water ,5")
    assert classes[0] == ClassInfo(1, "forest", "#1b7837")
    assert classes[1].name == "open water" and classes[1].color.startswith("#")
    assert classes[2].name == "class 5"
    assert parse_classes("") == [] and parse_classes(None) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("forest:1", "integer value"),
        ("0:nodata", "outside"),
        ("1:a,1:b", "twice"),
        ("1:a:green", "#RRGGBB"),
        ("1:a:#000000:x", "more than"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_classes(text)


def test_palette_is_distinct() -> None:
    colors = palette(60)
    assert len(set(colors)) == 60
    assert all(len(c) == 7 and c.startswith("#") for c in colors)


def test_complete_and_json_round_trip() -> None:
    table = complete_classes([3, 1, 2], parse_classes("2:water:#0000ff"))
    assert [c.value for c in table] == [1, 2, 3]
    assert table[1] == ClassInfo(2, "water", "#0000ff")
    assert classes_from_json(classes_to_json(table)) == table
    with pytest.raises(ValueError):
        classes_from_json([{"value": 1}])


def test_raster_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.tif"
    table = parse_classes("1:forest:#1b7837,2:water:#2166ac")
    with rasterio.open(
        path, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8", nodata=0
    ) as dst:
        dst.write(np.ones((1, 4, 4), np.uint8))
        write_raster_classes(dst, table)
    with rasterio.open(path) as src:
        assert read_raster_classes(src) == table
        assert src.colormap(1)[2] == (0x21, 0x66, 0xAC, 255)


def test_colour_table_without_tag(tmp_path: Path) -> None:
    path = tmp_path / "c.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=4, height=4, count=1, dtype="uint8", nodata=0
    ) as dst:
        dst.write(np.ones((1, 4, 4), np.uint8))
        dst.write_colormap(1, {1: (255, 0, 0, 255), 3: (0, 0, 255, 255)})
    with rasterio.open(path) as src:
        table = read_raster_classes(src)
    assert [(c.value, c.color) for c in table] == [(1, "#ff0000"), (3, "#0000ff")]


def test_qml(tmp_path: Path) -> None:
    qml = write_qml(tmp_path / "c.tif", parse_classes("1:forest & <trees>:#1b7837"))
    assert qml.suffix == ".qml"
    entry = ET.parse(qml).getroot().find(".//paletteEntry")
    assert entry is not None and entry.get("label") == "forest & <trees>"
    assert entry.get("value") == "1" and entry.get("color") == "#1b7837"
