"""Environment bootstrap: creates a venv, stamps it, is idempotent, writes the launcher."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from core import bootstrap
from core.protocol import Reporter


def test_setup_engine_creates_stamps_and_is_idempotent(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# nothing to install for this test\n")
    venv = tmp_path / "venv"
    log = []

    class Collect(Reporter):
        def _log(self, level, message):
            log.append(message)

    first = bootstrap.setup_engine(venv, requirements=[requirements], reporter=Collect("json"))
    assert first["STATUS"] == "created"
    python = Path(first["ENGINE_PYTHON"])
    assert python.is_file()
    stamp = json.loads((venv / bootstrap.STAMP_NAME).read_text())
    assert stamp["requirements_sha256"] == bootstrap.requirements_digest([requirements])
    launcher = venv / "bin" / "landseg"
    version = subprocess.run(
        [str(launcher), "--version"], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert "LandSeg engine" in version.stdout
    second = bootstrap.setup_engine(venv, requirements=[requirements])
    assert second["STATUS"] == "up to date"
    assert bootstrap.stale_reason(venv) is not None  # engine.txt was not what it installed


def test_stale_reason_for_a_foreign_environment(tmp_path):
    assert "not set up by LandSeg" in bootstrap.stale_reason(tmp_path)


def test_default_location_is_per_user():
    path = bootstrap.default_venv_dir()
    assert path.name == "engine-venv" and path.parent.name == "landseg"
    assert bootstrap.engine_python(path).name.startswith("python")


def test_module_help_runs_without_dependencies():
    proc = subprocess.run(
        [sys.executable, "-m", "core.bootstrap", "--help"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--venv" in proc.stdout
