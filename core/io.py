"""Raster input and output: checked reads, masks and atomic, tiled GeoTIFF writes."""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from .protocol import EngineError

__all__ = [
    "RasterInfo",
    "atomic_output",
    "check_output_path",
    "check_outputs",
    "inspect_raster",
    "open_raster",
    "output_profile",
    "read_bands",
    "resolve_bands",
    "write_raster",
]

#: Creation options of every GeoTIFF the engine writes.
GTIFF_OPTIONS: dict[str, Any] = {
    "driver": "GTiff",
    "tiled": True,
    "blockxsize": 256,
    "blockysize": 256,
    "compress": "deflate",
    "predictor": 2,
    "bigtiff": "if_safer",
}


@dataclass(frozen=True)
class RasterInfo:
    """What the engine needs to know about an input raster.

    Attributes
    ----------
    path : str
        Path or GDAL dataset name.
    width, height, count : int
        Size in pixels and number of bands.
    dtypes : tuple of str
        Data type per band.
    nodata : float or None
        Nodata value of the dataset (first band's), if any.
    crs_wkt : str or None
        Coordinate reference system as WKT; ``None`` for plain images.
    transform : tuple of 6 floats
        Affine geotransform (rasterio order ``a, b, c, d, e, f``).
    descriptions : tuple of str or None
        Band descriptions.
    """

    path: str
    width: int
    height: int
    count: int
    dtypes: tuple[str, ...]
    nodata: float | None
    crs_wkt: str | None
    transform: tuple[float, ...]
    descriptions: tuple[str | None, ...]

    @property
    def pixels(self) -> int:
        """Number of pixels (rows x columns)."""
        return self.width * self.height


