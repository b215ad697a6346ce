"""Supervised U-Net: training engine, labels, model files and their safety."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasters import write_tif

from core.augment import augment_batch
from core.classes import ClassInfo, write_raster_classes
from core.commands.unet import run_predictunet, run_trainunet
from core.labels import IGNORED, rasterize_labels, read_labels
from core.modelfile import load_model, read_metadata
from core.networks import build_network, build_unet, load_encoder_weights
from core.params import TRAIN_DEFAULTS
from core.protocol import EngineError, Reporter
from core.training import Scene, class_weights, confusion_scores, split_blocks
from core.training_data import tile_folder_pairs

torch.set_num_threads(2)

FAST = {"encoder": "resnet18", "epochs": 2, "tile_size": 32, "batch_size": 4, "threads": 2}


def _scene(size: int = 64, bands: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes in vertical stripes, each with its own band signature, plus noise."""
    rng = np.random.default_rng(seed)
    classes = np.repeat(np.arange(size) * 3 // size, 1)[None, :].repeat(size, 0) + 1
    signature = np.array([[10, 50, 90], [80, 20, 40], [30, 70, 10]], dtype=np.float32)[:, :bands]
    image = signature[classes - 1].transpose(2, 0, 1) + rng.normal(0, 3, (bands, size, size))
    return image.astype(np.float32), classes.astype(np.uint8)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    image, classes = _scene()
    labels = np.where(np.random.default_rng(1).random(classes.shape) < 0.3, classes, 0)
    return (
        write_tif(tmp_path / "img.tif", image),
        write_tif(tmp_path / "lab.tif", labels[None].astype(np.uint8), nodata=None),
    )


def _train(pair: tuple[Path, Path], tmp_path: Path, name: str = "m", **kwargs) -> dict:
    options = {"ignore_value": 0, **FAST, **kwargs}
    return run_trainunet(
        inputs=[str(pair[0])],
        labels=[str(pair[1])],
        dst_model=str(tmp_path / f"{name}.safetensors"),
        reporter=Reporter("text"),
        **options,
    )


def test_train_writes_a_self_describing_model(pair, tmp_path):
    result = _train(
        pair,
        tmp_path,
        classes="1:forest:#1b7837,2:water:#2166ac,3:urban",
        dst_report=str(tmp_path / "r.html"),
    )
    meta = read_metadata(result["OUTPUT_MODEL"])
    assert meta["architecture"] == "unet"
    assert meta["architecture_args"] == {"encoder": "resnet18", "in_channels": 3, "classes": 3}
    assert meta["bands"]["count"] == 3 and len(meta["bands"]["names"]) == 3
    assert len(meta["normalization"]["offsets"]) == 3 and min(meta["normalization"]["scales"]) > 0
    assert [c["name"] for c in meta["classes"]] == ["forest", "water", "urban"]
    assert meta["classes"][0]["color"] == "#1b7837"
    assert meta["ignore_value"] == 0 and meta["training"]["tile_size"] == 32
    assert meta["tile_size"] == 256 and meta["overlap"] == 64
    assert meta["landseg_version"] and meta["training"]["epochs_run"] == 2
    assert len(meta["training"]["history"]) == 2 and "loss" in meta["training"]["history"][0]
    # Rebuilds and loads without pickle.
    state, meta = load_model(result["OUTPUT_MODEL"])
    build_network(meta).load_state_dict(state)
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") >= 1 and "forest" in page
    assert result["CLASSES"][1]["name"] == "water"


def test_training_learns_and_is_reproducible(pair, tmp_path):
    first = _train(pair, tmp_path, "a", epochs=6, patience=0)
    second = _train(pair, tmp_path, "b", epochs=6, patience=0)
    a, _ = load_model(first["OUTPUT_MODEL"])
    b, _ = load_model(second["OUTPUT_MODEL"])
    assert all(torch.equal(a[k], b[k]) for k in a)
    history = read_metadata(first["OUTPUT_MODEL"])["training"]["history"]
    assert history[-1]["loss"] < history[0]["loss"]


def test_class_table_from_label_colour_table(pair, tmp_path):
    with rasterio.open(pair[1], "r+") as dst:
        write_raster_classes(
            dst,
            [
                ClassInfo(1, "a", "#ff0000"),
                ClassInfo(2, "b", "#00ff00"),
                ClassInfo(3, "c", "#0000ff"),
            ],
        )
    meta = read_metadata(_train(pair, tmp_path, epochs=1)["OUTPUT_MODEL"])
    assert [(c["name"], c["color"]) for c in meta["classes"]] == [
        ("a", "#ff0000"),
        ("b", "#00ff00"),
        ("c", "#0000ff"),
    ]


def test_label_values_outside_classes_are_refused(pair, tmp_path):
    with pytest.raises(EngineError, match="Label values 3 are not in CLASSES"):
        _train(pair, tmp_path, classes="1:forest,2:water")
    assert not (tmp_path / "m.safetensors").exists()


def test_all_ignored_labels_are_refused(pair, tmp_path):
    empty = write_tif(tmp_path / "empty.tif", np.zeros((1, 64, 64), np.uint8))
    with pytest.raises(EngineError, match="nothing to train on"):
        _train((pair[0], empty), tmp_path)


def test_band_count_mismatch_between_inputs(pair, tmp_path):
    image, _ = _scene(bands=2)
    other = write_tif(tmp_path / "two.tif", image)
    with pytest.raises(EngineError, match="same band layout"):
        run_trainunet(
            inputs=[str(pair[0]), str(other)],
            labels=[str(pair[1]), str(pair[1])],
            ignore_value=0,
            dst_model=str(tmp_path / "x.safetensors"),
            **FAST,
        )


def test_class_zero_needs_ignore_value(pair, tmp_path):
    with pytest.raises(EngineError, match="reserved for nodata"):
        _train(pair, tmp_path, ignore_value=None)


def test_labels_on_another_crs_are_resampled_with_a_warning(pair, tmp_path):
    with rasterio.open(pair[1]) as src:
        labels = src.read()
    # The same labels declared in another CRS at the same coordinates (as NC's EPSG:3358 labels).
    moved = write_tif(tmp_path / "crs.tif", labels, crs="EPSG:3358")
    image = rasterio.open(pair[0])
    messages = []

    class Capture(Reporter):
        def warning(self, message: str) -> None:
            messages.append(message)

    values, _ = read_labels(str(moved), image, ignore_value=0, reporter=Capture("text"))
    image.close()
    assert any("another CRS" in m for m in messages)
    assert (values >= 1).sum() > 0.8 * (labels > 0).sum()


def test_labels_far_from_the_image_leave_nothing(pair, tmp_path):
    with rasterio.open(pair[1]) as src:
        labels = src.read()
    far = write_tif(
        tmp_path / "far.tif", labels, transform=rasterio.transform.from_origin(0, 0, 30, 30)
    )
    with pytest.raises(EngineError, match="nothing to train on"):
        _train((pair[0], far), tmp_path)


def test_ungeoreferenced_labels_of_another_size_are_refused(tmp_path):
    image, classes = _scene()
    img = write_tif(tmp_path / "i.tif", image, crs=None)
    lab = write_tif(tmp_path / "l.tif", classes[None, :32, :32], crs=None)
    with rasterio.open(img) as src, pytest.raises(EngineError, match="no georeferencing"):
        read_labels(str(lab), src, ignore_value=0)


def test_polygon_labels_with_class_names(pair, tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    frame = gpd.GeoDataFrame(
        {"kind": ["water", "forest"]},
        geometry=[box(630000, 227000, 630300, 227400), box(630900, 227000, 631200, 227400)],
        crs="EPSG:32119",
    )
    frame.to_file(tmp_path / "p.gpkg")
    with rasterio.open(pair[0]) as src:
        labels, classes = rasterize_labels(str(tmp_path / "p.gpkg"), "kind", src)
    assert [c.name for c in classes] == ["forest", "water"]
    assert set(np.unique(labels)) == {IGNORED, 1, 2}


def test_split_blocks_is_spatial_and_keeps_training_data():
    targets = np.zeros((64, 64), np.int64)
    scene = Scene(np.zeros((1, 64, 64), np.float32), targets, np.ones((64, 64), bool))
    n_train, n_val = split_blocks([scene], block=16, fraction=0.25, seed=0)
    assert (n_train, n_val) == (12, 4)
    val = ~scene.train
    # Validation pixels form whole 16x16 blocks.
    blocks = val.reshape(4, 16, 4, 16).transpose(0, 2, 1, 3).reshape(16, -1)
    assert set(blocks.all(axis=1)) | set(blocks.any(axis=1)) == {True, False}
    assert np.array_equal(blocks.all(axis=1), blocks.any(axis=1))


def test_class_weights_and_scores():
    weights = class_weights(np.array([900, 100, 0]))
    assert weights[2] == 0 and weights[1] > weights[0] and weights[:2].mean() == pytest.approx(1)
    scores = confusion_scores(np.array([[5, 5], [0, 10]]))
    assert scores["oa"] == pytest.approx(0.75)
    assert scores["miou"] == pytest.approx((5 / 10 + 10 / 15) / 2)


def test_augmentation_moves_image_and_labels_together():
    labels = torch.arange(16 * 16).reshape(1, 16, 16).repeat(8, 1, 1)
    image = labels[:, None].float()
    gen = torch.Generator().manual_seed(0)
    x, y = augment_batch(image, labels, gen, gain=0, offset=0)
    assert torch.equal(x[:, 0].long(), y)
    assert len({tuple(t.flatten()[:3].tolist()) for t in y}) > 1  # not all identical


def test_encoder_weights_from_a_safe_file(tmp_path):
    from safetensors.torch import save_file

    source = build_unet(encoder="resnet18", in_channels=3, classes=2)
    save_file(
        {k: v.contiguous() for k, v in source.encoder.state_dict().items()},
        str(tmp_path / "enc.safetensors"),
    )
    target = build_unet(encoder="resnet18", in_channels=5, classes=2)
    skipped = load_encoder_weights(target, tmp_path / "enc.safetensors")
    assert skipped == ["conv1.weight"]  # 3 vs 5 bands
    assert torch.equal(target.encoder.layer1[0].conv1.weight, source.encoder.layer1[0].conv1.weight)


class _Exploit:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(pair, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"state_dict": _Exploit(marker)}))
    zipped = tmp_path / "evil_zip.safetensors"
    torch.save({"x": _Exploit(marker)}, zipped)
    for path in (evil, zipped):
        with pytest.raises(EngineError, match="pickle"):
            run_predictunet(src=str(pair[0]), model=str(path), dst=str(tmp_path / "o.tif"))
    # As encoder weights, torch.load(weights_only=True) refuses it.
    with pytest.raises(EngineError, match="safely"):
        load_encoder_weights(build_unet(encoder="resnet18", in_channels=3, classes=2), zipped)
    assert not marker.exists()
    assert not (tmp_path / "o.tif").exists()


