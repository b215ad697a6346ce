"""Vectorize: regions against GDAL's polygonizer, strip joins, sieve, simplification, output."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.features
import shapely
from pyogrio import read_dataframe
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin
from rasters import write_tif
from shapely.geometry import shape

from core.cli import main
from core.commands.vectorize import run_vectorize
from core.protocol import EngineError
from core.regions import iter_regions, sieve

TRANSFORM = from_origin(630000, 228000, 30, 30)


def blocky(shape_: tuple[int, int], *, seed: int = 0, cell: int = 5, speckle: float = 0.05):
    """Blocks of classes 1-3 with speckles of class 5: many regions of every size."""
    rng = np.random.default_rng(seed)
    rows, cols = -(-shape_[0] // cell), -(-shape_[1] // cell)
    image = np.kron(rng.integers(1, 4, (rows, cols)), np.ones((cell, cell), np.int64))
    image = image[: shape_[0], : shape_[1]]
    image[rng.random(image.shape) < speckle] = 5
    return image.astype(np.uint8)


def regions(path, **kwargs):
    with rasterio.open(path) as src:
        return list(iter_regions(src, **kwargs))


def keyed(items):
    """Sort (value, geometry) pairs into a comparable, order-free form."""
    return sorted(
        (int(v), round(g.area, 6), round(g.centroid.x, 6), round(g.centroid.y, 6), g)
        for v, g in items
    )


@pytest.fixture
def classes_tif(tmp_path) -> Path:
    image = blocky((61, 47))
    image[:3, :4] = 0
    return write_tif(tmp_path / "classes.tif", image[None], nodata=0)


@pytest.mark.parametrize("connectivity", [4, 8])
def test_regions_match_gdal_polygonize(classes_tif, connectivity):
    with rasterio.open(classes_tif) as src:
        data = src.read(1)
        expected = [
            (v, shape(g))
            for g, v in rasterio.features.shapes(
                data,
                mask=data != 0,
                connectivity=connectivity,
                transform=rasterio.Affine.identity(),
            )
        ]
    found = regions(classes_tif, connectivity=connectivity)
    assert len(found) == len(expected)
    assert sum(r.pixels for r in found) == int((data != 0).sum())
    mine = keyed((r.value, r.geometry(connectivity)) for r in found)
    theirs = keyed(expected)
    for a, b in zip(mine, theirs, strict=True):
        assert a[:4] == b[:4]
        assert a[4].equals(shapely.make_valid(b[4]))
    if connectivity == 8:
        assert all(
            r.geometry(8).geom_type == "MultiPolygon" and r.geometry(8).is_valid for r in found
        )


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("rows", [1, 2, 7])
def test_strips_give_the_same_polygons_as_one_window(classes_tif, connectivity, rows):
    whole = keyed(
        (r.value, r.geometry(connectivity)) for r in regions(classes_tif, connectivity=connectivity)
    )
    strips = regions(classes_tif, connectivity=connectivity, strip_rows=rows)
    windowed = keyed((r.value, r.geometry(connectivity)) for r in strips)
    assert len(whole) == len(windowed)
    for a, b in zip(whole, windowed, strict=True):
        assert a[:4] == b[:4] and a[4].equals(b[4])


def test_a_region_spanning_every_strip_is_joined_once(tmp_path):
    image = np.ones((40, 30), np.uint8)
    image[5:35, 5:25] = 2  # a ring of 1 around a block of 2: the ring is cut in every strip
    image[15:25, 12:18] = 1  # an island of 1 inside 2, separate from the ring
    path = write_tif(tmp_path / "ring.tif", image[None])
    found = regions(path, strip_rows=3)
    assert sorted((r.value, r.pixels) for r in found) == [(1, 60), (1, 600), (2, 540)]
    ring = next(r for r in found if r.pixels == 600).geometry(4)
    assert len(ring.interiors) == 1 and ring.area == 600


def test_sieve_merges_into_the_longest_shared_border():
    values = np.full((9, 12), 1, np.int64)
    values[:, 5:] = 2  # class 2 (63 px) is larger than class 1 (41 px)
    values[3:5, 3:5] = 7  # 4 px: 6 edges shared with class 1, 2 with class 2
    valid = np.ones_like(values, bool)
    out = sieve(values, valid, 5)
    assert (out[3:5, 3:5] == 1).all()  # longest border, although class 2 is the larger region
    big = rasterio.features.sieve(values.astype(np.int32), 5)
    assert (big[3:5, 3:5] == 2).all()  # GDAL would merge into the largest neighbour
    # regions at least the minimum size, nodata and isolated regions are untouched
    assert (out[values != 7] == values[values != 7]).all()
    lone = np.zeros((5, 5), np.int64)
    lone[2, 2] = 3
    assert (sieve(lone, lone > 0, 4) == lone).all()


@pytest.mark.parametrize("connectivity", [4, 8])
def test_sieved_strips_equal_the_sieved_whole(classes_tif, connectivity):
    whole = regions(classes_tif, connectivity=connectivity, min_pixels=4)
    strips = regions(classes_tif, connectivity=connectivity, min_pixels=4, strip_rows=5)
    for x, y in zip(
        keyed((r.value, r.geometry(connectivity)) for r in whole),
        keyed((r.value, r.geometry(connectivity)) for r in strips),
        strict=True,
    ):
        assert x[:4] == y[:4] and x[4].equals(y[4])
    assert sorted((r.value, r.pixels) for r in whole) == sorted((r.value, r.pixels) for r in strips)
    unsieved = regions(classes_tif, connectivity=connectivity)
    assert len(whole) < len(unsieved)
    assert sum(r.pixels for r in whole) == sum(r.pixels for r in unsieved)
    assert all(r.pixels >= 4 for r in whole if r.value != 5)


def test_run_writes_attributes_crs_and_area(tmp_path, classes_tif):
    out = tmp_path / "p.gpkg"
    result = run_vectorize(src=str(classes_tif), dst=str(out))
    frame = read_dataframe(out)
    assert result["N_POLYGONS"] == len(frame) and result["KIND"] == "classes"
    assert list(frame.columns) == ["value", "class_name", "pixels", "area", "geometry"]
    assert frame.crs.to_epsg() == 32119
    np.testing.assert_allclose(frame["area"], frame["pixels"] * 900.0)
    np.testing.assert_allclose(frame.geometry.area, frame["area"])
    assert set(frame["value"]) == {1, 2, 3, 5}
    with rasterio.open(classes_tif) as src:
        left, bottom, right, top = src.bounds
    minx, miny, maxx, maxy = frame.total_bounds
    assert left <= minx and maxx <= right and bottom <= miny and maxy <= top
    assert [c["value"] for c in result["CLASSES"]] == [1, 2, 3, 5]


def test_class_names_from_tag_colour_table_categories_and_qml(tmp_path):
    image = blocky((20, 20), speckle=0)[None]
    tagged = write_tif(tmp_path / "tag.tif", image)
    with rasterio.open(tagged, "r+") as dst:
        dst.update_tags(
            LANDSEG_CLASSES=json.dumps([{"value": 1, "name": "forest", "color": "#00ff00"}])
        )
        dst.write_colormap(1, {1: (1, 2, 3, 255), 2: (200, 0, 0, 255)})
    result = run_vectorize(src=str(tagged), dst=str(tmp_path / "t.gpkg"))
    table = {c["value"]: c for c in result["CLASSES"]}
    assert table[1]["name"] == "forest" and table[1]["color"] == "#00ff00"  # tag wins
    assert table[2]["color"] == "#c80000" and table[2]["name"] == "class 2"  # colour table
    names = dict(
        zip(*read_dataframe(tmp_path / "t.gpkg")[["value", "class_name"]].values.T, strict=True)
    )
    assert names[1] == "forest"

    categories = write_tif(tmp_path / "cat.tif", image)
    Path(str(categories) + ".aux.xml").write_text(
        '<PAMDataset><PAMRasterBand band="1"><CategoryNames><Category></Category>'
        "<Category>water</Category><Category>urban</Category></CategoryNames>"
        "</PAMRasterBand></PAMDataset>"
    )
    result = run_vectorize(src=str(categories), dst=str(tmp_path / "c.gpkg"))
    assert {c["value"]: c["name"] for c in result["CLASSES"]}[2] == "urban"

    styled = write_tif(tmp_path / "qml.tif", image)
    styled.with_suffix(".qml").write_text(
        '<qgis><pipe><rasterrenderer type="paletted"><colorPalette>'
        '<paletteEntry value="3" color="#123456" alpha="255" label="crops"/>'
        "</colorPalette></rasterrenderer></pipe></qgis>"
    )
    result = run_vectorize(src=str(styled), dst=str(tmp_path / "q.gpkg"))
    assert {c["value"]: (c["name"], c["color"]) for c in result["CLASSES"]}[3] == (
        "crops",
        "#123456",
    )


def test_segment_rasters_are_segments(tmp_path):
    ids = np.arange(1, 101, dtype=np.int32).reshape(10, 10).repeat(3, 0).repeat(3, 1)
    result = run_vectorize(
        src=str(write_tif(tmp_path / "s.tif", ids[None], nodata=0)), dst=str(tmp_path / "s.gpkg")
    )
    assert result["KIND"] == "segments" and result["N_POLYGONS"] == 100 and "CLASSES" not in result


def test_simplification_keeps_a_gapless_coverage(tmp_path):
    rows, cols = np.mgrid[:80, :70]
    image = (1 + (np.hypot(rows - 30, cols - 40) // 9) % 3).astype(np.uint8)  # staircase rings
    image[np.random.default_rng(3).random(image.shape) < 0.01] = 5
    src = write_tif(tmp_path / "c.tif", image[None])
    plain, simple = tmp_path / "a.gpkg", tmp_path / "b.gpkg"
    run_vectorize(src=str(src), dst=str(plain))
    run_vectorize(src=str(src), dst=str(simple), simplify=45.0)
    before = read_dataframe(plain).geometry.values
    after = read_dataframe(simple).geometry.values
    assert len(after) == len(before) and not shapely.is_empty(after).any()
    assert (
        shapely.get_num_coordinates(after).sum() < 0.7 * shapely.get_num_coordinates(before).sum()
    )
    union = shapely.union_all(after)
    assert union.area == pytest.approx(shapely.union_all(before).area, rel=1e-9)
    assert shapely.area(after).sum() == pytest.approx(union.area, rel=1e-9)  # no overlaps
    assert shapely.symmetric_difference(union, shapely.union_all(before)).area < 1e-6  # no gaps
    assert shapely.coverage_is_valid(after) and shapely.is_valid(after).all()


def test_no_georeferencing_gives_pixel_coordinates_with_y_up(tmp_path):
    image = blocky((12, 10), speckle=0)[None]
    src = write_tif(tmp_path / "plain.tif", image, crs=None)
    out = tmp_path / "plain.gpkg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        run_vectorize(src=str(src), dst=str(out))
    frame = read_dataframe(out)
    assert frame.crs is None
    np.testing.assert_allclose(frame.total_bounds, [0, -12, 10, 0])
    np.testing.assert_allclose(frame["area"], frame["pixels"])


def test_formats_and_atomic_output(tmp_path, classes_tif):
    shp = tmp_path / "p.shp"
    result = run_vectorize(src=str(classes_tif), dst=str(shp), strip_rows=8)
    assert len(read_dataframe(shp)) == result["N_POLYGONS"]
    assert {p.suffix for p in tmp_path.glob("p.*")} >= {".shp", ".dbf", ".shx", ".prj"}
    assert not list(tmp_path.glob(".*partial*")) and not list(tmp_path.glob("*stage*"))
    with pytest.raises(EngineError, match="already exists"):
        run_vectorize(src=str(classes_tif), dst=str(shp))
    run_vectorize(src=str(classes_tif), dst=str(shp), overwrite=True, min_pixels=10)
    assert len(read_dataframe(shp)) < result["N_POLYGONS"]
    geojson = tmp_path / "p.geojson"
    run_vectorize(src=str(classes_tif), dst=str(geojson))
    assert len(read_dataframe(geojson)) == result["N_POLYGONS"]


def test_clear_errors_and_no_partial_file(tmp_path, classes_tif):
    out = tmp_path / "out.gpkg"
    continuous = write_tif(
        tmp_path / "f.tif", np.random.default_rng(0).random((1, 9, 9), np.float32)
    )
    with pytest.raises(EngineError, match="classify or segment it first"):
        run_vectorize(src=str(continuous), dst=str(out))
    empty = write_tif(tmp_path / "e.tif", np.zeros((1, 9, 9), np.uint8), nodata=0)
    with pytest.raises(EngineError, match="no polygon"):
        run_vectorize(src=str(empty), dst=str(out))
    text = tmp_path / "notes.txt"
    text.write_text("not a raster")
    with pytest.raises(EngineError, match="Cannot read"):
        run_vectorize(src=str(text), dst=str(out))
    with pytest.raises(EngineError, match="vector extension"):
        run_vectorize(src=str(classes_tif), dst=str(tmp_path / "out.tif"))
    with pytest.raises(EngineError, match="Band 2 does not exist"):
        run_vectorize(src=str(classes_tif), dst=str(out), band=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["classes.tif", "f.tif", "e.tif", "notes.txt"]
    )
    whole_floats = write_tif(tmp_path / "w.tif", blocky((9, 9)).astype(np.float32)[None])
    assert run_vectorize(src=str(whole_floats), dst=str(out))["N_POLYGONS"] > 1


def test_cli(tmp_path, classes_tif, capsys):
    out = tmp_path / "cli.gpkg"
    status = main(
        [
            "--progress",
            "json",
            "vectorize",
            str(classes_tif),
            str(out),
            "--connectivity",
            "8",
            "--min-area",
            "3600",
            "--simplify",
            "30",
        ]
    )
    assert status == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    result = events[-1]["outputs"]
    assert result["N_POLYGONS"] == len(read_dataframe(out)) > 0
    assert main(["vectorize", str(classes_tif), str(out)]) == 2  # exists, no --overwrite


@pytest.mark.parametrize("connectivity", [4, 8])
def test_a_larger_sieve_never_gives_more_or_smaller_polygons(classes_tif, connectivity):
    previous = None
    for min_pixels in (0, 4, 10, 30, 100, 1000, 10**6):
        found = regions(classes_tif, connectivity=connectivity, min_pixels=min_pixels)
        sizes = sorted(r.pixels for r in found)
        if previous is not None:
            assert len(sizes) <= len(previous)
            assert sizes[0] >= previous[0]
        previous = sizes
        # no region below the minimum is left, unless it is the only one
        assert len(found) == 1 or all(r.pixels >= min_pixels for r in found)
    assert len(previous) == 1  # a minimum above the raster's size leaves one region


def test_sieve_keeps_merging_small_neighbours_of_small_regions():
    # four 3 px regions in a row, no large neighbour: the old one-pass sieve kept them all
    values = np.array([[1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 0, 9]])
    valid = values > 0
    out = sieve(values, valid, 6)
    kept = np.bincount(out[valid])
    assert all(kept[v] >= 6 for v in np.unique(out[:, :12]))  # merged until 6 px or more
    assert out[0, 13] == 9  # isolated (only nodata beside it): kept, as GDAL keeps it


@pytest.mark.parametrize("connectivity", [4, 8])
def test_sieved_strips_with_a_halo_equal_the_sieved_whole(classes_tif, connectivity, monkeypatch):
    import core.regions

    whole = regions(classes_tif, connectivity=connectivity, min_pixels=10)
    monkeypatch.setattr(core.regions, "SIEVE_WHOLE_PIXELS", 0)  # the large-raster path
    strips = regions(classes_tif, connectivity=connectivity, min_pixels=10, strip_rows=5)
    assert sorted((r.value, r.pixels) for r in whole) == sorted((r.value, r.pixels) for r in strips)
