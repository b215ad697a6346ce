"""The ``slic``, ``quickshift`` and ``felzenszwalb`` commands: a raster to superpixels.

:func:`run_superpixels` reads the raster, stretches its bands, calls the segmenter of
:mod:`core.superpixels` (or :mod:`core.superpixel_blocks` for rasters larger than a
block) and writes the segment ids, optionally their mean values and polygons. Outputs
are written atomically: a failed or cancelled run leaves nothing behind.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..params import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_PERCENTILES,
    MAX_IN_MEMORY_PIXELS,
    SEEDED,
    STRETCH_RANGE,
    SUPERPIXELS,
    validate,
)
from ..protocol import EngineError, Reporter
from ._options import add_bands, add_dask_arguments, add_param, add_seed, add_stretch_arguments
from ._outputs import all_or_none

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .. import io

__all__ = ["add_commands", "run_superpixels"]

#: Nodata of segment-id rasters (ids start at 1).
SEGMENT_NODATA = 0
#: Above this many segments the output gets no palette style (too heavy to draw).
MAX_PALETTE_SEGMENTS = 50_000
#: Nodata of mean-colour rasters.
MEAN_NODATA = -9999.0

#: One line per method, for ``--help``.
DESCRIPTIONS = {
    "slic": "SLIC superpixels (Achanta et al. 2012): k-means in colour and image space.",
    "quickshift": "QuickShift superpixels (Vedaldi & Soatto 2008): mode seeking on a "
    "density estimate.",
    "felzenszwalb": "Felzenszwalb-Huttenlocher graph segmentation (2004): merges regions "
    "whose internal difference is below a size-scaled threshold.",
}


def add_commands(commands: Any) -> None:
    """Add ``slic``, ``quickshift`` and ``felzenszwalb`` to the CLI's subparsers."""
    for method, params in SUPERPIXELS.items():
        sub = commands.add_parser(
            method, help=DESCRIPTIONS[method], description=DESCRIPTIONS[method]
        )
        sub.add_argument("input", help="Input raster (any GDAL format, any band count).")
        sub.add_argument("output", help="Output segment-id GeoTIFF (int32, nodata 0).")
        add_bands(sub, help="1-based bands to use (default: all).")
        add_stretch_arguments(sub, verbose=True)
        sub.add_argument(
            "--polygons",
            default=None,
            metavar="PATH",
            help="Also write one polygon per segment (GeoPackage or any OGR format by extension).",
        )
        sub.add_argument(
            "--mean",
            default=None,
            metavar="PATH",
            help="Also write a raster of segment mean values.",
        )
        sub.add_argument(
            "--overwrite",
            action="store_true",
            help="Replace existing outputs (refused by default).",
        )
        sub.add_argument(
            "--max-pixels",
            type=int,
            default=MAX_IN_MEMORY_PIXELS,
            help="Largest raster whose --polygons are built in memory (default: "
            f"{MAX_IN_MEMORY_PIXELS:,}); vectorize larger ones with the vectorize command.",
        )
        sub.add_argument(
            "--block-size",
            type=int,
            default=DEFAULT_BLOCK_SIZE,
            metavar="N",
            help="Rasters with more rows or columns than this are segmented block by block "
            f"(N x N plus a halo) in bounded memory (default: {DEFAULT_BLOCK_SIZE}).",
        )
        add_dask_arguments(sub)
        add_seed(sub)
        for param in params:
            add_param(sub, param)
        sub.set_defaults(handler=_run, method=method)


def _run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    return run_superpixels(
        args.method,
        src=args.input,
        dst=args.output,
        params={p.name: getattr(args, p.name) for p in SUPERPIXELS[args.method]},
        bands=args.bands,
        normalization=args.normalization,
        percentiles=tuple(args.percentiles),
        nodata_zero=args.nodata_zero,
        seed=args.seed,
        dst_polygons=args.polygons,
        dst_mean=args.mean,
        overwrite=args.overwrite,
        max_pixels=args.max_pixels,
        block_size=args.block_size,
        reporter=reporter,
        dask_scheduler=args.dask_scheduler,
    )


def _segmenter(method: str) -> Any:
    from .. import superpixels  # deferred: compiles numba kernels on first use

    return {
        "slic": superpixels.slic,
        "quickshift": superpixels.quickshift,
        "felzenszwalb": superpixels.felzenszwalb,
    }[method]


