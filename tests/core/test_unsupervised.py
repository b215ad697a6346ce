"""Unsupervised deep segmentation (ISB, DFC, W-Net): engine, losses, modes and errors.

Real data: 64 x 64 crops of the NC Landsat scene (5 bands) and its 1996 land-cover map.
Networks are small and train for a few iterations, so the whole file runs in about a
minute on two CPU cores.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window
from rasters import write_tif

from core.commands.unet import run_predictunet
from core.commands.unsupervised import run_unsupervised
from core.modelfile import read_metadata
from core.ncut import ncut_weights, soft_ncut_loss
from core.params import UNSUPERVISED, UNSUPERVISED_COMMON
from core.protocol import EngineError, Reporter
from core.unsupervised import (
    continuity_loss,
    merge_small_segments,
    refine_by_superpixels,
    renumber_by_area,
    train_wnet,
)

ROOT = Path(__file__).resolve().parents[2]
NAMES = (
    "1:developed:#d7191c,2:agriculture:#fdae61,3:herbaceous:#ffffbf,4:shrubland:#a6d96a,"
    "5:forest:#1a9641,6:water:#2b83ba,7:sediment:#bababa"
)
#: Few iterations and small networks: seconds per run.
FAST = {
    "isb": {"max_clusters": 16, "max_iter": 12, "segment_size": 12.0},
    "dfc": {"max_clusters": 16, "max_iter": 12},
    "wnet": {"max_clusters": 6, "max_iter": 6, "hidden": 4},
}


def _read(path: str | Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def _crop(src: Path, dst: Path, *, row: int, col: int, size: int, bands=None) -> Path:
    with rasterio.open(src) as ds:
        window = Window(col, row, size, size)
        array = ds.read(bands, window=window)
        if array.ndim == 2:
            array = array[None]
        return write_tif(
            dst, array, nodata=ds.nodata, crs=ds.crs.to_wkt(), transform=ds.window_transform(window)
        )


@pytest.fixture(scope="module")
def nc(tmp_path_factory, nc_dir) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("unsupervised")
    image = nc_dir / "landsat_multiband.tif"
    return {
        "image": _crop(image, folder / "image.tif", row=180, col=200, size=64),
        "other": _crop(image, folder / "other.tif", row=300, col=120, size=64),
        "large": _crop(image, folder / "large.tif", row=160, col=180, size=128),
        "band4": _crop(image, folder / "band4.tif", row=180, col=200, size=64, bands=4),
        "strata": nc_dir / "strata.tif",
        "folder": folder,
    }


def _run(method: str, src: Path, dst: Path, *, threads: int = 1, **kwargs) -> dict:
    params = {**FAST[method], **kwargs.pop("params", {})}
    return run_unsupervised(
        method,
        src=str(src),
        dst=str(dst),
        params=params,
        threads=threads,
        reporter=Reporter("text"),
        **kwargs,
    )


# ---------------------------------------------------------------------------------------
# Building blocks


def test_soft_ncut_matches_the_dense_formula():
    """The local-window N-cut equals the dense N x N formula with the same weights."""
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 9, 11, generator=gen)
    probs = torch.softmax(torch.randn(1, 4, 9, 11, generator=gen), dim=1)
    radius, sigma_i, sigma_x = 3, 0.3, 2.0
    loss = soft_ncut_loss(
        probs,
        ncut_weights(image, radius=radius, sigma_i=sigma_i, sigma_x=sigma_x),
        radius=radius,
    )
    ys, xs = torch.meshgrid(torch.arange(9.0), torch.arange(11.0), indexing="ij")
    pos = torch.stack([ys.ravel(), xs.ravel()], 1)
    feat = image[0].reshape(3, -1).T
    d2 = torch.cdist(pos, pos) ** 2
    f2 = torch.cdist(feat, feat) ** 2 / 3
    w = torch.exp(-f2 / sigma_i**2) * torch.exp(-d2 / sigma_x**2) * (d2 < radius**2)
    p = probs[0].reshape(4, -1)
    dense = 4 - sum((p[k] @ w @ p[k]) / (p[k] @ w.sum(1)) for k in range(4))
    assert float(loss) == pytest.approx(float(dense), rel=1e-4)
    # A perfect cut of a two-region image scores lower than a random assignment.
    two = torch.zeros(1, 1, 8, 8)
    two[..., 4:] = 1.0
    hard = torch.cat([1 - two, two], dim=1)
    weights = ncut_weights(two, radius=3, sigma_i=0.1)
    assert float(soft_ncut_loss(hard, weights, radius=3)) < 1e-3
    assert float(soft_ncut_loss(torch.full_like(hard, 0.5), weights, radius=3)) > 0.4


def test_ncut_loss_falls_when_wnet_trains(nc):
    """W-Net's N-cut step really learns (its learning rate is not zero, unlike the talk's)."""
    with rasterio.open(nc["image"]) as ds:
        raw = ds.read().astype(np.float32)
    low, high = np.percentile(raw, [2, 98], axis=(1, 2))
    image = ((raw - low[:, None, None]) / (high - low)[:, None, None])[None].astype(np.float32)
    valid = np.ones((1, 64, 64), bool)
    torch.set_num_threads(1)
    _, history = train_wnet(
        image,
        valid,
        n_clusters=6,
        hidden=4,
        max_iter=40,
        min_clusters=1,
        precision="fp32",
        reporter=Reporter("text"),
    )
    first, last = np.mean(history.loss[:3]), np.mean(history.loss[-3:])
    assert history.iterations == 40
    assert last < 0.9 * first, history.loss
    assert history.reconstruction[-1] < history.reconstruction[0]


def test_continuity_refinement_and_renumbering():
    flat = torch.zeros(1, 3, 4, 4)
    assert float(continuity_loss(flat)) == 0.0
    step = flat.clone()
    step[..., 2:] = 1.0  # one vertical edge: 4 of the 12 horizontal differences per channel
    assert float(continuity_loss(step)) == pytest.approx(4 / 12)
    labels = np.array([[0, 0, 1], [2, 2, 2]])
    segments = np.array([[0, 0, 0], [1, 1, 1]])
    assert refine_by_superpixels(labels, segments, 3).tolist() == [[0, 0, 0], [2, 2, 2]]
    assert renumber_by_area(np.array([5, 0, 9, 5])).tolist() == [2, 0, 1, 3]


def test_small_segments_join_the_nearest_larger_one():
    labels = np.zeros((12, 12), np.int64)
    labels[:, 6:] = 1
    labels[2, 2] = 2  # one-pixel speck inside 0
    labels[8:10, 8:10] = 3  # 4-pixel block inside 1
    labels[5, 5] = 1  # joins the 1 region beside it: part of a large segment
    valid = np.ones_like(labels, bool)
    valid[0, 0] = False
    merged = merge_small_segments(labels, valid, min_size=5)
    expected = np.zeros_like(labels)
    expected[:, 6:] = 1
    expected[5, 5] = 1
    assert (merged == expected).all()
    only_speck = np.where(labels == 2, 0, labels)
    assert (merge_small_segments(labels, valid, min_size=4) == only_speck).all()
    assert (merge_small_segments(labels, valid, min_size=0) == labels).all()
    speckled = np.indices((12, 12)).sum(axis=0) % 2  # a checkerboard: one-pixel segments
    speckled[:6, :6] = 0  # one large segment of 0
    # merging would leave one cluster: unchanged
    assert (merge_small_segments(speckled, valid, min_size=5) == speckled).all()
    assert labels[2, 2] == 2  # the input is left alone


def test_wnet_ncut_weight_zero_trains_on_reconstruction_only():
    image = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    valid = np.ones((1, 32, 32), bool)
    common = dict(n_clusters=4, hidden=2, max_iter=3, min_clusters=1, reporter=Reporter.quiet())
    _, weighted = train_wnet(image, valid, **common)
    _, reconstruction = train_wnet(image, valid, ncut_weight=0.0, **common)
    assert weighted.loss[0] == pytest.approx(reconstruction.loss[0])  # same start
    assert weighted.loss[1:] != reconstruction.loss[1:]  # the N-cut step moved the weights


def test_param_specs_are_complete():
    for method, params in UNSUPERVISED.items():
        names = [p.name for p in (*params, *UNSUPERVISED_COMMON)]
        assert len(names) == len(set(names)), method
        assert {"max_clusters", "min_clusters", "max_iter", "learning_rate"} <= set(names)
        for param in (*params, *UNSUPERVISED_COMMON):
            assert param.help.endswith((".", ")")) and param.key == param.name.upper()
    assert any(p.name == "mu" for p in UNSUPERVISED["dfc"])
    assert any(p.name == "segment_size" for p in UNSUPERVISED["isb"])


# ---------------------------------------------------------------------------------------
# Each method on real data


@pytest.mark.parametrize("method", ["isb", "dfc", "wnet"])
def test_each_method_segments_real_data(method, nc, tmp_path):
    dst = tmp_path / f"{method}.tif"
    result = _run(method, nc["image"], dst, dst_model=str(tmp_path / "m.safetensors"))
    labels = _read(dst)
    values, counts = np.unique(labels[labels > 0], return_counts=True)
    assert result["MODE"] == "image" and result["ITERATIONS"] >= 1
    assert 2 <= result["N_CLUSTERS"] == len(values) <= FAST[method]["max_clusters"]
    assert values.tolist() == list(range(1, len(values) + 1))
    assert np.all(np.diff(counts) <= 0), "ids are ordered by decreasing area"
    assert (labels > 0).all()
    assert (dst.with_suffix(".qml")).exists()
    with rasterio.open(dst) as ds:
        assert ds.crs is not None and ds.nodata == 0
        assert json.loads(ds.tags()["LANDSEG_CLASSES"])[0]["name"] == "cluster 1"
    meta = read_metadata(result["OUTPUT_MODEL"])
    assert meta["architecture"] == method and meta["task"] == "unsupervised"
    assert meta["bands"]["count"] == 5 and len(meta["classes"]) == FAST[method]["max_clusters"]


@pytest.mark.parametrize("method", ["dfc", "wnet"])
def test_same_seed_same_result(method, nc, tmp_path):
    a = _run(method, nc["image"], tmp_path / "a.tif", seed=7)
    b = _run(method, nc["image"], tmp_path / "b.tif", seed=7)
    assert a["N_CLUSTERS"] == b["N_CLUSTERS"]
    np.testing.assert_array_equal(_read(tmp_path / "a.tif"), _read(tmp_path / "b.tif"))


def test_two_copies_get_the_same_labels_in_dataset_mode(nc, tmp_path):
    """One network for the whole raster: the same image twice gets the same clusters.

    Only the 2-pixel receptive-field margin on each side of the seam may differ (at most
    3 % of the 128 columns); tile borders must not matter.
    """
    with rasterio.open(nc["large"]) as ds:
        image, profile = ds.read(), ds.profile
    twice = np.concatenate([image, image], axis=2)
    src = write_tif(
        tmp_path / "twice.tif", twice, nodata=profile["nodata"], crs=profile["crs"].to_wkt()
    )
    result = _run(
        "dfc",
        src,
        tmp_path / "twice-dfc.tif",
        mode="dataset",
        params={"tile_size": 64, "n_tiles": 8, "batch_size": 4},
    )
    assert result["MODE"] == "dataset"
    labels = _read(tmp_path / "twice-dfc.tif")
    left, right = labels[:, :128], labels[:, 128:]
    assert (left > 0).all() and result["N_CLUSTERS"] >= 2
    assert (left == right).mean() >= 0.98
    assert (left[:, 2:-2] == right[:, 2:-2]).mean() >= 0.995


def test_model_applies_to_the_same_and_another_raster(nc, tmp_path):
    """An unsupervised model file works with predictunet: same ids, any raster."""
    result = _run("dfc", nc["image"], tmp_path / "dfc.tif", dst_model=str(tmp_path / "m.st"))
    run_predictunet(
        src=str(nc["image"]), model=str(tmp_path / "m.st"), dst=str(tmp_path / "again.tif")
    )
    # Tiled inference mirrors the raster at its bottom and right edges where the whole
    # image saw zero padding: only the 2-pixel receptive-field margin there may differ.
    again_labels, labels = _read(tmp_path / "again.tif"), _read(result["OUTPUT"])
    assert (again_labels[:-2, :-2] == labels[:-2, :-2]).mean() >= 0.99
    other = run_predictunet(
        src=str(nc["other"]), model=str(tmp_path / "m.st"), dst=str(tmp_path / "other.tif")
    )
    labels = _read(other["OUTPUT"])
    assert (labels > 0).all() and len(np.unique(labels)) >= 2


def test_hungarian_and_majority_mapping_to_reference(nc, tmp_path):
    result = _run(
        "dfc",
        nc["image"],
        tmp_path / "c.tif",
        reference=str(nc["strata"]),
        reference_classes=NAMES,
        dst_mapped=str(tmp_path / "mapped.tif"),
        dst_mapping_csv=str(tmp_path / "mapping.csv"),
    )
    clusters, mapped = _read(result["OUTPUT"]), _read(result["OUTPUT_MAPPED"])
    with open(result["OUTPUT_MAPPING"], newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == result["N_CLUSTERS"]
    matched = [r for r in rows if r["class"]]
    assert len({r["class"] for r in matched}) == len(matched), "one-to-one"
    names = dict(item.split(":")[:2] for item in NAMES.split(","))
    for r in rows:
        inside = mapped[clusters == int(r["cluster"])]
        expected = int(r["class"]) if r["class"] else 0
        assert (inside == expected).all()
        if r["class"]:
            assert r["class_name"] == names[r["class"]]
    with rasterio.open(result["OUTPUT_MAPPED"]) as ds:
        table = json.loads(ds.tags()["LANDSEG_CLASSES"])
    assert {c["name"] for c in table} <= set(names.values())
    assert -1 <= result["ARI"] <= 1 and 0 <= result["OVERALL_ACCURACY"] <= 1
    many = _run(
        "dfc",
        nc["image"],
        tmp_path / "m.tif",
        reference=str(nc["strata"]),
        assignment="majority",
        dst_mapped=str(tmp_path / "many.tif"),
    )
    assert (_read(many["OUTPUT_MAPPED"]) > 0).all(), "many-to-one gives every cluster a class"


def test_dfc_with_raster_and_vector_scribbles(nc, tmp_path):
    import geopandas as gpd
    from shapely.geometry import LineString

    with rasterio.open(nc["image"]) as ds:
        transform, crs = ds.transform, ds.crs
    marks = np.zeros((1, 64, 64), np.uint8)
    marks[0, 10, 5:30] = 1
    marks[0, 50, 30:60] = 2
    raster = write_tif(tmp_path / "scribbles.tif", marks, crs=crs.to_wkt(), transform=transform)
    result = _run("dfc", nc["image"], tmp_path / "s.tif", scribbles=str(raster))
    assert result["N_CLUSTERS"] >= 2
    names = {c["name"] for c in result["CLASSES"]}
    assert {"scribble class 1", "scribble class 2"} <= names
    lines = gpd.GeoDataFrame(
        {"kind": [3, 4]},
        geometry=[
            LineString([transform * (5, 10.5), transform * (30, 10.5)]),
            LineString([transform * (30, 50.5), transform * (60, 50.5)]),
        ],
        crs=crs,
    )
    lines.to_file(tmp_path / "lines.gpkg")
    vector = _run(
        "dfc",
        nc["image"],
        tmp_path / "v.tif",
        scribbles=str(tmp_path / "lines.gpkg"),
        scribble_field="kind",
    )
    assert {"scribble class 3", "scribble class 4"} <= {c["name"] for c in vector["CLASSES"]}
    with pytest.raises(EngineError, match="SCRIBBLE_FIELD"):
        _run("dfc", nc["image"], tmp_path / "x.tif", scribbles=str(tmp_path / "lines.gpkg"))


# ---------------------------------------------------------------------------------------
# Bad inputs


def test_min_clusters_above_max_clusters_is_refused(nc, tmp_path):
    with pytest.raises(EngineError, match=r"MIN_CLUSTERS .* MAX_CLUSTERS"):
        _run("dfc", nc["image"], tmp_path / "x.tif", params={"min_clusters": 20})
    assert not (tmp_path / "x.tif").exists()


def test_isb_on_a_single_band_raster(nc, tmp_path):
    """ISB's superpixels need no colour: one band works (SLIC on the one band)."""
    result = _run("isb", nc["band4"], tmp_path / "one.tif")
    assert result["N_CLUSTERS"] >= 2 and (_read(result["OUTPUT"]) > 0).all()


