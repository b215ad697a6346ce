"""U-Net generalisation options: normalisation modes, harmonisation, augmentation, TTA, holdout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasters import write_tif

from core.acquisition import image_statistics, raster_normalization
from core.augment import acquisition_jitter
from core.commands.unet import run_predictunet, run_trainunet
from core.harmonize import S2_BOA_OFFSET, detect_s2_offset, harmonize_image
from core.modelfile import read_metadata
from core.protocol import EngineError, Reporter
from core.training_data import holdout_pair
from core.tta import SymmetryAverage, symmetries

torch.set_num_threads(2)

FAST = {"encoder": "resnet18", "epochs": 2, "tile_size": 32, "batch_size": 4, "threads": 2}


def _scene(size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    classes = (np.arange(size) * 3 // size)[None, :].repeat(size, 0) + 1
    signature = np.array([[10, 50, 90], [80, 20, 40], [30, 70, 10]], dtype=np.float32)
    image = signature[classes - 1].transpose(2, 0, 1) + rng.normal(0, 3, (3, size, size))
    return image.astype(np.float32), classes.astype(np.uint8)


def _pair(tmp_path: Path, name: str, *, gain: float = 1.0, seed: int = 0) -> tuple[str, str]:
    image, classes = _scene(seed=seed)
    labels = np.where(np.random.default_rng(seed + 1).random(classes.shape) < 0.3, classes, 0)
    return (
        str(write_tif(tmp_path / f"{name}.tif", image * np.float32(gain))),
        str(write_tif(tmp_path / f"{name}-lab.tif", labels[None].astype(np.uint8))),
    )


# --- normalisation modes --------------------------------------------------------------


def test_image_statistics_remove_a_per_band_gain_and_offset():
    rng = np.random.default_rng(0)
    image = rng.gamma(2.0, 30.0, (4, 50, 60)).astype(np.float32)
    valid = np.ones((50, 60), bool)
    valid[:5] = False
    gain = np.array([0.85, 1.0, 1.1, 1.15], np.float32)[:, None, None]
    offset = np.array([5, -3, 0, 12], np.float32)[:, None, None]
    shifted = image * gain + offset
    for mode in ("image", "percentile"):
        off1, scl1 = image_statistics(image, valid, mode=mode)
        off2, scl2 = image_statistics(shifted, valid, mode=mode)
        a = (image - off1[:, None, None]) / scl1[:, None, None]
        b = (shifted - off2[:, None, None]) / scl2[:, None, None]
        np.testing.assert_allclose(a[:, valid], b[:, valid], atol=2e-3)
    off, scl = image_statistics(image, valid, mode="image")
    z = (image[:, valid] - off[:, None]) / scl[:, None]
    np.testing.assert_allclose(z.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=1), 1, atol=1e-4)
    with pytest.raises(ValueError, match="Unknown"):
        image_statistics(image, valid, mode="training")


def test_raster_normalization_modes_and_old_model_files(tmp_path):
    image, _ = _scene()
    path = str(write_tif(tmp_path / "x.tif", image))
    old = {"normalization": {"method": "standardize", "offsets": [1, 2, 3], "scales": [4, 5, 6]}}
    assert raster_normalization(old, path, [1, 2, 3]) == ([1, 2, 3], [4, 5, 6])
    new = {"normalization": {**old["normalization"], "mode": "image", "harmonize": True}}
    offsets, scales = raster_normalization(new, path, [1, 2, 3])
    np.testing.assert_allclose(offsets, image.reshape(3, -1).mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(scales, image.reshape(3, -1).std(axis=1), rtol=1e-4)
    with pytest.raises(ValueError, match="unknown"):
        raster_normalization({"normalization": {"mode": "future"}}, path, [1, 2, 3])


# --- Sentinel-2 harmonisation ---------------------------------------------------------


def test_harmonisation_detected_from_metadata():
    offset, why = detect_s2_offset(band_tags=[{"BOA_ADD_OFFSET": "-1000"}])
    assert offset == S2_BOA_OFFSET and "BOA_ADD_OFFSET" in why
    tags = {"PROCESSING_BASELINE": "04.00", "PRODUCT_TYPE": "S2MSI2A"}
    assert detect_s2_offset(tags=tags)[0] == S2_BOA_OFFSET
    assert detect_s2_offset(tags={**tags, "PROCESSING_BASELINE": "03.01"})[0] == 0
    assert detect_s2_offset(tags={"BOA_ADD_OFFSET_B2": "0"})[0] == 0
    assert detect_s2_offset(tags={"PROCESSING_BASELINE": "05.09"})[0] == 0  # not L2A


def test_harmonisation_detected_from_values():
    rng = np.random.default_rng(0)
    before = rng.gamma(2.0, 600.0, (4, 80, 80)) + rng.uniform(20, 200, (4, 1, 1))
    before = before.astype(np.float32)
    after = before + S2_BOA_OFFSET
    valid = np.ones((80, 80), bool)
    assert detect_s2_offset(image=before, valid=valid, dtype="uint16")[0] == 0
    offset, why = detect_s2_offset(image=after, valid=valid, dtype="uint16")
    assert offset == S2_BOA_OFFSET and "darkest" in why
    assert detect_s2_offset(image=after, valid=valid, dtype="float32")[0] == 0
    landsat_c2 = before + 7273  # Collection 2 surface reflectance DNs: never 1000-1600
    assert detect_s2_offset(image=landsat_c2, valid=valid, dtype="uint16")[0] == 0
    harmonize_image(after, valid, offset)
    np.testing.assert_allclose(after, before, rtol=1e-5)


def test_training_and_prediction_harmonise_a_baseline_04_scene(tmp_path):
    rng = np.random.default_rng(0)
    image, classes = _scene()
    old = (image * 20 + rng.uniform(100, 300, (3, 1, 1))).astype(np.uint16)
    new = (old + 1000).astype(np.uint16)
    labels = np.where(rng.random(classes.shape) < 0.3, classes, 0)[None].astype(np.uint8)
    old_path = write_tif(tmp_path / "old.tif", old)
    new_path = write_tif(tmp_path / "new.tif", new)
    with rasterio.open(new_path, "r+") as dst:
        for band in (1, 2, 3):
            dst.update_tags(band, BOA_ADD_OFFSET="-1000")
    lab = write_tif(tmp_path / "lab.tif", labels)
    model = tmp_path / "m.safetensors"
    run_trainunet(
        inputs=[str(old_path)], labels=[str(lab)], ignore_value=0, dst_model=str(model),
        reporter=Reporter("text"), **FAST,
    )  # fmt: skip
    meta = read_metadata(model)
    assert meta["normalization"]["harmonize"] is True
    off_old, _ = raster_normalization(meta, str(old_path), [1, 2, 3])
    off_new, _ = raster_normalization(meta, str(new_path), [1, 2, 3])
    np.testing.assert_allclose(np.array(off_new) - np.array(off_old), 1000, rtol=1e-6)
    for src in (old_path, new_path):
        run_predictunet(
            src=str(src), model=str(model), dst=str(tmp_path / f"p-{src.stem}.tif"),
            reporter=Reporter("text"), threads=2,
        )  # fmt: skip
    with rasterio.open(tmp_path / "p-old.tif") as a, rasterio.open(tmp_path / "p-new.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())


# --- acquisition augmentation ---------------------------------------------------------


def test_acquisition_jitter_is_seeded_and_changes_values():
    x = torch.randn(4, 3, 32, 32)
    a = acquisition_jitter(x, torch.Generator().manual_seed(3))
    b = acquisition_jitter(x, torch.Generator().manual_seed(3))
    c = acquisition_jitter(x, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == x.shape and not torch.allclose(a, x)
    off = acquisition_jitter(x, torch.Generator(), gain=0, offset=0, brightness=0, blur=0, noise=0)
    torch.testing.assert_close(off, x)
    blurred = acquisition_jitter(
        x, torch.Generator().manual_seed(0), gain=0, offset=0, brightness=0, blur=1, noise=0
    )
    assert blurred.std() < x.std()  # a low-pass filter


# --- test-time augmentation -----------------------------------------------------------


class _Symmetric(torch.nn.Module):
    """A network whose output commutes with every flip and rotation (1x1 conv, 3x3 mean)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(self.conv(x), 3, 1, 1, count_include_pad=False)


