"""Reliability sweep: cancel and kill (docs/reliability.md, "Cancel and kill").

SIGINT (Ctrl+C) and SIGTERM end every engine command cleanly: exit status 130, the event
"Cancelled; no output was written.", no output and no partial file. An engine started
with LANDSEG_PARENT_PID ends when that process ends, however it ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rasters import parcels, write_tif
from sweep import COMMANDS, ROOT, command, engine, leftovers, make_scene, train_model

from core.cli import PARENT_PID_VAR, watch_parent

POSIX = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return train_model(tmp_path_factory.mktemp("model"))


@pytest.fixture
def scene(tmp_path, model):
    return make_scene(tmp_path / "in", model=model)


def wait_for(proc: subprocess.Popen[str], event: str, *, minimum: float = 0.0) -> list[dict]:
    """Read the engine's events until ``event`` (progress: at least ``minimum`` %)."""
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if not line.startswith("{"):
            continue
        seen.append(json.loads(line))
        if seen[-1]["event"] == event and seen[-1].get("percent", 0.0) >= minimum:
            return seen
        if seen[-1]["event"] in ("result", "error"):
            break
    raise AssertionError(f"the engine ended before {event}: {seen}")


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, list[dict]]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, [json.loads(x) for x in out.splitlines() if x.startswith("{")]


def assert_cancelled(rc: int, events: list[dict], outputs: list[Path]) -> None:
    assert rc == 130, events
    errors = [e for e in events if e["event"] == "error"]
    assert errors and errors[-1]["message"] == "Cancelled; no output was written.", events
    assert errors[-1]["kind"] == "Cancelled"
    for out in outputs:
        assert not out.exists(), out
    assert not leftovers(outputs[0].parent)


@POSIX
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_cancels_cleanly_on_a_signal(name, signum, scene, tmp_path):
    args, outputs = command(name, scene, folder=tmp_path)
    proc = engine(args)
    wait_for(proc, "start")
    proc.send_signal(signum)
    rc, events = finish(proc)
    assert_cancelled(rc, events, outputs)


def long_run(scene, tmp_path: Path, name: str) -> tuple[list[str], list[Path]]:
    """A run that lasts minutes unless cancelled (and writes its output in parts)."""
    if name == "dfc":
        image = parcels((200, 200), 3, seed=3)
        src = write_tif(tmp_path / "big.tif", image)
        return command("dfc", scene, src=src, folder=tmp_path,
                       extra=("--max-iter", "100000", "--min-clusters", "1"))  # fmt: skip
    return command("trainunet", scene, folder=tmp_path,
                   extra=("--epochs", "100000", "--patience", "0"))  # fmt: skip


@POSIX
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("name", ["dfc", "trainunet"])
def test_a_long_run_stops_within_seconds(name, signum, scene, tmp_path):
    args, outputs = long_run(scene, tmp_path, name)
    proc = engine(args)
    wait_for(proc, "progress", minimum=2.0)
    sent = time.monotonic()
    proc.send_signal(signum)
    rc, events = finish(proc)
    assert time.monotonic() - sent < 15
    assert_cancelled(rc, events, outputs)


def _engine_pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_engine_ends_when_its_parent_is_killed(scene, tmp_path):
    args, outputs = long_run(scene, tmp_path, "dfc")
    log = tmp_path / "engine.log"
    parent_code = (
        "import os, subprocess, sys\n"
        f"env = {{**os.environ, 'PYTHONPATH': {str(ROOT)!r}}}\n"
        f"env[{PARENT_PID_VAR!r}] = str(os.getpid())\n"
        f"out = open({str(log)!r}, 'w')\n"
        "p = subprocess.Popen([sys.executable, '-m', 'core', '--progress', 'json', *sys.argv[1:]],"
        f" env=env, stdout=out, stderr=subprocess.DEVNULL, cwd={str(ROOT)!r})\n"
        "print(p.pid, flush=True)\n"
        "p.wait()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code, *args], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    deadline = time.monotonic() + 120
    while '"progress"' not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    parent.kill()  # SIGKILL: the parent gets no chance to stop its child
    parent.wait()
    deadline = time.monotonic() + 20
    while _engine_pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _engine_pid_alive(pid), "the engine outlived its parent"
    time.sleep(0.5)
    events = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    assert events[-1]["event"] == "error" and events[-1]["kind"] == "Cancelled", events[-3:]
    assert not any(p.exists() for p in outputs) and not leftovers(tmp_path)


@POSIX
def test_the_watchdog_ends_an_engine_whose_named_parent_is_gone(scene, tmp_path):
    # The named parent is not this engine's parent (as after QGIS died and the engine
    # was adopted): the watchdog notices within a second and the run is cancelled.
    args, outputs = long_run(scene, tmp_path, "dfc")
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc = engine(args, env={PARENT_PID_VAR: str(stranger.pid)})
        rc, events = finish(proc, timeout=60)
    finally:
        stranger.kill()
        stranger.wait()
    assert_cancelled(rc, events, outputs)


def test_without_the_variable_no_watch():
    assert watch_parent({}) is False
    assert watch_parent({PARENT_PID_VAR: "not a pid"}) is False


def test_a_cancelled_run_keeps_the_file_it_would_have_replaced(scene, tmp_path):
    args, outputs = long_run(scene, tmp_path, "trainunet")
    outputs[0].write_bytes(b"the user's previous model")
    proc = engine([*args, "--overwrite"])
    wait_for(proc, "progress", minimum=2.0)
    proc.send_signal(signal.SIGINT)
    rc, events = finish(proc)
    assert rc == 130, events
    assert outputs[0].read_bytes() == b"the user's previous model"
    assert not leftovers(tmp_path)


def test_a_command_run_in_this_process_gives_sigterm_back(scene, tmp_path):
    from sweep import run

    before = signal.getsignal(signal.SIGTERM)
    rc, events = run(command("vectorize", scene, folder=tmp_path)[0])
    assert rc == 0, events
    assert signal.getsignal(signal.SIGTERM) is before
