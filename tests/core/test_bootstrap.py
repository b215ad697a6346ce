"""Environment bootstrap: creates a venv, stamps it, is idempotent, writes the launcher."""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core import bootstrap
from core.protocol import Reporter

ROOT = Path(__file__).resolve().parents[2]


def test_setup_engine_creates_stamps_and_is_idempotent(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# nothing to install for this test\n")
    venv = tmp_path / "venv"
    log = []

    class Collect(Reporter):
        def _log(self, level, message):
            log.append(message)

    first = bootstrap.setup_engine(
        venv, requirements=[requirements], warm=False, reporter=Collect("json")
    )
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
    assert str(bootstrap.numba_cache_dir(venv)) in launcher.read_text()
    assert stamp["pins"] == [] and stamp["pins_fingerprint"]
    second = bootstrap.setup_engine(venv, requirements=[requirements], warm=False)
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


def _old_python() -> str | None:
    """A working Python 3.8-3.10 (older than the pins allow), if this machine has one."""
    versions = Path.home() / ".pyenv" / "versions"
    candidates = [shutil.which(f"python3.{minor}") for minor in (10, 9, 8)]
    candidates += sorted(glob.glob(str(versions / "3.*" / "bin" / "python3")), reverse=True)
    for path in filter(None, candidates):
        probe = subprocess.run(
            [path, "-c", "import sys; print(sys.version_info[1])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and 8 <= int(probe.stdout or 0) <= 10:
            return path
    return None


def test_old_python_is_refused_with_what_to_use_instead():
    with pytest.raises(bootstrap.EngineError) as err:
        bootstrap.check_python((3, 9, 18), "/opt/qgis/bin/python3")
    message = str(err.value)
    assert "needs Python 3.11 or newer" in message
    assert "/opt/qgis/bin/python3 is Python 3.9.18" in message
    assert "Nothing was installed" in message and "QGIS 3.34" in message
    bootstrap.check_python((3, 11, 0))
    bootstrap.check_python((3, 14, 1))


def test_set_up_with_an_old_python_installs_nothing(tmp_path):
    old = _old_python()
    if old is None:
        pytest.skip("no Python 3.9 or 3.10 on this machine")
    venv = tmp_path / "engine-venv"
    proc = subprocess.run(
        [old, "-m", "core.bootstrap", "--venv", str(venv), "--progress", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    errors = [e["message"] for e in events if e["event"] == "error"]
    assert len(errors) == 1 and "needs Python 3.11 or newer" in errors[0]
    assert "Nothing was installed" in errors[0]
    assert not venv.exists()


def _stamp(venv: Path, requirements: list[Path]) -> None:
    venv.mkdir(parents=True, exist_ok=True)
    (venv / bootstrap.STAMP_NAME).write_text(
        json.dumps(
            {
                "landseg": "0.0.9",
                "pins": bootstrap.pins(requirements),
                "pins_fingerprint": bootstrap.pins_fingerprint(requirements),
            }
        )
    )


def test_pins_ignore_comments_spacing_and_case(tmp_path):
    one = tmp_path / "one.txt"
    one.write_text("# engine\nnumpy==2.4.6\n\nScikit_Image == 0.26.0  # segmentation\n")
    two = tmp_path / "two.txt"
    two.write_text("scikit-image==0.26.0\n# comment changed\nnumpy==2.4.6\n")
    assert bootstrap.pins([one]) == ["numpy==2.4.6", "scikit-image==0.26.0"]
    assert bootstrap.pins_fingerprint([one]) == bootstrap.pins_fingerprint([two])


def test_stale_engine_is_detected_and_named(tmp_path):
    requirements = tmp_path / "engine.txt"
    requirements.write_text("numpy==2.4.6\nscipy==1.17.1\n")
    dev = tmp_path / "dev.txt"
    dev.write_text("pytest==9.2.0\n")
    venv = tmp_path / "venv"
    _stamp(venv, [requirements, dev])  # set up with the test tools too: still current
    assert bootstrap.stale_reason(venv, requirements) is None
    requirements.write_text("# new comment\nnumpy==2.4.6\nscipy==1.17.1\n")
    assert bootstrap.stale_reason(venv, requirements) is None  # same pins
    requirements.write_text("numpy==2.5.0\nscipy==1.17.1\n")  # a plugin upgrade
    reason = bootstrap.stale_reason(venv, requirements)
    assert reason is not None and "numpy==2.5.0" in reason and "0.0.9" in reason


def test_the_shipped_requirements_match_what_set_up_records(tmp_path):
    venv = tmp_path / "venv"
    _stamp(venv, [bootstrap.DEFAULT_REQUIREMENTS])
    assert bootstrap.stale_reason(venv) is None


def test_clean_environment_drops_qgis_variables():
    qgis = {key: "/qgis/" + key for key in bootstrap.QGIS_VARIABLES}
    env = bootstrap.clean_environment({**qgis, "PATH": "/usr/bin", "HTTPS_PROXY": "p:3128"})
    assert not set(bootstrap.QGIS_VARIABLES) & set(env)
    assert env["PATH"] == "/usr/bin" and env["HTTPS_PROXY"] == "p:3128"
    assert {"PROJ_LIB", "PROJ_DATA", "GDAL_DATA", "GDAL_DRIVER_PATH", "PYTHONPATH"} <= set(
        bootstrap.QGIS_VARIABLES
    )


def test_offline_set_up_needs_a_wheel_folder(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n")
    with pytest.raises(bootstrap.EngineError, match="wheel folder"):
        bootstrap.setup_engine(tmp_path / "venv", requirements=[requirements], offline=True)
    with pytest.raises(bootstrap.EngineError, match="does not exist"):
        bootstrap.setup_engine(
            tmp_path / "venv", requirements=[requirements], find_links=tmp_path / "none"
        )
    assert not (tmp_path / "venv").exists()
