"""Accuracy assessment of a classified or cluster raster against a reference.

The pipeline entry :func:`run_accuracy` reads the prediction window by window (so rasters
larger than memory work), brings the reference onto the prediction's grid (a raster
warped with nearest-neighbour resampling, or polygons rasterized per window, reprojected
when the CRSs differ), accumulates one contingency table and derives every metric and
report from it (:mod:`core.metrics`, :mod:`core.report`).

With a Dask scheduler (``dask_scheduler``) the windows are grouped into blocks of
consecutive windows, one task each: a task reads its windows exactly as the single
process does (the same windows, the same warped reference, the same polygons) and returns
its block's counts, which the client adds up. Counts are integers, so the table, and every
metric, equals the single-process one. The errors raster is written on the client.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
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
from .classes import ClassInfo, write_qml, write_raster_classes
from .metrics import ConfusionAccumulator, assess_accuracy, to_json_dict, write_confusion_csv
from .protocol import EngineError, Reporter
from .report import render_html

__all__ = ["parse_classes", "run_accuracy"]

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

    The colour is optional (``"1:forest,2:water"``).
    """
    names: dict[int, str] = {}
    colors: dict[int, str] = {}
    if not text:
        return names, colors
    for item in filter(None, (part.strip() for part in text.split(","))):
        fields = item.split(":")
        if len(fields) not in (2, 3) or not re.fullmatch(r"-?\d+", fields[0].strip()):
            raise EngineError(
                f"Class entry {item!r} is not VALUE:NAME or VALUE:NAME:#RRGGBB, e.g. "
                "1:forest:#1b7837,2:water:#2166ac."
            )
        value = int(fields[0])
        names[value] = fields[1].strip()
        if len(fields) == 3:
            colors[value] = fields[2].strip()
    return names, colors


def _windows(height: int, width: int) -> Iterator[Window]:
    for row in range(0, height, WINDOW_ROWS):
        yield Window(0, row, width, min(WINDOW_ROWS, height - row))


def _colormap_names(src: rasterio.DatasetReader) -> tuple[dict[int, str], dict[int, str]]:
    """Colours (and generic names) from a raster's colour table, if it has one."""
    try:
        table = src.colormap(1)
    except ValueError:
        return {}, {}
    colors = {int(v): "#{:02x}{:02x}{:02x}".format(*rgba[:3]) for v, rgba in table.items()}
    return {}, colors


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


