"""Paths of the files under ``resources/`` (icons, styles, help)."""

from __future__ import annotations

from pathlib import Path

PLUGIN_ROOT = Path(__file__).resolve().parent.parent
RESOURCES = PLUGIN_ROOT / "resources"


def icon_path(name: str) -> str:
    """Return the path of ``resources/icons/<name>.svg`` (the provider icon if missing)."""
    path = RESOURCES / "icons" / f"{name}.svg"
    return str(path if path.exists() else RESOURCES / "icons" / "landseg.svg")


def help_html(algorithm_id: str) -> str:
    """Return the help text of an algorithm (``resources/help/<id>.html``)."""
    path = RESOURCES / "help" / f"{algorithm_id}.html"
    return path.read_text(encoding="utf-8") if path.exists() else ""
