"""Per-band normalization of raster values (uint8, uint16, float, any band count).

:func:`band_limits` and :func:`stretch` work on arrays; :func:`global_statistics` gives
the limits of a whole raster from a subsample, so that its blocks are stretched alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling

from .params import DEFAULT_PERCENTILES, NORMALIZATIONS
from .protocol import EngineError

__all__ = ["SAMPLE_PIXELS", "band_limits", "global_statistics", "stretch"]

#: Pixels read (decimated) to estimate the global stretch limits and valid fraction.
SAMPLE_PIXELS = 1_000_000

#: Number of valid pixels sampled per band to estimate percentiles of large rasters.
_MAX_SAMPLES = 1_000_000


def band_limits(
    image: np.ndarray,
    valid: np.ndarray,
    *,
    method: str = "percentile",
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    seed: int = 0,
) -> np.ndarray:
    """Compute the low and high value of each band used to stretch it.

    Parameters
    ----------
    image : (C, H, W) ndarray
        Band values.
    valid : (H, W) bool ndarray
        Pixels to take into account.
    method : {"percentile", "minmax"}
        Percentiles of the valid values (robust to outliers and to Sentinel-2's bright
        clouds), or their minimum and maximum.
    percentiles : (float, float)
        Low and high percentile for ``method="percentile"``.
    seed : int
        Seed for the subsample of valid pixels used on large rasters (at most one million
        pixels), so the limits are reproducible.

    Returns
    -------
    (C, 2) float64 ndarray
        Low and high value per band.
    """
    low, high = percentiles
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(
            f"Percentiles {percentiles} are invalid: give a low and a high percentile with "
            "0 <= low < high <= 100, for example 2 98."
        )
    values = image[:, valid]
    if values.shape[1] == 0:
        raise ValueError("The raster has no valid pixel to compute band statistics from.")
    if values.shape[1] > _MAX_SAMPLES:
        rng = np.random.default_rng(seed)
        values = values[:, rng.choice(values.shape[1], _MAX_SAMPLES, replace=False)]
    if method == "percentile":
        return np.percentile(values, [low, high], axis=1).T.astype(np.float64)
    if method == "minmax":
        return np.stack([values.min(axis=1), values.max(axis=1)], axis=1).astype(np.float64)
    raise ValueError(f"Unknown normalization {method!r}: use one of {', '.join(NORMALIZATIONS)}.")


def stretch(
    image: np.ndarray,
    valid: np.ndarray,
    *,
    method: str = "percentile",
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    out_max: float = 1.0,
    limits: np.ndarray | None = None,
) -> np.ndarray:
    """Stretch each band linearly to ``[0, out_max]``, clipping values beyond the limits.

    Parameters
    ----------
    image : (C, H, W) ndarray
        Band values of any dtype.
    valid : (H, W) bool ndarray
        Valid pixels; the others are set to 0 in the result.
    method : {"percentile", "minmax", "none"}
        How the limits are found (see :func:`band_limits`); ``"none"`` returns the values
        unchanged (as float32), for bands already on a common scale.
    percentiles : (float, float)
        Low and high percentile for ``method="percentile"``.
    out_max : float
        Upper end of the output range.
    limits : (C, 2) ndarray, optional
        Precomputed limits (for example from the whole raster when stretching a window).

    Returns
    -------
    (C, H, W) float32 ndarray
        Stretched bands. A constant band becomes 0.
    """
    if method not in NORMALIZATIONS:
        raise ValueError(
            f"Unknown normalization {method!r}: use one of {', '.join(NORMALIZATIONS)}."
        )
    out = np.zeros(image.shape, dtype=np.float32)
    if method == "none":
        out[:, valid] = image[:, valid]
        return out
    if limits is None:
        limits = band_limits(image, valid, method=method, percentiles=percentiles)
    for band, (low, high) in enumerate(limits):
        span = high - low
        if span <= 0:
            continue
        scaled = (image[band].astype(np.float32) - np.float32(low)) * np.float32(out_max / span)
        np.clip(scaled, 0.0, out_max, out=scaled)
        out[band] = np.where(valid, scaled, 0.0)
    return out


def global_statistics(
    src: rasterio.DatasetReader,
    bands: Sequence[int],
    *,
    nodata_zero: bool,
    method: str,
    percentiles: tuple[float, float],
    out_max: float,
) -> tuple[np.ndarray | None, float, tuple[float, float]]:
    """Stretch limits, valid fraction and stretched value range from a raster subsample.

    Reads every ``f``-th row and column (nearest neighbour, so the values are real pixel
    values), ``f`` chosen to read about :data:`SAMPLE_PIXELS` pixels.

    Returns
    -------
    limits : (C, 2) ndarray or None
        Per-band low and high of the stretch; None for ``method="none"``.
    valid_fraction : float
        Fraction of valid pixels in the subsample.
    value_range : (float, float)
        Smallest and largest stretched value over all bands (SLIC's value scaling).

    Raises
    ------
    EngineError
        If no pixel of the subsample is valid.
    """
    factor = max(math.ceil(math.sqrt(src.height * src.width / SAMPLE_PIXELS)), 1)
    shape = (len(bands), -(-src.height // factor), -(-src.width // factor))
    image = src.read(list(bands), out_shape=shape, resampling=Resampling.nearest,
                     out_dtype="float32")  # fmt: skip
    masks = src.read_masks(list(bands), out_shape=shape, resampling=Resampling.nearest)
    valid = np.all(masks > 0, axis=0) & np.all(np.isfinite(image), axis=0)
    if nodata_zero:
        valid &= np.any(image != 0, axis=0)
    if not valid.any():
        raise EngineError(
            f"{src.name} has no valid pixel in bands {list(bands)} (in a subsample of "
            f"{shape[1]} x {shape[2]} px): check the raster's nodata value and the bands."
        )
    limits = None
    if method != "none":
        limits = band_limits(image, valid, method=method, percentiles=percentiles)
    stretched = stretch(image, valid, method=method, out_max=out_max, limits=limits)
    values = stretched[:, valid]
    return limits, float(valid.mean()), (float(values.min()), float(values.max()))
