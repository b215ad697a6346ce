"""The ``accuracy`` command: a classified or cluster raster against a reference.

:func:`run_accuracy` counts one contingency table window by window
(:mod:`core.accuracy`, optionally on Dask), derives every metric from it
(:mod:`core.metrics`) and writes the reports (:mod:`core.report`) and the errors raster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..protocol import EngineError, Reporter
from ._options import add_dask_arguments
from ._outputs import all_or_none

if TYPE_CHECKING:  # pragma: no cover
    from ..contingency import ConfusionAccumulator
    from ..metrics import AccuracyResult

__all__ = ["add_commands", "run_accuracy"]


def add_commands(commands: Any) -> None:
    """Add ``accuracy`` to the CLI's subparsers."""
    acc = commands.add_parser(
        "accuracy",
        help="Accuracy of a classified or cluster raster against a reference.",
        description="Confusion matrix, overall accuracy, kappa, per-class precision/recall/"
        "F1/IoU, Rand index and ARI, accumulated window by window.",
    )
    acc.add_argument("prediction", help="Classified or cluster raster (band 1).")
    ref = acc.add_mutually_exclusive_group(required=True)
    ref.add_argument("--reference", help="Reference raster (warped onto the prediction grid).")
    ref.add_argument("--reference-polygons", help="Reference polygons (with --class-field).")
    acc.add_argument("--class-field", help="Integer class field of the reference polygons.")
    acc.add_argument(
        "--ignore",
        type=float,
        action="append",
        default=[],
        metavar="VALUE",
        help="Value to leave out in either raster (repeatable), e.g. 0 or 255.",
    )
    acc.add_argument(
        "--mode",
        choices=("classes", "clusters"),
        default="classes",
        help="classes: values correspond; clusters: map clusters to classes.",
    )
    acc.add_argument(
        "--assignment",
        choices=("hungarian", "majority"),
        default="hungarian",
        help="Cluster mapping: one-to-one (Hungarian) or many-to-one.",
    )
    acc.add_argument("--classes", help="VALUE:NAME[:#RRGGBB],... class names and colours.")
    acc.add_argument("--html", help="HTML report.")
    acc.add_argument("--csv", help="Confusion matrix as CSV.")
    acc.add_argument("--json", help="Every metric as JSON.")
    acc.add_argument("--errors", help="GeoTIFF of correct (1) / wrong (2) pixels.")
    acc.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")
    add_dask_arguments(acc)
    acc.set_defaults(handler=_run)


def _run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    return run_accuracy(
        prediction=args.prediction,
        reference=args.reference,
        reference_polygons=args.reference_polygons,
        class_field=args.class_field,
        ignore_values=args.ignore,
        mode=args.mode,
        assignment=args.assignment,
        classes=args.classes,
        dst_html=args.html,
        dst_csv=args.csv,
        dst_json=args.json,
        dst_errors=args.errors,
        overwrite=args.overwrite,
        reporter=reporter,
        dask_scheduler=args.dask_scheduler,
    )


@all_or_none
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
    from .. import io
    from ..accuracy import (
        ERROR_CLASSES,
        count_confusion,
        open_pair,
        parse_classes,
        reference_colors,
    )
    from ..classes import write_qml

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
    io.check_outputs(outputs.values(), rasters=(dst_errors,), overwrite=overwrite)
    names, colors = parse_classes(classes)
    ignore = [float(v) for v in ignore_values]

    with contextlib.ExitStack() as stack:
        pair = open_pair(
            stack,
            prediction,
            reference=reference,
            reference_polygons=reference_polygons,
            class_field=class_field,
            reporter=report,
        )
        if reference is not None and not colors:
            colors = reference_colors(reference)
        accumulator = count_confusion(
            pair,
            ignore,
            reporter=report,
            dask_scheduler=dask_scheduler,
            dask_block_rows=dask_block_rows,
        )
        if dask_scheduler and dst_errors:
            report.info("Writing the errors raster on this machine (a second pass).")
        result = _assess(
            accumulator, mode=mode, assignment=assignment, ignore=ignore, report=report
        )
        class_names = {int(v): names.get(int(v), f"class {int(v)}") for v in result.classes}
        tmp = {
            key: stack.enter_context(io.atomic_output(path, overwrite=overwrite))
            for key, path in outputs.items()
        }
        inputs = {"prediction": prediction, "reference": reference or reference_polygons}
        _write_reports(
            tmp,
            result,
            inputs=inputs,
            html_inputs={
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
        report.progress(80)
        if dst_errors:
            pair.write_errors(tmp["OUTPUT_ERRORS"], ignore, result.mapping)
        report.progress(100)
    if dst_errors:
        write_qml(dst_errors, ERROR_CLASSES)  # names and colours in QGIS, beside the raster

    return {
        **outputs,
        "OVERALL_ACCURACY": result.overall_accuracy,
        "KAPPA": None if math.isnan(result.kappa) else result.kappa,
        "MEAN_IOU": result.mean_iou,
        "MACRO_F1": result.macro["f1"],
        "ARI": result.adjusted_rand_index,
        "N_PIXELS": result.n_pixels,
    }


def _assess(
    accumulator: ConfusionAccumulator,
    *,
    mode: str,
    assignment: str,
    ignore: Sequence[float],
    report: Reporter,
) -> AccuracyResult:
    """Derive every metric and log the headline numbers (and the cluster mapping)."""
    from ..accuracy import assess

    result = assess(accumulator, mode=mode, assignment=assignment, ignore=ignore)
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
    return result


def _write_reports(
    tmp: dict[str, Any],
    result: AccuracyResult,
    *,
    inputs: dict[str, Any],
    html_inputs: dict[str, Any],
    parameters: dict[str, Any],
    class_names: dict[int, str],
    class_colors: dict[int, str] | None,
) -> None:
    """Write the CSV, JSON and HTML reports that were asked for (``tmp`` by output key)."""
    from ..metrics import to_json_dict, write_confusion_csv
    from ..report import render_html

    if "OUTPUT_CSV" in tmp:
        write_confusion_csv(result, tmp["OUTPUT_CSV"], class_names=class_names)
    if "OUTPUT_JSON" in tmp:
        payload = to_json_dict(result, class_names=class_names)
        payload["inputs"] = inputs
        tmp["OUTPUT_JSON"].write_text(
            json.dumps(payload, indent=2, allow_nan=False), encoding="utf-8"
        )
    if "OUTPUT_HTML" in tmp:
        html = render_html(
            result,
            inputs=html_inputs,
            parameters=parameters,
            class_names=class_names,
            class_colors=class_colors,
        )
        tmp["OUTPUT_HTML"].write_text(html, encoding="utf-8")
