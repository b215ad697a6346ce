"""Fixtures for engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasters import parcels, write_tif


@pytest.fixture
def small_tif(tmp_path: Path) -> Path:
    """A 3-band 96x80 float raster with a nodata corner."""
    image = parcels((96, 80), 3)
    image[:, :10, :10] = -9999
    return write_tif(tmp_path / "small.tif", image, nodata=-9999)
