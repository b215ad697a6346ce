"""Check the plugin zip as the QGIS plugin repository (plugins.qgis.org) checks an upload.

The repository's validator refuses a zip that is too big (25 MB), has paths with ``..`` or
a leading ``/``, ``.pyc`` files, ``__MACOSX``, ``.git`` or ``__pycache__`` folders, a
damaged member, no single top folder named ``[A-Za-z][A-Za-z0-9-_]+`` with
``__init__.py`` and ``metadata.txt``, metadata it cannot parse (its parser interpolates
``%``), a missing required field, malformed or placeholder URLs, no ``LICENSE``, or an
author with a slash. This script runs those checks offline (it does not fetch the URLs,
which the repository does), plus a few of the plugin guidelines: the icon is in the zip, the
category is one of QGIS's, booleans are booleans, versions are ordered, the changelog
names the version, and no compiled binaries ship.

Usage: ``python scripts/check_package.py dist/landseg-<version>.zip`` (``make
check-package``). Exit status 1 and one line per problem when the zip would be refused.
"""

from __future__ import annotations

import argparse
import configparser
import io
import re
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlparse

MAX_SIZE = 25_000_000
REQUIRED = (
    "name",
    "description",
    "version",
    "qgisMinimumVersion",
    "author",
    "email",
    "about",
    "tracker",
    "repository",
)
BOOLEANS = ("experimental", "deprecated", "server", "hasProcessingProvider", "supportsQt6")
CATEGORIES = ("Raster", "Vector", "Database", "Web", "Mesh", "Plugins")
PLACEHOLDER_URLS = {"http://bugs", "http://repo", "http://homepage"}
FORBIDDEN_DIRS = ("__MACOSX", ".git", "__pycache__")
# Magic numbers of compiled programs and libraries: ELF, Windows PE, Mach-O, Java class.
BINARY_MAGIC = (b"\x7fELF", b"MZ", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe")
TEXT_SUFFIXES = {".py", ".txt", ".md", ".html", ".svg", ".qml", ".model3", ".json", ".cfg"}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def check_zip(path: Path) -> list[str]:
    """Return the problems of a plugin zip (empty when the repository would accept it)."""
    problems: list[str] = []
    if path.stat().st_size > MAX_SIZE:
        problems.append(f"{path.name} is {path.stat().st_size / 1e6:.1f} MB; the limit is 25 MB.")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        return [f"{path} is not a zip file."]
    with archive:
        names = archive.namelist()
        for name in names:
            if ".." in name or name.startswith("/"):
                problems.append(f"{name}: paths may not contain '..' or start with '/'.")
            if ".pyc" in name:
                problems.append(f"{name}: no .pyc files.")
            parts = name.split("/")
            for folder in FORBIDDEN_DIRS:
                if folder in parts:
                    problems.append(f"{name}: no {folder} folders.")
        bad = archive.testzip()
        if bad:
            problems.append(f"{bad}: damaged member (CRC error).")
        tops = sorted({name.split("/")[0] for name in names})
        if len(tops) != 1:
            problems.append(f"One top folder expected, found {tops}.")
        package = tops[0] if tops else ""
        if not re.match(r"^[A-Za-z][A-Za-z0-9-_]+$", package):
            problems.append(
                f"Top folder {package!r}: ASCII letter first, then letters, digits, - or _."
            )
        for needed in ("__init__.py", "metadata.txt", "LICENSE"):
            if f"{package}/{needed}" not in names:
                problems.append(f"{package}/{needed} is missing.")
        for name in names:
            if name.endswith("/") or Path(name).suffix in TEXT_SUFFIXES:
                continue
            with archive.open(name) as member:
                head = member.read(4)
            if head.startswith(BINARY_MAGIC):
                problems.append(f"{name}: compiled binaries may not ship in a plugin.")
        if f"{package}/metadata.txt" in names:
            text = archive.read(f"{package}/metadata.txt").decode("utf-8")
            problems += check_metadata(text, names, package)
    return problems


def check_metadata(text: str, names: list[str], package: str) -> list[str]:
    """Return the problems of metadata.txt, parsed as the repository parses it."""
    parser = configparser.ConfigParser()  # the repository's parser: '%' interpolates
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    try:
        parser.read_file(io.StringIO(text))
        general = dict(parser.items("general"))
    except (configparser.Error, KeyError) as error:
        return [f"metadata.txt cannot be parsed: {error}"]
    problems = [
        f"metadata.txt: required field {key} is missing or empty."
        for key in REQUIRED
        if not general.get(key, "").strip()
    ]
    for key in ("tracker", "repository", "homepage"):
        url = general.get(key, "").strip()
        if key == "homepage" and not url:
            continue
        parsed = urlparse(url)
        if url in PLACEHOLDER_URLS or not (parsed.scheme and parsed.netloc):
            problems.append(f"metadata.txt: {key}={url!r} is not a valid URL.")
    if "/" in general.get("author", ""):
        problems.append("metadata.txt: the author may not contain slashes.")
    for key in BOOLEANS:
        value = general.get(key)
        if value is not None and value.strip().lower() not in ("true", "false", "yes", "no"):
            problems.append(f"metadata.txt: {key}={value!r} should be True or False.")
    category = general.get("category", "").strip()
    if category and category not in CATEGORIES:
        problems.append(f"metadata.txt: category={category!r} is not one of {CATEGORIES}.")
    icon = general.get("icon", "").strip().removeprefix("./")
    if icon and f"{package}/{icon}" not in names:
        problems.append(f"metadata.txt: icon {icon} is not in the zip.")
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?(-?[A-Za-z0-9.]+)?", general.get("version", "").strip()):
        problems.append(f"metadata.txt: version {general.get('version')!r} is not like 1.2.3.")
    low = general.get("qgisMinimumVersion", "")
    high = general.get("qgisMaximumVersion", "")
    if low and high and _version(low) > _version(high):
        problems.append("metadata.txt: qgisMinimumVersion is above qgisMaximumVersion.")
    version = general.get("version", "").strip()
    if version and version not in general.get("changelog", ""):
        problems.append(f"metadata.txt: the changelog does not mention version {version}.")
    if len(general.get("description", "")) > 250:
        problems.append("metadata.txt: the description should be one sentence (250 characters).")
    return problems


def main() -> int:
    """Check the zips given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zips", nargs="+", type=Path)
    args = parser.parse_args()
    failed = False
    for path in args.zips:
        problems = check_zip(path)
        for problem in problems:
            print(f"{path.name}: {problem}")
        if not problems:
            size = path.stat().st_size / 1e6
            print(f"{path.name}: passes the plugin repository's checks ({size:.2f} MB).")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
