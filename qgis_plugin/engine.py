"""Run the LandSeg engine as a subprocess, the way QGIS's GDAL and GRASS providers do.

The engine lives in its own Python environment, so torch and numpy 2 never enter QGIS's
Python. Which interpreter runs it, in order:

1. the environment variable ``LANDSEG_ENGINE_PYTHON`` (headless runs, CI);
2. the Processing setting "LandSeg > Engine Python interpreter";
3. the standard environment created by ``landseg:setupengine`` / ``make setup``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qgis.core import QgsProcessingException, QgsProcessingFeedback

from ..core import bootstrap
from ..core.protocol import parse_event
from .resources import PLUGIN_ROOT

ENV_VAR = "LANDSEG_ENGINE_PYTHON"
SETTING = "LANDSEG_ENGINE_PYTHON"
_SETTING_GROUP = "LandSeg"

SETUP_HINT = (
    "Set the engine up with the Processing algorithm LandSeg > Setup > Set up the engine "
    "(landseg:setupengine), or from a terminal with `make setup` in the plugin folder; or "
    f"point the setting Processing > Options > Providers > LandSeg > Engine Python "
    f"interpreter (or the environment variable {ENV_VAR}) to a Python that has the packages "
    "of requirements/engine.txt."
)
STALE_MESSAGE = (
    "The engine is out of date: run Set up the engine (LandSeg > Setup > Set up the engine, "
    "landseg:setupengine) once."
)


def add_settings(provider: Any) -> None:
    """Add the engine settings under Processing > Options > Providers > LandSeg."""
    from processing.core.ProcessingConfig import ProcessingConfig, Setting

    ProcessingConfig.settingIcons[_SETTING_GROUP] = provider.icon()
    ProcessingConfig.addSetting(
        Setting(
            _SETTING_GROUP,
            SETTING,
            "Engine Python interpreter (empty: the environment made by landseg:setupengine)",
            "",
            valuetype=Setting.FILE,
        )
    )
    ProcessingConfig.readSettings()


def remove_settings() -> None:
    """Remove the engine settings when the provider unloads."""
    from processing.core.ProcessingConfig import ProcessingConfig

    ProcessingConfig.removeSetting(SETTING)


def _setting_value() -> str:
    try:
        from processing.core.ProcessingConfig import ProcessingConfig
    except ImportError:  # Processing plugin not loaded
        return ""
    return str(ProcessingConfig.getSetting(SETTING) or "")


def set_engine_python(path: str) -> None:
    """Store the engine interpreter in the Processing settings."""
    from processing.core.ProcessingConfig import ProcessingConfig

    ProcessingConfig.setSettingValue(SETTING, path)


def engine_python() -> tuple[str, str]:
    """Return the engine interpreter and where it was configured."""
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR], f"environment variable {ENV_VAR}"
    if _setting_value():
        return _setting_value(), "Processing setting 'Engine Python interpreter'"
    return str(bootstrap.engine_python(bootstrap.default_venv_dir())), "default location"


def engine_folder(python: str) -> Path | None:
    """Return the LandSeg environment an interpreter belongs to (None for another Python)."""
    folder = Path(python).parent.parent  # <venv>/bin/python or <venv>/Scripts/python.exe
    return folder if (folder / bootstrap.STAMP_NAME).is_file() else None


def check_engine() -> str:
    """Return the engine interpreter, or raise with instructions if it is missing or stale.

    An environment made by set-up records the pins it installed; when this plugin version
    needs others (an upgrade changed ``requirements/engine.txt``), running it would fail
    somewhere deep inside, so every algorithm stops first and says to run set-up again.
    Interpreters not made by set-up (the setting or the environment variable pointing
    elsewhere) are the user's to keep up to date.
    """
    python, origin = engine_python()
    if not Path(python).is_file():
        raise QgsProcessingException(
            f"The LandSeg engine is not set up: no Python interpreter at {python} ({origin}). "
            + SETUP_HINT
        )
    folder = engine_folder(python)
    if folder is not None:
        reason = bootstrap.stale_reason(folder)
        if reason:
            raise QgsProcessingException(
                f"{STALE_MESSAGE} {reason} It updates the environment in place; "
                "until then LandSeg's algorithms do not run."
            )
    return python


def engine_environment(python: str | None = None) -> dict[str, str]:
    """Environment for the engine process.

    QGIS's own Python, GDAL and PROJ variables (``bootstrap.QGIS_VARIABLES``) are
    removed: the engine's packages bring their own. numba caches its compiled kernels in
    the engine environment's folder (warmed at set-up), not in the plugin folder.
    """
    env = bootstrap.clean_environment()
    env["PYTHONPATH"] = str(PLUGIN_ROOT)
    folder = engine_folder(python) if python else None
    if folder is not None:
        env.setdefault("NUMBA_CACHE_DIR", str(bootstrap.numba_cache_dir(folder)))
    return env


def _reader(stream: Any, sink: queue.Queue[tuple[str, str | None]], name: str) -> None:
    for line in iter(stream.readline, ""):
        sink.put((name, line))
    sink.put((name, None))


def run_engine(
    args: Sequence[str],
    feedback: QgsProcessingFeedback | None,
    *,
    python: str | None = None,
    module: str = "core",
    outputs: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one engine command and return its outputs.

    Parameters
    ----------
    args : sequence of str
        Command and arguments after ``python -m core --progress json``.
    feedback : QgsProcessingFeedback
        Receives progress, log lines and cancellation.
    python : str, optional
        Interpreter to use instead of the configured engine.
    module : str
        Module to run (``core``, or ``core.bootstrap`` for the set-up).
    outputs : sequence of str
        Output paths: after a cancel or crash their partial files are removed.
    env : dict, optional
        Extra environment variables (kept out of the logged command line).

    Raises
    ------
    QgsProcessingException
        With the engine's own message when it reports an error, or when it is cancelled.
    """
    feedback = feedback or QgsProcessingFeedback()
    interpreter = python or check_engine()
    command = [interpreter, "-m", module, "--progress", "json", *args]
    feedback.pushCommandInfo(" ".join(_quote(part) for part in command))
    creationflags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0
    try:
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            errors="replace",
            cwd=str(PLUGIN_ROOT),
            env=parent_environment({**engine_environment(interpreter), **(env or {})}),
            creationflags=creationflags,
            **_lifetime_options(),
        )
    except OSError as err:
        raise QgsProcessingException(
            f"Could not start the LandSeg engine {interpreter}: {err}. " + SETUP_HINT
        ) from None

    with proc:  # closes the pipes, however the run ends
        try:
            return _follow(proc, feedback, outputs)
        except BaseException:
            if proc.poll() is None:
                _stop(proc)
            raise


