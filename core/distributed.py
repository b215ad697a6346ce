"""Run the engine's window work on a Dask cluster (``--dask-scheduler``).

Imported only when a scheduler is given: without one, nothing here (and nothing of Dask)
is loaded.

Scheduler
    ``local:N`` starts a :class:`distributed.LocalCluster` of N worker processes with one
    thread each, for the length of the run; anything else is the address of a running
    scheduler (``tcp://host:8786``), whose workers must run LandSeg's engine environment
    with the plugin folder on their ``PYTHONPATH`` (docs/scaling.md).

U-Net prediction (:func:`predict_rasters`)
    Each raster is cut into blocks of whole 256 px output tiles (``block_size`` pixels a
    side). A block is one task: it computes every tile of the raster's tiling that touches
    the block and writes the block's labels to its own tiled GeoTIFF
    (:func:`core.inference.predict_raster` with ``region``), under a temporary name renamed
    when complete, so a task that runs twice (its worker was lost) writes the same file.
    The client then copies the blocks, 256 rows at a time, into the output GeoTIFF: no
    full-size array exists anywhere. The model file is read once by the client and sent
    to every worker once (``scatter(broadcast=True)``); each worker builds the network
    from it once and keeps it for the following tasks.

    The labels equal the single-process run's pixel for pixel: a pixel's blended score is
    the float32 sum of the same tiles' weighted probabilities in the same (raster) order,
    and every forward pass has the same batch shape, so a tile's probabilities do not
    depend on which tiles share its batch. Tiles touching two blocks are computed by both
    (about ``(block + tile) / block`` more work per axis: 1.06x at 4096 px blocks and
    256 px tiles).

Superpixels (:class:`DaskBlocks`)
    The block-by-block superpixels of :mod:`core.superpixel_blocks` segment each block's window as a
    task; the client claims the results. A block starts when the earlier blocks whose
    windows overlap its window are claimed (a wavefront: about ``min(rows, columns / 2)``
    blocks at a time), and ids are renumbered to the sequential run's at the end, so the
    output equals the single-process output.

Accuracy
    :func:`core.accuracy.run_accuracy` counts blocks of its windows as tasks (with
    :func:`connect`) and adds up their contingency tables on the client; integer counts,
    so the metrics equal the single-process ones.

Faults
    Dask reruns the tasks of a lost worker elsewhere; tasks are idempotent, so the result
    is unchanged. A failed run removes its block files and leaves no output.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.windows import Window

from . import __version__, io
from .protocol import EngineError, Reporter
from .tiling import plan_region_blocks

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

    from .classes import ClassInfo
    from .superpixel_blocks import BlockPlan, WindowJob

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DaskBlocks",
    "PredictItem",
    "connect",
    "parse_scheduler",
    "predict_on_cluster",
    "predict_rasters",
]

#: Side of a prediction block (pixels, a multiple of the 256 px output tiles).
DEFAULT_BLOCK_SIZE = 4096
#: Seconds to wait for a scheduler to answer, and for a first worker.
CONNECT_TIMEOUT = 10.0
#: Output rows copied at a time when the blocks are assembled.
COPY_ROWS = 256

_HOW_TO_START = (
    "Start a scheduler with `PYTHONPATH=<LandSeg plugin folder> <engine venv>/bin/dask "
    "scheduler` (it listens on tcp://<host>:8786) and workers with `PYTHONPATH=<LandSeg "
    "plugin folder> <engine venv>/bin/dask worker tcp://<host>:8786`, or use local:N for N "
    "worker processes on this machine."
)


def parse_scheduler(text: str) -> tuple[str, int]:
    """Split a ``--dask-scheduler`` value into ``(address, n_local_workers)``.

    ``local:N`` gives ``("local", N)``; an address gives ``(address, 0)``.

    Raises
    ------
    EngineError
        For an empty value or a bad ``local:N``.
    """
    value = (text or "").strip()
    if not value:
        raise EngineError("The Dask scheduler is empty: give tcp://host:8786 or local:N.")
    if value.lower().startswith("local"):
        _, _, count = value.partition(":")
        try:
            workers = int(count) if count else os.cpu_count() or 1
        except ValueError:
            workers = 0
        if workers < 1:
            raise EngineError(f"{value!r}: write local:N with N >= 1 local worker processes.")
        return "local", workers
    if "://" not in value:
        value = f"tcp://{value}"
    return value, 0


@contextlib.contextmanager
def connect(scheduler: str, *, reporter: Reporter | None = None) -> Iterator[Client]:
    """Connect to a Dask scheduler, or start a local cluster, for the length of a run.

    Parameters
    ----------
    scheduler : str
        ``tcp://host:port`` (or ``host:port``) of a running scheduler, or ``local:N``.
    reporter : Reporter, optional
        Log sink.

    Yields
    ------
    distributed.Client

    Raises
    ------
    EngineError
        When Dask is not installed, the scheduler does not answer, it has no workers, or
        its workers cannot import LandSeg's engine.
    """
    report = reporter or Reporter("text")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise EngineError(
            "--dask-scheduler needs dask.distributed in the engine environment. Run "
            "'Set up the engine' again (or `make setup-engine`) to install it."
        ) from None
    address, n_local = parse_scheduler(scheduler)
    with contextlib.ExitStack() as stack:
        if n_local:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n_local,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            )
            client = stack.enter_context(Client(cluster))
            report.info(f"Started a local Dask cluster of {n_local} worker processes.")
        else:
            try:
                client = stack.enter_context(Client(address, timeout=CONNECT_TIMEOUT))
            except (OSError, TimeoutError) as err:
                raise EngineError(
                    f"Cannot reach the Dask scheduler at {address} ({err}). {_HOW_TO_START}"
                ) from None
            try:
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
            except TimeoutError:
                raise EngineError(
                    f"The Dask scheduler at {address} has no workers. {_HOW_TO_START}"
                ) from None
        _check_workers(client, address)
        n_workers = len(client.scheduler_info()["workers"])
        report.info(f"Dask scheduler {client.scheduler.address}: {n_workers} workers.")
        yield client


def _check_workers(client: Client, address: str) -> None:
    """Check that the scheduler and every worker import this LandSeg engine (same version)."""

    def probe() -> str:  # sent by value: it must not need LandSeg to arrive
        import importlib

        return str(importlib.import_module("core").__version__)

    try:
        versions = client.run(probe)
    except Exception as err:
        raise EngineError(
            f"The Dask workers of {address} cannot import LandSeg's engine ({err}). Start "
            "them with the engine's Python and the plugin folder on PYTHONPATH."
        ) from None
    try:
        versions["scheduler"] = client.run_on_scheduler(probe)
    except Exception as err:
        raise EngineError(
            f"The Dask scheduler at {address} cannot import LandSeg's engine ({err}); it "
            "unpacks the tasks, so start it with the engine's Python and the plugin folder on "
            "PYTHONPATH too."
        ) from None
    other = {w: v for w, v in versions.items() if v != __version__}
    if other:
        raise EngineError(
            f"Dask workers run another LandSeg engine ({other}); this one is {__version__}. "
            "Give the workers the same plugin version."
        )


def _local_threads(client: Client) -> int | None:
    """CPU threads per task on a local cluster: this machine's CPUs over its workers."""
    info = client.scheduler_info()["workers"]
    hosts = {w.get("host") for w in info.values()}
    if len(hosts) != 1 or "127.0.0.1" not in hosts:
        return None
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cpus = os.cpu_count() or 1
    slots = sum(int(w.get("nthreads", 1)) for w in info.values())
    return max(cpus // max(slots, 1), 1)


# --------------------------------------------------------------------------- superpixels


def _segment_block(
    job: WindowJob, index: int, core: Window, window: Window, claimed: np.ndarray, threads: int
) -> np.ndarray | None:
    """Worker side of :class:`DaskBlocks`: segment one block's window."""
    if threads:
        import numba

        numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    return job(index, core, window, claimed)


class DaskBlocks:
    """Run :mod:`core.superpixel_blocks`' window segmentation as Dask tasks (a block executor).

    Parameters
    ----------
    client : distributed.Client
        A connected client (:func:`connect`).
    in_flight : int, optional
        Most blocks submitted at once (their windows travel to and from the workers);
        twice the workers' threads by default.
    """

    def __init__(self, client: Client, *, in_flight: int | None = None) -> None:
        self.client = client
        slots = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
        self.in_flight = int(in_flight or max(2 * slots, 2))
        self.threads = _local_threads(client) or 0

    def run_blocks(
        self,
        job: WindowJob,
        plan: BlockPlan,
        *,
        read_claimed: Callable[[Window], np.ndarray],
        claim: Callable[[int, np.ndarray | None], None],
        reporter: Reporter,
    ) -> None:
        """Segment every block on the cluster and claim each, in a dependency order."""
        from distributed import wait

        from .superpixel_blocks import block_dependencies

        deps = block_dependencies(plan)
        waiting = [len(d) for d in deps]
        dependents: list[list[int]] = [[] for _ in deps]
        for index, earlier in enumerate(deps):
            for other in earlier:
                dependents[other].append(index)
        ready = [index for index, n in enumerate(waiting) if n == 0]
        heapq.heapify(ready)
        windows = list(plan)
        job_future = self.client.scatter(job, broadcast=True)
        running: dict[Any, int] = {}
        reporter.info(
            f"Segmenting {len(plan)} blocks on Dask, up to {self.in_flight} at a time "
            f"(a block starts when the blocks overlapping it are claimed)."
        )
        try:
            while ready or running:
                while ready and len(running) < self.in_flight:
                    index = heapq.heappop(ready)
                    core, window = windows[index]
                    future = self.client.submit(
                        _segment_block,
                        job_future,
                        index,
                        core,
                        window,
                        read_claimed(window),
                        self.threads,
                        key=f"landseg-block-{index}-{uuid.uuid4().hex[:8]}",
                    )
                    running[future] = index
                done, _ = wait(list(running), return_when="FIRST_COMPLETED")
                for future in sorted(done, key=running.__getitem__):
                    index = running.pop(future)
                    claim(index, future.result())
                    for other in dependents[index]:
                        waiting[other] -= 1
                        if waiting[other] == 0:
                            heapq.heappush(ready, other)
        finally:
            self.client.cancel(list(running))


# --------------------------------------------------------------------------- prediction


@dataclass(frozen=True)
class PredictItem:
    """One raster of a prediction run.

    Attributes
    ----------
    src : str
        Input raster.
    dst : str
        Class raster to write (GeoTIFF).
    dst_confidence : str or None
        Confidence raster to write, if any.
    bands : tuple of int
        1-based input bands, in the model's order.
    offsets, scales : tuple of float, optional
        This raster's normalisation (per-image statistics, Sentinel-2 harmonisation:
        :func:`core.acquisition.raster_normalization`); the model's by default.
    """

    src: str
    dst: str
    dst_confidence: str | None
    bands: tuple[int, ...]
    offsets: tuple[float, ...] | None = None
    scales: tuple[float, ...] | None = None


@dataclass(frozen=True)
class _ModelBlob:
    """A model file's bytes and description, scattered once to every worker."""

    digest: str
    metadata: dict[str, Any]
    data: bytes


@dataclass(frozen=True)
class _BlockTask:
    """What a worker needs to predict one block (small: no model, no pixels)."""

    src: str
    region: Window
    part: str
    part_confidence: str | None
    bands: tuple[int, ...]
    batch_size: int
    device: str
    threads: int | None
    offsets: tuple[float, ...] | None = None
    scales: tuple[float, ...] | None = None


#: Networks built on this worker, by model digest (the last two are kept).
_MODELS: dict[str, Any] = {}


def _worker_network(blob: _ModelBlob) -> Any:
    """Build (once per worker) the network of a scattered model file."""
    tta = bool(blob.metadata.get("tta"))
    key = blob.digest + (":tta" if tta else "")
    network = _MODELS.get(key)
    if network is not None:
        return network
    from safetensors.torch import load

    from .inference import fold_batchnorm
    from .networks import build_network

    network = build_network(blob.metadata)
    network.load_state_dict(load(blob.data))
    network = fold_batchnorm(network.eval())
    if tta:  # test-time augmentation (core.tta), asked for by predictunet
        from .tta import SymmetryAverage

        network = SymmetryAverage(network)
    while len(_MODELS) >= 2:
        _MODELS.pop(next(iter(_MODELS)))
    _MODELS[key] = network
    return network


def _predict_block(task: _BlockTask, blob: _ModelBlob) -> dict[str, Any]:
    """Worker side of :func:`predict_rasters`: classify one block into its own file."""
    import torch

    from .classes import classes_from_json
    from .inference import predict_raster

    network = _worker_network(blob)
    metadata = blob.metadata
    norm = metadata.get("normalization", {})
    classes = classes_from_json(metadata["classes"])
    started = time.perf_counter()
    result = predict_raster(
        network,
        task.src,
        task.part,
        region=task.region,
        bands=list(task.bands),
        offsets=norm.get("offsets") if task.offsets is None else list(task.offsets),
        scales=norm.get("scales") if task.scales is None else list(task.scales),
        class_values=[c.value for c in classes],
        tile_size=int(metadata.get("tile_size", 256)),
        overlap=int(metadata.get("overlap", 64)),
        batch_size=task.batch_size,
        device=task.device,
        nodata_zero=bool(metadata.get("nodata_zero", False)),
        dst_confidence=task.part_confidence,
        overwrite=True,  # a rerun (lost worker) writes the same file again
        reporter=Reporter.quiet(),
        threads=task.threads or torch.get_num_threads(),
    )
    return {
        "counts": result["COUNTS"],
        "tiles": result["TILES"] - result["SKIPPED_TILES"],
        "seconds": time.perf_counter() - started,
        "device": result["DEVICE"],
        "precision": result["PRECISION"],
    }


def predict_rasters(
    client: Client,
    *,
    model: str,
    metadata: dict[str, Any],
    items: Sequence[PredictItem],
    classes: Sequence[ClassInfo],
    block_size: int = DEFAULT_BLOCK_SIZE,
    batch_size: int = 8,
    device: str = "auto",
    threads: int | None = None,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> list[dict[str, Any]]:
    """Classify rasters with a model file on a Dask cluster (see the module doc).

    Parameters
    ----------
    client : distributed.Client
        A connected client (:func:`connect`).
    model : str
        Model file (read here only; workers get its bytes).
    metadata : dict
        The model's description (:func:`core.modelfile.read_metadata`).
    items : sequence of PredictItem
        Rasters and their outputs (checked by the caller).
    classes : sequence of ClassInfo
        The model's classes: colour table, names and ``.qml`` of the outputs.
    block_size : int
        Block side in pixels (rounded down to a multiple of 256, at least 256).
    batch_size, device : see :func:`core.inference.predict_raster`.
    threads : int, optional
        CPU threads per task; on a local cluster the machine's CPUs over its workers,
        otherwise the workers' default (Dask's nanny sets one thread per task).
    overwrite : bool
        Replace existing outputs.
    reporter : Reporter, optional
        Progress (per block) and log.

    Returns
    -------
    list of dict
        Per raster: ``OUTPUT`` (and ``OUTPUT_CONFIDENCE``), ``TILES``, ``COUNTS``,
        ``SECONDS``.
    """
    from .classes import complete_classes, write_qml
    from .inference import _label_dtype

    report = reporter or Reporter("text")
    values = np.array([c.value for c in classes], dtype=np.int64)
    dtype = _label_dtype(values)
    table = complete_classes([], classes)
    threads = threads or _local_threads(client)
    data = Path(model).read_bytes()
    blob = _ModelBlob(hashlib.sha256(data).hexdigest(), dict(metadata), data)
    started = time.perf_counter()
    blob_future = client.scatter(blob, broadcast=True)  # once per worker, not per task
    report.info(f"Model sent to the workers once ({len(data) / 2**20:.1f} MiB).")

    folders: list[Path] = []
    futures: dict[Any, tuple[int, int]] = {}
    parts: list[list[tuple[Window, str, str | None]]] = []
    infos = [io.inspect_raster(item.src) for item in items]
    try:
        for number, (item, info) in enumerate(zip(items, infos, strict=True)):
            folder = Path(item.dst).resolve().parent / f".landseg-parts-{uuid.uuid4().hex[:12]}"
            folder.mkdir(parents=True)
            folders.append(folder)
            blocks = plan_region_blocks(info.height, info.width, block_size)
            parts.append([])
            for index, region in enumerate(blocks):
                part = str(folder / f"block-{index:05d}.tif")
                conf = str(folder / f"conf-{index:05d}.tif") if item.dst_confidence else None
                parts[number].append((region, part, conf))
                task = _BlockTask(
                    item.src, region, part, conf, item.bands, batch_size, device, threads,
                    item.offsets, item.scales,
                )  # fmt: skip
                future = client.submit(
                    _predict_block,
                    task,
                    blob_future,
                    key=f"landseg-predict-{number}-{index}-{uuid.uuid4().hex[:8]}",
                )
                futures[future] = (number, index)
        total = len(futures)
        report.info(
            f"{len(items)} raster{'s' if len(items) != 1 else ''} in {total} blocks of up to "
            f"{max(256, block_size // 256 * 256)} px."
        )
        results = _gather_blocks(futures, items, [len(p) for p in parts], report)

        outputs: list[dict[str, Any]] = []
        with contextlib.ExitStack() as stack:  # every output, or none
            for number, (item, info) in enumerate(zip(items, infos, strict=True)):
                tmp = stack.enter_context(io.atomic_output(item.dst, overwrite=overwrite))
                _assemble(parts[number], 1, tmp, info, dtype, 0, table)
                tmp_conf = None
                if item.dst_confidence:
                    tmp_conf = stack.enter_context(
                        io.atomic_output(item.dst_confidence, overwrite=overwrite)
                    )
                    _assemble(parts[number], 2, tmp_conf, info, "float32", -1.0, None)
                outputs.append(_raster_result(item, results[number]))
                report.progress(90 + 10 * (number + 1) / len(items))
        for item in items:
            write_qml(item.dst, table)
    finally:
        client.cancel(list(futures))
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    seconds = time.perf_counter() - started
    tiles = sum(o["TILES"] for o in outputs)
    first = next((b for r in results for b in r if b), {})
    report.info(
        f"{tiles} tiles on {len(client.scheduler_info()['workers'])} workers in {seconds:.1f} s "
        f"({tiles / max(seconds, 1e-9):.2f} tiles/s; {first.get('device')}, "
        f"{first.get('precision')})."
    )
    for entry in outputs:
        entry["SECONDS"] = round(seconds, 3)
        entry["DEVICE"] = f"dask ({first.get('device')})"
        entry["PRECISION"] = first.get("precision")
    return outputs


def _gather_blocks(
    futures: dict[Any, tuple[int, int]],
    items: Sequence[PredictItem],
    n_blocks: list[int],
    report: Reporter,
) -> list[list[dict[str, Any] | None]]:
    """Wait for every block task (progress 0-90 %); a worker's error names the block."""
    from distributed import as_completed

    results: list[list[dict[str, Any] | None]] = [[None] * n for n in n_blocks]
    done = 0
    for future in as_completed(list(futures)):
        number, index = futures[future]
        try:
            results[number][index] = future.result()
        except EngineError:
            raise
        except Exception as err:  # a worker's error, e.g. an unreadable input
            raise EngineError(
                f"Block {index + 1} of {items[number].src} failed on a Dask worker "
                f"({type(err).__name__}: {err}); no output was written. Check that every "
                "worker can read the input and write beside the output."
            ) from err
        done += 1
        report.progress(90.0 * done / len(futures))
    return results


def _raster_result(item: PredictItem, blocks: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Return one raster's outputs, tiles and class pixel counts from its blocks' results."""
    counts: dict[int, int] = {}
    for block in blocks:
        for value, count in (block or {}).get("counts", {}).items():
            counts[int(value)] = counts.get(int(value), 0) + int(count)
    entry: dict[str, Any] = {
        "OUTPUT": item.dst,
        "TILES": sum(int((b or {}).get("tiles", 0)) for b in blocks),
        "COUNTS": dict(sorted(counts.items())),
    }
    if item.dst_confidence:
        entry["OUTPUT_CONFIDENCE"] = item.dst_confidence
    return entry


def predict_on_cluster(
    model: str,
    metadata: dict[str, Any],
    jobs: Sequence[
        tuple[str, str, str | None, Sequence[int], tuple[Sequence[float], Sequence[float]]]
    ],
    classes: Sequence[ClassInfo],
    *,
    scheduler: str,
    block_size: int | None,
    batch_size: int,
    device: str,
    threads: int | None,
    overwrite: bool,
    report: Reporter,
) -> list[dict[str, Any]]:
    """Classify rasters on the Dask cluster at ``scheduler`` (:func:`predict_rasters`).

    ``jobs`` are ``(source, class raster, confidence raster or None, bands, (offsets,
    scales))``; paths are made absolute, since the workers have other working folders.
    """

    def shared(path: str | None) -> str | None:  # workers have other working folders
        if not path or path.startswith("/vsi") or "://" in path:
            return path
        return os.path.abspath(path)

    items = [
        PredictItem(str(shared(s)), str(shared(d)), shared(c), tuple(b), tuple(n[0]), tuple(n[1]))
        for s, d, c, b, n in jobs
    ]
    with connect(scheduler, reporter=report) as client:
        return predict_rasters(
            client,
            model=model,
            metadata=metadata,
            items=items,
            classes=classes,
            block_size=block_size or DEFAULT_BLOCK_SIZE,
            batch_size=batch_size,
            device=device,
            threads=threads,
            overwrite=overwrite,
            reporter=report,
        )


def _assemble(
    blocks: Sequence[tuple[Window, str, str | None]],
    which: int,
    dst: Path,
    info: io.RasterInfo,
    dtype: str,
    nodata: float,
    table: Sequence[ClassInfo] | None,
) -> None:
    """Copy block files (``which`` 1: labels, 2: confidence) into one tiled GeoTIFF."""
    import rasterio

    profile = io.output_profile(info, count=1, dtype=dtype, nodata=nodata)
    with (
        rasterio.Env(GDAL_CACHEMAX=128 * 2**20),
        rasterio.open(dst, "w", **profile) as out,
    ):
        for region, labels, confidence in blocks:
            path = labels if which == 1 else confidence
            with rasterio.open(path) as part:
                for row in range(0, int(region.height), COPY_ROWS):
                    rows = min(COPY_ROWS, int(region.height) - row)
                    data = part.read(1, window=Window(0, row, int(region.width), rows))
                    out.write(
                        data,
                        1,
                        window=Window(region.col_off, region.row_off + row, region.width, rows),
                    )
        if table:
            from .classes import write_raster_classes

            write_raster_classes(out, table)