@pytest.mark.parametrize("mode", ["image", "dataset"])
def test_all_nodata_raster_is_a_clear_error(mode, tmp_path):
    empty = write_tif(tmp_path / "empty.tif", np.full((3, 40, 40), -9999, np.float32), nodata=-9999)
    with pytest.raises(EngineError, match="no valid pixel"):
        _run("dfc", empty, tmp_path / "x.tif", mode=mode, params={"tile_size": 32})
    assert not (tmp_path / "x.tif").exists()


def test_failed_run_leaves_no_partial_output(nc, tmp_path, monkeypatch):
    import core.unsupervised_labels as labels

    def broken(*args, **kwargs):
        raise EngineError("the mapping failed")

    monkeypatch.setattr(labels, "map_to_reference", broken)
    with pytest.raises(EngineError, match="mapping failed"):
        _run(
            "dfc",
            nc["image"],
            tmp_path / "c.tif",
            reference=str(nc["strata"]),
            dst_model=str(tmp_path / "m.safetensors"),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_exit_status_and_json_result(nc, tmp_path):
    base = [sys.executable, "-m", "core", "--progress", "json"]
    bad = subprocess.run(
        [*base, "isb", str(nc["image"]), str(tmp_path / "x.tif"), "--max-clusters", "4",
         "--min-clusters", "5"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "MIN_CLUSTERS (5) is larger than MAX_CLUSTERS (4)" in bad.stdout
    good = subprocess.run(
        [*base, "wnet", str(nc["image"]), str(tmp_path / "w.tif"), "--max-iter", "2",
         "--max-clusters", "4", "--hidden", "4", "--threads", "1"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert good.returncode == 0, good.stdout + good.stderr
    result = [json.loads(line) for line in good.stdout.splitlines() if '"result"' in line][-1]
    assert result["outputs"]["N_CLUSTERS"] >= 1 and (tmp_path / "w.tif").exists()


def test_scribbles_give_a_class_map_in_their_values_names_and_colours(nc, tmp_path):
    from core.classes import read_raster_classes

    with rasterio.open(nc["image"]) as ds:
        transform, crs = ds.transform, ds.crs
    marks = np.zeros((1, 64, 64), np.uint8)
    marks[0, 10, 5:30] = 5
    marks[0, 50, 30:60] = 6
    raster = write_tif(tmp_path / "marks.tif", marks, crs=crs.to_wkt(), transform=transform)
    names = "5:forest:#1a9641,6:water:#2b83ba"
    for method, rule in (("dfc", "extra"), ("dfc", "merge"), ("isb", "extra")):
        result = _run(
            method,
            nc["image"],
            tmp_path / f"{method}-{rule}.tif",
            scribbles=str(raster),
            scribble_classes=names,
            unscribbled=rule,
            dst_class_map=str(tmp_path / f"{method}-{rule}-classes.tif"),
        )
        clusters, classes = _read(result["OUTPUT"]), _read(result["OUTPUT_CLASSES"])
        assert clusters.max() == result["N_CLUSTERS"]  # the cluster raster stays as it was
        for cluster in np.unique(clusters[clusters > 0]):
            assert len(np.unique(classes[clusters == cluster])) == 1  # clusters stay whole
        # Scribbled pixels mostly get their own class.
        assert (classes[10, 5:30] == 5).mean() > 0.5 and (classes[50, 30:60] == 6).mean() > 0.5
        table = {c["value"]: c for c in result["CLASS_MAP_CLASSES"]}
        assert table[5]["name"] == "forest" and table[6]["color"] == "#2b83ba"
        with rasterio.open(result["OUTPUT_CLASSES"]) as ds:
            assert [c.name for c in read_raster_classes(ds)][:2] == ["forest", "water"]
        assert Path(result["OUTPUT_CLASSES"]).with_suffix(".qml").exists()
        values = set(np.unique(classes)) - {0}
        if rule == "merge":
            assert values <= {5, 6}
        else:
            extra = {v for v in values if v > 6}
            assert all(table[v]["name"].startswith("unnamed") for v in extra)


def test_a_class_map_needs_scribbles(nc, tmp_path):
    with pytest.raises(EngineError, match="SCRIBBLES"):
        _run("dfc", nc["image"], tmp_path / "x.tif", dst_class_map=str(tmp_path / "c.tif"))
    with pytest.raises(EngineError, match="landseg:dfc or landseg:isb"):
        _run("wnet", nc["image"], tmp_path / "w.tif", scribbles=str(tmp_path / "s.tif"))
    assert not (tmp_path / "x.tif").exists() and not (tmp_path / "c.tif").exists()