def _follow(
    proc: subprocess.Popen[str], feedback: QgsProcessingFeedback, outputs: Sequence[str]
) -> dict[str, Any]:
    """Relay a running engine's events to the feedback; return its outputs."""
    _cancel_on_signals(feedback, proc)
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    readers = [
        threading.Thread(target=_reader, args=(stream, lines, name), daemon=True)
        for stream, name in ((proc.stdout, "out"), (proc.stderr, "err"))
    ]
    for reader in readers:
        reader.start()

    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    stderr_tail: list[str] = []
    open_streams = 2
    cancelled = False
    while open_streams:
        if feedback.isCanceled() and not cancelled:
            cancelled = True
            feedback.pushInfo("Cancelling: stopping the engine…")
            _stop(proc)
        try:
            name, line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            open_streams -= 1
            continue
        if name == "err":
            stderr_tail = [*stderr_tail[-40:], line.rstrip()]
            if line.strip():
                feedback.pushDebugInfo(line.rstrip())
            continue
        event = parse_event(line)
        if event is None:
            if line.strip():
                feedback.pushConsoleInfo(line.rstrip())
            continue
        kind = event.get("event")
        if kind == "progress":
            feedback.setProgress(float(event.get("percent", 0.0)))
        elif kind == "log":
            message = str(event.get("message", ""))
            if event.get("level") == "warning":
                feedback.pushWarning(message)
            else:
                feedback.pushInfo(message)
        elif kind == "result":
            result = dict(event.get("outputs") or {})
        elif kind == "error":
            error = event
    returncode = proc.wait()
    for reader in readers:
        reader.join(timeout=5)
    _forget_signals(proc)
    if cancelled or feedback.isCanceled():
        remove_partial_outputs(outputs)
        raise QgsProcessingException("Cancelled; no output was written.")
    if error is not None:
        remove_partial_outputs(outputs)
        raise QgsProcessingException(str(error.get("message", "The engine failed.")))
    if returncode != 0 or result is None:
        remove_partial_outputs(outputs)
        details = "\n".join(stderr_tail[-15:])
        raise QgsProcessingException(
            f"The LandSeg engine stopped unexpectedly (exit status {returncode}).\n{details}"
        )
    return result