@all_or_none
def run_superpixels(
    method: str,
    *,
    src: str,
    dst: str,
    params: dict[str, Any] | None = None,
    bands: Sequence[int] | None = None,
    normalization: str = "percentile",
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    nodata_zero: bool = False,
    seed: int = 42,
    dst_polygons: str | None = None,
    dst_mean: str | None = None,
    overwrite: bool = False,
    max_pixels: int = MAX_IN_MEMORY_PIXELS,
    block_size: int = DEFAULT_BLOCK_SIZE,
    reporter: Reporter | None = None,
    dask_scheduler: str | None = None,
) -> dict[str, Any]:
    """Segment a raster into superpixels with SLIC, QuickShift or Felzenszwalb.

    Parameters
    ----------
    method : {"slic", "quickshift", "felzenszwalb"}
        Superpixel method (see :mod:`core.superpixels`).
    src : str
        Input raster (any band count and dtype; georeferenced or not).
    dst : str
        Output segment-id raster: GeoTIFF, int32, ids 1..N, nodata 0, on the input grid.
    params : dict, optional
        Method parameters by core keyword name (``n_segments``, ``compactness``...).
        Missing ones take the core defaults.
    bands : sequence of int, optional
        1-based bands to use; all by default.
    normalization : {"percentile", "minmax", "none"}
        Per-band stretch applied before segmenting (see :func:`core.normalize.stretch`).
        Bands are stretched to 0-1 for SLIC and Felzenszwalb and 0-100 for QuickShift,
        the scales scikit-image's parameters are meant for.
    percentiles : (float, float)
        Low and high percentile of the percentile stretch.
    nodata_zero : bool
        Also treat pixels where every band is 0 as nodata.
    seed : int
        Random seed (QuickShift's tie-breaking; the other methods are deterministic).
    dst_polygons : str, optional
        Vector file with one polygon per segment: ``id``, ``pixels``, ``area`` (map units,
        square pixels without georeferencing) and the mean of each band (``mean_b<N>``).
    dst_mean : str, optional
        Raster where each segment is painted with its band means (float32).
    overwrite : bool
        Replace existing outputs.
    max_pixels : int
        Largest raster whose ``dst_polygons`` are built (in memory); larger rasters with
        ``dst_polygons`` are refused (vectorize their ``dst`` with ``landseg:vectorize``).
    block_size : int
        Rasters with more rows or columns than this are segmented block by block, in
        bounded memory (:mod:`core.superpixel_blocks`); smaller ones in memory, in one piece.
    reporter : Reporter, optional
        Progress and log sink.
    dask_scheduler : str, optional
        Segment the blocks of a raster larger than ``block_size`` on a Dask cluster
        (``tcp://host:8786`` or ``local:N``, see :mod:`core.distributed`); the result equals
        the single-process result. A raster of one block is segmented here.

    Returns
    -------
    dict
        ``OUTPUT``, ``N_SEGMENTS`` and, when asked for, ``OUTPUT_POLYGONS`` and
        ``OUTPUT_MEAN``.
    """
    from .. import io

    report = reporter or Reporter("text")
    if method not in SUPERPIXELS:
        raise EngineError(f"Unknown superpixel method {method!r}: use {', '.join(SUPERPIXELS)}.")
    kwargs = validate(method, SUPERPIXELS[method], params)
    if method in SEEDED:
        kwargs["seed"] = seed

    outputs = [(dst, "OUTPUT")]
    if dst_polygons:
        outputs.append((dst_polygons, "OUTPUT_POLYGONS"))
    if dst_mean:
        outputs.append((dst_mean, "OUTPUT_MEAN"))
    io.check_outputs([p for p, _ in outputs], rasters=(dst, dst_mean), overwrite=overwrite)

    info = io.inspect_raster(src)
    if dst_polygons and info.pixels > max_pixels:
        raise EngineError(
            f"{src} has {info.width} x {info.height} = {info.pixels:,} pixels, more than the "
            f"{max_pixels:,} whose segment polygons are built in memory. Leave the polygons "
            "out and vectorize the segment raster with landseg:vectorize (it streams), or "
            "clip the raster."
        )
    band_list = io.resolve_bands(bands, info.count)
    report.info(
        f"Input {info.width} x {info.height} px, bands {band_list} of {info.count}, "
        f"{'CRS ' + _crs_name(info.crs_wkt) if info.crs_wkt else 'no georeferencing'}."
    )
    if max(info.width, info.height) > block_size:
        result = _superpixels_in_blocks(
            method,
            src=src,
            info=info,
            band_list=band_list,
            kwargs=kwargs,
            outputs=outputs,
            normalization=normalization,
            percentiles=percentiles,
            nodata_zero=nodata_zero,
            overwrite=overwrite,
            block_size=block_size,
            report=report,
            dask_scheduler=dask_scheduler,
        )
    else:
        if dask_scheduler:
            report.info("The raster fits in one block: segmented here, without Dask.")
        result = _superpixels_in_memory(
            method, src=src, info=info, band_list=band_list, kwargs=kwargs, outputs=outputs,
            normalization=normalization, percentiles=percentiles, nodata_zero=nodata_zero,
            overwrite=overwrite, report=report,
        )  # fmt: skip
    write_segment_style(dst, int(result["N_SEGMENTS"]))
    return result


