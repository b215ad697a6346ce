"""The ``isb``, ``dfc`` and ``wnet`` commands: unsupervised deep segmentation of a raster.

:func:`run_unsupervised` reads the raster (whole, or sampled tiles in dataset mode),
trains the method's network (:mod:`core.unsupervised`), labels the raster with it
(in memory, or through the tiled inference engine), renumbers the clusters by area and
writes them; optionally it maps the clusters to the classes of a reference raster and
writes the scribbles' class map (both :mod:`core.unsupervised_labels`), and saves the
model file with its metadata.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..params import (
    DEFAULT_PERCENTILES,
    UNSCRIBBLED_RULES,
    UNSUPERVISED,
    UNSUPERVISED_COMMON,
    validate,
)
from ..protocol import EngineError, Reporter
from ._options import add_bands, add_device_arguments, add_param, add_seed, add_stretch_arguments
from ._outputs import all_or_none

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import numpy as np

    from .. import io
    from ..classes import ClassInfo
    from ..unsupervised import TrainingHistory
    from ..unsupervised_data import TrainingData
    from ..unsupervised_labels import Labelled

__all__ = ["DESCRIPTIONS", "add_commands", "run_unsupervised"]

#: One line per method, for ``--help``.
DESCRIPTIONS = {
    "isb": "Unsupervised segmentation by backpropagation (Kanezaki 2018): a CNN trained on "
    "the raster itself, its argmax refined inside SLIC superpixels.",
    "dfc": "Differentiable feature clustering (Kim, Kanezaki & Tanaka 2020): a CNN trained "
    "on the raster with feature-similarity and spatial-continuity losses; optional scribbles.",
    "wnet": "W-Net (Xia & Kulis 2017): encoder U-Net to K soft clusters, decoder U-Net back "
    "to the image; soft normalized cut and reconstruction losses.",
}


#: Methods that take scribbles: both add the scribble loss and name clusters by them.
SCRIBBLE_METHODS = ("dfc", "isb")


def add_commands(commands: Any) -> None:
    """Add ``isb``, ``dfc`` and ``wnet`` to the CLI's subparsers."""
    for method, params in UNSUPERVISED.items():
        sub = commands.add_parser(
            method, help=DESCRIPTIONS[method].split(":")[0] + ".", description=DESCRIPTIONS[method]
        )
        sub.add_argument("input", help="Input raster (any GDAL format, any band count).")
        sub.add_argument(
            "output", help="Cluster GeoTIFF: ids 1..K by decreasing area, nodata 0, styled."
        )
        add_bands(sub)
        add_stretch_arguments(sub)
        sub.add_argument(
            "--mode",
            choices=("auto", "image", "dataset"),
            default="auto",
            help="image: train on the whole raster (the papers); dataset: train on sampled "
            "tiles, then label every window with the frozen network; auto: image up to "
            "512 x 512 pixels (default).",
        )
        for param in (*params, *UNSUPERVISED_COMMON):
            add_param(sub, param)
        add_seed(sub)
        add_device_arguments(sub, precision=True)
        if method in SCRIBBLE_METHODS:
            _add_scribble_arguments(sub, method)
        _add_reference_arguments(sub)
        sub.add_argument("--model", help="Also write the trained model (.safetensors).")
        sub.add_argument("--mapped", help="Clusters as reference classes (GeoTIFF).")
        sub.add_argument("--mapping-csv", help="Cluster-to-class table (CSV).")
        sub.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")
        sub.set_defaults(handler=_run, method=method)


def _add_scribble_arguments(sub: argparse.ArgumentParser, method: str) -> None:
    sub.add_argument(
        "--scribbles",
        help="Scribbles: a raster (class values > 0) or lines/polygons (with "
        "--scribble-field) marking a few pixels of some classes"
        + " (they guide the training and name the clusters).",
    )
    sub.add_argument("--scribble-field", help="Class field of vector scribbles.")
    sub.add_argument(
        "--class-map",
        help="Also write the clusters as the scribbles' classes (GeoTIFF): each cluster "
        "takes the class of the scribbles it holds.",
    )
    sub.add_argument(
        "--scribble-classes",
        help="VALUE:NAME[:#RRGGBB],... names and colours of the scribble classes.",
    )
    sub.add_argument(
        "--unscribbled",
        choices=UNSCRIBBLED_RULES,
        default="extra",
        help="Clusters no scribble touched: extra unnamed classes, or merged into the "
        "named class with the nearest mean band values (default: extra).",
    )


