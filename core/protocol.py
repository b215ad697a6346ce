"""How the engine talks to whoever runs it: progress, log lines, errors and results.

Two modes:

``json``
    One JSON object per line on standard output, for the QGIS plugin (or any program).
    Events::

        {"event": "start", "protocol": 1, "version": "0.1.0", "command": "slic"}
        {"event": "progress", "percent": 42.0}
        {"event": "log", "level": "info" | "warning", "message": "..."}
        {"event": "result", "outputs": {...}}
        {"event": "error", "kind": "ValueError", "message": "..."}

``text``
    Human-readable progress and messages on standard error; the result as JSON on
    standard output, so shell scripts can still parse it.

This module uses the standard library only: it is imported by the engine, by the
environment bootstrap (which runs before any dependency is installed) and by the plugin.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Literal, TextIO

PROTOCOL_VERSION = 1

Mode = Literal["json", "text"]


class EngineError(Exception):
    """A problem with the user's input or environment, reported verbatim to the user.

    The message must name the problem and the fix. Any ``ValueError`` raised by the
    engine is treated the same way.
    """


class Reporter:
    """Send progress, messages and results to the caller.

    Parameters
    ----------
    mode : {"json", "text"}
        Machine-readable JSON lines on ``out``, or human-readable text on ``err``.
    out, err : text streams, optional
        Standard output and standard error by default.
    """

    def __init__(
        self, mode: Mode = "text", *, out: TextIO | None = None, err: TextIO | None = None
    ) -> None:
        if mode not in ("json", "text"):
            raise ValueError(f"Unknown progress mode {mode!r}: use 'json' or 'text'.")
        self.mode: Mode = mode
        self._out = out if out is not None else sys.stdout
        self._err = err if err is not None else sys.stderr
        self._last_percent = -1.0
        self._silent = False

    @classmethod
    def quiet(cls) -> Reporter:
        """Make a reporter that says nothing (work whose caller reports for it)."""
        reporter = cls("text")
        reporter._silent = True
        return reporter

    def part(self, start: float, stop: float) -> Reporter:
        """Make a reporter for one part of the run: its 0-100 % maps to ``start``-``stop``.

        Messages go through unchanged; start, result and error events are dropped.
        """
        return _Part(self, start, stop)

    def _emit(self, event: dict[str, Any]) -> None:
        if self._silent:
            return
        self._out.write(json.dumps(event, default=str) + "\n")
        self._out.flush()

    def start(self, command: str, version: str) -> None:
        """Announce the command being run."""
        if self.mode == "json":
            self._emit(
                {
                    "event": "start",
                    "protocol": PROTOCOL_VERSION,
                    "version": version,
                    "command": command,
                }
            )

    def progress(self, percent: float) -> None:
        """Report overall progress in percent (0-100); repeated values are dropped."""
        if self._silent:
            return
        percent = float(min(max(percent, 0.0), 100.0))
        if percent - self._last_percent < 0.5 and percent < 100.0:
            return
        self._last_percent = percent
        if self.mode == "json":
            self._emit({"event": "progress", "percent": round(percent, 1)})
        else:
            self._err.write(f"{percent:5.1f}%\n")
            self._err.flush()

    def info(self, message: str) -> None:
        """Log an informational message."""
        self._log("info", message)

    def warning(self, message: str) -> None:
        """Log a warning the user should read."""
        self._log("warning", message)

    def _log(self, level: str, message: str) -> None:
        if self._silent:
            return
        if self.mode == "json":
            self._emit({"event": "log", "level": level, "message": message})
        else:
            prefix = "WARNING: " if level == "warning" else ""
            self._err.write(f"{prefix}{message}\n")
            self._err.flush()

    def result(self, outputs: dict[str, Any]) -> None:
        """Report the outputs of a successful run."""
        if self._silent:
            return
        if self.mode == "json":
            self._emit({"event": "result", "outputs": outputs})
        else:
            self._out.write(json.dumps(outputs, indent=2, default=str) + "\n")
            self._out.flush()

    def error(self, message: str, *, kind: str = "EngineError") -> None:
        """Report the error that ended the run."""
        if self._silent:
            return
        if self.mode == "json":
            self._emit({"event": "error", "kind": kind, "message": message})
        else:
            self._err.write(f"ERROR: {message}\n")
            self._err.flush()


class _Part(Reporter):
    """Progress of one part of a run, mapped into its share of the parent's (:meth:`part`)."""

    def __init__(self, parent: Reporter, start: float, stop: float) -> None:
        super().__init__(parent.mode)
        self._silent = True  # nothing of its own: it speaks through the parent
        self._parent, self._start, self._span = parent, start, stop - start

    def progress(self, percent: float) -> None:
        self._parent.progress(self._start + self._span * percent / 100.0)

    def info(self, message: str) -> None:
        self._parent.info(message)

    def warning(self, message: str) -> None:
        self._parent.warning(message)


def parse_event(line: str) -> dict[str, Any] | None:
    """Parse one line of engine output; ``None`` if it is not a protocol event."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(event, dict) or "event" not in event:
        return None
    return event
