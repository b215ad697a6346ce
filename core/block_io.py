"""Reading, scratch planes and output of the block-wise superpixel path.

The input side of :mod:`core.superpixel_blocks`: :func:`read_stretched` reads one window
of bands and stretches it with the raster-wide limits (8- and 16-bit bands through a
lookup table, without a float copy of the raw values); :class:`Scratch` holds the
labels and hints being built in files beside the output; :func:`copy_out` and
:func:`write_mean_raster` write the results window by window.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from . import io, normalize

__all__ = [
    "GDAL_CACHE_MB",
    "Scratch",
    "aligned_windows",
    "copy_out",
    "read_stretched",
    "stretch_tables",
    "write_mean_raster",
]

#: GDAL block cache while streaming (MB), so GDAL's cache cannot grow with the raster.
GDAL_CACHE_MB = 128
#: Integer band types stretched through a lookup table (one entry per possible value).
TABLE_DTYPES = ("uint8", "uint16")
#: Creation options of the streamed segment-id output on top of :data:`io.GTIFF_OPTIONS`:
#: DEFLATE level 1 (ids compress well at any level; level 6 took twice as long for a
#: 7 % smaller file) compressed by two GDAL threads. Plain DEFLATE, so any GDAL reads it.
SEGMENT_WRITE_OPTIONS: dict[str, Any] = {"zlevel": 1, "num_threads": 2}


def stretch_tables(
    limits: np.ndarray | None, normalization: str, out_max: float, dtype: str
) -> np.ndarray:
    """Stretched value of every possible value of an integer band type, per band.

    Row ``c`` holds what :func:`core.normalize.stretch` makes of each value of band
    ``c`` with ``limits[c]``: the same float32 operations, so the same numbers.
    """
    values = np.arange(np.iinfo(dtype).max + 1, dtype=np.float32)[np.newaxis]
    if normalization == "none" or limits is None:
        return values
    valid = np.ones(values.shape, dtype=bool)
    return normalize.stretch(
        values[np.newaxis].repeat(len(limits), axis=0),
        valid,
        method=normalization,
        out_max=out_max,
        limits=limits,
    )[:, 0]


def read_stretched(
    raster: rasterio.DatasetReader,
    bands: Sequence[int],
    window: Window,
    *,
    nodata_zero: bool,
    normalization: str,
    limits: np.ndarray | None,
    out_max: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Read a window's bands and stretch them; the same as ``io.read_bands`` + ``stretch``.

    Returns the stretched ``(C, H, W)`` float32 bands (0 on invalid pixels) and the
    ``(H, W)`` valid mask. Bands of one 8- or 16-bit unsigned type are read as they are
    and looked up in :func:`stretch_tables` (no float copy of the raw values, no NaN
    check: integers are finite); other types go through :func:`core.io.read_bands`.
    """
    dtypes = {raster.dtypes[band - 1] for band in bands}
    dtype = dtypes.pop() if len(dtypes) == 1 else ""
    if dtype not in TABLE_DTYPES or (normalization != "none" and limits is None):
        image, valid = io.read_bands(raster, bands, window=window, nodata_zero=nodata_zero)
        stretched = normalize.stretch(
            image, valid, method=normalization, out_max=out_max, limits=limits
        )
        return stretched, valid
    from ._block_kernels import apply_tables

    raw = raster.read(list(bands), window=window)
    valid = np.all(raster.read_masks(list(bands), window=window) > 0, axis=0)
    if nodata_zero:
        valid &= np.any(raw != 0, axis=0)
    tables = stretch_tables(limits, normalization, out_max, dtype)
    if tables.shape[0] != raw.shape[0]:
        tables = tables.repeat(raw.shape[0], axis=0)
    return apply_tables(raw, tables, valid), valid