def test_corrupt_model_and_band_mismatch(pair, tmp_path):
    model = Path(_train(pair, tmp_path, epochs=1)["OUTPUT_MODEL"])
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(EngineError, match="corrupt"):
        run_predictunet(src=str(pair[0]), model=str(broken), dst=str(tmp_path / "o.tif"))
    image, _ = _scene(bands=2)
    two = write_tif(tmp_path / "two.tif", image)
    with pytest.raises(EngineError, match="trained on 3 bands"):
        run_predictunet(src=str(two), model=str(model), dst=str(tmp_path / "o.tif"))


def test_tile_folder_pairs(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split / "s2").mkdir(parents=True)
        (tmp_path / split / "lc").mkdir()
        for i in (1, 2):
            (tmp_path / split / "s2" / f"s2_{i}0.tif").write_bytes(b"")
            (tmp_path / split / "lc" / f"lc_{i}0.tif").write_bytes(b"")
    pairs = tile_folder_pairs(tmp_path)
    assert sorted(pairs) == ["train", "val"]
    assert [Path(p).name for p in pairs["train"][1]] == ["s2_20.tif", "lc_20.tif"]


def test_defaults_are_the_engine_signature():
    import inspect

    signature = inspect.signature(run_trainunet).parameters
    for key, value in TRAIN_DEFAULTS.items():
        assert signature[key].default == value, key
    assert json.dumps(TRAIN_DEFAULTS)


