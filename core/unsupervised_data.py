"""What the unsupervised networks train on: the raster or sampled tiles, scaled; scribbles.

*Image* mode reads the whole raster; *dataset* mode reads ``n_tiles`` random tiles with
at least half of their pixels valid, and estimates the stretch from a decimated read.
Networks see the bands as ``(x - low) / span`` with the stretch's limits (no clipping, so
training and tiled inference see identical values); nodata pixels are 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from . import io, normalize
from .classes import ClassInfo
from .clusters import read_scribbles
from .protocol import EngineError, Reporter

__all__ = ["STATS_PIXELS", "TrainingData", "read_training_data", "scale", "stretch_limits"]

#: Pixels read to estimate the stretch of a raster in dataset mode.
STATS_PIXELS = 1_000_000


def stretch_limits(
    image: np.ndarray, valid: np.ndarray, normalization: str, percentiles: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and scales ``(x - offset) / scale`` of each band."""
    n = image.shape[0]
    if normalization == "none":
        return np.zeros(n, np.float32), np.ones(n, np.float32)
    limits = normalize.band_limits(image, valid, method=normalization, percentiles=percentiles)
    low = limits[:, 0].astype(np.float32)
    span = (limits[:, 1] - limits[:, 0]).astype(np.float32)
    span[~(span > 0)] = 1.0
    return low, span


def scale(image: np.ndarray, valid: np.ndarray, low: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Scale bands to ``(x - low) / span``; nodata pixels are 0."""
    out = (image - low[:, None, None]) / span[:, None, None]
    out[:, ~valid] = 0.0
    return out.astype(np.float32)


def sample_statistics(
    src: rasterio.DatasetReader, bands: list[int], nodata_zero: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Bands and valid mask of a decimated read (at most :data:`STATS_PIXELS` pixels)."""
    factor = max(1.0, math.sqrt(src.width * src.height / STATS_PIXELS))
    shape = (max(1, int(src.height / factor)), max(1, int(src.width / factor)))
    image = src.read(bands, out_shape=(len(bands), *shape), resampling=Resampling.nearest)
    image = image.astype(np.float32)
    masks = src.read_masks(bands, out_shape=(len(bands), *shape), resampling=Resampling.nearest)
    valid = np.all(masks > 0, axis=0) & np.all(np.isfinite(image), axis=0)
    if nodata_zero:
        valid &= np.any(image != 0, axis=0)
    return image, valid


def sample_windows(
    src: rasterio.DatasetReader,
    bands: list[int],
    *,
    n_tiles: int,
    tile: int,
    nodata_zero: bool,
    seed: int,
) -> tuple[list[Window], np.ndarray, np.ndarray]:
    """Read ``n_tiles`` random tile windows with at least half of their pixels valid."""
    rng = np.random.default_rng(seed)
    windows: list[Window] = []
    images: list[np.ndarray] = []
    valids: list[np.ndarray] = []
    attempts = 0
    while len(windows) < n_tiles and attempts < 20 * n_tiles:
        attempts += 1
        row = int(rng.integers(0, src.height - tile + 1))
        col = int(rng.integers(0, src.width - tile + 1))
        window = Window(col, row, tile, tile)
        image, valid = io.read_bands(src, bands, window=window, nodata_zero=nodata_zero)
        if valid.mean() < 0.5 and attempts < 10 * n_tiles:
            continue
        if not valid.any():
            continue
        windows.append(window)
        images.append(image)
        valids.append(valid)
    if not windows:
        raise EngineError(
            "No tile of the raster holds valid pixels to train on: check its nodata value "
            "and the selected bands."
        )
    return windows, np.stack(images), np.stack(valids)


@dataclass
class TrainingData:
    """What the network trains on, and the stretch that labelling reuses."""

    images: np.ndarray  # (N, C, H, W) float32, scaled
    valids: np.ndarray  # (N, H, W) bool
    low: np.ndarray
    span: np.ndarray
    tile: int
    scribble_index: np.ndarray | None = None  # (N, H, W) scribble class index, -1 elsewhere
    scribble_values: list[int] | None = None
    scribble_table: list[ClassInfo] = field(default_factory=list)


def read_training_data(
    method: str,
    *,
    src: str,
    info: io.RasterInfo,
    band_list: list[int],
    mode: str,
    tile: int,
    values: dict[str, Any],
    normalization: str,
    percentiles: tuple[float, float],
    nodata_zero: bool,
    scribbles: str | None,
    scribble_field: str | None,
    seed: int,
    report: Reporter,
) -> TrainingData:
    """Read the whole raster (image mode) or sampled tiles (dataset mode), scaled."""
    with io.open_raster(src) as raster:
        if mode == "image":
            image, valid = io.read_bands(raster, band_list, nodata_zero=nodata_zero)
            stats_image, stats_valid = image, valid
        else:
            stats_image, stats_valid = sample_statistics(raster, band_list, nodata_zero)
        if not stats_valid.any():
            raise EngineError(
                f"{src} has no valid pixel in bands {band_list}: every pixel is nodata"
                f"{' or 0 in all bands' if nodata_zero else ''}. Check the raster's nodata "
                "value and the selected bands."
            )
        low, span = stretch_limits(stats_image, stats_valid, normalization, percentiles)
        full = None
        data = TrainingData(images=np.empty(0), valids=np.empty(0), low=low, span=span, tile=tile)
        if scribbles:
            full, data.scribble_table, data.scribble_values = read_scribbles(
                scribbles, scribble_field, raster, report
            )
            report.info(
                f"Scribbles: {int((full >= 0).sum()):,} pixels of {len(data.scribble_values)} "
                f"classes ({', '.join(map(str, data.scribble_values))})."
            )
        if mode == "image":
            windows = [Window(0, 0, info.width, info.height)]
            data.images = scale(image, valid, low, span)[None]
            data.valids = valid[None]
        else:
            tile = min(tile, info.height, info.width)
            if method == "wnet":
                tile -= tile % 16
            if tile < 16:
                raise EngineError("The raster is too small for dataset mode; use image mode.")
            data.tile = tile
            windows, raw, data.valids = sample_windows(
                raster,
                band_list,
                n_tiles=int(values["n_tiles"]),
                tile=tile,
                nodata_zero=nodata_zero,
                seed=seed,
            )
            data.images = np.stack(
                [scale(r, v, low, span) for r, v in zip(raw, data.valids, strict=True)]
            )
            report.info(f"Training on {len(windows)} sampled tiles of {tile} x {tile} px.")
        if full is not None:
            data.scribble_index = np.stack(
                [
                    full[
                        int(w.row_off) : int(w.row_off + w.height),
                        int(w.col_off) : int(w.col_off + w.width),
                    ]
                    for w in windows
                ]
            )
    if int(data.valids.sum()) == 0:
        raise EngineError(
            f"{src} has no valid pixel in bands {band_list}: every pixel is nodata. Check "
            "the raster's nodata value and the selected bands."
        )
    return data