def _add_reference_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--reference", help="Reference class raster: map clusters to classes.")
    sub.add_argument(
        "--assignment",
        choices=("hungarian", "majority"),
        default="hungarian",
        help="Cluster mapping: one-to-one (Hungarian) or many-to-one (majority).",
    )
    sub.add_argument(
        "--reference-classes", help="VALUE:NAME[:#RRGGBB],... names of reference classes."
    )
    sub.add_argument(
        "--reference-ignore",
        type=float,
        action="append",
        default=[],
        metavar="VALUE",
        help="Reference value left out of the mapping (repeatable), e.g. 0.",
    )


def _run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    params = {
        p.name: getattr(args, p.name) for p in (*UNSUPERVISED[args.method], *UNSUPERVISED_COMMON)
    }
    return run_unsupervised(
        args.method,
        src=args.input,
        dst=args.output,
        params=params,
        bands=args.bands,
        normalization=args.normalization,
        percentiles=tuple(args.percentiles),
        nodata_zero=args.nodata_zero,
        mode=args.mode,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        threads=args.threads,
        scribbles=getattr(args, "scribbles", None),
        scribble_field=getattr(args, "scribble_field", None),
        scribble_classes=getattr(args, "scribble_classes", None),
        unscribbled=getattr(args, "unscribbled", "extra"),
        dst_class_map=getattr(args, "class_map", None),
        reference=args.reference,
        assignment=args.assignment,
        reference_classes=args.reference_classes,
        reference_ignore=args.reference_ignore,
        dst_model=args.model,
        dst_mapped=args.mapped,
        dst_mapping_csv=args.mapping_csv,
        overwrite=args.overwrite,
        reporter=reporter,
    )


