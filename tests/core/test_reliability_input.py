"""Reliability sweep: damaged or unusable input (docs/reliability.md, "Input").

A truncated, garbled or empty raster is the user's file, not LandSeg's bug: every
command says which file cannot be read and what to do, exits with status 2 and writes
nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rasters import write_tif
from sweep import COMMANDS, command, error_of, leftovers, make_scene, run, train_model

from core.cli import environment_error


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return train_model(tmp_path_factory.mktemp("model"))


@pytest.fixture
def scene(tmp_path, model):
    return make_scene(tmp_path / "in", model=model)


def truncated(scene, folder: Path) -> Path:
    """The image cut after its header: GDAL opens it, reading its pixels fails."""
    path = folder / "truncated.tif"
    # strips, uncompressed: the header comes first, the pixels after it
    big = write_tif(folder / "whole.tif", np.ones((3, 256, 256), np.float32) * 7)
    path.write_bytes(big.read_bytes()[:10240])
    big.unlink()
    return path


def assert_refused(rc, events, name: str, outputs: list[Path]) -> str:
    message = error_of(events)
    assert rc == 2, events
    assert "Internal error" not in message
    assert name in message, message
    for out in outputs:
        assert not out.exists(), out
    assert not leftovers(outputs[0].parent)
    return message


@pytest.mark.parametrize("name", COMMANDS)
def test_truncated_raster_is_a_user_error_naming_the_file(name, scene, tmp_path):
    bad = truncated(scene, tmp_path)
    args, outputs = command(name, scene, src=bad, folder=tmp_path)
    rc, events = run(args)
    message = assert_refused(rc, events, "truncated.tif", outputs)
    assert "damaged or incomplete" in message


@pytest.mark.parametrize("name", ["slic", "isb", "accuracy", "vectorize", "trainunet"])
@pytest.mark.parametrize("content", [b"", b"\x89PNG not really" * 40, b"II*\x00" + b"\x07" * 900])
def test_empty_or_garbled_raster_is_a_user_error(name, content, scene, tmp_path):
    bad = tmp_path / "garbled.tif"
    bad.write_bytes(content)
    args, outputs = command(name, scene, src=bad, folder=tmp_path)
    rc, events = run(args)
    assert_refused(rc, events, "garbled.tif", outputs)


def test_truncated_labels_are_named(scene, tmp_path):
    bad = truncated(scene, tmp_path)
    args, outputs = command("trainunet", scene, folder=tmp_path)
    args[args.index("--labels") + 1] = str(bad)
    rc, events = run(args)
    assert_refused(rc, events, "truncated.tif", outputs)


def test_truncated_reference_is_named(scene, tmp_path):
    big = write_tif(tmp_path / "whole.tif", np.ones((1, 64, 64), np.uint8))
    bad = tmp_path / "reference.tif"
    bad.write_bytes(big.read_bytes()[:600])
    args, outputs = command("accuracy", scene, folder=tmp_path)
    args[args.index("--reference") + 1] = str(bad)
    rc, events = run(args)
    assert_refused(rc, events, "reference.tif", outputs)


@pytest.mark.parametrize("name", ["isb", "dfc", "wnet"])
@pytest.mark.parametrize("shape", [(1, 1), (8, 8)])
def test_rasters_too_small_for_the_network_are_refused_up_front(name, shape, scene, tmp_path):
    tiny = write_tif(tmp_path / "tiny.tif", np.ones((3, *shape), np.float32))
    args, outputs = command(name, scene, src=tiny, folder=tmp_path)
    rc, events = run(args)
    if name != "wnet" and shape == (8, 8):
        assert rc == 0, events  # 64 pixels are plenty for ISB and DFC
        return
    message = assert_refused(rc, events, "tiny.tif", outputs)
    assert f"{shape[1]} x {shape[0]} px" in message and "Expected more than" not in message


def test_an_engine_python_without_packages_says_to_set_up_the_engine(tmp_path, scene):
    bare = tmp_path / "bare"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120
    )
    out = tmp_path / "out.tif"
    proc = subprocess.run(
        [str(bare / "bin" / "python"), "-m", "core", "slic", str(scene.image), str(out)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "missing packages" in proc.stderr and "Set up the engine" in proc.stderr
    assert "Internal error" not in proc.stderr and not out.exists()


def test_environment_errors_are_told_apart_from_bugs():
    assert environment_error(KeyError("x")) is None
    assert environment_error(ZeroDivisionError()) is None
    assert "missing packages" in str(environment_error(ModuleNotFoundError("no", name="torch")))
    assert environment_error(ModuleNotFoundError("no", name="core.nothing")) is None  # ours
    denied = PermissionError(13, "Permission denied", "/data/labels.tif")
    assert "Cannot open /data/labels.tif: Permission denied" in str(environment_error(denied))
    full = OSError(28, "No space left on device", "/data/.out.landseg-partial-0123abcd.tif")
    assert "Cannot write /data/out.tif: the disk is full" in str(environment_error(full))
