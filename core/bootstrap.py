"""Create or update the engine's Python environment (a venv with pinned requirements).

Run with the Python the environment should be based on (Python >= 3.10), from the plugin
folder::

    python3 -m core.bootstrap --venv ~/.local/share/landseg/engine-venv

``make setup`` and the Processing algorithm ``landseg:setupengine`` both run this module,
so desktop users on Windows and macOS need no terminal. Standard library only: it runs
before any dependency exists. Idempotent: an environment whose stamp matches the
requirements is left alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import venv
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .protocol import EngineError, Reporter

PLUGIN_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REQUIREMENTS = PLUGIN_ROOT / "requirements" / "engine.txt"
STAMP_NAME = "landseg-engine.json"

__all__ = [
    "default_venv_dir",
    "engine_python",
    "read_stamp",
    "requirements_digest",
    "setup_engine",
    "stale_reason",
]


def default_venv_dir() -> Path:
    """Return the standard location of the engine environment for this user and platform."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "landseg" / "engine-venv"


def engine_python(venv_dir: str | os.PathLike[str]) -> Path:
    """Path of the Python interpreter inside an engine environment."""
    folder = Path(venv_dir)
    if sys.platform == "win32":
        return folder / "Scripts" / "python.exe"
    return folder / "bin" / "python"


