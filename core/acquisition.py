"""Input normalisation of the U-Net, the same at training and prediction time.

Acquisitions of one place differ in illumination, atmosphere and sensor calibration: to a
first approximation each band of a new date is a linear function of the same band on the
training date. The model file records how its inputs were normalised (its
``normalization`` entry) and :func:`raster_normalization` rebuilds that for any raster:

``training``
    ``(x - mean) / std`` with the training images' statistics (LandSeg's original
    behaviour, and what model files without a ``mode`` use). Best when every image
    shares one radiometric scale (a harmonised time series, one sensor and product).
``image``
    Each image standardised with its own per-band mean and standard deviation. Removes
    any per-band gain and offset between dates exactly; it assumes the new image holds
    roughly the same mix of land covers as the training images.
``percentile``
    Each image's own 2nd-98th percentile range mapped to -2..2 (no clipping): like
    ``image`` but robust to clouds, glint and saturated pixels.

Sentinel-2 harmonisation (:mod:`core.harmonize`) comes first when the model asks for it:
the +1000 BOA offset is subtracted from the images that carry it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .params import UNET_NORMALIZATIONS
from .protocol import EngineError, Reporter

__all__ = [
    "NORMALIZATION_MODES",
    "image_statistics",
    "model_bands",
    "raster_normalization",
    "read_sample",
]

#: U-Net input normalisation modes (the model file's ``normalization.mode``).
NORMALIZATION_MODES: tuple[str, ...] = UNET_NORMALIZATIONS
#: Pixels read to estimate one raster's statistics at prediction time (a decimated read).
SAMPLE_PIXELS = 1_000_000


def image_statistics(
    image: np.ndarray, valid: np.ndarray, *, mode: str, max_samples: int = SAMPLE_PIXELS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per-band offsets and scales of one image for ``mode`` ``image`` or ``percentile``.

    Parameters
    ----------
    image : (C, H, W) ndarray
        Band values (harmonised already when the model harmonises).
    valid : (H, W) bool ndarray
        Pixels to use.
    mode : {"image", "percentile"}
        Mean and standard deviation, or the 2-98 percentile range: normalised values are
        ``(x - offset) / scale``, with ``offset = (p2 + p98) / 2`` and
        ``scale = (p98 - p2) / 4`` for ``percentile``.
    max_samples : int
        At most this many valid pixels are used (a seeded random subset).

    Returns
    -------
    offsets, scales : (C,) float64 ndarrays
        Scales are at least 1e-6.
    """
    if mode not in ("image", "percentile"):
        raise ValueError(f"Unknown per-image normalisation {mode!r}: use 'image' or 'percentile'.")
    values = image[:, valid]
    if values.shape[1] == 0:
        raise ValueError("The image has no valid pixel to compute its band statistics from.")
    if values.shape[1] > max_samples:
        pick = np.random.default_rng(seed).choice(values.shape[1], max_samples, replace=False)
        values = values[:, np.sort(pick)]
    values = values.astype(np.float64)
    if mode == "image":
        return values.mean(axis=1), np.maximum(values.std(axis=1), 1e-6)
    low, high = np.percentile(values, [2.0, 98.0], axis=1)
    return (low + high) / 2, np.maximum((high - low) / 4, 1e-6)