def write_segment_style(dst: str, n_segments: int) -> None:
    """Write ``<dst>.qml``: one distinct colour per segment id 1..N (QGIS's default style).

    Above ``MAX_PALETTE_SEGMENTS`` a palette is too heavy to draw; the raster keeps QGIS's
    default (grey) rendering and any older style beside it is removed.
    """
    from pathlib import Path

    from ..classes import ClassInfo, palette, write_qml

    if 1 <= n_segments <= MAX_PALETTE_SEGMENTS:
        colors = palette(n_segments, offset=1)
        write_qml(dst, [ClassInfo(i, str(i), colors[i - 1]) for i in range(1, n_segments + 1)])
    else:
        Path(dst).with_suffix(".qml").unlink(missing_ok=True)


def _superpixels_in_memory(
    method: str,
    *,
    src: str,
    info: io.RasterInfo,
    band_list: list[int],
    kwargs: dict[str, Any],
    outputs: list[tuple[str, str]],
    normalization: str,
    percentiles: tuple[float, float],
    nodata_zero: bool,
    overwrite: bool,
    report: Reporter,
) -> dict[str, Any]:
    """Segment a raster that fits in one block, in memory, and write the outputs."""
    import numpy as np

    from .. import io, normalize
    from ..segments import mean_image, segment_means

    keys = {key for _, key in outputs}
    with io.open_raster(src) as raster:
        image, valid = io.read_bands(raster, band_list, nodata_zero=nodata_zero)
    report.progress(10)
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise EngineError(
            f"{src} has no valid pixel in bands {band_list}: every pixel is nodata"
            f"{' or 0 in all bands' if nodata_zero else ''}. Check the raster's nodata value "
            "and the selected bands."
        )
    if n_valid < valid.size:
        report.info(f"{valid.size - n_valid:,} nodata pixels belong to no segment.")

    stretched = normalize.stretch(
        image,
        valid,
        method=normalization,
        percentiles=percentiles,
        out_max=STRETCH_RANGE[method],
    )
    report.progress(20)
    report.info(f"Segmenting with {method}: " + ", ".join(f"{k}={v}" for k, v in kwargs.items()))
    started = time.perf_counter()
    labels = _segmenter(method)(stretched, mask=valid, **kwargs)
    del stretched
    n_segments = int(labels.max())
    report.info(f"{n_segments} segments in {time.perf_counter() - started:.2f} s.")
    report.progress(75)

    with contextlib.ExitStack() as stack:
        tmp = {
            key: stack.enter_context(io.atomic_output(path, overwrite=overwrite))
            for path, key in outputs
        }
        io.write_raster(tmp["OUTPUT"], labels.astype(np.int32), like=info, nodata=SEGMENT_NODATA)
        report.progress(80)
        if keys & {"OUTPUT_POLYGONS", "OUTPUT_MEAN"}:
            means = segment_means(image, labels, n_segments)
        if "OUTPUT_MEAN" in keys:
            io.write_raster(
                tmp["OUTPUT_MEAN"],
                mean_image(labels, means, nodata=MEAN_NODATA),
                like=info,
                nodata=MEAN_NODATA,
                descriptions=[f"mean of band {b}" for b in band_list],
            )
            report.progress(85)
        if "OUTPUT_POLYGONS" in keys:
            _write_segment_polygons(
                tmp["OUTPUT_POLYGONS"], labels, means, band_list, info, n_segments
            )
        report.progress(100)

    result: dict[str, Any] = {key: path for path, key in outputs}
    result["N_SEGMENTS"] = n_segments
    return result


