"""Raster input and output: checked reads, masks and atomic, tiled GeoTIFF writes."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from .protocol import EngineError

__all__ = [
    "RasterInfo",
    "all_or_none",
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


#: Less free space than this on an output's disk is refused before any work starts.
MIN_FREE_BYTES = 1 << 20

#: Below this much free space after a GeoTIFF is written, it is read back whole: GDAL
#: may report a write that ran out of space only as a message and leave a cut file.
VERIFY_BELOW_BYTES = 256 << 20


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Check that an output can be written, before any work is done.

    The folder must exist and accept a new file (tried, not guessed from permissions),
    its disk must have at least :data:`MIN_FREE_BYTES` free, and the path must not be a
    folder nor, without ``overwrite``, an existing file.

    Raises
    ------
    EngineError
        Naming the output, the problem and its fix.
    """
    out = Path(path)
    folder = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise EngineError(
            f"Cannot write {out}: it is an existing folder. Give a file name, e.g. "
            f"{out / ('output' + (out.suffix or '.tif'))}."
        )
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
    _try_writing(out, folder)
    free = free_bytes(folder)
    if free is not None and free < MIN_FREE_BYTES:
        raise EngineError(
            f"Cannot write {out}: the disk holding {folder} is full ({free:,} bytes free). "
            "Free some space or choose a folder on another disk."
        )
    return out


def _try_writing(out: Path, folder: Path) -> None:
    """Create and remove an empty file in ``folder``: the one sure test that it can be written."""
    probe = folder / f".{out.stem}.landseg-partial-{uuid.uuid4().hex[:8]}.probe"
    try:
        with open(probe, "x"):
            pass
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise EngineError(
                f"Cannot write {out}: the disk holding {folder} is full. Free some space or "
                "choose a folder on another disk."
            ) from None
        raise EngineError(
            f"Cannot write {out}: the folder {folder} does not accept new files "
            f"({err.strerror}). Choose a folder you can write to."
        ) from None
    with contextlib.suppress(OSError):
        probe.unlink()


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    """Free space for unprivileged users on the disk holding ``folder`` (None if unknown)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


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
    seen: dict[str, str] = {}
    for path in given:
        key = os.path.normcase(os.path.realpath(path))
        if key in seen:
            raise EngineError(
                f"Two outputs have the same path ({seen[key]} and {path}): the second would "
                "replace the first. Give each output its own file."
            )
        seen[key] = path
    for path in given:
        check_output_path(path, overwrite=overwrite)


class _OutputGroup:
    """Outputs committed inside :func:`all_or_none`: undo steps and final clean-ups."""

    def __init__(self) -> None:
        self.undo: list[Callable[[], None]] = []
        self.finish: list[Callable[[], None]] = []


_GROUP: contextvars.ContextVar[_OutputGroup | None] = contextvars.ContextVar(
    "landseg_output_group", default=None
)


@contextlib.contextmanager
def all_or_none() -> Iterator[None]:
    """Keep the outputs committed inside the block only if the whole block succeeds.

    :func:`atomic_output` moves each output into place as soon as it is written; inside
    this block a file it replaces is first set aside. When the block fails or is
    cancelled, the outputs already in place are removed and the files they replaced are
    put back, so a multi-output command leaves all its outputs or none. Blocks nest: an
    inner block's outputs are settled by the outermost one.
    """
    parent = _GROUP.get()
    group = _OutputGroup()
    token = _GROUP.set(group)
    try:
        yield
    except BaseException:
        _GROUP.reset(token)
        for step in reversed(group.undo):
            with contextlib.suppress(OSError):
                step()
        raise
    _GROUP.reset(token)
    if parent is not None:
        parent.undo.extend(group.undo)
        parent.finish.extend(group.finish)
        return
    for step in group.finish:
        with contextlib.suppress(OSError):
            step()


def register_output(undo: Callable[[], None], finish: Callable[[], None] | None = None) -> None:
    """Record a committed output in the enclosing :func:`all_or_none` block (if any)."""
    group = _GROUP.get()
    if group is not None:
        group.undo.append(undo)
        if finish is not None:
            group.finish.append(finish)


def in_output_group() -> bool:
    """Whether outputs are committed inside an :func:`all_or_none` block."""
    return _GROUP.get() is not None


def partial_name(final: Path, kind: str = "partial") -> Path:
    """Hidden name beside ``final`` for its temporary (``partial``) or set-aside copy."""
    return final.with_name(f".{final.stem}.landseg-{kind}-{uuid.uuid4().hex[:8]}{final.suffix}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Write an output under a temporary name and move it into place only on success.

    A failed or cancelled run (exception, ``SIGTERM``) leaves neither a partial file nor
    the temporary one. Replacing a file also replaces or removes its sidecars
    (``.aux.xml`` statistics, ``.msk``, ``.ovr``), so no stale statistics survive. A
    GeoTIFF written on an almost full disk is read back whole before it is moved into
    place (:data:`VERIFY_BELOW_BYTES`).

    Yields
    ------
    pathlib.Path
        Temporary path in the same folder, with the same suffix.
    """
    final = check_output_path(path, overwrite=overwrite)
    tmp = partial_name(final)
    try:
        try:
            yield tmp
        except Exception as err:
            _raise_if_full(err, final)
            raise
        _check_written(tmp, final)
        _commit(tmp, final)
    finally:
        _remove_with_sidecars(tmp)