def read_sample(
    path: str, bands: Sequence[int], *, nodata_zero: bool, max_pixels: int = SAMPLE_PIXELS
) -> tuple[np.ndarray, np.ndarray, Any]:
    """Read a raster's bands, decimated to at most ``max_pixels``, with its valid mask.

    Returns the values, the mask and a dict of the metadata the harmonisation reads
    (``tags``, ``band_tags``, ``dtype``).
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    from . import io

    with warnings.catch_warnings(), io.open_raster(path) as src:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        factor = max(1.0, float(np.sqrt(src.width * src.height / max_pixels)))
        shape = (max(1, int(src.height / factor)), max(1, int(src.width / factor)))
        image = src.read(
            list(bands), out_shape=(len(bands), *shape), out_dtype="float32",
            resampling=rasterio.enums.Resampling.nearest,
        )  # fmt: skip
        masks = src.read_masks(
            list(bands), out_shape=(len(bands), *shape),
            resampling=rasterio.enums.Resampling.nearest,
        )  # fmt: skip
        meta = {
            "tags": dict(src.tags()),
            "band_tags": [dict(src.tags(b)) for b in range(1, src.count + 1)],
            "dtype": str(src.dtypes[next(iter(bands)) - 1]),
        }
    valid = np.all(masks > 0, axis=0) & np.all(np.isfinite(image), axis=0)
    if nodata_zero:
        valid &= np.any(image != 0, axis=0)
    return image, valid, meta


def model_bands(metadata: dict[str, Any], src: str, report: Reporter) -> list[int]:
    """Return the input bands a model reads from ``src`` (checks count, types, resolution)."""
    from . import io

    wanted = metadata.get("bands", {})
    count = int(wanted.get("count", 0))
    info = io.inspect_raster(src)
    indices = [int(b) for b in wanted.get("indices") or range(1, count + 1)]
    if info.count != count and (max(indices) > info.count or len(indices) != count):
        raise EngineError(
            f"The model was trained on {count} bands "
            f"({', '.join(map(str, wanted.get('names') or []))}) "
            f"but {src} has {info.count}. Give a raster with the same bands, in the same order, "
            "as the training images."
        )
    if info.count != count:
        report.warning(f"{src} has {info.count} bands; using bands {indices} as at training time.")
    else:
        indices = list(range(1, count + 1))
    trained_dtypes = set(wanted.get("dtypes") or [])
    if trained_dtypes and not {info.dtypes[b - 1] for b in indices} <= trained_dtypes:
        report.warning(
            f"{src} stores {', '.join(sorted({info.dtypes[b - 1] for b in indices}))} values but "
            f"the model was trained on {', '.join(sorted(trained_dtypes))}: check that the "
            "values have the same scale (reflectance vs. digital numbers)."
        )
    resolution = metadata.get("resolution")
    if resolution and info.crs_wkt and metadata.get("crs"):
        res = abs(info.transform[0])
        if res > 0 and not 0.5 <= res / float(resolution[0]) <= 2.0:
            report.warning(
                f"{src} has pixels of {res:g} map units, the model was trained on "
                f"{float(resolution[0]):g}: results are usually poor far from the training "
                "resolution."
            )
    return indices


def raster_normalization(
    metadata: dict[str, Any],
    path: str,
    bands: Sequence[int],
    *,
    report: Reporter | None = None,
) -> tuple[list[float], list[float]]:
    """Return the per-band ``(x - offset) / scale`` a model applies to one raster.

    Folds the Sentinel-2 harmonisation (when the model's ``normalization.harmonize`` is
    true and the raster carries the offset) and the per-image statistics (modes
    ``image`` and ``percentile``) into one affine map per band, which the tiled inference
    applies. A model file without ``mode`` uses its training statistics, as before.
    """
    from .harmonize import detect_s2_offset, harmonize_image

    norm = metadata.get("normalization", {})
    mode = norm.get("mode", "training")
    if mode not in NORMALIZATION_MODES:
        raise ValueError(
            f"The model's normalisation mode {mode!r} is unknown to this LandSeg; update it."
        )
    harmonize = bool(norm.get("harmonize", False))
    offsets = [float(v) for v in norm.get("offsets") or [0.0] * len(bands)]
    scales = [float(v) for v in norm.get("scales") or [1.0] * len(bands)]
    if mode == "training" and not harmonize:
        return offsets, scales
    image, valid, meta = read_sample(path, bands, nodata_zero=bool(metadata.get("nodata_zero")))
    shift = 0.0
    if harmonize:
        shift, why = detect_s2_offset(image=image, valid=valid, **meta)
        if report is not None:
            action = f"subtracting {shift:g}" if shift else "no change"
            report.info(f"Sentinel-2 harmonisation of {path}: {why}; {action}.")
        harmonize_image(image, valid, shift)
    if mode == "training":
        return [o + shift for o in offsets], scales
    offs, scls = image_statistics(image, valid, mode=mode)
    return [float(o) + shift for o in offs], [float(s) for s in scls]


def harmonize_scenes(items: Sequence[dict[str, Any]], report: Reporter) -> list[float]:
    """Subtract the Sentinel-2 BOA offset from the loaded training images that carry it.

    ``items`` are :func:`core.training_data.load_scene` results (changed in place).
    Returns the offset subtracted from each.
    """
    from . import io
    from .harmonize import harmonize_image, raster_s2_offset

    shifts = []
    for item in items:
        with warnings.catch_warnings(), io.open_raster(item["path"]) as src:
            warnings.simplefilter("ignore")
            shift, why = raster_s2_offset(src, item["image"], item["valid"])
        if shift:
            report.info(
                f"Sentinel-2 harmonisation of {item['path']}: {why}; subtracting {shift:g}."
            )
        harmonize_image(item["image"], item["valid"], shift)
        shifts.append(shift)
    return shifts
