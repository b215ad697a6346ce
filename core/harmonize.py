"""Sentinel-2 L2A harmonisation: remove the +1000 BOA offset of processing baseline 04.00.

From processing baseline 04.00 (products from 25 January 2022 on) ESA adds 1000 to every
Sentinel-2 Level-2A surface reflectance digital number (``BOA_ADD_OFFSET`` = -1000 in the
product metadata: reflectance = (DN + BOA_ADD_OFFSET) / 10000). A network trained on
scenes from before that date sees every later scene 0.1 brighter in every band, and the
other way round. :func:`detect_s2_offset` finds the offset from the raster's GDAL metadata
(the SENTINEL2 driver's ``BOA_ADD_OFFSET`` per band, or ``PROCESSING_BASELINE`` >= 04.00 of
an L2A product) or, when the metadata says nothing, from the values: a uint16 raster whose
darkest pixels (water, shadows) sit just above 1000 in every band instead of near 0.
:func:`harmonize_image` subtracts it, so that scenes of both baselines share one scale.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["S2_BOA_OFFSET", "detect_s2_offset", "harmonize_image", "raster_s2_offset"]

#: The digital-number offset of Sentinel-2 L2A products from processing baseline 04.00.
S2_BOA_OFFSET = 1000.0
#: Darkest-pixel percentile used by the value test, and the window it must fall in.
_DARK_PERCENTILE = 0.5
_DARK_WINDOW = (S2_BOA_OFFSET, S2_BOA_OFFSET + 600.0)


def _number(text: str) -> float | None:
    try:
        return float(str(text).strip())
    except ValueError:
        return None


def _from_metadata(tags: Mapping[str, str], band_tags: Sequence[Mapping[str, str]]) -> str | None:
    """Why the metadata says the offset is there, or None."""
    for where, mapping in (("dataset", tags), *(("band", t) for t in band_tags)):
        for key, value in mapping.items():
            if "BOA_ADD_OFFSET" in key.upper():
                number = _number(value)
                if number is not None and number <= -S2_BOA_OFFSET / 2:
                    return f"{key}={value} in the {where} metadata"
    baseline = next((v for k, v in tags.items() if "PROCESSING_BASELINE" in k.upper()), None)
    level = " ".join(
        str(v) for k, v in tags.items() if k.upper() in ("PRODUCT_TYPE", "PROCESSING_LEVEL")
    )
    if baseline is not None and ("2A" in level.upper() or "BOA" in level.upper()):
        match = re.search(r"\d+(\.\d+)?", str(baseline))
        if match and float(match.group()) >= 4.0:
            return f"L2A processing baseline {baseline} (>= 04.00)"
    return None


def detect_s2_offset(
    *,
    tags: Mapping[str, str] | None = None,
    band_tags: Sequence[Mapping[str, str]] = (),
    image: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    dtype: str | None = None,
) -> tuple[float, str]:
    """Find the Sentinel-2 BOA offset of a raster from its metadata, else from its values.

    Parameters
    ----------
    tags : mapping, optional
        The raster's dataset metadata (``rasterio`` ``tags()``, GDAL's default domain).
    band_tags : sequence of mapping
        Each band's metadata.
    image : (C, H, W) ndarray, optional
        Band values (a decimated read is enough) for the value test.
    valid : (H, W) bool ndarray, optional
        Valid pixels of ``image``.
    dtype : str, optional
        The raster's data type; the value test only applies to ``uint16`` (Sentinel-2's).

    Returns
    -------
    offset : float
        The value to subtract: 1000 when the offset is there, else 0.
    reason : str
        Why, for the log.
    """
    why = _from_metadata(tags or {}, band_tags)
    if why:
        return S2_BOA_OFFSET, why
    if image is None or dtype != "uint16":
        return 0.0, "no BOA offset in the metadata"
    mask = np.ones(image.shape[1:], bool) if valid is None else valid
    values = image[:, mask]
    if values.shape[1] < 100:
        return 0.0, "too few valid pixels to test the values"
    dark = np.percentile(values, _DARK_PERCENTILE, axis=1)
    low, high = _DARK_WINDOW
    if np.all((dark >= low) & (dark < high)):
        return S2_BOA_OFFSET, (
            f"the darkest pixels of every band are {dark.min():.0f}-{dark.max():.0f}, just "
            "above the +1000 offset of Sentinel-2 baseline 04.00"
        )
    return 0.0, "no BOA offset in the metadata or the values"


def raster_s2_offset(src: object, image: np.ndarray, valid: np.ndarray) -> tuple[float, str]:
    """:func:`detect_s2_offset` of an open rasterio dataset and values read from it."""
    tags = dict(src.tags())  # type: ignore[attr-defined]
    band_tags = [dict(src.tags(b)) for b in range(1, src.count + 1)]  # type: ignore[attr-defined]
    dtype = str(src.dtypes[0])  # type: ignore[attr-defined]
    return detect_s2_offset(tags=tags, band_tags=band_tags, image=image, valid=valid, dtype=dtype)


def harmonize_image(image: np.ndarray, valid: np.ndarray, offset: float) -> np.ndarray:
    """Subtract ``offset`` from the valid pixels of a float image (in place).

    No clipping: the result stays an affine function of the digital numbers (ESA's
    reflectances may be slightly negative too), so prediction can fold it into the
    per-band normalisation.
    """
    if offset:
        image[:, valid] -= np.float32(offset)
    return image
