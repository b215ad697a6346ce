"""Reliability sweep: outputs that cannot be written, collide or replace others.

docs/reliability.md, "Output": an output path that is a folder, a folder that refuses
files, a full disk and two outputs on one path are refused before any work, naming the
output; a disk that fills up while writing leaves nothing; replacing an output replaces
its statistics too; a multi-output command leaves all its outputs or none.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasters import write_tif
from sweep import (
    COMMANDS,
    MULTI_OUTPUT,
    command,
    error_of,
    leftovers,
    make_scene,
    outputs_of,
    run,
    train_model,
)

from core import io
from core.protocol import EngineError

ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting a small tmpfs (a full disk) needs root"
)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return train_model(tmp_path_factory.mktemp("model"))


@pytest.fixture
def scene(tmp_path, model):
    return make_scene(tmp_path / "in", model=model)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs: ``fill(n)`` leaves about n bytes free."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")

    def fill(free: int) -> Path:
        total = shutil.disk_usage(mount).free
        (mount / "filler").write_bytes(b"\0" * max(total - free, 0))
        return mount

    yield fill
    subprocess.run(["umount", "-l", str(mount)], check=False)


def refused(args: list[str], outputs: list[Path], *words: str) -> str:
    rc, events = run(args)
    message = error_of(events)
    assert rc == 2, events
    assert "Internal error" not in message, message
    for word in words:
        assert word in message, message
    for out in outputs:
        assert not out.exists(), out
    return message


@pytest.mark.parametrize("name", COMMANDS)
def test_an_existing_folder_as_output_is_refused_up_front(name, scene, tmp_path):
    primary, _ = outputs_of(name, tmp_path)
    primary.mkdir()
    # with --overwrite, as QGIS runs every command: "exists" is not the answer here
    args, _ = command(name, scene, primary=primary, folder=tmp_path, extra=("--overwrite",))
    rc, events = run(args)
    message = error_of(events)
    assert rc == 2 and "Internal error" not in message, events
    assert primary.name in message and "existing folder" in message
    assert not any(e.get("event") == "progress" and e["percent"] > 5 for e in events)
    assert primary.is_dir() and not any(primary.iterdir())


@pytest.mark.parametrize("name", COMMANDS)
def test_a_folder_that_refuses_files_is_refused_up_front(name, scene, tmp_path):
    primary, _ = outputs_of(name, Path("/proc"))
    args, _ = command(name, scene, primary=primary, folder=tmp_path)
    message = refused(args, [], str(primary), "Choose a folder you can write to")
    assert "/proc" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(scene, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    args, outputs = command("slic", scene, folder=locked)
    refused(args, outputs, "not writable")


@ROOT_ONLY
@pytest.mark.parametrize("name", COMMANDS)
def test_a_full_disk_is_refused_up_front(name, scene, small_disk):
    disk = small_disk(0)
    args, outputs = command(name, scene, folder=disk)
    message = refused(args, outputs, "disk", "full")
    assert any(str(out) in message for out in outputs)
    assert not leftovers(disk)


@ROOT_ONLY
def test_a_disk_that_fills_while_writing_leaves_nothing(scene, small_disk, tmp_path):
    # 1.2 Mpx of noise: segment ids and means far larger than the 1 MiB disk
    noise = np.random.default_rng(0).uniform(0, 255, (3, 1100, 1100)).astype(np.float32)
    src = write_tif(tmp_path / "noise.tif", noise)
    disk = small_disk(1 << 20)
    assert shutil.disk_usage(disk).free >= io.MIN_FREE_BYTES
    args, outputs = command("felzenszwalb", scene, src=src, folder=disk)
    refused([*args, "--scale", "1"], outputs, "disk", "full")
    assert not leftovers(disk)


@ROOT_ONLY
def test_a_model_that_fills_the_disk_leaves_nothing(scene, small_disk, tmp_path):
    disk = small_disk(1 << 20)  # a resnet18 U-Net is about 57 MB
    args, outputs = command("trainunet", scene, folder=disk)
    refused(args, outputs, "disk", "full")
    assert not leftovers(disk)


@pytest.mark.parametrize("name", MULTI_OUTPUT)
def test_two_outputs_on_one_path_are_refused_up_front(name, scene, tmp_path):
    primary, _ = outputs_of(name, tmp_path)
    same = primary.with_suffix(".tif") if name in ("accuracy", "trainunet") else primary
    args, _ = command(name, scene, primary=same, second=same, folder=tmp_path)
    refused(args, [same], "same path")


def test_one_file_under_two_spellings_is_one_path(scene, tmp_path):
    (tmp_path / "sub").mkdir()
    json_path = tmp_path / "m.json"
    other = tmp_path / "sub" / ".." / "m.json"
    args, _ = command("accuracy", scene, primary=json_path, second=other, folder=tmp_path)
    refused(args, [json_path], "same path")
    link = tmp_path / "link.json"
    link.symlink_to(json_path)
    args, _ = command("accuracy", scene, primary=json_path, second=link, folder=tmp_path)
    refused(args, [json_path], "same path")


@pytest.mark.parametrize("name", ["slic", "isb", "predictunet", "accuracy"])
def test_overwriting_removes_the_old_statistics(name, scene, tmp_path):
    if name == "accuracy":
        errors = tmp_path / "errors.tif"
        extra = ("--errors", str(errors), "--overwrite")
        args, _ = command(name, scene, folder=tmp_path, extra=extra)
        raster = errors
    else:
        args, outputs = command(name, scene, folder=tmp_path, extra=("--overwrite",))
        raster = outputs[0]
    raster.write_bytes(b"old")
    stale = raster.with_name(raster.name + ".aux.xml")
    stale.write_text(
        "<PAMDataset><PAMRasterBand band='1'><Metadata>"
        "<MDI key='STATISTICS_MAXIMUM'>62</MDI></Metadata></PAMRasterBand></PAMDataset>"
    )
    rc, events = run(args)
    assert rc == 0, events
    assert not stale.exists()
    with rasterio.open(raster) as src:
        assert "STATISTICS_MAXIMUM" not in src.tags(1)


def test_a_failed_training_report_leaves_no_model(scene, tmp_path, monkeypatch):
    import core.training_report

    def broken(**kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(core.training_report, "render_training_html", broken)
    args, outputs = command("trainunet", scene, folder=tmp_path)
    rc, events = run(args)
    assert rc != 0, events
    assert not any(p.exists() for p in outputs)
    assert not leftovers(tmp_path)


def test_a_failed_later_output_removes_the_earlier_and_restores_replaced_files(tmp_path):
    first, second = tmp_path / "a.tif", tmp_path / "b.csv"
    first.write_text("previous a")
    (tmp_path / "a.tif.aux.xml").write_text("previous stats")
    with pytest.raises(RuntimeError), io.all_or_none():
        with io.atomic_output(first, overwrite=True) as tmp:
            tmp.write_text("new a")
        assert first.read_text() == "new a"  # in place at once...
        with io.atomic_output(second, overwrite=True) as tmp:
            tmp.write_text("half")
            raise RuntimeError("the second output failed")
    assert first.read_text() == "previous a"  # ...and put back when a later one fails
    assert (tmp_path / "a.tif.aux.xml").read_text() == "previous stats"
    assert not second.exists() and not leftovers(tmp_path)


def test_outputs_of_a_successful_group_stay_and_set_aside_copies_go(tmp_path):
    first = tmp_path / "a.tif"
    first.write_text("previous a")
    with io.all_or_none():
        with io.atomic_output(first, overwrite=True) as tmp:
            tmp.write_text("new a")
    assert first.read_text() == "new a" and not leftovers(tmp_path)


def test_a_cancel_between_outputs_removes_the_first(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    with pytest.raises(KeyboardInterrupt), io.all_or_none():
        with io.atomic_output(first) as tmp:
            tmp.write_text("{}")
        raise KeyboardInterrupt
    assert not first.exists() and not second.exists() and not leftovers(tmp_path)


def test_model_files_have_the_permissions_of_other_files(scene, tmp_path):
    old = os.umask(0o022)
    try:
        args, outputs = command("trainunet", scene, folder=tmp_path)
        rc, events = run(args)
    finally:
        os.umask(old)
    assert rc == 0, events
    assert stat.S_IMODE(outputs[0].stat().st_mode) == 0o644
    assert stat.S_IMODE(outputs[1].stat().st_mode) == 0o644


def test_accuracy_writes_only_the_json_when_only_the_json_is_asked_for(scene, tmp_path):
    out = tmp_path / "only.json"
    rc, events = run(["accuracy", str(scene.classes), "--reference", str(scene.classes),
                      "--json", str(out)])  # fmt: skip
    assert rc == 0, events
    assert out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in", "only.json"]


def test_predictunet_reads_a_model_under_any_name(scene, tmp_path):
    renamed = tmp_path / "model.bin"
    shutil.copy(scene.model, renamed)
    out = tmp_path / "classes.tif"
    rc, events = run(["predictunet", str(scene.image), str(renamed), str(out), "--threads", "1"])
    assert rc == 0, events
    assert out.exists()


def test_check_output_path_probes_the_folder_and_leaves_nothing(tmp_path):
    assert io.check_output_path(tmp_path / "x.tif", overwrite=False) == tmp_path / "x.tif"
    assert not list(tmp_path.iterdir())
    with pytest.raises(EngineError, match="existing folder"):
        io.check_output_path(tmp_path, overwrite=True)
    with pytest.raises(EngineError, match="does not exist"):
        io.check_output_path(tmp_path / uuid.uuid4().hex / "x.tif", overwrite=False)