def _superpixels_in_blocks(
    method: str,
    *,
    src: str,
    info: io.RasterInfo,
    band_list: list[int],
    kwargs: dict[str, Any],
    outputs: list[tuple[str, str]],
    normalization: str,
    percentiles: tuple[float, float],
    nodata_zero: bool,
    overwrite: bool,
    block_size: int,
    report: Reporter,
    dask_scheduler: str | None = None,
) -> dict[str, Any]:
    """Run the streamed path of :func:`run_superpixels` (rasters larger than a block).

    Blocks are segmented here, or on a Dask cluster when ``dask_scheduler`` is given.
    """
    from .. import io
    from ..block_io import write_mean_raster
    from ..superpixel_blocks import segment_in_blocks

    keys = {key for _, key in outputs}
    report.info(f"Segmenting with {method}: " + ", ".join(f"{k}={v}" for k, v in kwargs.items()))
    with contextlib.ExitStack() as stack:
        executor = None
        if dask_scheduler:
            from ..distributed import DaskBlocks, connect

            executor = DaskBlocks(stack.enter_context(connect(dask_scheduler, reporter=report)))
        tmp = {
            key: stack.enter_context(io.atomic_output(path, overwrite=overwrite))
            for path, key in outputs
        }
        n_segments, _counts, means = segment_in_blocks(
            method,
            src=src,
            bands=band_list,
            params=kwargs,
            dst=tmp["OUTPUT"],
            info=info,
            normalization=normalization,
            percentiles=percentiles,
            nodata_zero=nodata_zero,
            block_size=block_size,
            want_means=len(keys) > 1,
            reporter=report,
            executor=executor,
        )
        if n_segments == 0:
            raise EngineError(
                f"{src} has no valid pixel in bands {band_list}: every pixel is nodata"
                f"{' or 0 in all bands' if nodata_zero else ''}. Check the raster's nodata "
                "value and the selected bands."
            )
        if "OUTPUT_MEAN" in keys and means is not None:
            write_mean_raster(
                tmp["OUTPUT"],
                tmp["OUTPUT_MEAN"],
                means,
                info=info,
                nodata=MEAN_NODATA,
                descriptions=[f"mean of band {b}" for b in band_list],
                block_size=block_size,
            )
            report.progress(95)
        if "OUTPUT_POLYGONS" in keys and means is not None:
            with io.open_raster(tmp["OUTPUT"]) as raster:
                labels = raster.read(1)
            _write_segment_polygons(
                tmp["OUTPUT_POLYGONS"], labels, means, band_list, info, n_segments
            )
        report.progress(100)
    result: dict[str, Any] = {key: path for path, key in outputs}
    result["N_SEGMENTS"] = n_segments
    return result


def _write_segment_polygons(
    path: os.PathLike[str] | str,
    labels: np.ndarray,
    means: np.ndarray,
    band_list: Sequence[int],
    info: io.RasterInfo,
    n_segments: int,
) -> None:
    import numpy as np
    from affine import Affine

    from ..segments import segment_counts
    from ..vectorize import segment_polygons, write_polygons

    transform = Affine(*info.transform)
    ids, geometries = segment_polygons(labels, transform=transform)
    counts = segment_counts(labels, n_segments)
    attributes: dict[str, np.ndarray] = {
        "id": ids.astype(np.int32),
        "pixels": counts[ids],
        "area": np.array([g.area for g in geometries], dtype=np.float64),
    }
    for column, band in enumerate(band_list):
        attributes[f"mean_b{band}"] = means[ids, column]
    write_polygons(path, geometries, attributes, crs_wkt=info.crs_wkt, layer="segments")


def _crs_name(wkt: str) -> str:
    from rasterio.crs import CRS

    crs = CRS.from_wkt(wkt)
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()[:60]
