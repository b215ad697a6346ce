"""Accuracy assessment of a classified or cluster raster against a reference.

The ``accuracy`` command (:func:`core.commands.accuracy.run_accuracy`) reads the
prediction window by window (so rasters larger than memory work), brings the reference
onto the prediction's grid (a raster warped with nearest-neighbour resampling, or
polygons rasterized per window, reprojected when the CRSs differ), accumulates one
contingency table and derives every metric and report from it (:mod:`core.metrics`,
:mod:`core.report`).

With a Dask scheduler (``dask_scheduler``) the windows are grouped into blocks of
consecutive windows, one task each: a task reads its windows exactly as the single
process does (the same windows, the same warped reference, the same polygons) and returns
its block's counts, which the client adds up. Counts are integers, so the table, and every
metric, equals the single-process one. The errors raster is written on the client.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
import rasterio.warp
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from . import io
from .classes import ClassInfo, class_entries, colormap_colors, write_raster_classes
from .contingency import ConfusionAccumulator
from .metrics import AccuracyResult, assess_accuracy
from .protocol import EngineError, Reporter

__all__ = [
    "Pair",
    "assess",
    "count_confusion",
    "open_pair",
    "parse_classes",
    "reference_colors",
]

#: Rows read per window.
WINDOW_ROWS = 512
#: Pixels per Dask task (whole windows; at least one window per task).
DASK_BLOCK_PIXELS = 4096 * 4096
#: Values of the optional error raster.
ERRORS_NODATA, CORRECT, WRONG = 0, 1, 2
#: Classes of the errors raster (colour table, ``LANDSEG_CLASSES`` tag and ``.qml``).
ERROR_CLASSES = (ClassInfo(CORRECT, "correct", "#1a9850"), ClassInfo(WRONG, "wrong", "#d73027"))


def parse_classes(text: str | None) -> tuple[dict[int, str], dict[int, str]]:
    """Parse ``"1:forest:#1b7837,2:water:#2166ac"`` into names and colours by value.

    The colour is optional (``"1:forest,2:water"``). Values may be any integer (a
    reference's codes may be 0 or negative); otherwise the rules are those of
    :func:`core.classes.class_entries`.
    """
    try:
        entries = class_entries(text, any_value=True)
    except ValueError as err:
        raise EngineError(str(err)) from None
    return {v: n for v, n, _ in entries}, {v: c for v, _, c in entries if c}


def _windows(height: int, width: int) -> Iterator[Window]:
    for row in range(0, height, WINDOW_ROWS):
        yield Window(0, row, width, min(WINDOW_ROWS, height - row))


class _PolygonReference:
    """Reference polygons rasterized onto windows of the prediction grid."""

    def __init__(self, path: str, field: str, info: io.RasterInfo, report: Reporter) -> None:
        import geopandas as gpd

        source, _, layer = path.partition("|layername=")
        options = {"layer": layer.split("|")[0]} if layer else {}
        try:
            frame = gpd.read_file(source, engine="pyogrio", **options)
        except Exception as err:
            raise EngineError(f"Cannot read reference polygons {path}: {err}") from None
        if field not in frame.columns:
            raise EngineError(
                f"{path} has no field {field!r}; its fields are "
                f"{', '.join(c for c in frame.columns if c != 'geometry')}."
            )
        from pandas.api.types import is_numeric_dtype

        values = frame[field]
        if not is_numeric_dtype(values.dtype) or not np.all(np.isclose(values.dropna() % 1, 0)):
            numeric = [
                c for c in frame.columns if c != "geometry" and is_numeric_dtype(frame[c].dtype)
            ]
            raise EngineError(
                f"Field {field!r} of {path} holds {values.dtype} values, not integer class "
                f"values; choose an integer field ({', '.join(numeric) or 'none found'})."
            )
        if info.crs_wkt and frame.crs is not None:
            target = rasterio.crs.CRS.from_wkt(info.crs_wkt)
            if not frame.crs.equals(target):
                report.info(
                    f"Reprojecting the reference polygons from {frame.crs.to_string()}"
                    " to the prediction's CRS."
                )
                frame = frame.to_crs(target.to_wkt())
        frame = frame[frame.geometry.notna() & values.notna()]
        self.shapes = list(zip(frame.geometry, frame[field].astype(np.int64), strict=True))
        self.transform = rasterio.Affine(*info.transform)
        self.bounds = frame.total_bounds if len(frame) else None

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        from rasterio.features import rasterize

        out = np.full((int(window.height), int(window.width)), -1, dtype=np.int64)
        transform = rasterio.windows.transform(window, self.transform)
        if self.shapes:
            out = rasterize(
                self.shapes, out_shape=out.shape, transform=transform, fill=-1, dtype="int64"
            )
        return out, out != -1


def _overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@dataclass
class Pair:
    """A prediction and its reference, open on the prediction's grid (:func:`open_pair`)."""

    prediction: str
    reference: str | None
    info: io.RasterInfo
    pred_src: Any
    ref_reader: Any
    windows: list[Window]

    def write_errors(
        self, path: os.PathLike[str], ignore: Sequence[float], mapping: dict[int, int | None] | None
    ) -> None:
        """Write the errors raster: 1 correct, 2 wrong, 0 not assessed (a second pass)."""
        _write_errors(
            path, self.pred_src, self.ref_reader, self.windows, ignore, mapping, self.info
        )


def open_pair(
    stack: contextlib.ExitStack,
    prediction: str,
    *,
    reference: str | None = None,
    reference_polygons: str | None = None,
    class_field: str | None = None,
    reporter: Reporter,
) -> Pair:
    """Open a prediction and bring its reference (raster or polygons) onto its grid.

    The datasets stay open until ``stack`` closes.
    """
    info = io.inspect_raster(prediction)
    pred_src = stack.enter_context(io.open_raster(prediction))
    ref_reader = _open_reference(
        stack, reference, reference_polygons, class_field, info, pred_src, reporter
    )
    windows = list(_windows(info.height, info.width))
    return Pair(prediction, reference, info, pred_src, ref_reader, windows)


def count_confusion(
    pair: Pair,
    ignore: Sequence[float],
    *,
    reporter: Reporter,
    dask_scheduler: str | None = None,
    dask_block_rows: int | None = None,
    progress: float = 70.0,
) -> ConfusionAccumulator:
    """Count prediction x reference pixels window by window, here or on Dask.

    Progress runs from 0 to ``progress`` percent. Counts are integers, so the Dask
    table equals the single-process one.
    """
    if dask_scheduler:
        prediction = _shared(pair.prediction) or pair.prediction
        spec = _ReadSpec(prediction, _shared(pair.reference), pair.info, tuple(ignore))
        polygons = pair.ref_reader if isinstance(pair.ref_reader, _PolygonReference) else None
        return _accumulate_on_dask(
            dask_scheduler, spec, polygons, pair.windows, dask_block_rows, reporter
        )
    accumulator = ConfusionAccumulator()
    for index, window in enumerate(pair.windows):
        pred, ref, valid = _read_pair(pair.pred_src, pair.ref_reader, window, ignore)
        accumulator.update(pred, ref, valid)
        reporter.progress(progress * (index + 1) / len(pair.windows))
    return accumulator


def assess(
    accumulator: ConfusionAccumulator,
    *,
    mode: str,
    assignment: str,
    ignore: Sequence[float],
) -> AccuracyResult:
    """Every metric of a counted table (:func:`core.metrics.assess_accuracy`).

    Raises
    ------
    EngineError
        When no pixel was valid in both rasters, or the metrics refuse the table.
    """
    if accumulator.n_pixels == 0:
        raise EngineError(
            "No pixel is valid in both rasters after leaving out nodata and IGNORE_VALUE "
            f"{list(ignore) or ''}: check the ignore values, the nodata values and that the "
            "reference covers the prediction."
        )
    try:
        return assess_accuracy(accumulator, mode=mode, assignment=assignment)
    except ValueError as err:
        raise EngineError(str(err)) from None


def reference_colors(reference: str) -> dict[int, str]:
    """Colours of a reference raster's colour table (empty without one)."""
    with io.open_raster(reference) as src:
        return colormap_colors(src, skip_filler=False)


def _open_reference(
    stack: contextlib.ExitStack,
    reference: str | None,
    polygons: str | None,
    field: str | None,
    info: io.RasterInfo,
    pred_src: rasterio.DatasetReader,
    report: Reporter,
) -> Any:
    pred_bounds = pred_src.bounds
    if polygons is not None:
        reader = _PolygonReference(polygons, field or "", info, report)
        if reader.bounds is None or not _overlaps(reader.bounds, pred_bounds):
            raise EngineError(
                f"The reference polygons {polygons} do not overlap the prediction: check "
                "that both cover the same area."
            )
        return reader
    assert reference is not None
    ref_src = stack.enter_context(io.open_raster(reference))
    same_grid = (
        ref_src.crs == pred_src.crs
        and ref_src.transform == pred_src.transform
        and ref_src.shape == pred_src.shape
    )
    if same_grid:
        return ref_src
    if (ref_src.crs is None) != (pred_src.crs is None):
        raise EngineError(
            "One raster is georeferenced and the other is not: give both a CRS, or neither "
            "(then they must have the same size)."
        )
    if ref_src.crs is None:
        if ref_src.shape != pred_src.shape:
            raise EngineError(
                f"Without georeferencing the rasters must have the same size; the prediction "
                f"is {pred_src.width} x {pred_src.height}, the reference "
                f"{ref_src.width} x {ref_src.height}."
            )
        return ref_src
    if ref_src.crs != pred_src.crs:
        report.info(
            f"Reprojecting the reference from {ref_src.crs.to_string()} onto the "
            "prediction's grid (nearest neighbour)."
        )
    else:
        report.info("Resampling the reference onto the prediction's grid (nearest neighbour).")
    ref_bounds = rasterio.warp.transform_bounds(ref_src.crs, pred_src.crs, *ref_src.bounds)
    if not _overlaps(ref_bounds, pred_bounds):
        raise EngineError(
            "The reference does not overlap the prediction: their extents are disjoint. "
            "Check that both rasters cover the same area (and their CRSs)."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return stack.enter_context(
            WarpedVRT(
                ref_src,
                crs=pred_src.crs,
                transform=pred_src.transform,
                width=pred_src.width,
                height=pred_src.height,
                resampling=Resampling.nearest,
                src_nodata=ref_src.nodata,
                nodata=ref_src.nodata,
            )
        )


def _read_pair(
    pred_src: rasterio.DatasetReader, ref_reader: Any, window: Window, ignore: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = pred_src.read(1, window=window)
    valid = pred_src.read_masks(1, window=window) > 0
    if isinstance(ref_reader, _PolygonReference):
        ref, ref_valid = ref_reader.read(window)
    else:
        ref = ref_reader.read(1, window=window)
        ref_valid = ref_reader.read_masks(1, window=window) > 0
    valid &= ref_valid & np.isfinite(pred) & np.isfinite(ref)
    for value in ignore:
        valid &= (pred != value) & (ref != value)
    for name, array in (("prediction", pred), ("reference", ref)):
        if array.dtype.kind == "f" and not np.all(np.mod(array[valid], 1) == 0):
            raise EngineError(
                f"The {name} raster holds non-integer values; give a classified raster "
                "(class or cluster ids)."
            )
    return pred, ref, valid


def _write_errors(
    path: os.PathLike[str],
    pred_src: rasterio.DatasetReader,
    ref_reader: Any,
    windows: Sequence[Window],
    ignore: Sequence[float],
    mapping: dict[int, int | None] | None,
    info: io.RasterInfo,
) -> None:
    """Second pass: 1 where the (mapped) prediction equals the reference, 2 elsewhere."""
    profile = {
        **io.GTIFF_OPTIONS,
        "width": info.width,
        "height": info.height,
        "count": 1,
        "dtype": "uint8",
        "nodata": ERRORS_NODATA,
        "transform": pred_src.transform,
        "crs": pred_src.crs,
    }
    if info.width < 256 or info.height < 256:
        profile.update(tiled=False)
        profile.pop("blockxsize")
        profile.pop("blockysize")
    if mapping is not None:
        keys = np.array(sorted(mapping), dtype=np.int64)
        values = np.array(
            [-(2**62) if mapping[k] is None else mapping[k] for k in keys], dtype=np.int64
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        dst = rasterio.open(path, "w", **profile)
    with dst:
        for window in windows:
            pred, ref, valid = _read_pair(pred_src, ref_reader, window, ignore)
            pred = pred.astype(np.int64)
            if mapping is not None:
                pos = np.clip(np.searchsorted(keys, pred), 0, len(keys) - 1)
                pred = np.where(keys[pos] == pred, values[pos], -(2**62))
            block = np.where(pred == ref.astype(np.int64), CORRECT, WRONG).astype(np.uint8)
            dst.write(np.where(valid, block, ERRORS_NODATA)[np.newaxis], window=window)
        dst.set_band_description(1, "1 correct, 2 wrong, 0 not assessed")
        write_raster_classes(dst, ERROR_CLASSES)


# --------------------------------------------------------------------------- Dask


@dataclass(frozen=True)
class _ReadSpec:
    """What a Dask task needs to read its windows (paths every worker reaches)."""

    prediction: str
    reference: str | None
    info: io.RasterInfo
    ignore: tuple[float, ...]


def _shared(path: str | None) -> str | None:
    """Return an absolute path (workers run elsewhere); GDAL virtual paths unchanged."""
    if not path or path.startswith("/vsi") or "://" in path:
        return path
    return os.path.abspath(path)


def _group_windows(
    windows: Sequence[Window], width: int, block_rows: int | None
) -> list[list[Window]]:
    """Consecutive windows per task: ``block_rows`` rows, or about DASK_BLOCK_PIXELS."""
    rows = block_rows or DASK_BLOCK_PIXELS // max(int(width), 1)
    per_task = max(1, int(rows) // WINDOW_ROWS)
    return [list(windows[i : i + per_task]) for i in range(0, len(windows), per_task)]


def _accumulate_block(
    spec: _ReadSpec, polygons: _PolygonReference | None, windows: Sequence[Window]
) -> ConfusionAccumulator:
    """Worker side: count a block's windows, read exactly as the single process reads them."""
    accumulator = ConfusionAccumulator()
    with contextlib.ExitStack() as stack:
        pred_src = stack.enter_context(io.open_raster(spec.prediction))
        reader = polygons
        if reader is None:
            reader = _open_reference(
                stack, spec.reference, None, None, spec.info, pred_src, Reporter.quiet()
            )
        for window in windows:
            pred, ref, valid = _read_pair(pred_src, reader, window, spec.ignore)
            accumulator.update(pred, ref, valid)
    return accumulator


def _accumulate_on_dask(
    scheduler: str,
    spec: _ReadSpec,
    polygons: _PolygonReference | None,
    windows: Sequence[Window],
    block_rows: int | None,
    report: Reporter,
) -> ConfusionAccumulator:
    """Count the windows as Dask tasks (blocks of windows) and add up their tables.

    Reference polygons, read and reprojected here, are sent to every worker once, so
    the workers need neither the vector file nor the same PROJ set-up.
    """
    import uuid

    from distributed import as_completed

    from .distributed import connect

    blocks = _group_windows(windows, spec.info.width, block_rows)
    accumulator = ConfusionAccumulator()
    with connect(scheduler, reporter=report) as client:
        shared = None
        if polygons is not None:
            shared = client.scatter(polygons, broadcast=True)
            report.info(f"{len(polygons.shapes)} reference polygons sent to the workers once.")
        report.info(f"Counting {len(windows)} windows in {len(blocks)} Dask tasks.")
        futures = {
            client.submit(
                _accumulate_block,
                spec,
                shared,
                block,
                key=f"landseg-accuracy-{index}-{uuid.uuid4().hex[:8]}",
            ): index
            for index, block in enumerate(blocks)
        }
        try:
            for done, future in enumerate(as_completed(list(futures)), start=1):
                try:
                    part = future.result()
                except EngineError:
                    raise
                except Exception as err:  # a worker's error, e.g. an unreadable raster
                    block = blocks[futures[future]]
                    first, last = block[0].row_off, block[-1].row_off + block[-1].height
                    files = " and ".join(filter(None, (spec.prediction, spec.reference)))
                    raise EngineError(
                        f"Rows {first}-{last} failed on a Dask worker ({type(err).__name__}: "
                        f"{err}); no output was written. Check that every worker can read "
                        f"{files}."
                    ) from err
                accumulator.merge(part)
                report.progress(70.0 * done / len(blocks))
        finally:
            client.cancel(list(futures))
    return accumulator