def _lifetime_options() -> dict[str, Any]:
    """Popen options that tie the engine's life to this process.

    On POSIX the engine gets its own session (process group): a Ctrl+C in the terminal
    reaches QGIS, which cancels the run cleanly, and :func:`_stop` ends the engine's own
    helpers (Dask workers, data loaders) with it. ``LANDSEG_PARENT_PID`` asks the engine
    to end when this process does (parent-death signal and a watchdog, see
    ``core.cli.watch_parent``), so a killed QGIS leaves no engine running.
    """
    if os.name != "posix":
        return {}
    return {"start_new_session": True}


def parent_environment(env: dict[str, str]) -> dict[str, str]:
    """Add ``LANDSEG_PARENT_PID`` (this process) to an engine environment."""
    return {**env, PARENT_PID_VAR: str(os.getpid())}


PARENT_PID_VAR = "LANDSEG_PARENT_PID"

#: Runs whose SIGINT/SIGTERM cancel them: (feedback, engine process).
_RUNS: list[tuple[QgsProcessingFeedback, subprocess.Popen[str]]] = []
_PREVIOUS: dict[int, Any] = {}


def _cancel_on_signals(feedback: QgsProcessingFeedback, proc: subprocess.Popen[str]) -> None:
    """Make SIGINT and SIGTERM cancel this run (``qgis_process``, algorithms on the main thread).

    QGIS runs algorithms in the main thread under ``qgis_process``; there Python sees the
    signals while the run waits for the engine, cancels the feedback, and the run stops
    the engine, removes its partial files and fails with "Cancelled; no output was
    written." With no engine running a signal does what it did before. Elsewhere (the
    desktop's background tasks) signals cannot be handled in Python and nothing changes;
    the engine still ends with QGIS (:func:`_lifetime_options`).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    _RUNS[:] = [(f, p) for f, p in _RUNS if p.poll() is None]
    _RUNS.append((feedback, proc))
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):
            current = signal.getsignal(signum)
            if current is not _on_signal:
                _PREVIOUS[signum] = current
                signal.signal(signum, _on_signal)


def _forget_signals(proc: subprocess.Popen[str]) -> None:
    """Give SIGINT and SIGTERM back to their previous handlers once no run is left.

    Outside a run QGIS keeps its own behaviour: SIGTERM ends the desktop at once, even
    while its main thread is in Qt's event loop, where a Python handler would wait.
    """
    _RUNS[:] = [(f, p) for f, p in _RUNS if p is not proc and p.poll() is None]
    if _RUNS or threading.current_thread() is not threading.main_thread():
        return
    for signum, previous in list(_PREVIOUS.items()):
        with contextlib.suppress(ValueError, OSError, TypeError):
            if signal.getsignal(signum) is _on_signal:
                signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        del _PREVIOUS[signum]


def _on_signal(signum: int, frame: Any) -> None:
    running = [(f, p) for f, p in _RUNS if p.poll() is None]
    if running:
        for feedback, _proc in running:
            feedback.cancel()
        return
    previous = _PREVIOUS.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _stop(proc: subprocess.Popen[str]) -> None:
    """End the engine: SIGTERM lets it remove its partial files; kill if it lingers.

    On POSIX the whole process group is signalled, the engine's own helpers included.
    """
    _signal_engine(proc, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        _signal_engine(proc, getattr(signal, "SIGKILL", signal.SIGTERM))
    with contextlib.suppress(OSError):  # helpers that outlived the engine
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)


def _signal_engine(proc: subprocess.Popen[str], signum: int) -> None:
    if os.name == "posix":
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signum)
            return
    with contextlib.suppress(OSError):
        proc.send_signal(signum)


def remove_partial_outputs(outputs: Sequence[str]) -> None:
    """Delete the temporary files a stopped engine may have left next to the outputs.

    The pattern is built with :func:`glob.escape`: an output named ``run[1].gpkg`` matches
    its own partial files and no other file.
    """
    for output in outputs:
        if not output:
            continue
        path = Path(output)
        if not path.parent.is_dir():
            continue
        for partial in path.parent.glob(f".{glob.escape(path.stem)}.landseg-partial-*"):
            with contextlib.suppress(OSError):
                if partial.is_dir():
                    shutil.rmtree(partial)
                else:
                    partial.unlink()


def _quote(part: str) -> str:
    return f'"{part}"' if " " in part else part
