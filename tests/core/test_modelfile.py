"""Model files: safetensors weights plus a JSON description, never pickle."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch

from core.modelfile import FORMAT_VERSION, load_model, read_metadata, save_model
from core.protocol import EngineError

MARKER = "landseg-test-pickle-code-ran"


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4))


def test_round_trip(tmp_path: Path) -> None:
    net = _net()
    path = tmp_path / "m.safetensors"
    save_model(path, net.state_dict(), {"architecture": "test", "classes": [1, 2]})
    state, meta = load_model(path)
    assert meta["architecture"] == "test" and meta["format_version"] == FORMAT_VERSION
    assert read_metadata(path) == meta
    for name, tensor in net.state_dict().items():
        assert torch.equal(state[name], tensor)


def test_metadata_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not plain JSON"):
        save_model(tmp_path / "m.safetensors", _net().state_dict(), {"x": float("nan")})


class _Exploit:
    """Unpickling this object would print the marker: proof that code ran."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, (MARKER,))


@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_pickle_checkpoints_are_refused(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evil.pt"
    if kind == "torch":
        torch.save({"weights": _Exploit()}, path)
    else:
        path.write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(EngineError, match="pickle"):
        load_model(path)
    assert MARKER not in capsys.readouterr().out


def test_corrupt_and_foreign_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(EngineError, match="truncated"):
        read_metadata(empty)
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(EngineError, match="corrupt"):
        read_metadata(huge)
    header = json.dumps({"__metadata__": {"other": "x"}}).encode()
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(EngineError, match="without a LandSeg model description"):
        read_metadata(foreign)
    with pytest.raises(EngineError, match="does not exist"):
        read_metadata(tmp_path / "missing.safetensors")


def test_truncated_weights(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_model(path, _net().state_dict(), {"architecture": "test"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 16])
    with pytest.raises(EngineError, match="corrupt"):
        load_model(path)


def test_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_model(path, _net().state_dict(), {"format_version": FORMAT_VERSION + 1})
    with pytest.raises(EngineError, match="newer LandSeg"):
        read_metadata(path)