@contextlib.contextmanager
def open_raster(path: str | os.PathLike[str]) -> Iterator[rasterio.DatasetReader]:
    """Open a raster for reading, turning GDAL's errors into clear messages.

    Raises
    ------
    EngineError
        If the file does not exist or GDAL cannot read it as a raster.
    """
    path = os.fspath(path)
    if "://" not in path and not path.startswith("/vsi") and not os.path.exists(path):
        raise EngineError(f"Input raster not found: {path}. Check the path and try again.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
    except RasterioIOError as err:
        raise EngineError(
            f"Cannot read {path} as a raster: {err}. Give a raster file GDAL can open "
            "(GeoTIFF, JPEG2000, PNG, VRT, ...)."
        ) from None
    with src:
        yield src


def inspect_raster(path: str | os.PathLike[str]) -> RasterInfo:
    """Read a raster's size, bands, nodata and georeferencing without reading pixels."""
    with open_raster(path) as src:
        return RasterInfo(
            path=os.fspath(path),
            width=src.width,
            height=src.height,
            count=src.count,
            dtypes=tuple(src.dtypes),
            nodata=src.nodata,
            crs_wkt=src.crs.to_wkt() if src.crs else None,
            transform=tuple(src.transform)[:6],
            descriptions=tuple(src.descriptions),
        )


def resolve_bands(bands: Sequence[int] | None, count: int) -> list[int]:
    """Check 1-based band indices against a raster's band count.

    Parameters
    ----------
    bands : sequence of int or None
        Requested bands (1-based); ``None`` or empty means all bands.
    count : int
        Number of bands in the raster.

    Returns
    -------
    list of int
        The band indices to read.

    Raises
    ------
    EngineError
        If a band does not exist or is repeated.
    """
    if not bands:
        return list(range(1, count + 1))
    result = [int(b) for b in bands]
    for band in result:
        if band < 1 or band > count:
            raise EngineError(
                f"Band {band} does not exist: the raster has {count} band"
                f"{'s' if count != 1 else ''} (1-{count}). Choose bands between 1 and {count}."
            )
    if len(set(result)) != len(result):
        raise EngineError(f"Bands {result} repeat a band; list each band once.")
    return result


def read_bands(
    src: rasterio.DatasetReader,
    bands: Sequence[int],
    *,
    window: rasterio.windows.Window | None = None,
    nodata_zero: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Read bands as float32 together with the valid-pixel mask.

    Parameters
    ----------
    src : rasterio dataset
        Open input raster.
    bands : sequence of int
        1-based band indices (see :func:`resolve_bands`).
    window : rasterio Window, optional
        Part of the raster to read; the whole raster by default.
    nodata_zero : bool
        Also treat pixels where every selected band is 0 as nodata (for rasters whose
        empty frame is 0 but that declare no nodata value).

    Returns
    -------
    image : (C, H, W) float32 ndarray
        Band values.
    valid : (H, W) bool ndarray
        True where every selected band holds data: not the nodata value, not masked by
        GDAL (alpha band, internal mask) and finite.
    """
    image = src.read(list(bands), window=window, out_dtype="float32")
    valid = np.all(src.read_masks(list(bands), window=window) > 0, axis=0)
    valid &= np.all(np.isfinite(image), axis=0)
    if nodata_zero:
        valid &= np.any(image != 0, axis=0)
    return image, valid


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Check that an output can be written, before any work is done.

    Raises
    ------
    EngineError
        If the folder does not exist or is not writable, or the file exists and
        ``overwrite`` is false.
    """
    out = Path(path)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise EngineError(
            f"Cannot write {out}: the folder {folder} does not exist. Create it or choose "
            "another output path."
        )
    if not os.access(folder, os.W_OK):
        raise EngineError(
            f"Cannot write {out}: the folder {folder} is not writable. Choose a folder you "
            "can write to."
        )
    if out.exists() and not overwrite:
        raise EngineError(
            f"{out} already exists and LandSeg does not overwrite files without being asked. "
            "Choose another path, delete the file, or pass --overwrite."
        )
    return out


def check_outputs(
    paths: Iterable[str | os.PathLike[str] | None],
    *,
    overwrite: bool,
    rasters: Iterable[str | os.PathLike[str] | None] = (),
) -> None:
    """Check every output of a command before any work is done (``None`` = not asked for).

    ``rasters`` (a subset of ``paths``) must be GeoTIFF files; no two outputs may share a
    path; each must pass :func:`check_output_path`.

    Raises
    ------
    EngineError
        Naming the first problem and its fix.
    """
    given = [os.fspath(p) for p in paths if p]
    for path in (os.fspath(p) for p in rasters if p):
        if os.path.splitext(path)[1].lower() not in (".tif", ".tiff"):
            raise EngineError(f"{path}: raster outputs are GeoTIFF files; give a .tif path.")
    absolute = [os.path.abspath(p) for p in given]
    if len(set(absolute)) != len(absolute):
        raise EngineError("Two outputs have the same path; give each output its own file.")
    for path in given:
        check_output_path(path, overwrite=overwrite)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Write an output under a temporary name and move it into place only on success.

    A failed or cancelled run (exception, ``SIGTERM``) leaves neither a partial file nor
    the temporary one.

    Yields
    ------
    pathlib.Path
        Temporary path in the same folder, with the same suffix.
    """
    final = check_output_path(path, overwrite=overwrite)
    tmp = final.with_name(f".{final.stem}.landseg-partial-{uuid.uuid4().hex[:8]}{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
        _move_sidecars(tmp, final)
    finally:
        _remove_with_sidecars(tmp)


def _sidecars(path: Path) -> list[Path]:
    return [path.with_name(path.name + ext) for ext in (".aux.xml", ".msk", ".ovr")]


def _move_sidecars(tmp: Path, final: Path) -> None:
    for side, target in zip(_sidecars(tmp), _sidecars(final), strict=True):
        if side.exists():
            os.replace(side, target)


def _remove_with_sidecars(path: Path) -> None:
    for candidate in (path, *_sidecars(path)):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()


def output_profile(
    like: RasterInfo, *, count: int, dtype: str, nodata: float | int | None
) -> dict[str, Any]:
    """Creation profile of an output GeoTIFF on ``like``'s grid (tiled, compressed).

    The CRS and transform are copied from ``like``; rasters without georeferencing stay
    without it. Rasters smaller than one 256 px block are written in strips.
    """
    profile: dict[str, Any] = {
        **GTIFF_OPTIONS,
        "width": like.width,
        "height": like.height,
        "count": count,
        "dtype": dtype,
        "nodata": nodata,
        "transform": rasterio.Affine(*like.transform),
        "crs": rasterio.crs.CRS.from_wkt(like.crs_wkt) if like.crs_wkt else None,
    }
    if np.dtype(dtype).kind == "f":
        profile["predictor"] = 3
    if like.width < 256 or like.height < 256:
        # GDAL needs blocks no larger than 16-multiples; small rasters are written in strips.
        profile.update(tiled=False, blockxsize=None, blockysize=None)
        profile = {k: v for k, v in profile.items() if v is not None}
    return profile


def write_raster(
    path: str | os.PathLike[str],
    array: np.ndarray,
    *,
    like: RasterInfo,
    nodata: float | int | None,
    descriptions: Sequence[str] | None = None,
) -> None:
    """Write a (C, H, W) or (H, W) array as a tiled, compressed GeoTIFF on ``like``'s grid.

    The CRS and transform are copied from ``like``; rasters without georeferencing stay
    without it.
    """
    data = array[np.newaxis] if array.ndim == 2 else array
    profile = output_profile(like, count=data.shape[0], dtype=data.dtype.name, nodata=nodata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            if descriptions:
                for index, text in enumerate(descriptions, start=1):
                    dst.set_band_description(index, text)
