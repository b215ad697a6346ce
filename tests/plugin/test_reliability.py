"""Reliability sweep through QGIS: each failure class through qgis_process.bin.

docs/reliability.md lists every case; the engine side of each (every command) is in
tests/core/test_reliability_*.py. Here: a damaged input, outputs that cannot be written
or collide or replace others, labels out of range, and cancel and kill of qgis_process
itself (SIGINT, SIGTERM, SIGKILL), which must never leave the engine running.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from rasters import parcels, write_tif
from test_qgis_process import qgis_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def qgis_config(tmp_path_factory) -> Path:
    """The plugin installed (make deploy) into a throw-away QGIS configuration."""
    config = tmp_path_factory.mktemp("qgis-config")
    subprocess.run(
        ["make", "-s", "deploy", f"QGIS_CONFIG={config}"], cwd=ROOT, check=True, capture_output=True
    )
    return config


ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting a small tmpfs (a full disk) needs root"
)


def failed(proc: subprocess.CompletedProcess, *words: str) -> str:
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert "Internal error" not in text, text
    for word in words:
        assert word in text, text
    return text


@pytest.fixture
def image(tmp_path) -> Path:
    return write_tif(tmp_path / "image.tif", parcels((64, 64), 3))


# ----------------------------------------------------------------------------- input


def test_a_truncated_raster_is_named_not_an_internal_error(qgis_config, tmp_path):
    whole = write_tif(tmp_path / "whole.tif", np.ones((3, 256, 256), np.float32))
    bad = tmp_path / "t.tif"
    bad.write_bytes(whole.read_bytes()[:10240])
    out = tmp_path / "out.tif"
    proc = qgis_process(
        qgis_config, "run", "landseg:slic", "--", f"INPUT={bad}", f"OUTPUT={out}", check=False
    )
    failed(proc, "Cannot read", "t.tif", "damaged or incomplete")
    assert not out.exists()


# ----------------------------------------------------------------------------- output


def test_an_unwritable_location_is_refused_up_front(qgis_config, image):
    proc = qgis_process(
        qgis_config, "run", "landseg:slic", "--", f"INPUT={image}", "OUTPUT=/proc/o.tif",
        check=False,
    )  # fmt: skip
    failed(proc, "/proc/o.tif", "Choose a folder you can write to")


def test_an_existing_folder_as_output_is_refused_up_front(qgis_config, image, tmp_path):
    folder = tmp_path / "o.tif"
    folder.mkdir()
    proc = qgis_process(
        qgis_config, "run", "landseg:slic", "--", f"INPUT={image}", f"OUTPUT={folder}",
        check=False,
    )  # fmt: skip
    failed(proc, "existing folder")
    assert folder.is_dir() and not any(folder.iterdir())


@ROOT_ONLY
def test_a_full_disk_is_refused_up_front(qgis_config, image, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        (disk / "filler").write_bytes(b"\0" * shutil.disk_usage(disk).free)
        proc = qgis_process(
            qgis_config, "run", "landseg:slic", "--", f"INPUT={image}",
            f"OUTPUT={disk / 'o.tif'}", check=False,
        )  # fmt: skip
        failed(proc, "disk", "full")
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_accuracy_refuses_two_reports_on_one_file(qgis_config, image, tmp_path):
    classes = write_tif(tmp_path / "c.tif", np.ones((1, 8, 8), np.uint8))
    same = tmp_path / "m.txt"
    proc = qgis_process(
        qgis_config, "run", "landseg:accuracy", "--", f"PREDICTION={classes}",
        f"REFERENCE={classes}", f"OUTPUT_CSV={same}", f"OUTPUT_JSON={same}",
        f"OUTPUT_HTML={tmp_path / 'r.html'}", check=False,
    )  # fmt: skip
    failed(proc, " the same ")
    assert not same.exists()


def test_accuracy_runs_with_only_the_json(qgis_config, tmp_path):
    classes = write_tif(tmp_path / "c.tif", np.ones((1, 8, 8), np.uint8))
    out = tmp_path / "m.json"
    qgis_process(
        qgis_config, "run", "landseg:accuracy", "--", f"PREDICTION={classes}",
        f"REFERENCE={classes}", f"OUTPUT_JSON={out}",
    )  # fmt: skip
    assert out.exists() and not (tmp_path / "m.html").exists()


def test_trainunet_refuses_the_report_on_the_model_file(qgis_config, image, tmp_path):
    labels = write_tif(tmp_path / "l.tif", np.ones((1, 64, 64), np.uint8))
    model = tmp_path / "m.safetensors"
    proc = qgis_process(
        qgis_config, "run", "landseg:trainunet", "--", f"INPUTS={image}", f"LABELS={labels}",
        f"OUTPUT_MODEL={model}", f"OUTPUT_REPORT={model}", "EPOCHS=1", check=False,
    )  # fmt: skip
    failed(proc, " the same ")
    assert not model.exists()


def test_overwriting_removes_the_previous_statistics(qgis_config, image, tmp_path):
    out = tmp_path / "seg.tif"
    out.write_bytes(b"previous")
    stale = tmp_path / "seg.tif.aux.xml"
    stale.write_text(
        "<PAMDataset><PAMRasterBand band='1'><Metadata>"
        "<MDI key='STATISTICS_MAXIMUM'>62</MDI></Metadata></PAMRasterBand></PAMDataset>"
    )
    qgis_process(
        qgis_config, "run", "landseg:felzenszwalb", "--", f"INPUT={image}", f"OUTPUT={out}"
    )
    assert gdal.Open(str(out)).GetRasterBand(1).GetMetadataItem("STATISTICS_MAXIMUM") != "62"
    assert not stale.exists() or "62" not in stale.read_text()


def test_predictunet_takes_a_model_under_any_name(run, engine_python, image, tmp_path):
    labels = np.repeat((np.arange(64) * 2 // 64 + 1)[None, :], 64, 0).astype(np.uint8)
    label_tif = write_tif(tmp_path / "l.tif", labels[None])
    model = tmp_path / "my-model.bin"
    subprocess.run(
        [engine_python, "-m", "core", "trainunet", str(model), "--input", str(image),
         "--labels", str(label_tif), "--epochs", "1", "--tile-size", "32", "--threads", "1"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True, capture_output=True,
    )  # fmt: skip
    out = tmp_path / "classes.tif"
    result = run(
        "landseg:predictunet", {"INPUT": str(image), "MODEL": str(model), "OUTPUT": str(out)}
    )
    assert Path(result["OUTPUT"]).exists()


# ----------------------------------------------------------------------------- labels


def test_negative_labels_are_refused_before_training(qgis_config, image, tmp_path):
    labels = np.ones((1, 64, 64), np.int16)
    labels[0, :10] = -1
    label_tif = write_tif(tmp_path / "neg.tif", labels)
    model = tmp_path / "m.safetensors"
    proc = qgis_process(
        qgis_config, "run", "landseg:trainunet", "--", f"INPUTS={image}",
        f"LABELS={label_tif}", f"OUTPUT_MODEL={model}", "EPOCHS=1", check=False,
    )  # fmt: skip
    failed(proc, "neg.tif", "-1", "1..65535", "IGNORE_VALUE")
    assert not model.exists()


# ----------------------------------------------------------------------------- sieve


def test_a_larger_min_size_never_gives_more_or_smaller_polygons(run, nc_dir, tmp_path):
    from qgis.core import QgsVectorLayer

    previous = None
    for size in (0, 50, 5000, 1_000_000):
        out = tmp_path / f"sieve{size}.gpkg"
        run(
            "landseg:vectorize",
            {"INPUT": str(nc_dir / "strata.tif"), "MIN_SIZE": size, "OUTPUT": str(out)},
        )
        layer = QgsVectorLayer(str(out), "p", "ogr")
        pixels = sorted(f["pixels"] for f in layer.getFeatures())
        if previous is not None:
            assert len(pixels) <= len(previous) and pixels[0] >= previous[0]
        if size and len(pixels) > 1:
            assert pixels[0] >= size
        previous = pixels


# ----------------------------------------------------------------------------- cancel, kill


def engine_pids(marker: str) -> list[int]:
    """Processes whose command line mentions ``marker`` (the run's unique output)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "status").read_text()
        except OSError:
            continue
        if marker in cmdline and "-m core" in cmdline and "\nState:\tZ" not in state:
            found.append(int(entry.name))
    return found


def start_long_dfc(qgis_config, tmp_path) -> tuple[subprocess.Popen, Path]:
    src = write_tif(tmp_path / "big.tif", parcels((200, 200), 3, seed=2))
    out = tmp_path / "long-dfc.tif"
    env = {
        **os.environ,
        "QGIS_CUSTOM_CONFIG_PATH": str(qgis_config),
        "QT_QPA_PLATFORM": "offscreen",
    }
    proc = subprocess.Popen(
        ["qgis_process.bin", "run", "landseg:dfc", "--", f"INPUT={src}", f"OUTPUT={out}",
         "MAX_ITER=100000", "MIN_CLUSTERS=1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not engine_pids(str(out)) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    time.sleep(3)  # the engine is past its imports and training
    return proc, out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_qgis_process_cancels_the_run(qgis_config, tmp_path, signum):
    proc, out = start_long_dfc(qgis_config, tmp_path)
    assert engine_pids(str(out))
    sent = time.monotonic()
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 20
    assert proc.returncode != 0
    assert "Cancelled; no output was written." in stdout + stderr
    assert not engine_pids(str(out)), "the engine outlived qgis_process"
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".landseg-" in p.name]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_qgis_process_ends_the_engine(qgis_config, tmp_path):
    proc, out = start_long_dfc(qgis_config, tmp_path)
    engines = engine_pids(str(out))
    assert engines
    proc.kill()  # SIGKILL: QGIS gets no chance to stop the engine
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while engine_pids(str(out)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not engine_pids(str(out)), "the engine outlived qgis_process"
    time.sleep(0.5)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".landseg-" in p.name]


def test_partial_files_of_an_output_with_brackets_are_removed(provider, tmp_path):
    from landseg.qgis_plugin.engine import remove_partial_outputs

    out = tmp_path / "run[1].gpkg"
    mine = tmp_path / ".run[1].landseg-partial-0123abcd.gpkg"
    other = tmp_path / ".run1.landseg-partial-0123abcd.gpkg"  # another output's, running
    for path in (mine, other):
        path.write_bytes(b"partial")
    remove_partial_outputs([str(out)])
    assert not mine.exists()
    assert other.exists()


def test_the_engine_runs_in_its_own_process_group_and_knows_its_parent(provider):
    from landseg.qgis_plugin import engine

    if os.name == "posix":
        assert engine._lifetime_options() == {"start_new_session": True}
    env = engine.parent_environment({"A": "1"})
    assert env == {"A": "1", "LANDSEG_PARENT_PID": str(os.getpid())}


def test_qgis_keeps_its_own_signal_handling_outside_a_run(run, image, tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    run("landseg:felzenszwalb", {"INPUT": str(image), "OUTPUT": str(tmp_path / "f.tif")})
    assert {s: signal.getsignal(s) for s in before} == before
