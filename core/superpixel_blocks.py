"""Superpixels of rasters of any size: block by block with a halo, seam-free.

:func:`segment_in_blocks` runs SLIC, QuickShift or Felzenszwalb (:mod:`core.superpixels`)
on square blocks of ``block_size`` pixels, each read with a halo around it, and writes
segment ids that are unique over the whole raster. Memory is bounded by the block (one
window of ``(block_size + 2 * halo)**2`` pixels and its working arrays) and GDAL's block
cache (capped at :data:`GDAL_CACHE_MB`), not by the raster's size; only when segment means
are asked for, a table of ``bands + 1`` numbers per segment is added.

Scheme (claiming in raster order, in the spirit of the stable-margin tiling of Lassalle
et al. [1]_):

1. **Global statistics.** The band limits of the stretch come from a regular subsample of
   the whole raster (a decimated, nearest-neighbour read of about
   :data:`core.normalize.SAMPLE_PIXELS` pixels; :func:`core.normalize.global_statistics`),
   not from each block, so values mean the same in every block. SLIC's grid step
   ``sqrt(valid pixels / n_segments)`` and value range are global too, so segments have
   the same size and compactness everywhere.
2. **Blocks in raster order.** Block ``b``'s window (core plus halo) is read and
   stretched. Pixels already *claimed* by earlier blocks are masked out, so the block
   segments only the rest: the segmenter sees the claimed region's edge, which follows
   earlier segments' own boundaries, never a straight line.
3. **Claiming.** Each local segment with at least one pixel in ``b``'s core is claimed by
   ``b``. A *complete* segment (not touching an edge of the window that lies inside the
   raster) is claimed whole, halo pixels included: it crosses the block border exactly as
   the segmenter drew it, and the later blocks keep it. An *open* segment (cut by the
   window's edge, so its extent is unknown) is claimed only inside the core; its pixels
   beyond the core are written as *hints* carrying its id. A later block's local segment
   that is adjacent to that id and lies for more than half on its hints continues it
   (takes the same id), so segments larger than the halo also cross borders.
4. **Ids.** A new id is the next integer, so ids are 1..N, contiguous and unique over the
   raster, in the order segments are claimed (block by block). With SLIC's
   ``enforce_connectivity`` every id is one 4-connected region: the core part of an open
   segment is split into its connected pieces, and a continuation must touch the piece it
   continues.

The labels being built and the hints live in two int32 scratch files beside the output
(8 bytes per pixel of disk; read and written by rows, so they stay in the page cache, not
in the process), removed at the end, also on failure or cancellation. A second pass copies
the labels into the tiled GeoTIFF output and gathers per-segment pixel counts and band
means; a third paints the mean raster when asked for. While a block is segmented and
claimed, a reader thread reads, stretches and smooths the next block's window (none of
which depends on the claims), with its own handle on the raster. Reading, the scratch
planes and the output are in :mod:`core.block_io`.

Differences with the in-memory path (same parameters): the stretch limits come from a
regular instead of a random subsample; SLIC's valid pixel count is estimated from that
subsample; Gaussian smoothing is done per window (exact at least ``4 sigma`` from the
window edge, which lies in the halo); QuickShift's tie-breaking noise is drawn per block
from ``(seed, block index)``, so a result is reproducible for the same seed *and* block
size.

References
----------
.. [1] P. Lassalle, J. Inglada, J. Michel, M. Grizonnet and J. Malik, "A Scalable
       Tile-Based Framework for Region-Merging Segmentation", IEEE TGRS 53(10),
       pp. 5473-5485, 2015. :DOI:`10.1109/TGRS.2015.2422848`
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio
from rasterio.windows import Window

from . import io, normalize
from .block_io import GDAL_CACHE_MB, Scratch, copy_out, read_stretched
from .params import STRETCH_RANGE
from .protocol import EngineError, Reporter
from .superpixel_claims import claim_segments, open_edges

__all__ = [
    "BlockExecutor",
    "BlockPlan",
    "WindowJob",
    "block_dependencies",
    "block_halo",
    "plan_blocks",
    "segment_in_blocks",
]

#: Smallest block accepted (pixels per side).
MIN_BLOCK_SIZE = 64


@dataclass(frozen=True)
class BlockPlan:
    """Blocks of a raster: cores of ``block_size`` pixels in raster order, plus a halo.

    Attributes
    ----------
    height, width : int
        Raster size.
    block_size : int
        Core side (the last row and column of blocks may be smaller).
    halo : int
        Pixels read around each core (clipped at the raster edge).
    """

    height: int
    width: int
    block_size: int
    halo: int

    @property
    def shape(self) -> tuple[int, int]:
        """Number of block rows and columns."""
        return (-(-self.height // self.block_size), -(-self.width // self.block_size))

    def __len__(self) -> int:
        rows, cols = self.shape
        return rows * cols

    def __iter__(self) -> Iterator[tuple[Window, Window]]:
        """Yield ``(core, window)`` pairs in raster order; window = core plus halo."""
        size, halo = self.block_size, self.halo
        for row0 in range(0, self.height, size):
            for col0 in range(0, self.width, size):
                row1 = min(row0 + size, self.height)
                col1 = min(col0 + size, self.width)
                top, left = max(row0 - halo, 0), max(col0 - halo, 0)
                bottom = min(row1 + halo, self.height)
                right = min(col1 + halo, self.width)
                yield (
                    Window(col0, row0, col1 - col0, row1 - row0),
                    Window(left, top, right - left, bottom - top),
                )


def plan_blocks(height: int, width: int, block_size: int, halo: int) -> BlockPlan:
    """Check the block size and return the plan (see :class:`BlockPlan`)."""
    if block_size < MIN_BLOCK_SIZE:
        raise EngineError(
            f"The block size must be at least {MIN_BLOCK_SIZE} pixels, not {block_size}; "
            "blocks of 1024-4096 pixels are a good choice."
        )
    return BlockPlan(height, width, int(block_size), int(min(max(halo, 0), block_size)))


def block_halo(method: str, params: dict[str, Any], *, step: float = 0.0) -> int:
    """Halo (pixels) around each block for a method and its parameters.

    The halo is the context a segment near the core border needs to come out as it would
    in one piece. SLIC: a pixel joins one of the centres of the 3 x 3 grid cells around
    it, so a segment reaches about 1.5 grid steps from its cell; 2.5 steps leave a margin.
    QuickShift: a pixel's density sums over ``ceil(3 kernel_size)`` pixels and its parent
    is searched as far again; 4 such radii cover a density and a link from the core
    border. Felzenszwalb: segments have no size bound; 64 pixels covers typical segments
    at the default scale (larger ones continue through hints). Gaussian smoothing adds
    ``4 sigma`` (the kernel's radius).
    """
    pad = math.ceil(4 * float(params.get("sigma", 0.0)))
    if method == "slic":
        core = math.ceil(2.5 * step)
    elif method == "quickshift":
        core = 4 * math.ceil(3 * float(params["kernel_size"]))
    else:
        core = 64
    return max(core, 16) + pad


def _slic_window(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    step: float,
    value_range: float,
    compactness: float,
    max_num_iter: int,
    enforce_connectivity: bool,
    min_size_factor: float,
    max_size_factor: float,
    chunks: int | None = None,
) -> np.ndarray:
    """SLIC on one window with the global grid step and value range (see ``superpixels.slic``).

    The SLIC body of :func:`core.superpixels.slic_steps`; only the step (so the number
    of centres), the value scaling and the size limits are the raster's, not the window's.
    ``chunks`` is the number of partial sums of the k-means update (the numba thread
    count by default); the result depends on it, so a distributed run passes the
    client's.
    """
    from .superpixels import _chunks, slic_steps

    has_mask = not bool(mask.all())
    return slic_steps(
        image,
        np.ascontiguousarray(mask) if has_mask else np.ones((1, 1), dtype=bool),
        has_mask,
        step=step,
        value_range=value_range,
        compactness=compactness,
        max_num_iter=max_num_iter,
        enforce_connectivity=enforce_connectivity,
        min_size_factor=min_size_factor,
        max_size_factor=max_size_factor,
        chunks=int(chunks) if chunks else _chunks(),
    )


class _Segmenter:
    """Segment one window's free pixels with a method and the raster-wide settings."""

    def __init__(
        self,
        method: str,
        params: dict[str, Any],
        *,
        step: float,
        value_range: float,
        chunks: int | None = None,
    ) -> None:
        self.method = method
        self.chunks = chunks
        self.params = dict(params)
        self.sigma = float(self.params.pop("sigma", 0.0))
        self.seed = int(self.params.pop("seed", 0))
        if method == "slic":
            self.params.pop("n_segments")  # the global grid step stands for it
        self.step = step
        self.value_range = value_range

    def smooth(self, image: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Gaussian smoothing over all valid pixels (claimed or not), as in memory."""
        if self.sigma <= 0:
            return image
        from .superpixels import _smooth

        return _smooth(image, valid, not bool(valid.all()), self.sigma)

    def __call__(self, image: np.ndarray, free: np.ndarray, index: int) -> np.ndarray:
        from . import superpixels

        if self.method == "slic":
            return _slic_window(
                image,
                free,
                step=self.step,
                value_range=self.value_range,
                chunks=self.chunks,
                **self.params,
            )
        if self.method == "quickshift":
            seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])
            return superpixels.quickshift(image, mask=free, seed=seed, sigma=0, **self.params)
        return superpixels.felzenszwalb(image, mask=free, sigma=0, **self.params)


def _core_slices(core: Window, window: Window) -> tuple[slice, slice]:
    """Return the core's rows and columns inside its window."""
    r0, c0 = int(core.row_off - window.row_off), int(core.col_off - window.col_off)
    return slice(r0, r0 + int(core.height)), slice(c0, c0 + int(core.width))


@dataclass(frozen=True)
class WindowJob:
    """Segment one block's window: everything but the claiming (picklable, no state).

    Calling it reads the window, masks out the pixels already claimed, stretches with
    the raster-wide limits, smooths and segments. It returns the local segments (int32,
    1..n over the window, 0 elsewhere), or None when no free pixel is left in the core.
    A block's result depends only on its window's pixels and ``claimed``, so it can run
    anywhere (:mod:`core.distributed` runs it on Dask workers).
    """

    src: str
    bands: tuple[int, ...]
    segmenter: _Segmenter
    normalization: str
    limits: np.ndarray | None
    out_max: float
    nodata_zero: bool

    def __call__(
        self,
        index: int,
        core: Window,
        window: Window,
        claimed: np.ndarray,
        *,
        raster: rasterio.DatasetReader | None = None,
    ) -> np.ndarray | None:
        """Segment block ``index`` (``raster``: an open handle of ``src`` to reuse)."""
        if raster is None:
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20), io.open_raster(self.src) as r:
                return self(index, core, window, claimed, raster=r)
        return self.segment(index, core, window, claimed, self.prepare(raster, window))

    def prepare(
        self, raster: rasterio.DatasetReader, window: Window
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read, stretch and smooth a window: what does not depend on the claims.

        Returns the prepared bands and the valid mask, for :meth:`segment`.
        """
        image, valid = read_stretched(
            raster,
            self.bands,
            window,
            nodata_zero=self.nodata_zero,
            normalization=self.normalization,
            limits=self.limits,
            out_max=self.out_max,
        )
        return self.segmenter.smooth(image, valid), valid

    def segment(
        self,
        index: int,
        core: Window,
        window: Window,
        claimed: np.ndarray,
        prepared: tuple[np.ndarray, np.ndarray],
    ) -> np.ndarray | None:
        """Segment a :meth:`prepare`-d window's pixels not yet ``claimed`` (None: none in core)."""
        image, valid = prepared
        free = valid & (claimed == 0)
        if not free[_core_slices(core, window)].any():
            return None
        return np.asarray(self.segmenter(image, free, index), dtype=np.int32)


class _Prefetcher:
    """Prepare the next block's window in a thread while this one is segmented.

    The thread has its own handle on the raster (GDAL handles are not shared between
    threads). Reading, the stretch and the smoothing release the GIL for most of their
    time, so they overlap the segmenter, the claims and the scratch files.
    """

    def __init__(self, job: WindowJob, windows: Sequence[Window]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.job, self.windows = job, list(windows)
        self.stack = contextlib.ExitStack()
        self.raster: rasterio.DatasetReader | None = None
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="landseg-blocks")
        self.next = self.pool.submit(self._prepare, 0) if self.windows else None

    def _prepare(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.raster is None:
            self.stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20))
            self.raster = self.stack.enter_context(io.open_raster(self.job.src))
        return self.job.prepare(self.raster, self.windows[index])

    def take(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Window ``index`` prepared (blocks are taken in order); start on the next."""
        assert self.next is not None
        prepared = self.next.result()
        self.next = None
        if index + 1 < len(self.windows):
            self.next = self.pool.submit(self._prepare, index + 1)
        return prepared

    def close(self) -> None:
        """Stop the thread (after the block it is on) and close its handle."""
        if self.next is not None:
            self.next.cancel()
        self.pool.submit(self.stack.close)  # in the thread that opened them
        self.pool.shutdown(wait=True)


def block_dependencies(plan: BlockPlan) -> list[list[int]]:
    """For each block, the earlier blocks (raster order) whose windows overlap its window.

    Processing a block reads and writes only its window, so a block may run as soon as
    these are claimed: any order that respects them (a wavefront) leaves every window in
    the state raster order leaves it in, and gives the same segments.
    """
    cols = plan.shape[1]
    reach = -(-2 * plan.halo // plan.block_size) if plan.halo else 0
    windows = [window for _, window in plan]
    deps: list[list[int]] = []
    for index, window in enumerate(windows):
        row, col = divmod(index, cols)
        found = []
        for r in range(max(row - reach, 0), row + 1):
            for c in range(max(col - reach, 0), min(col + reach, cols - 1) + 1):
                other = r * cols + c
                if other < index and _windows_overlap(windows[other], window):
                    found.append(other)
        deps.append(found)
    return deps


def _windows_overlap(a: Window, b: Window) -> bool:
    return (
        a.col_off < b.col_off + b.width
        and b.col_off < a.col_off + a.width
        and a.row_off < b.row_off + b.height
        and b.row_off < a.row_off + a.height
    )


class BlockExecutor(Protocol):
    """Runs :class:`WindowJob` for every block elsewhere (see :mod:`core.distributed`)."""

    def run_blocks(
        self,
        job: WindowJob,
        plan: BlockPlan,
        *,
        read_claimed: Callable[[Window], np.ndarray],
        claim: Callable[[int, np.ndarray | None], None],
        reporter: Reporter,
    ) -> None:
        """Segment every block and call ``claim(index, local)`` for each.

        Claims come in an order that respects :func:`block_dependencies`;
        ``read_claimed`` gives a window's claimed ids when a block is ready.
        """


def segment_in_blocks(
    method: str,
    *,
    src: str,
    bands: Sequence[int],
    params: dict[str, Any],
    dst: str | os.PathLike[str],
    info: io.RasterInfo,
    normalization: str,
    percentiles: tuple[float, float],
    nodata_zero: bool,
    block_size: int,
    want_means: bool = False,
    reporter: Reporter | None = None,
    executor: BlockExecutor | None = None,
    chunks: int | None = None,
) -> tuple[int, np.ndarray | None, np.ndarray | None]:
    """Segment a raster block by block and write the segment ids (see the module doc).

    Parameters
    ----------
    method : {"slic", "quickshift", "felzenszwalb"}
        Superpixel method.
    src : str
        Input raster.
    bands : sequence of int
        1-based bands (checked).
    params : dict
        The method's parameters by core keyword name (complete), plus ``seed`` for
        QuickShift.
    dst : path
        Output GeoTIFF (int32, ids 1..N, nodata 0), written window by window.
    info : RasterInfo
        The input's description.
    normalization, percentiles
        Stretch (see :func:`core.normalize.stretch`), with limits from the whole raster.
    nodata_zero : bool
        Also treat pixels that are 0 in every band as nodata.
    block_size : int
        Core side of a block, pixels.
    want_means : bool
        Also return per-segment pixel counts and band means.
    reporter : Reporter, optional
        Progress (0-90, per block) and log.
    executor : BlockExecutor, optional
        Segment the blocks' windows elsewhere (Dask workers), claiming here as results
        arrive. Blocks are then claimed in a wavefront order and ids are renumbered to
        the raster-order ids at the end: the output is the one of the sequential run.
    chunks : int, optional
        SLIC's k-means partial sums (see :func:`_slic_window`); this machine's numba
        thread count by default.

    Returns
    -------
    n_segments : int
        N, the number of segments (ids 1..N).
    counts : (N + 1,) int64 ndarray or None
        Pixels per id (``want_means``).
    means : (N + 1, C) float64 ndarray or None
        Band means per id, NaN in row 0 (``want_means``).
    """
    report = reporter or Reporter("text")
    height, width = info.height, info.width
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20), io.open_raster(src) as raster:
        limits, valid_fraction, (low, high) = normalize.global_statistics(
            raster,
            bands,
            nodata_zero=nodata_zero,
            method=normalization,
            percentiles=percentiles,
            out_max=STRETCH_RANGE[method],
        )
        step = 0.0
        if method == "slic":
            n_valid = max(valid_fraction * height * width, 1.0)
            step = max(math.sqrt(n_valid / params["n_segments"]), 1.0)
        plan = plan_blocks(height, width, block_size, block_halo(method, params, step=step))
        _report_plan(plan, step, report)
        if method == "slic" and chunks is None:
            from .superpixels import _chunks

            chunks = _chunks()
        segmenter = _Segmenter(method, params, step=step, value_range=high - low, chunks=chunks)
        job = WindowJob(
            src=src,
            bands=tuple(bands),
            segmenter=segmenter,
            normalization=normalization,
            limits=limits,
            out_max=STRETCH_RANGE[method],
            nodata_zero=nodata_zero,
        )
        connectivity = 1 if method == "slic" else 2
        folder = Path(os.fspath(dst)).resolve().parent
        scratch = [Scratch(folder, height, width, name) for name in ("labels", "hints")]
        windows = list(plan)
        # First id and number of new ids of each block, in the order blocks are claimed.
        issued: dict[int, tuple[int, int]] = {}
        next_id = 1

        def claim(index: int, local: np.ndarray | None, claimed: np.ndarray | None = None) -> None:
            nonlocal next_id
            core, window = windows[index]
            first = next_id
            if local is not None:
                old_hints = scratch[1].read(window)
                labels, hints, next_id = claim_segments(
                    local,
                    scratch[0].read(window) if claimed is None else claimed,
                    old_hints,
                    _core_slices(core, window),
                    open_edges(window, height, width),
                    next_id,
                    connectivity=connectivity,
                )
                scratch[0].write(window, labels)
                if hints is not old_hints:
                    scratch[1].write(window, hints)
            issued[index] = (first, next_id - first)
            report.progress(5 + 75 * len(issued) / len(plan))

        try:
            started = time.perf_counter()
            if executor is None:
                _run_in_order(job, windows, scratch[0], claim)
            else:
                executor.run_blocks(
                    job, plan, read_claimed=scratch[0].read, claim=claim, reporter=report
                )
            n_segments = next_id - 1
            renumber = None
            if executor is not None:  # ids in raster order of the blocks, as sequentially
                renumber = _raster_order_ids(issued, len(plan), n_segments)
            report.info(
                f"{n_segments} segments in {len(plan)} blocks in "
                f"{time.perf_counter() - started:.2f} s."
            )
            counts, means = copy_out(
                scratch[0],
                raster,
                bands,
                dst,
                info,
                plan.block_size,
                want_means,
                nodata_zero,
                n_segments,
                renumber,
            )
        finally:
            for plane in scratch:
                plane.close()
    report.progress(90)
    return n_segments, counts, means


def _run_in_order(
    job: WindowJob,
    windows: Sequence[tuple[Window, Window]],
    labels: Scratch,
    claim: Callable[[int, np.ndarray | None, np.ndarray], None],
) -> None:
    """Segment and claim the blocks in raster order, the next one read meanwhile."""
    prefetch = _Prefetcher(job, [window for _, window in windows])
    try:
        for index, (core, window) in enumerate(windows):
            claimed = labels.read(window)
            local = job.segment(index, core, window, claimed, prefetch.take(index))
            claim(index, local, claimed)
    finally:
        prefetch.close()


def _report_plan(plan: BlockPlan, step: float, report: Reporter) -> None:
    """Log the blocks and halo; warn when SLIC segments are larger than a block."""
    report.info(
        f"Streaming {len(plan)} blocks of {plan.block_size} px with a {plan.halo} px halo"
        + (f" (SLIC grid step {step:.1f} px)" if step else "")
        + "."
    )
    if step > plan.block_size:
        report.warning(
            f"SLIC segments (about {step:.0f} px across) are larger than a block; "
            "raise the block size or n_segments for regular segments."
        )


def _raster_order_ids(
    issued: dict[int, tuple[int, int]], n_blocks: int, n_segments: int
) -> np.ndarray:
    """Map the ids issued in claiming order to the ids a run in raster order gives.

    ``issued[b]`` is block ``b``'s first id and number of new ids.
    """
    renumber = np.zeros(n_segments + 1, dtype=np.int32)
    final = 1
    for index in range(n_blocks):
        first, count = issued[index]
        renumber[first : first + count] = np.arange(final, final + count)
        final += count
    return renumber
