"""Tiled, streamed inference: same result as in memory, seam-free, bounded, atomic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasters import write_tif

from core import inference
from core.classes import parse_classes, read_raster_classes
from core.device import select_device
from core.inference import _forward_halving, _Strip, predict_raster
from core.protocol import EngineError, Reporter
from core.tiling import make_windows, split, stitch

ROOT = Path(__file__).resolve().parents[2]
NC_CANDIDATES = [
    ROOT / "data" / "nc-landsat7" / "landsat_multiband.tif",
    ROOT.parent / "shared" / "data" / "nc-landsat7" / "landsat_multiband.tif",
]
NC = next((p for p in NC_CANDIDATES if p.exists()), None)
needs_nc = pytest.mark.skipif(NC is None, reason="NC Landsat scene absent: run `make data`")


def small_net(bands: int, classes: int = 5, *, seed: int = 0) -> torch.nn.Module:
    """Three 3x3 convolutions: a receptive field of radius 3, well inside the overlap."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(bands, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, classes, 3, padding=1),
    )


def nc_image() -> tuple[np.ndarray, np.ndarray]:
    """The NC scene mirrored to 2 x 2 (886 x 978 px, several tiles), and its mean/std."""
    assert NC is not None
    with rasterio.open(NC) as src:
        image = src.read(out_dtype="float32")
    image = np.concatenate([image, image[:, ::-1]], axis=1)
    image = np.concatenate([image, image[:, :, ::-1]], axis=2)
    return image, np.stack([image.mean(axis=(1, 2)), image.std(axis=(1, 2))])


def reference(net: torch.nn.Module, image: np.ndarray, stats: np.ndarray, tile: int, overlap: int):
    """In-memory computation: every tile through the net, blended with the same weights."""
    x = (image - stats[0][:, None, None]) / stats[1][:, None, None]
    windows = make_windows(*x.shape[1:], tile_size=tile, overlap=overlap)
    with torch.inference_mode():
        probs = [
            torch.softmax(net(torch.from_numpy(t[None].astype(np.float32))), 1)[0].numpy()
            for t in split(x, windows, tile)
        ]
    return stitch(probs, windows, x.shape[1:], overlap=overlap)


@needs_nc
def test_streamed_equals_in_memory(tmp_path: Path) -> None:
    image, stats = nc_image()
    src = write_tif(tmp_path / "nc2x2.tif", image)
    net = small_net(image.shape[0])
    result = predict_raster(
        net,
        str(src),
        str(tmp_path / "labels.tif"),
        offsets=stats[0],
        scales=stats[1],
        precision="fp32",
        batch_size=3,
        dst_probabilities=str(tmp_path / "probs.tif"),
        dst_confidence=str(tmp_path / "conf.tif"),
        reporter=Reporter("text"),
    )
    expected = reference(net, image, stats, 256, 32)
    with rasterio.open(result["OUTPUT"]) as out:
        labels = out.read(1)
        assert out.profile["tiled"] and out.profile["compress"] == "deflate"
        assert out.dtypes[0] == "uint8" and out.nodata == 0
    with rasterio.open(result["OUTPUT_PROBABILITIES"]) as out:
        probs = out.read()
    with rasterio.open(result["OUTPUT_CONFIDENCE"]) as out:
        confidence = out.read(1)
    np.testing.assert_allclose(probs, expected, atol=2e-5)
    np.testing.assert_allclose(confidence, expected.max(axis=0), atol=2e-5)
    agree = np.mean(labels == expected.argmax(axis=0) + 1)
    assert agree > 0.9999
    assert result["TILES"] == len(make_windows(*image.shape[1:])) and result["SKIPPED_TILES"] == 0
    assert sum(result["COUNTS"].values()) == labels.size


@needs_nc
def test_shift_consistency(tmp_path: Path) -> None:
    """Labels do not depend on where the tile grid falls: shift the raster by 77 px."""
    image, stats = nc_image()
    net = small_net(image.shape[0], seed=3)
    shift = 77
    maps = []
    for name, array in (("a", image), ("b", image[:, shift:, shift:])):
        src = write_tif(tmp_path / f"{name}.tif", np.ascontiguousarray(array))
        out = tmp_path / f"{name}_labels.tif"
        predict_raster(net, str(src), str(out), offsets=stats[0], scales=stats[1])
        with rasterio.open(out) as ds:
            maps.append(ds.read(1))
    margin = 8  # away from the raster's own edges (the receptive field sees padding there)
    a = maps[0][shift + margin : -margin, shift + margin : -margin]
    b = maps[1][margin:-margin, margin:-margin]
    assert np.mean(a == b) >= 0.995