def check_raster_size(method: str, width: int, height: int, src: str) -> None:
    """Refuse a raster too small for the method's network, before any work.

    The networks normalise each channel over the pixels of a batch (batch norm), which
    needs two values: ISB and DFC need two pixels, W-Net (16 px blocks at its
    bottleneck) a raster over 16 px wide or high.

    Raises
    ------
    EngineError
        Naming the raster, its size and the smallest size the method takes.
    """
    if method == "wnet":
        blocks = -(-width // 16) * -(-height // 16)
        if blocks < 2:
            raise EngineError(
                f"{src} is {width} x {height} px: W-Net needs a raster at least 17 px wide or "
                "high (its network works on 16 px blocks and compares two). Give a larger "
                "raster, or use ISB or DFC."
            )
    elif width * height < 2:
        raise EngineError(
            f"{src} is {width} x {height} px: {method.upper()} needs at least 2 pixels (its "
            "network compares pixels with each other). Give a larger raster."
        )


def _check_inputs(
    method: str,
    params: dict[str, Any] | None,
    *,
    mode: str,
    assignment: str,
    scribbles: str | None,
    reference: str | None,
    dst: str,
    dst_class_map: str | None,
    unscribbled: str,
    dst_model: str | None,
    dst_mapped: str | None,
    dst_mapping_csv: str | None,
    overwrite: bool,
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Check the method, its parameters and the outputs before any work.

    Returns every parameter's value and the outputs as ``(path, key)``.
    """
    from .. import io
    from ..unsupervised import METHODS

    if method not in METHODS:
        raise EngineError(f"Unknown method {method!r}: use {', '.join(METHODS)}.")
    values = _check_params(method, dict(params or {}))
    if mode not in ("auto", "image", "dataset"):
        raise EngineError(f"MODE must be auto, image or dataset, not {mode!r}.")
    if assignment not in ("hungarian", "majority"):
        raise EngineError(f"ASSIGNMENT must be hungarian or majority, not {assignment!r}.")
    if scribbles and method not in SCRIBBLE_METHODS:
        raise EngineError(
            "Scribbles guide DFC and ISB only; use landseg:dfc or landseg:isb for scribbles."
        )
    if dst_class_map and not scribbles:
        raise EngineError(
            "The class map names clusters by the scribbles: give SCRIBBLES, or leave "
            "OUTPUT_CLASSES out."
        )
    if unscribbled not in UNSCRIBBLED_RULES:
        raise EngineError(f"UNSCRIBBLED must be extra or merge, not {unscribbled!r}.")
    if (dst_mapped or dst_mapping_csv) and not reference:
        raise EngineError("OUTPUT_MAPPED and the mapping table need a REFERENCE raster.")
    outputs = [(dst, "OUTPUT")]
    for path, key in (
        (dst_class_map, "OUTPUT_CLASSES"),
        (dst_model, "OUTPUT_MODEL"),
        (dst_mapped, "OUTPUT_MAPPED"),
        (dst_mapping_csv, "OUTPUT_MAPPING"),
    ):
        if path:
            outputs.append((path, key))
    io.check_outputs(
        [p for p, _ in outputs], rasters=(dst, dst_mapped, dst_class_map), overwrite=overwrite
    )
    if reference:
        io.inspect_raster(reference)

    return values, outputs


def _check_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    values = validate(method, (*UNSUPERVISED[method], *UNSUPERVISED_COMMON), params)
    if values["min_clusters"] > values["max_clusters"]:
        raise EngineError(
            f"MIN_CLUSTERS ({values['min_clusters']}) is larger than MAX_CLUSTERS "
            f"({values['max_clusters']}): training stops when the clusters fall to "
            "MIN_CLUSTERS, so it must be at most MAX_CLUSTERS. Lower MIN_CLUSTERS or raise "
            "MAX_CLUSTERS."
        )
    return values


@all_or_none
def run_unsupervised(
    method: str,
    *,
    src: str,
    dst: str,
    params: dict[str, Any] | None = None,
    bands: Sequence[int] | None = None,
    normalization: str = "percentile",
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    nodata_zero: bool = False,
    mode: str = "auto",
    seed: int = 42,
    device: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    scribbles: str | None = None,
    scribble_field: str | None = None,
    scribble_classes: str | None = None,
    unscribbled: str = "extra",
    dst_class_map: str | None = None,
    reference: str | None = None,
    assignment: str = "hungarian",
    reference_classes: str | None = None,
    reference_ignore: Sequence[float] = (),
    dst_model: str | None = None,
    dst_mapped: str | None = None,
    dst_mapping_csv: str | None = None,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Segment a raster with ISB, DFC or W-Net trained on the raster itself.

    Parameters
    ----------
    method : {"isb", "dfc", "wnet"}
        See the module docstring.
    src, dst : str
        Input raster; output cluster raster (GeoTIFF, ids 1..K by decreasing area, nodata
        0, colour table and ``.qml`` style).
    params : dict, optional
        Method parameters by name (:data:`core.params.UNSUPERVISED` and
        :data:`core.params.UNSUPERVISED_COMMON`); missing ones take their defaults.
    bands, normalization, percentiles, nodata_zero
        Input bands and their stretch, as for the superpixel commands.
    mode : {"auto", "image", "dataset"}
        Whole-image training (the papers; rasters up to :data:`IMAGE_MODE_PIXELS` in
        ``auto``) or training on sampled tiles and tiled inference.
    seed : int
        Same seed, same result (on the CPU).
    device, precision, threads
        Compute device, autocast precision and CPU threads (see :mod:`core.device`).
    scribbles, scribble_field : str, optional
        DFC and ISB: scribble raster (class values > 0) or vector file and its class
        field. Both add the scribble cross-entropy (DFC's scribble variant) and name
        clusters by them in ``dst_class_map``.
    scribble_classes : str, optional
        ``VALUE:NAME[:#RRGGBB],...`` names and colours of the scribble classes.
    unscribbled : {"extra", "merge"}
        Clusters without scribbles in ``dst_class_map``: extra unnamed classes, or merged
        into the named class with the nearest mean stretched band values.
    dst_class_map : str, optional
        The clusters as the scribbles' classes (GeoTIFF with their values, names and
        colours; :mod:`core.scribbles`). ``dst`` keeps the clusters.
    reference : str, optional
        Reference class raster: clusters are mapped to its classes.
    assignment : {"hungarian", "majority"}
        One-to-one or many-to-one cluster mapping.
    reference_classes : str, optional
        ``VALUE:NAME[:#RRGGBB],...`` names and colours of the reference classes.
    reference_ignore : sequence of float
        Reference values left out of the mapping (e.g. 0).
    dst_model : str, optional
        Model file (safetensors + JSON, :mod:`core.modelfile`).
    dst_mapped, dst_mapping_csv : str, optional
        Clusters as reference classes (GeoTIFF) and the mapping table (CSV); need
        ``reference``.
    overwrite : bool
        Replace existing outputs.
    reporter : Reporter, optional
        Progress and log sink.

    Returns
    -------
    dict
        ``OUTPUT``, ``N_CLUSTERS``, ``ITERATIONS``, ``CLASSES`` (the cluster table), and
        the optional outputs; with a reference also ``ARI``, ``OVERALL_ACCURACY`` and
        ``MAPPED_CLASSES``.
    """
    from .. import io
    from ..device import select_device, select_precision, set_threads
    from ..unsupervised import _NAMES, IMAGE_MODE_PIXELS
    from ..unsupervised_data import read_training_data
    from ..unsupervised_labels import map_to_reference, write_class_map

    report = reporter or Reporter("text")
    values, outputs = _check_inputs(
        method, params, mode=mode, assignment=assignment, scribbles=scribbles,
        reference=reference, dst=dst, dst_class_map=dst_class_map, unscribbled=unscribbled,
        dst_model=dst_model, dst_mapped=dst_mapped,
        dst_mapping_csv=dst_mapping_csv, overwrite=overwrite,
    )  # fmt: skip

    info = io.inspect_raster(src)
    band_list = io.resolve_bands(bands, info.count)
    check_raster_size(method, info.width, info.height, src)
    n_threads = set_threads(threads)
    dev, dev_reason = select_device(device)
    autocast, precision_note = select_precision(precision, dev)
    if mode == "auto":
        mode = "image" if info.pixels <= IMAGE_MODE_PIXELS else "dataset"
    tile = int(values["tile_size"])
    if method == "wnet":
        tile -= tile % 16
    report.info(
        f"{_NAMES[method]} on {info.width} x {info.height} px, bands {band_list}; {mode} mode; "
        f"{dev} ({dev_reason}), {precision_note}, {n_threads} threads."
    )
    report.info(", ".join(f"{k}={v}" for k, v in values.items()))
    report.progress(1)

    data = read_training_data(
        method, src=src, info=info, band_list=band_list, mode=mode, tile=tile, values=values,
        normalization=normalization, percentiles=percentiles, nodata_zero=nodata_zero,
        scribbles=scribbles, scribble_field=scribble_field, seed=seed, report=report,
    )  # fmt: skip
    report.progress(5)
    net, history, arch_args = _train(
        method, data, values, seed=seed, device=str(dev), precision=precision, report=report
    )
    max_clusters = int(values["max_clusters"])

    with contextlib.ExitStack() as stack:
        tmp = {
            key: stack.enter_context(io.atomic_output(path, overwrite=overwrite))
            for path, key in outputs
        }
        labelled = _label(
            stack, tmp["OUTPUT"], net, mode=mode, src=src, data=data, info=info,
            band_list=band_list, max_clusters=max_clusters, dev=dev, autocast=autocast,
            precision=precision, nodata_zero=nodata_zero, threads=n_threads,
            min_segment=int(values.get("min_segment", 0)), report=report,
        )  # fmt: skip
        named: list[ClassInfo] = []
        if dst_class_map:
            named = write_class_map(
                tmp["OUTPUT"], tmp["OUTPUT_CLASSES"], src=src, band_list=band_list, data=data,
                nodata_zero=nodata_zero, scribbles=scribbles, scribble_field=scribble_field,
                scribble_classes=scribble_classes, rule=unscribbled, report=report,
            )  # fmt: skip
        mapping: dict[str, Any] = {}
        if reference:
            mapping = map_to_reference(
                tmp["OUTPUT"],
                reference=reference,
                assignment=assignment,
                classes_text=reference_classes,
                ignore_values=reference_ignore,
                mapped_path=tmp.get("OUTPUT_MAPPED"),
                csv_path=tmp.get("OUTPUT_MAPPING"),
                info=info,
                report=report,
            )
            report.info(
                f"Against the reference: ARI {mapping['ARI']:.3f}, overall accuracy after "
                f"mapping {mapping['OVERALL_ACCURACY']:.3f}."
            )
        if dst_model:
            _save_model(
                tmp["OUTPUT_MODEL"], net, method, arch_args, band_list, data, values, history,
                seed, info, normalization, labelled.channel_lut, nodata_zero,
            )  # fmt: skip
    _write_styles(dst, labelled, dst_class_map, named, dst_mapped, mapping)
    report.progress(100)
    result = _result(outputs, labelled, history, mode, mapping)
    if dst_class_map:
        from ..classes import classes_to_json

        result["CLASS_MAP_CLASSES"] = classes_to_json(named)
    return result


def _label(
    stack: contextlib.ExitStack,
    dst: Path,
    net: Any,
    *,
    mode: str,
    src: str,
    data: TrainingData,
    info: io.RasterInfo,
    band_list: list[int],
    max_clusters: int,
    dev: Any,
    autocast: Any,
    precision: str,
    nodata_zero: bool,
    threads: int,
    min_segment: int,
    report: Reporter,
) -> Labelled:
    """Label the raster with the trained network (whole, or window by window) into ``dst``."""
    from ..unsupervised_labels import label_dataset, label_image

    if mode == "image":
        labelled = label_image(
            net, data, info, dev, autocast, dst, max_clusters, min_segment=min_segment
        )
        report.progress(88)
    else:
        raw_path = dst.with_name(dst.stem + "-raw.tif")
        stack.callback(lambda: [p.unlink() for p in _with_sidecars(raw_path) if p.exists()])
        labelled = label_dataset(
            net, src, raw_path, dst, data, info, band_list, max_clusters, device=str(dev),
            precision=precision, nodata_zero=nodata_zero, threads=threads, report=report,
        )  # fmt: skip
        report.progress(92)
    if labelled.n_clusters <= 1:
        report.warning(
            "Every pixel fell into one cluster. Raise MIN_CLUSTERS, lower the learning "
            "rate or (DFC) MU, or use other bands."
        )
    report.info(f"{labelled.n_clusters} clusters.")
    return labelled


def _write_styles(
    dst: str,
    labelled: Labelled,
    dst_class_map: str | None,
    named: list[ClassInfo],
    dst_mapped: str | None,
    mapping: dict[str, Any],
) -> None:
    """Styles beside the final files (QGIS reads ``<raster>.qml`` as the default style)."""
    from ..classes import classes_from_json, write_qml

    write_qml(dst, labelled.table)
    if dst_class_map:
        write_qml(dst_class_map, named)
    if dst_mapped and mapping:
        write_qml(dst_mapped, classes_from_json(mapping["MAPPED_CLASSES"]))


def _train(
    method: str,
    data: TrainingData,
    values: dict[str, Any],
    *,
    seed: int,
    device: str,
    precision: str,
    report: Reporter,
) -> tuple[Any, TrainingHistory, dict[str, Any]]:
    """Train the method's network; returns it, its history and its architecture arguments."""
    import numpy as np

    from ..unsupervised import _superpixels, train_kanezaki, train_wnet

    max_clusters = int(values["max_clusters"])
    min_clusters = int(values["min_clusters"])
    if data.scribble_values is not None:
        if len(data.scribble_values) > max_clusters:
            raise EngineError(
                f"The scribbles have {len(data.scribble_values)} classes, more than MAX_CLUSTERS "
                f"({max_clusters}); raise MAX_CLUSTERS."
            )
        min_clusters = max(min_clusters, len(data.scribble_values))
    common: dict[str, Any] = {
        "min_clusters": min_clusters,
        "max_iter": int(values["max_iter"]),
        "learning_rate": float(values["learning_rate"]),
        "batch_size": int(values["batch_size"]),
        "seed": seed,
        "device": device,
        "precision": precision,
        "reporter": report,
        "progress": (5.0, 80.0),
    }
    arch_args: dict[str, Any]
    if method in ("isb", "dfc"):
        segments = None
        if method == "isb":
            segments = _superpixels(data.images, data.valids, values, report)
        net, history = train_kanezaki(
            data.images,
            data.valids,
            method=method,
            n_channels=max_clusters,
            n_conv=int(values["n_conv"]),
            mu=float(values.get("mu", 0.0)),
            segments=segments,
            scribbles=data.scribble_index,
            scribble_weight=float(values.get("scribble_weight", 0.5)),
            **common,
        )
        arch_args = {
            "in_channels": data.images.shape[1],
            "n_channels": max_clusters,
            "n_conv": int(values["n_conv"]),
        }
    else:
        pad_h = (-data.images.shape[2]) % 16
        pad_w = (-data.images.shape[3]) % 16
        if pad_h or pad_w:
            data.images = np.pad(data.images, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)))
            data.valids = np.pad(data.valids, ((0, 0), (0, pad_h), (0, pad_w)))
        net, history = train_wnet(
            data.images,
            data.valids,
            n_clusters=max_clusters,
            hidden=int(values["hidden"]),
            dropout=float(values["dropout"]),
            radius=int(values["radius"]),
            sigma_i=float(values["sigma_i"]),
            sigma_x=float(values["sigma_x"]),
            ncut_weight=float(values["ncut_weight"]),
            **common,
        )
        arch_args = {
            "in_channels": data.images.shape[1],
            "n_clusters": max_clusters,
            "hidden": int(values["hidden"]),
            "dropout": float(values["dropout"]),
        }
    report.info(
        f"Trained {history.iterations} iterations in {history.seconds:.1f} s "
        f"({history.seconds / max(history.iterations, 1):.2f} s/iteration); "
        f"{history.n_labels[-1]} labels at the end"
        + (" (MIN_CLUSTERS reached)." if history.stopped_early else ".")
    )
    return net, history, arch_args


