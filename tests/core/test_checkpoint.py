"""Resumable U-Net training (``--checkpoint``): an interrupted run ends as an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from core.cli import build_parser
from core.networks import build_unet
from core.protocol import Reporter
from core.training import Scene, TrainingResult, split_blocks, train_network

torch.set_num_threads(2)


class _Interrupted(Exception):
    pass


def _scenes() -> list[Scene]:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(3, 64, 64)).astype(np.float32)
    targets = (image[0] > 0).astype(np.int64) + (image[1] > 0.5).astype(np.int64)
    scenes = [Scene(image, targets, np.ones((64, 64), bool), "a")]
    split_blocks(scenes, block=32, fraction=0.25, seed=0)
    return scenes


def _train(
    checkpoint: Path | None = None, *, stop_after: int | None = None, epochs: int = 4, **options
) -> TrainingResult:
    torch.manual_seed(0)
    network = build_unet(encoder="resnet18", in_channels=3, classes=3)

    def on_epoch(entry: dict[str, float]) -> None:
        if stop_after is not None and entry["epoch"] > stop_after:
            raise _Interrupted  # as a killed process, before the epoch is saved

    return train_network(
        network, _scenes(), n_classes=3, tile_size=32, epochs=epochs, batch_size=4,
        patience=0, weight_averaging="ema", acquisition_augment=True, seed=3,
        reporter=Reporter.quiet(), on_epoch=on_epoch, checkpoint=checkpoint, **options,
    )  # fmt: skip


def test_a_resumed_training_ends_with_the_uninterrupted_model(tmp_path):
    whole = _train()
    path = tmp_path / "run.ckpt"
    with pytest.raises(_Interrupted):
        _train(path, stop_after=2)
    with safe_open(str(path), framework="pt") as handle:
        document = json.loads(handle.metadata()["landseg"])
    assert document["progress"]["epoch"] == 2
    resumed = _train(path)
    assert not path.exists()  # removed when training ends
    assert [e["loss"] for e in resumed.history] == [e["loss"] for e in whole.history]
    assert [e["val_miou"] for e in resumed.history] == [e["val_miou"] for e in whole.history]
    assert resumed.best_epoch == whole.best_epoch
    assert resumed.state_dict.keys() == whole.state_dict.keys()
    for key, value in whole.state_dict.items():
        assert torch.equal(resumed.state_dict[key], value), key
    np.testing.assert_array_equal(resumed.confusion, whole.confusion)


def test_a_checkpoint_of_other_settings_is_refused_with_the_difference(tmp_path):
    path = tmp_path / "run.ckpt"
    with pytest.raises(_Interrupted):
        _train(path, stop_after=1)
    changed = r"other settings or data \(epochs: 4 then, 5 now\).*delete it"
    with pytest.raises(ValueError, match=changed):
        _train(path, epochs=5)
    torch.manual_seed(0)
    other = build_unet(encoder="resnet18", in_channels=4, classes=3)  # another band count
    with pytest.raises(ValueError, match=r"written for another network.*same encoder, bands"):
        train_network(
            other, [Scene(np.concatenate([s.image, s.image[:1]]), s.targets, s.train, s.name)
                    for s in _scenes()],
            n_classes=3, tile_size=32, epochs=4, batch_size=4, patience=0,
            weight_averaging="ema", acquisition_augment=True, seed=3,
            reporter=Reporter.quiet(), checkpoint=path,
        )  # fmt: skip
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(Exception):  # noqa: B017 - safetensors' own error for a garbled file
        _train(path)


def test_the_cli_takes_a_checkpoint_path():
    args = build_parser().parse_args(
        ["trainunet", "model.safetensors", "--input", "a.tif", "--labels", "b.tif",
         "--checkpoint", "run.ckpt"]
    )  # fmt: skip
    assert args.checkpoint == "run.ckpt"