def test_nodata_windows_are_skipped_and_written_as_nodata(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(100, 20, (3, 300, 700)).astype(np.float32)
    image[:, :, :400] = -9999  # the left tiles are empty
    src = write_tif(tmp_path / "in.tif", image, nodata=-9999)
    classes = parse_classes("3:forest:#1b7837,7:water:#2166ac")
    result = predict_raster(
        small_net(3, 2),
        str(src),
        str(tmp_path / "out.tif"),
        offsets=[100] * 3,
        scales=[20] * 3,
        class_values=[3, 7],
        classes=classes,
    )
    assert result["SKIPPED_TILES"] >= 2
    with rasterio.open(result["OUTPUT"]) as out:
        labels = out.read(1)
        assert read_raster_classes(out) == classes
    assert np.all(labels[:, :400] == 0)
    assert set(np.unique(labels[:, 400:])) <= {3, 7} and np.all(labels[:, 400:] > 0)
    assert (tmp_path / "out.qml").exists()


def test_small_raster_is_padded(tmp_path: Path) -> None:
    src = write_tif(tmp_path / "tiny.tif", np.ones((2, 5, 7), np.float32), crs=None)
    result = predict_raster(small_net(2, 3), str(src), str(tmp_path / "out.tif"))
    with rasterio.open(result["OUTPUT"]) as out:
        assert out.shape == (5, 7) and out.crs is None
        assert np.all(out.read(1) > 0)


class Exploding(torch.nn.Module):
    """Fails on its second batch, like a cancelled or crashed run."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return self.conv(x)


def test_failed_run_leaves_nothing(tmp_path: Path) -> None:
    src = write_tif(tmp_path / "in.tif", np.ones((3, 600, 600), np.float32))
    with pytest.raises(KeyboardInterrupt):
        predict_raster(
            Exploding(),
            str(src),
            str(tmp_path / "out.tif"),
            class_values=[1, 2],
            batch_size=1,
            dst_confidence=str(tmp_path / "conf.tif"),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_bad_inputs(tmp_path: Path) -> None:
    src = write_tif(tmp_path / "in.tif", np.ones((3, 20, 20), np.float32))
    net = small_net(3, 2)
    with pytest.raises(EngineError, match="per band"):
        predict_raster(net, str(src), str(tmp_path / "o.tif"), offsets=[0, 0])
    with pytest.raises(EngineError, match="GeoTIFF"):
        predict_raster(net, str(src), str(tmp_path / "o.png"))
    (tmp_path / "exists.tif").write_bytes(b"")
    with pytest.raises(EngineError, match="already exists"):
        predict_raster(net, str(src), str(tmp_path / "exists.tif"))
    with pytest.raises(EngineError, match="Unknown device"):
        select_device("tpu")


def test_device_selection_on_this_machine() -> None:
    device, reason = select_device("auto")
    if torch.cuda.is_available():
        assert device.type == "cuda" and "CUDA" in reason
    else:
        assert device.type in ("cpu", "mps") and reason
        with pytest.raises(EngineError, match="no CUDA GPU"):
            select_device("cuda")
    assert select_device("cpu")[0].type == "cpu"


def test_out_of_memory_halves_the_batch() -> None:
    seen = []

    def forward(x: np.ndarray) -> np.ndarray:
        seen.append(len(x))
        if len(x) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return x * 2

    messages = []

    class Log(Reporter):
        def warning(self, message: str) -> None:
            messages.append(message)

    tiles = np.arange(8, dtype=np.float32).reshape(8, 1)
    out = _forward_halving(forward, tiles, Log("text"))
    np.testing.assert_array_equal(out, tiles * 2)
    assert seen[0] == 8 and max(seen[1:]) <= 4 and "halving" in messages[0]


def test_accumulator_does_not_grow_with_height() -> None:
    """The open-rows strip is one tile high, whatever the raster's height."""
    strip = _Strip(5, 256, 1000)
    assert strip.scores.shape == (5, 256, 1000) and strip.weight.shape == (256, 1000)
    assert inference.WRITE_ROWS == 256


def test_batchnorm_folding_keeps_the_function() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU()
    )
    net[1].running_mean.uniform_(-1, 1)
    net[1].running_var.uniform_(0.5, 2)
    net.eval()
    folded = inference.fold_batchnorm(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(2, 3, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=1e-5)