def test_tta_leaves_a_symmetric_network_unchanged_and_averages_others():
    assert len(symmetries(True)) == 8 and len(symmetries(False)) == 4
    x = torch.randn(2, 3, 32, 32)
    net = _Symmetric().eval()
    with torch.no_grad():
        plain = torch.softmax(net(x), 1)
        tta = torch.softmax(SymmetryAverage(net)(x), 1)
        torch.testing.assert_close(tta, plain, atol=1e-5, rtol=1e-4)
        # Any network under TTA is equivariant: rotating the input rotates the output.
        other = torch.nn.Conv2d(3, 4, 3, padding=1).eval()
        wrapped = SymmetryAverage(other)
        turned = wrapped(torch.rot90(x, 1, (-2, -1)))
        torch.testing.assert_close(turned, torch.rot90(wrapped(x), 1, (-2, -1)), atol=1e-5, rtol=0)
        rect = torch.randn(1, 3, 32, 64)
        assert wrapped(rect).shape == (1, 4, 32, 64)


def test_predict_with_tta(tmp_path):
    image, label = _pair(tmp_path, "a")
    model = tmp_path / "m.safetensors"
    run_trainunet(
        inputs=[image], labels=[label], ignore_value=0, dst_model=str(model),
        reporter=Reporter("text"), **FAST,
    )  # fmt: skip
    out = run_predictunet(
        src=image, model=str(model), dst=str(tmp_path / "p.tif"), tta=True,
        reporter=Reporter("text"), threads=2,
    )  # fmt: skip
    assert sum(out["COUNTS"].values()) == 64 * 64