def run_accuracy(
    *,
    prediction: str,
    reference: str | None = None,
    reference_polygons: str | None = None,
    class_field: str | None = None,
    ignore_values: Sequence[float] = (),
    mode: str = "classes",
    assignment: str = "hungarian",
    classes: str | None = None,
    dst_html: str | None = None,
    dst_csv: str | None = None,
    dst_json: str | None = None,
    dst_errors: str | None = None,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    dask_scheduler: str | None = None,
    dask_block_rows: int | None = None,
) -> dict[str, Any]:
    """Assess a classified or cluster raster against a reference raster or polygons.

    Parameters
    ----------
    prediction : str
        Classified or cluster raster (band 1, integer values; any source, not only
        LandSeg's). Its grid is the grid of the assessment.
    reference : str, optional
        Reference raster, warped onto the prediction's grid with nearest-neighbour
        resampling (reprojected when the CRSs differ).
    reference_polygons, class_field : str, optional
        Reference polygons and their integer class field, rasterized onto the grid
        instead of ``reference``.
    ignore_values : sequence of float
        Values left out in either raster (e.g. 0 or 255 for unlabelled), besides nodata.
    mode : {"classes", "clusters"}
        Values correspond, or clusters are mapped to reference classes first.
    assignment : {"hungarian", "majority"}
        Cluster mapping: one-to-one (Kuhn 1955) or many-to-one (majority class).
    classes : str, optional
        ``"VALUE:NAME[:#RRGGBB],..."``; otherwise colours from the reference's colour
        table and names ``class <value>``.
    dst_html, dst_csv, dst_json, dst_errors : str, optional
        Report, confusion matrix, every metric, and a raster of correct (1) / wrong (2)
        pixels (0 where not assessed).
    overwrite : bool
        Replace existing outputs.
    reporter : Reporter, optional
        Progress and log sink.
    dask_scheduler : str, optional
        Count the windows as Dask tasks: ``tcp://host:8786`` or ``local:N``
        (:mod:`core.distributed`). Every worker must read the prediction and the reference
        raster by their paths; reference polygons are read (and reprojected) by the client
        and sent to the workers. The numbers equal the single-process run's. The errors
        raster is written by the client.
    dask_block_rows : int, optional
        Rows per Dask task, rounded to whole windows of :data:`WINDOW_ROWS` rows; by
        default about :data:`DASK_BLOCK_PIXELS` pixels per task.

    Returns
    -------
    dict
        Output paths and ``OVERALL_ACCURACY``, ``KAPPA``, ``MEAN_IOU``, ``MACRO_F1``,
        ``ARI``, ``N_PIXELS``.
    """
    report = reporter or Reporter("text")
    if (reference is None) == (reference_polygons is None):
        raise EngineError("Give either a reference raster or reference polygons (not both).")
    if reference_polygons is not None and not class_field:
        raise EngineError("Reference polygons need CLASS_FIELD, the field with class values.")
    if mode not in ("classes", "clusters"):
        raise EngineError(f"MODE must be 'classes' or 'clusters', not {mode!r}.")
    outputs = {
        key: path
        for key, path in (
            ("OUTPUT_HTML", dst_html),
            ("OUTPUT_CSV", dst_csv),
            ("OUTPUT_JSON", dst_json),
            ("OUTPUT_ERRORS", dst_errors),
        )
        if path
    }
    if dst_errors and os.path.splitext(dst_errors)[1].lower() not in (".tif", ".tiff"):
        raise EngineError(f"{dst_errors}: raster outputs are GeoTIFF files; give a .tif path.")
    for path in outputs.values():
        io.check_output_path(path, overwrite=overwrite)
    names, colors = parse_classes(classes)
    ignore = [float(v) for v in ignore_values]

    info = io.inspect_raster(prediction)
    with contextlib.ExitStack() as stack:
        pred_src = stack.enter_context(io.open_raster(prediction))
        ref_reader = _open_reference(
            stack, reference, reference_polygons, class_field, info, pred_src, report
        )
        if reference is not None and not colors:
            with io.open_raster(reference) as ref_src:
                colors = _colormap_names(ref_src)[1]
        windows = list(_windows(info.height, info.width))
        if dask_scheduler:
            accumulator = _accumulate_on_dask(
                dask_scheduler,
                _ReadSpec(_shared(prediction), _shared(reference), info, tuple(ignore)),
                ref_reader if isinstance(ref_reader, _PolygonReference) else None,
                windows,
                dask_block_rows,
                report,
            )
            if dst_errors:
                report.info("Writing the errors raster on this machine (a second pass).")
        else:
            accumulator = ConfusionAccumulator()
            for index, window in enumerate(windows):
                pred, ref, valid = _read_pair(pred_src, ref_reader, window, ignore)
                accumulator.update(pred, ref, valid)
                report.progress(70.0 * (index + 1) / len(windows))
        if accumulator.n_pixels == 0:
            raise EngineError(
                "No pixel is valid in both rasters after leaving out nodata and IGNORE_VALUE "
                f"{ignore or ''}: check the ignore values, the nodata values and that the "
                "reference covers the prediction."
            )
        try:
            result = assess_accuracy(accumulator, mode=mode, assignment=assignment)
        except ValueError as err:
            raise EngineError(str(err)) from None
        report.info(
            f"{result.n_pixels:,} pixels assessed: overall accuracy "
            f"{result.overall_accuracy:.3f}, kappa {result.kappa:.3f}, mIoU "
            f"{result.mean_iou:.3f}, ARI {result.adjusted_rand_index:.3f}."
        )
        if result.mapping is not None:
            report.info(
                "Cluster -> class: "
                + ", ".join(
                    f"{c}->{v if v is not None else '-'}" for c, v in sorted(result.mapping.items())
                )
            )
        class_names = {int(v): names.get(int(v), f"class {int(v)}") for v in result.classes}

        tmp = {
            key: stack.enter_context(io.atomic_output(path, overwrite=overwrite))
            for key, path in outputs.items()
        }
        if dst_csv:
            write_confusion_csv(result, tmp["OUTPUT_CSV"], class_names=class_names)
        if dst_json:
            payload = to_json_dict(result, class_names=class_names)
            payload["inputs"] = {
                "prediction": prediction,
                "reference": reference or reference_polygons,
            }
            tmp["OUTPUT_JSON"].write_text(
                json.dumps(payload, indent=2, allow_nan=False), encoding="utf-8"
            )
        if dst_html:
            html = render_html(
                result,
                inputs={
                    "Prediction": prediction,
                    "Reference": reference or f"{reference_polygons} ({class_field})",
                },
                parameters={
                    "Mode": mode,
                    "Assignment": assignment if mode == "clusters" else "-",
                    "Ignored values": ignore or "none",
                },
                class_names=class_names,
                class_colors=colors or None,
            )
            tmp["OUTPUT_HTML"].write_text(html, encoding="utf-8")
        report.progress(80)
        if dst_errors:
            _write_errors(
                tmp["OUTPUT_ERRORS"], pred_src, ref_reader, windows, ignore, result.mapping, info
            )
        report.progress(100)
    if dst_errors:
        write_qml(dst_errors, ERROR_CLASSES)  # names and colours in QGIS, beside the raster

    return {
        **outputs,
        "OVERALL_ACCURACY": result.overall_accuracy,
        "KAPPA": None if np.isnan(result.kappa) else result.kappa,
        "MEAN_IOU": result.mean_iou,
        "MACRO_F1": result.macro["f1"],
        "ARI": result.adjusted_rand_index,
        "N_PIXELS": result.n_pixels,
    }


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
    from .distributed import _Silent

    accumulator = ConfusionAccumulator()
    with contextlib.ExitStack() as stack:
        pred_src = stack.enter_context(io.open_raster(spec.prediction))
        reader = polygons
        if reader is None:
            reader = _open_reference(
                stack, spec.reference, None, None, spec.info, pred_src, _Silent()
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