def _raise_if_full(err: Exception, final: Path) -> None:
    """Name a full disk as the cause of a failed write (GDAL may only have printed it)."""
    if isinstance(err, EngineError):
        return
    free = free_bytes(final.parent)
    if free is not None and free < MIN_FREE_BYTES:
        raise EngineError(
            f"Cannot write {final}: the disk holding {final.parent} is full ({free:,} bytes "
            "free). Free some space or choose a folder on another disk; no output was written."
        ) from err


def _check_written(tmp: Path, final: Path) -> None:
    """Refuse a GeoTIFF cut short by a full disk (GDAL may only have printed a message)."""
    if tmp.suffix.lower() not in (".tif", ".tiff") or not tmp.exists():
        return
    free = free_bytes(tmp.parent)
    if free is None or free >= VERIFY_BELOW_BYTES:
        return
    try:
        with rasterio.open(tmp) as src:
            for _, window in src.block_windows(1):
                src.read(window=window)
    except (RasterioIOError, rasterio.errors.RasterioError):
        raise EngineError(
            f"Cannot write {final}: the disk holding {final.parent} is full ({free:,} bytes "
            "free; the file came out incomplete). Free some space or choose a "
            "folder on another disk; no output was written."
        ) from None


def _commit(tmp: Path, final: Path) -> None:
    """Move ``tmp`` (and its sidecars) into place; inside :func:`all_or_none`, undoably."""
    backup = None
    if in_output_group() and final.exists():
        backup = partial_name(final, "backup")
        os.replace(final, backup)
        for side, target in zip(_sidecars(final), _sidecars(backup), strict=True):
            if side.exists():
                os.replace(side, target)
    os.replace(tmp, final)
    for side, target in zip(_sidecars(tmp), _sidecars(final), strict=True):
        if side.exists():
            os.replace(side, target)
        else:  # a stale sidecar of the replaced file (its statistics, its overviews)
            with contextlib.suppress(FileNotFoundError):
                target.unlink()

    def undo() -> None:
        _remove_with_sidecars(final)
        if backup is not None:
            os.replace(backup, final)
            for side, target in zip(_sidecars(backup), _sidecars(final), strict=True):
                if side.exists():
                    os.replace(side, target)

    def finish() -> None:
        if backup is not None:
            _remove_with_sidecars(backup)

    register_output(undo, finish)


def _sidecars(path: Path) -> list[Path]:
    return [path.with_name(path.name + ext) for ext in (".aux.xml", ".msk", ".ovr")]


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
