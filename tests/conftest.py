"""Shared test helpers: where the real data sets live."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: ../shared/data beside the checkout (development machines and CI), then data/ (make data).
DATA_DIRS = [ROOT.parent / "shared" / "data", ROOT / "data"]


def find_data(name: str) -> Path | None:
    """Return the folder of a real data set, or None when it is absent."""
    for base in DATA_DIRS:
        if (base / name).is_dir():
            return base / name
    return None


@pytest.fixture(scope="session")
def nc_dir() -> Path:
    """North Carolina Landsat 7 sample (../shared/data or `make data`)."""
    folder = find_data("nc-landsat7")
    if folder is None or not (folder / "landsat_multiband.tif").exists():
        pytest.skip("NC Landsat data absent: no ../shared/data/nc-landsat7; run `make data`.")
    return folder


@pytest.fixture(scope="session")
def dubai_dir() -> Path:
    """Dubai aerial tiles (only in ../shared/data)."""
    folder = find_data("dubai-aerial")
    if folder is None:
        pytest.skip("Dubai aerial data absent: no ../shared/data/dubai-aerial beside the checkout.")
    return folder
