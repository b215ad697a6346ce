"""Build the installable plugin zip: dist/landseg-<version>.zip with top folder landseg/.

Only what QGIS needs ships: no tests, benchmarks, scripts or development files.
"""

from __future__ import annotations

import argparse
import configparser
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [
    "metadata.txt",
    "__init__.py",
    "LICENSE",
    "README.md",
    "core",
    "qgis_plugin",
    "resources",
    "requirements",
]
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}


def version() -> str:
    """Read the plugin version from metadata.txt (the single source)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    return parser["general"]["version"]


def shipped_files() -> list[Path]:
    """List the files that go into the zip, relative to the repository root."""
    files: list[Path] = []
    for entry in SHIPPED:
        path = ROOT / entry
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        for file in candidates:
            rel = file.relative_to(ROOT)
            if file.is_file() and not SKIPPED_PARTS & set(rel.parts) and file.suffix != ".pyc":
                files.append(rel)
    return files


def main() -> None:
    """Write the zip and print its path."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default=None, help="Zip path (default: dist/).")
    args = parser.parse_args()
    target = Path(args.output) if args.output else ROOT / "dist" / f"landseg-{version()}.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel in shipped_files():
            archive.write(ROOT / rel, Path("landseg") / rel)
    tmp.replace(target)
    print(target)


if __name__ == "__main__":
    main()
