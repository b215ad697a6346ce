"""Clusters named by class-carrying scribbles: the "extra" and "merge" rules."""

from __future__ import annotations

import numpy as np
import pytest

from core.classes import ClassInfo
from core.scribbles import (
    assign_clusters,
    classes_from_scribbles,
    cluster_sums,
    scribble_counts,
)

FOREST = ClassInfo(5, "forest", "#1b7837")
WATER = ClassInfo(6, "water", "#2166ac")


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four clusters in quadrants (0 nodata column); features: cluster-dependent levels."""
    clusters = np.zeros((8, 9), np.int64)
    clusters[:4, 1:5] = 1
    clusters[:4, 5:] = 2
    clusters[4:, 1:5] = 3
    clusters[4:, 5:] = 4
    level = np.array([0.0, 0.1, 0.9, 0.2, 0.8])  # 3 resembles 1 (forest), 4 resembles 2
    features = np.stack([level[clusters], 1 - level[clusters]])
    scribbles = np.zeros_like(clusters)
    scribbles[1, 2:4] = 5  # forest in cluster 1
    scribbles[2, 6:8] = 6  # water in cluster 2
    return clusters, scribbles, features


def test_extra_rule_keeps_values_names_colours_and_adds_unnamed_classes() -> None:
    clusters, scribbles, _ = _scene()
    class_map, assignment = classes_from_scribbles(clusters, scribbles, [FOREST, WATER])
    assert class_map[0, 2] == 5 and class_map[0, 6] == 6
    assert class_map[5, 2] == 7 and class_map[5, 6] == 8  # extra classes after the top value
    assert (class_map[:, 0] == 0).all()  # nodata stays nodata
    assert assignment.classes[:2] == [FOREST, WATER]
    assert [c.name for c in assignment.classes[2:]] == ["unnamed 1", "unnamed 2"]
    assert len({c.color for c in assignment.classes}) == 4
    assert assignment.scribbled.tolist() == [False, True, True, False, False]


def test_merge_rule_joins_the_most_similar_named_class() -> None:
    clusters, scribbles, features = _scene()
    class_map, assignment = classes_from_scribbles(
        clusters, scribbles, [FOREST, WATER], rule="merge", features=features
    )
    assert class_map[5, 2] == 5  # cluster 3 (level 0.2) joins forest (0.1)
    assert class_map[5, 6] == 6  # cluster 4 (level 0.8) joins water (0.9)
    assert assignment.classes == [FOREST, WATER]
    assert set(np.unique(class_map)) == {0, 5, 6}


def test_majority_wins_inside_a_cluster_and_ties_go_to_the_first_class() -> None:
    counts = np.array([[0, 0], [3, 5], [2, 2], [0, 0]])
    result = assign_clusters(counts, [FOREST, WATER], rule="extra")
    assert result.lut.tolist() == [0, 6, 5, 7]


def test_unknown_scribble_values_get_generated_names() -> None:
    clusters, scribbles, _ = _scene()
    scribbles[6, 2] = 9
    _, assignment = classes_from_scribbles(clusters, scribbles, [FOREST])
    names = {c.value: c.name for c in assignment.classes}
    assert names[5] == "forest" and names[9] == "class 9"


def test_block_wise_counts_equal_whole_array_counts() -> None:
    rng = np.random.default_rng(0)
    clusters = rng.integers(0, 6, (40, 30))
    scribbles = np.where(rng.random((40, 30)) < 0.1, rng.integers(1, 4, (40, 30)), 0)
    features = rng.random((3, 40, 30))
    whole = scribble_counts(clusters, scribbles, [1, 2, 3], n_clusters=5)
    sums, sizes = cluster_sums(clusters, features, n_clusters=5)
    blocks = np.zeros_like(whole)
    running = (np.zeros_like(sums), np.zeros_like(sizes))
    for row in range(0, 40, 7):
        part = slice(row, row + 7)
        scribble_counts(clusters[part], scribbles[part], [1, 2, 3], n_clusters=5, out=blocks)
        cluster_sums(clusters[part], features[:, part], n_clusters=5, out=running)
    assert (blocks == whole).all()
    np.testing.assert_allclose(running[0], sums)
    assert (running[1] == sizes).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rule": "nearest"}, "rule must be"),
        ({"rule": "merge"}, "means"),
    ],
)
def test_bad_arguments_are_explained(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        assign_clusters(np.array([[0, 0], [1, 0]]), [FOREST, WATER], **kwargs)


def test_no_scribbled_pixel_is_an_error() -> None:
    with pytest.raises(ValueError, match="No scribbled pixel"):
        assign_clusters(np.zeros((3, 2), np.int64), [FOREST, WATER])


def test_class_raster_written_strip_by_strip(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    from core.classes import read_raster_classes
    from core.scribbles import write_scribble_classes

    clusters, scribbles, features = _scene()
    profile = {
        "driver": "GTiff",
        "width": 9,
        "height": 8,
        "count": 1,
        "dtype": "uint8",
        "nodata": 0,
        "transform": from_origin(100, 200, 10, 10),
        "crs": "EPSG:32119",
    }
    with rasterio.open(tmp_path / "clusters.tif", "w", **profile) as ds:
        ds.write(clusters.astype("uint8"), 1)
    for rule, rows in (("extra", 3), ("merge", 5)):
        dst = tmp_path / f"{rule}.tif"
        write_scribble_classes(
            tmp_path / "clusters.tif",
            dst,
            scribbles,
            [FOREST, WATER],
            rule=rule,
            features=lambda row, h: features[:, row : row + h],
            rows=rows,
        )
        expected, assignment = classes_from_scribbles(
            clusters, scribbles, [FOREST, WATER], rule=rule, features=features
        )
        with rasterio.open(dst) as ds:
            assert (ds.read(1) == expected).all()
            assert ds.crs == profile["crs"] and ds.transform == profile["transform"]
            assert read_raster_classes(ds) == assignment.classes


def test_strokes_on_an_image_without_georeferencing_use_qgis_pixel_coordinates(tmp_path):
    import geopandas as gpd
    import rasterio
    from shapely.geometry import LineString

    from core.labels import IGNORED, rasterize_labels

    with rasterio.open(
        tmp_path / "photo.tif", "w", driver="GTiff", width=40, height=30, count=1, dtype="uint8"
    ) as ds:
        ds.write(np.zeros((1, 30, 40), np.uint8))
    # QGIS shows the photo with x = column and y = -row: a stroke along row 10.5.
    strokes = gpd.GeoDataFrame({"class": [4]}, geometry=[LineString([(5, -10.5), (25, -10.5)])])
    strokes.to_file(tmp_path / "strokes.gpkg")
    with rasterio.open(tmp_path / "photo.tif") as ds:
        labels, _ = rasterize_labels(str(tmp_path / "strokes.gpkg"), "class", ds)
    rows, cols = np.nonzero(labels != IGNORED)
    assert set(rows) == {10} and cols.min() == 5 and cols.max() >= 24
