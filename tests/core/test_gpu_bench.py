"""bench/gpu.sh: its CPU dry run goes through every step and writes its JSON and table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_benchmark_dry_run(tmp_path):
    env = {**os.environ, "LANDSEG_ENGINE_PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu.sh"), "--dry-run", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["dry_run"] is True and result["machine"]["device"] == "cpu"
    values = result["results"]
    for key in (
        "model_only_fp32_tiles_per_s",
        "predict_engine_tiles_per_s",
        "predict_process_s",
        "train_images_per_s",
        "dfc_s_per_iter",
        "isb_s_per_iter",
    ):
        assert values[key] > 0, key
    assert values["predict_tiles"] >= 1 and values["train_crops_per_epoch"] >= 1
    table = (tmp_path / "gpu.md").read_text()
    assert "| DFC 32², image mode |" in table and "images/s" in table
    assert (tmp_path / "predicted.tif").exists()
