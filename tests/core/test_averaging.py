"""U-Net weight averaging (``WEIGHT_AVERAGING``, ``--weight-averaging``): an EMA of the weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.averaging import check_weight_averaging, weight_average
from core.cli import build_parser
from core.commands.unet import run_trainunet
from core.modelfile import load_model
from core.params import EMA_DECAY, TRAIN_DEFAULTS, WEIGHT_AVERAGING_MODES
from core.protocol import EngineError, Reporter
from core.training import Scene, split_blocks, train_network

torch.set_num_threads(2)


def _scenes() -> list[Scene]:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(3, 64, 64)).astype(np.float32)
    targets = (image[0] > 0).astype(np.int64)
    scenes = [Scene(image, targets, np.ones((64, 64), bool), "a")]
    split_blocks(scenes, block=32, fraction=0.25, seed=0)
    return scenes


def _train(mode: str, *, seed: int = 1) -> tuple[dict[str, torch.Tensor], torch.nn.Module]:
    from core.networks import build_unet

    torch.manual_seed(0)
    network = build_unet(encoder="resnet18", in_channels=3, classes=2)
    result = train_network(
        network, _scenes(), n_classes=2, tile_size=32, epochs=3, batch_size=4, patience=0,
        weight_averaging=mode, seed=seed, reporter=Reporter.quiet(),
    )  # fmt: skip
    assert result.best_epoch == 3  # without early stopping: the last epoch's weights
    return result.state_dict, network


def test_ema_follows_the_weights_with_a_warm_up():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1), torch.nn.BatchNorm2d(1))
    averaged = weight_average(net, "ema")
    assert averaged is not None and weight_average(net, "none") is None
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[1].running_mean.fill_(4.0)
    averaged.update_parameters(net)  # the first update copies
    assert float(averaged.module[0].weight.detach()) == 1.0
    assert float(averaged.module[1].running_mean.detach()) == 4.0  # buffers are averaged too
    with torch.no_grad():
        net[0].weight.fill_(3.0)
    averaged.update_parameters(net)  # decay (1 + 1) / (10 + 1) after one update
    decay = 2 / 11
    assert float(averaged.module[0].weight.detach()) == pytest.approx(decay * 1 + (1 - decay) * 3)
    for _ in range(2000):  # the decay is capped at EMA_DECAY
        averaged.update_parameters(net)
    assert float(averaged.module[0].weight.detach()) == pytest.approx(3.0)
    assert float(net[0].weight.detach()) == 3.0  # the trained network is left alone


def test_bad_weight_averaging_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"Unknown weight averaging 'swa'.*none, ema"):
        check_weight_averaging("swa")
    with pytest.raises(ValueError, match="between 0 and 1"):
        check_weight_averaging("ema", decay=1.0)
    with pytest.raises(ValueError, match="Unknown weight averaging"):
        _train("average")
    assert EMA_DECAY == 0.99 and set(WEIGHT_AVERAGING_MODES) == {"none", "ema"}


def test_training_keeps_the_averaged_weights_reproducibly():
    raw, _ = _train("none")
    ema, network = _train("ema")
    again, _ = _train("ema")
    assert raw.keys() == ema.keys()
    for key in ema:
        torch.testing.assert_close(ema[key], again[key], rtol=0, atol=0)  # same seed, same model
    weights = [k for k in ema if k.endswith(".weight")]
    assert any(not torch.equal(ema[k], raw[k]) for k in weights)  # averaged, not the last step
    trained = network.state_dict()
    assert any(not torch.equal(ema[k], trained[k].cpu()) for k in weights)
    # BatchNorm statistics are averaged with the weights, not copied from the last step
    stats = [k for k in ema if k.endswith("running_var")]
    assert stats and any(not torch.equal(ema[k], trained[k].cpu()) for k in stats)
    other, _ = _train("ema", seed=2)
    assert any(not torch.equal(ema[k], other[k]) for k in weights)


def test_trainunet_records_the_averaging_and_refuses_unknown_modes(tmp_path):
    from rasters import write_tif

    rng = np.random.default_rng(3)
    image = rng.normal(size=(3, 64, 64)).astype(np.float32)
    labels = np.where(rng.random((64, 64)) < 0.3, (image[0] > 0) + 1, 0).astype(np.uint8)
    src = str(write_tif(tmp_path / "a.tif", image))
    lab = str(write_tif(tmp_path / "l.tif", labels[None]))
    model = tmp_path / "m.safetensors"
    fast = {"epochs": 2, "tile_size": 32, "batch_size": 4, "threads": 2, "ignore_value": 0}
    with pytest.raises(EngineError, match="WEIGHT_AVERAGING"):
        run_trainunet(inputs=[src], labels=[lab], dst_model=str(model),
                      weight_averaging="swa", reporter=Reporter.quiet(), **fast)  # fmt: skip
    assert not model.exists()
    run_trainunet(inputs=[src], labels=[lab], dst_model=str(model), weight_averaging="ema",
                  reporter=Reporter.quiet(), **fast)  # fmt: skip
    state, meta = load_model(str(model))
    assert meta["training"]["weight_averaging"] == "ema"
    assert not any(k.startswith("module.") or k == "n_averaged" for k in state)  # one network


def test_cli_weight_averaging_flag():
    parser = build_parser()
    args = parser.parse_args(["trainunet", "m.safetensors", "--weight-averaging", "ema"])
    assert args.weight_averaging == "ema"
    default = parser.parse_args(["trainunet", "m.safetensors"]).weight_averaging
    assert default == TRAIN_DEFAULTS["weight_averaging"]
    with pytest.raises(SystemExit):
        parser.parse_args(["trainunet", "m.safetensors", "--weight-averaging", "swa"])