def _save_model(
    path: Any,
    net: Any,
    method: str,
    arch_args: dict[str, Any],
    band_list: list[int],
    data: TrainingData,
    values: dict[str, Any],
    history: TrainingHistory,
    seed: int,
    info: io.RasterInfo,
    normalization: str,
    channel_lut: np.ndarray,
    nodata_zero: bool,
) -> None:
    from ..modelfile import save_model
    from ..unsupervised import model_metadata

    metadata = model_metadata(
        method, arch_args, band_list, data.low, data.span, data.tile, values, history, seed,
        info, int(values["max_clusters"]), normalization, channel_lut, nodata_zero,
    )  # fmt: skip
    save_model(path, net.state_dict(), metadata)


def _result(
    outputs: list[tuple[str, str]],
    labelled: Labelled,
    history: TrainingHistory,
    mode: str,
    mapping: dict[str, Any],
) -> dict[str, Any]:
    from ..classes import classes_to_json

    out: dict[str, Any] = {key: path for path, key in outputs}
    out.update(
        N_CLUSTERS=labelled.n_clusters,
        ITERATIONS=history.iterations,
        STOPPED_AT_MIN_CLUSTERS=history.stopped_early,
        MODE=mode,
        SECONDS_PER_ITERATION=round(history.seconds / max(history.iterations, 1), 4),
        CLASSES=classes_to_json(labelled.table),
    )
    if mapping:
        out.update(mapping)
    return out


def _with_sidecars(path: Any) -> list[Any]:
    return [path, *(path.with_name(path.name + ext) for ext in (".aux.xml", ".msk"))]