def requirements_digest(paths: Sequence[str | os.PathLike[str]]) -> str:
    """SHA-256 of the requirement files' contents (what the stamp records)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def read_stamp(venv_dir: str | os.PathLike[str]) -> dict[str, object] | None:
    """Read the stamp a finished set-up left in the environment, if any."""
    try:
        data = json.loads((Path(venv_dir) / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def stale_reason(venv_dir: str | os.PathLike[str]) -> str | None:
    """Say why an engine environment does not match this plugin's requirements, if it doesn't.

    Returns
    -------
    str or None
        ``None`` when the environment was set up with the current ``engine.txt``.
    """
    stamp = read_stamp(venv_dir)
    if stamp is None:
        return f"{venv_dir} was not set up by LandSeg (no {STAMP_NAME})."
    files = stamp.get("files")
    current = requirements_digest([DEFAULT_REQUIREMENTS])
    if not isinstance(files, dict) or files.get(DEFAULT_REQUIREMENTS.name) != current:
        return (
            f"{venv_dir} was set up for LandSeg {stamp.get('landseg', '?')} with other "
            "requirements than this version needs."
        )
    return None


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _stream(
    cmd: list[str], reporter: Reporter, *, expected_lines: int, start: float, span: float
) -> None:
    """Run a command, forwarding its output as log lines and rough progress."""
    reporter.info("$ " + " ".join(cmd))
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=_clean_env(),
    )
    assert proc.stdout is not None
    seen = 0
    tail: list[str] = []
    for line in proc.stdout:
        line = line.rstrip()
        if not line:
            continue
        tail = [*tail[-30:], line]
        if re.match(
            r"^(Collecting|Processing|Downloading|Installing|Successfully|Requirement)", line
        ):
            seen += 1
            reporter.info(line)
            reporter.progress(start + span * min(seen / expected_lines, 1.0))
    if proc.wait() != 0:
        raise EngineError(
            f"{cmd[0]} {' '.join(cmd[1:3])} ... failed (exit status {proc.returncode}). "
            "Last output:\n" + "\n".join(tail)
        )


def _write_launcher(venv_dir: Path) -> Path:
    """Put a ``landseg`` command into the environment for headless users."""
    python = engine_python(venv_dir)
    if sys.platform == "win32":
        launcher = venv_dir / "Scripts" / "landseg.cmd"
        launcher.write_text(
            f'@echo off\r\nset "PYTHONPATH={PLUGIN_ROOT}"\r\n"{python}" -m core %*\r\n',
            encoding="utf-8",
        )
        return launcher
    launcher = venv_dir / "bin" / "landseg"
    code = (
        f"import sys; sys.path.insert(0, {str(PLUGIN_ROOT)!r}); "
        "sys.argv[0] = 'landseg'; from core.cli import main; sys.exit(main())"
    )
    launcher.write_text(
        "#!/bin/sh\n# LandSeg engine command line (written by core.bootstrap)\n"
        f'exec "{python}" -c "{code}" "$@"\n',
        encoding="utf-8",
    )
    launcher.chmod(0o755)
    return launcher


def setup_engine(
    venv_dir: str | os.PathLike[str] | None = None,
    *,
    requirements: Sequence[str | os.PathLike[str]] = (DEFAULT_REQUIREMENTS,),
    force: bool = False,
    extra_index_url: str | None = None,
    reporter: Reporter | None = None,
) -> dict[str, str]:
    """Create the engine environment and install the pinned requirements into it.

    Parameters
    ----------
    venv_dir : path, optional
        Where to create it; :func:`default_venv_dir` by default.
    requirements : sequence of paths
        pip requirement files to install.
    force : bool
        Recreate the environment from scratch even if it is up to date.
    extra_index_url : str, optional
        Extra package index for pip, e.g. PyTorch's CUDA wheel index on Windows.
    reporter : Reporter, optional
        Progress and log sink.

    Returns
    -------
    dict
        ``ENGINE_PYTHON`` (interpreter path), ``VENV`` and ``STATUS`` ("created",
        "updated" or "up to date").
    """
    report = reporter or Reporter("text")
    folder = Path(venv_dir) if venv_dir else default_venv_dir()
    files = [Path(p) for p in requirements]
    for path in files:
        if not path.is_file():
            raise EngineError(f"Requirements file not found: {path}.")
    digest = requirements_digest(files)
    python = engine_python(folder)
    stamp = read_stamp(folder)
    if not force and stamp and stamp.get("requirements_sha256") == digest and python.exists():
        report.info(f"The engine environment {folder} is up to date.")
        report.progress(100)
        return {"ENGINE_PYTHON": str(python), "VENV": str(folder), "STATUS": "up to date"}

    status = "updated" if python.exists() and not force else "created"
    if force and folder.exists():
        report.info(f"Removing {folder} to recreate it.")
        shutil.rmtree(folder)
    if not python.exists():
        report.info(
            f"Creating the environment {folder} with Python {platform.python_version()}"
            f" ({sys.executable})."
        )
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            venv.EnvBuilder(with_pip=True, clear=False).create(folder)
        except (OSError, subprocess.CalledProcessError) as err:
            raise EngineError(
                f"Could not create a Python environment in {folder}: {err}. On Debian/Ubuntu "
                "install python3-venv; elsewhere check that the folder is writable."
            ) from None
    report.progress(5)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    _stream([*pip, "install", "--upgrade", "pip"], report, expected_lines=3, start=5, span=5)
    install = [*pip, "install"]
    for path in files:
        install += ["-r", str(path)]
    if extra_index_url:
        install += ["--extra-index-url", extra_index_url]
    _stream(install, report, expected_lines=80, start=10, span=80)

    launcher = _write_launcher(folder)
    report.info(f"Engine command line: {launcher}")
    env = _clean_env()
    env["PYTHONPATH"] = str(PLUGIN_ROOT)
    check = subprocess.run(
        [str(python), "-m", "core", "info"],
        capture_output=True,
        text=True,
        env=env,
        cwd=PLUGIN_ROOT,
        check=False,
    )
    if check.returncode != 0:
        raise EngineError(
            "The engine environment was installed but does not start:\n" + check.stderr[-2000:]
        )
    report.info("Engine check: " + " ".join(check.stdout.split()))
    (folder / STAMP_NAME).write_text(
        json.dumps(
            {
                "requirements_sha256": digest,
                "landseg": __version__,
                "python": platform.python_version(),
                "files": {path.name: requirements_digest([path]) for path in files},
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    report.progress(100)
    return {"ENGINE_PYTHON": str(python), "VENV": str(folder), "STATUS": status}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: ``python -m core.bootstrap --help``."""
    parser = argparse.ArgumentParser(
        prog="python -m core.bootstrap",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--venv", default=None, help=f"Default: {default_venv_dir()}")
    parser.add_argument(
        "--requirements",
        action="append",
        default=None,
        help=f"Requirement file(s) (default: {DEFAULT_REQUIREMENTS}).",
    )
    parser.add_argument("--force", action="store_true", help="Recreate from scratch.")
    parser.add_argument(
        "--extra-index-url",
        default=None,
        help="Extra pip index, e.g. for CUDA builds of PyTorch on Windows.",
    )
    parser.add_argument("--progress", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    reporter = Reporter(args.progress)
    reporter.start("setup", __version__)
    try:
        result = setup_engine(
            args.venv,
            requirements=args.requirements or [DEFAULT_REQUIREMENTS],
            force=args.force,
            extra_index_url=args.extra_index_url,
            reporter=reporter,
        )
    except EngineError as err:
        reporter.error(str(err))
        return 2
    except KeyboardInterrupt:
        reporter.error("Cancelled.", kind="Cancelled")
        return 130
    reporter.result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