class Scratch:
    """An (H, W) int32 plane in a file, read and written by windows (zeros at start).

    Rows of a window are read and written with seeks (portable; the data stay in the
    operating system's page cache, not in this process).
    """

    def __init__(self, folder: Path, height: int, width: int, name: str) -> None:
        fd, path = tempfile.mkstemp(prefix=f".landseg-{name}-", suffix=".bin", dir=folder)
        self.path, self.width = Path(path), width
        self.file = os.fdopen(fd, "r+b", buffering=0)
        self.file.truncate(height * width * 4)  # zeros; sparse where the system allows

    def _offset(self, window: Window, row: int) -> int:
        return ((int(window.row_off) + row) * self.width + int(window.col_off)) * 4

    def read(self, window: Window) -> np.ndarray:
        """Return the plane's values in ``window`` as an (h, w) int32 array."""
        out = np.empty((int(window.height), int(window.width)), dtype=np.int32)
        for i, row in enumerate(out):
            self.file.seek(self._offset(window, i))
            view = memoryview(row).cast("B")  # type: ignore[arg-type]
            if self.file.readinto(view) != row.nbytes:
                raise OSError(f"Short read from the scratch file {self.path}.")
        return out

    def write(self, window: Window, array: np.ndarray) -> None:
        """Store an (h, w) array in ``window``."""
        array = np.ascontiguousarray(array, dtype=np.int32)
        for i, row in enumerate(array):
            self.file.seek(self._offset(window, i))
            self.file.write(memoryview(row).cast("B"))

    def close(self) -> None:
        """Close and remove the file."""
        self.file.close()
        self.path.unlink(missing_ok=True)


def aligned_windows(height: int, width: int, size: int) -> Iterator[Window]:
    """Windows of about ``size`` pixels aligned to the output's 256-pixel tiles."""
    size = max(256, size // 256 * 256)
    for row0 in range(0, height, size):
        for col0 in range(0, width, size):
            yield Window(col0, row0, min(size, width - col0), min(size, height - row0))


def copy_out(
    labels: Scratch,
    raster: rasterio.DatasetReader,
    bands: Sequence[int],
    dst: str | os.PathLike[str],
    info: io.RasterInfo,
    block_size: int,
    want_means: bool,
    nodata_zero: bool,
    n_segments: int,
    renumber: np.ndarray | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Copy the scratch labels into the output GeoTIFF; sum pixels and band values.

    ``renumber`` maps the scratch ids to the output ids (identity when None).
    """
    counts = np.zeros(n_segments + 1, dtype=np.int64) if want_means else None
    sums = np.zeros((n_segments + 1, len(bands)), dtype=np.float64) if want_means else None
    profile = {**io.output_profile(info, count=1, dtype="int32", nodata=0), **SEGMENT_WRITE_OPTIONS}
    with rasterio.open(dst, "w", **profile) as out:
        for window in aligned_windows(info.height, info.width, block_size):
            block = labels.read(window)
            if renumber is not None:
                block = renumber[block]
            out.write(block, 1, window=window)
            if counts is not None and sums is not None:
                image, _ = io.read_bands(raster, bands, window=window, nodata_zero=nodata_zero)
                flat = block.ravel()
                counts += np.bincount(flat, minlength=n_segments + 1)
                for c in range(len(bands)):
                    sums[:, c] += np.bincount(
                        flat, weights=image[c].ravel().astype(np.float64), minlength=n_segments + 1
                    )
    if counts is None or sums is None:
        return None, None
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]
    means[0] = np.nan
    return counts, means


def write_mean_raster(
    labels_path: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    means: np.ndarray,
    *,
    info: io.RasterInfo,
    nodata: float,
    descriptions: Sequence[str],
    block_size: int,
) -> None:
    """Paint each segment of a segment-id raster with its band means, window by window."""
    table = means.astype(np.float32).copy()
    table[0] = nodata
    profile = io.output_profile(info, count=table.shape[1], dtype="float32", nodata=nodata)
    with (
        rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20),
        rasterio.open(labels_path) as labels,
        rasterio.open(dst, "w", **profile) as out,
    ):
        for index, text in enumerate(descriptions, start=1):
            out.set_band_description(index, text)
        for window in aligned_windows(info.height, info.width, block_size):
            out.write(np.moveaxis(table[labels.read(1, window=window)], -1, 0), window=window)