def test_tile_folder_training(tmp_path):
    for split, seeds in (("train", (0, 1)), ("val", (2,))):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "labels").mkdir()
        for seed in seeds:
            image, classes = _scene(seed=seed)
            write_tif(tmp_path / split / "images" / f"t{seed}.tif", image, crs=None)
            write_tif(tmp_path / split / "labels" / f"t{seed}.tif", classes[None], crs=None)
    result = run_trainunet(
        tile_folder=str(tmp_path),
        dst_model=str(tmp_path / "m.safetensors"),
        **{**FAST, "epochs": 1},
    )
    meta = read_metadata(result["OUTPUT_MODEL"])
    assert meta["training"]["validation"] == "separate rasters"
    assert meta["training"]["val_oa"] is not None
    assert [c["value"] for c in meta["classes"]] == [1, 2, 3]


def test_predict_writes_classes_confidence_and_polygons(pair, tmp_path):
    model = _train(pair, tmp_path, epochs=2, classes="1:forest:#1b7837,2:water:#2166ac,3:urban")
    out = tmp_path / "classes.tif"
    result = run_predictunet(
        src=str(pair[0]),
        model=model["OUTPUT_MODEL"],
        dst=str(out),
        dst_confidence=str(tmp_path / "conf.tif"),
        dst_polygons=str(tmp_path / "classes.gpkg"),
        threads=2,
    )
    assert [c["name"] for c in result["CLASSES"]] == ["forest", "water", "urban"]
    with rasterio.open(out) as src:
        values = src.read(1)
        assert json.loads(src.tags()["LANDSEG_CLASSES"])[0]["name"] == "forest"
        assert src.colormap(1)[1][:3] == (0x1B, 0x78, 0x37)
    assert set(np.unique(values)) <= {1, 2, 3}
    assert out.with_suffix(".qml").exists()
    with rasterio.open(tmp_path / "conf.tif") as src:
        confidence = src.read(1)
    assert 0.3 <= confidence.min() and confidence.max() <= 1.0001
    assert Path(result["OUTPUT_POLYGONS"]).exists()
