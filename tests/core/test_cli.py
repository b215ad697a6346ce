"""The engine command line: outputs, JSON protocol, errors and cancellation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasters import parcels, write_tif

ROOT = Path(__file__).resolve().parents[2]


def engine(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(proc.stdout + proc.stderr)
    return proc


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_help_lists_every_command():
    text = engine("--help").stdout
    for command in ("slic", "quickshift", "felzenszwalb", "info"):
        assert command in text
    assert "--n-segments" in engine("slic", "--help").stdout


def test_slic_json_protocol_and_outputs(tmp_path, nc_dir):
    scene = nc_dir / "landsat_multiband.tif"
    out, polygons, mean = tmp_path / "s.tif", tmp_path / "s.gpkg", tmp_path / "m.tif"
    proc = engine(
        "--progress",
        "json",
        "slic",
        str(scene),
        str(out),
        "--n-segments",
        "300",
        "--polygons",
        str(polygons),
        "--mean",
        str(mean),
    )
    stream = events(proc.stdout)
    assert stream[0]["event"] == "start" and stream[0]["protocol"] == 1
    assert stream[-1]["event"] == "result"
    percents = [e["percent"] for e in stream if e["event"] == "progress"]
    assert percents == sorted(percents) and percents[-1] == 100
    outputs = stream[-1]["outputs"]
    assert outputs["OUTPUT"] == str(out) and outputs["OUTPUT_POLYGONS"] == str(polygons)
    with rasterio.open(out) as seg, rasterio.open(scene) as src, rasterio.open(mean) as avg:
        assert seg.crs == src.crs and seg.transform == src.transform
        labels = seg.read(1)
        assert labels.max() == outputs["N_SEGMENTS"]
        assert avg.count == 5 and avg.nodata == -9999
        valid = src.read_masks(1) > 0
        assert (labels[~valid] == 0).all() and (labels[valid] > 0).all()
    import pyogrio

    info = pyogrio.read_info(polygons, layer="segments")
    assert info["features"] == outputs["N_SEGMENTS"]
    assert list(info["fields"]) == ["id", "pixels", "area"] + [f"mean_b{b}" for b in range(1, 6)]


def test_refuses_to_overwrite_without_being_asked(tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((40, 40), 3))
    out = tmp_path / "out.tif"
    out.write_bytes(b"user data")
    proc = engine("felzenszwalb", str(src), str(out), check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert out.read_bytes() == b"user data"
    engine("felzenszwalb", str(src), str(out), "--overwrite")
    with rasterio.open(out) as seg:
        assert seg.read(1).max() >= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bands", "1,9"], "Band 9 does not exist"),
        (["--n-segments", "0"], "N_SEGMENTS must be at least 1"),
        (["--percentiles", "90", "10"], "0 <= low < high <= 100"),
    ],
)
def test_bad_parameters_give_exit_2_and_a_message(tmp_path, args, message):
    src = write_tif(tmp_path / "in.tif", parcels((40, 40), 3))
    proc = engine(
        "--progress", "json", "slic", str(src), str(tmp_path / "o.tif"), *args, check=False
    )
    assert proc.returncode == 2
    error = events(proc.stdout)[-1]
    assert error["event"] == "error" and message in error["message"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_all_nodata_and_wrong_output_format(tmp_path):
    src = write_tif(tmp_path / "in.tif", np.zeros((2, 10, 10), np.float32), nodata=0)
    proc = engine("slic", str(src), str(tmp_path / "o.tif"), check=False)
    assert proc.returncode == 2 and "no valid pixel" in proc.stderr
    proc = engine("slic", str(src), str(tmp_path / "o.png"), check=False)
    assert proc.returncode == 2 and "give a .tif path" in proc.stderr


def test_polygons_of_too_large_rasters_are_refused_with_the_limit(tmp_path):
    # Segmenting has no size limit (large rasters are streamed, tests/core/test_blocks.py);
    # polygons are built in memory, up to --max-pixels.
    src = write_tif(tmp_path / "in.tif", parcels((40, 40), 1))
    args = ("slic", str(src), str(tmp_path / "o.tif"), "--max-pixels", "1000")
    proc = engine(*args, "--polygons", str(tmp_path / "o.gpkg"), check=False)
    assert proc.returncode == 2 and "1,000" in proc.stderr and "1,600" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_sigterm_leaves_no_partial_output(tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((1200, 1200), 3))
    out = tmp_path / "out.tif"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core",
            "--progress",
            "json",
            "quickshift",
            str(src),
            str(out),
            "--kernel-size",
            "8",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until the engine is busy segmenting
        if '"percent": 20' in line:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode in (130, -signal.SIGTERM)
    assert sorted(os.listdir(tmp_path)) == ["in.tif"]
    if proc.returncode == 130:
        assert events(stdout)[-1]["kind"] == "Cancelled"