# --- whole-image holdout ----------------------------------------------------------------


def test_holdout_pair_moves_one_image_to_validation():
    report = Reporter("text")
    pairs = [("a.tif", "la.tif"), ("b.tif", "lb.tif"), ("c.tif", "lc.tif")]
    train, val = holdout_pair(pairs, [], 2, report)
    assert train == [pairs[0], pairs[2]] and val == [pairs[1]]
    with pytest.raises(EngineError, match="HOLDOUT_IMAGE"):
        holdout_pair(pairs, [], 4, report)
    with pytest.raises(EngineError, match="HOLDOUT_IMAGE"):
        holdout_pair(pairs[:1], [], 1, report)
    with pytest.raises(EngineError, match="only one"):
        holdout_pair(pairs, [("v.tif", "lv.tif")], 1, report)


def test_training_with_a_held_out_image_reports_it(tmp_path):
    first = _pair(tmp_path, "a", seed=0)
    second = _pair(tmp_path, "b", gain=1.1, seed=5)
    model, report = tmp_path / "m.safetensors", tmp_path / "r.html"
    out = run_trainunet(
        inputs=[first[0], second[0]], labels=[first[1], second[1]], ignore_value=0,
        holdout_image=2, normalization="image", acquisition_augment=True,
        dst_model=str(model), dst_report=str(report), reporter=Reporter("text"), **FAST,
    )  # fmt: skip
    assert out["VAL_OA"] is not None and 0 <= out["VAL_OA"] <= 1
    meta = read_metadata(model)
    training = meta["training"]
    assert training["validation_images"] == ["b.tif"]
    assert training["inputs"] == ["a.tif"]
    assert meta["normalization"]["mode"] == "image"
    assert training["acquisition_augment"] is True
    text = report.read_text()
    assert "Held-out image" in text and "b.tif" in text
    assert json.dumps(meta)
