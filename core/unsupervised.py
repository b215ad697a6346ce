"""Unsupervised deep segmentation: ISB, DFC and W-Net, trained on the raster itself.

Each method trains a network on the raster to segment, without labels, and writes the
argmax clusters, renumbered 1..K by decreasing area.

ISB (Kanezaki, 2018 [1]_)
    :class:`core.nets.KanezakiNet`; each iteration takes the argmax of the response map,
    refines it by majority vote inside SLIC superpixels (LandSeg's own
    :func:`core.superpixels.slic`), and minimises the cross-entropy of the response with
    the refined labels (SGD, lr 0.1, momentum 0.9). Stops when the argmax uses at most
    ``min_clusters`` labels, or after ``max_iter`` iterations.
DFC (Kim, Kanezaki & Tanaka, 2020 [2]_)
    The same network; loss ``CE(r, argmax r) + mu * (mean |r(y+1) - r(y)| + mean
    |r(x+1) - r(x)|)`` (feature similarity + spatial continuity). With scribbles (a few
    labelled pixels, lines or polygons), unlabelled pixels keep that loss and scribbled
    ones add ``scribble_weight * CE(r, scribble class)``, the paper's scribble variant.
W-Net (Xia & Kulis, 2017 [3]_)
    :class:`core.nets.WNet`; each iteration takes one step on the soft normalized cut of
    the encoder's softmax (:mod:`core.ncut`, local window) and one step on the
    reconstruction error of the whole net.

Two modes. *Image* mode (rasters up to :data:`IMAGE_MODE_PIXELS`) trains on the whole
raster at once, as the papers do, and labels it with the trained network. *Dataset* mode
(larger rasters) trains one network on ``n_tiles`` tiles sampled from the raster, a batch
of them per iteration, then runs the frozen network over every window of the raster with
the tiled inference engine (:func:`core.inference.predict_raster`), so one cluster id
means the same thing everywhere; ids are renumbered in a second, streamed pass.

Networks see the bands as ``(x - low) / (high - low)`` with the stretch's limits (no
clipping, so training and tiled inference see identical values); nodata pixels are 0 and
take no part in any loss.

References
----------
.. [1] A. Kanezaki, "Unsupervised image segmentation by backpropagation", IEEE ICASSP,
   1543-1547, 2018.
.. [2] W. Kim, A. Kanezaki and M. Tanaka, "Unsupervised learning of image segmentation
   based on differentiable feature clustering", IEEE Trans. Image Processing 29,
   8055-8068, 2020.
.. [3] X. Xia and B. Kulis, "W-Net: a deep model for fully unsupervised image
   segmentation", arXiv:1711.08506, 2017.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from . import __version__, io, normalize
from .classes import (
    ClassInfo,
    classes_from_json,
    classes_to_json,
    palette,
    parse_classes,
    read_raster_classes,
    write_qml,
    write_raster_classes,
)
from .params import DEFAULT_PERCENTILES, UNSUPERVISED, UNSUPERVISED_COMMON
from .protocol import EngineError, Reporter

__all__ = [
    "IMAGE_MODE_PIXELS",
    "TrainingHistory",
    "continuity_loss",
    "refine_by_superpixels",
    "renumber_by_area",
    "run_unsupervised",
    "train_kanezaki",
    "train_wnet",
]

#: Rasters with at most this many pixels train on the whole image (image mode).
IMAGE_MODE_PIXELS = 512 * 512
#: Pixels read to estimate the stretch of a raster in dataset mode.
STATS_PIXELS = 1_000_000
#: Rows read at a time when renumbering a streamed output.
_ROWS = 256
METHODS = ("isb", "dfc", "wnet")
_NAMES = {"isb": "ISB", "dfc": "DFC", "wnet": "W-Net"}


@dataclass
class TrainingHistory:
    """What happened during training, one entry per iteration.

    Attributes
    ----------
    loss : list of float
        Total loss (ISB/DFC) or soft N-cut loss (W-Net).
    reconstruction : list of float
        W-Net's reconstruction loss (empty for ISB/DFC).
    n_labels : list of int
        Distinct argmax labels over the valid pixels of the iteration's batch.
    stopped_early : bool
        Whether ``n_labels`` reached ``min_clusters`` before ``max_iter``.
    seconds : float
        Training time.
    iteration_seconds : list of float
        Wall time of each iteration.
    """

    loss: list[float] = field(default_factory=list)
    reconstruction: list[float] = field(default_factory=list)
    n_labels: list[int] = field(default_factory=list)
    stopped_early: bool = False
    seconds: float = 0.0
    iteration_seconds: list[float] = field(default_factory=list)

    @property
    def iterations(self) -> int:
        """Iterations run."""
        return len(self.loss)


# ---------------------------------------------------------------------------------------
# Losses and label refinement


def continuity_loss(response: Any, valid: Any | None = None) -> Any:
    """DFC's spatial continuity loss: mean L1 of vertical and horizontal differences.

    Parameters
    ----------
    response : (B, K, H, W) tensor
        Response map before the argmax.
    valid : (B, H, W) bool tensor, optional
        Only differences between two valid pixels count.

    Returns
    -------
    torch.Tensor
        ``mean |r[y+1] - r[y]| + mean |r[x+1] - r[x]|`` (the authors' ``L1Loss`` against
        zero, i.e. a mean over elements).
    """
    dy = (response[:, :, 1:, :] - response[:, :, :-1, :]).abs()
    dx = (response[:, :, :, 1:] - response[:, :, :, :-1]).abs()
    if valid is None:
        return dy.mean() + dx.mean()
    my = (valid[:, 1:, :] & valid[:, :-1, :]).unsqueeze(1).to(dy.dtype)
    mx = (valid[:, :, 1:] & valid[:, :, :-1]).unsqueeze(1).to(dx.dtype)
    k = response.shape[1]
    return (dy * my).sum() / (my.sum() * k).clamp_min(1) + (dx * mx).sum() / (
        mx.sum() * k
    ).clamp_min(1)


def refine_by_superpixels(labels: np.ndarray, segments: np.ndarray, n_labels: int) -> np.ndarray:
    """Give every superpixel the label most of its pixels have (ISB's refinement).

    Parameters
    ----------
    labels : (...) int ndarray
        Argmax labels 0..n_labels-1.
    segments : (...) int ndarray
        Superpixel ids 0..S (same shape); ties go to the smallest label.
    n_labels : int
        Number of possible labels.

    Returns
    -------
    ndarray
        Refined labels, same shape, int64.
    """
    seg = segments.ravel().astype(np.int64)
    lab = labels.ravel().astype(np.int64)
    n_seg = int(seg.max()) + 1 if seg.size else 0
    counts = np.bincount(seg * n_labels + lab, minlength=n_seg * n_labels)
    majority = counts.reshape(n_seg, n_labels).argmax(axis=1)
    return majority[seg].reshape(labels.shape)


def renumber_by_area(counts: np.ndarray) -> np.ndarray:
    """Lookup table giving clusters ids 1..K by decreasing pixel count (0 if unused).

    Parameters
    ----------
    counts : (N,) int ndarray
        Pixels per raw cluster index.

    Returns
    -------
    (N,) int64 ndarray
        New id of each raw index; ties keep the raw order.
    """
    order = np.argsort(-np.asarray(counts), kind="stable")
    lut = np.zeros(len(counts), np.int64)
    used = [k for k in order if counts[k] > 0]
    lut[used] = np.arange(1, len(used) + 1)
    return lut


# ---------------------------------------------------------------------------------------
# Training loops


@contextlib.contextmanager
def _deterministic(seed: int) -> Any:
    import torch

    previous = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _autocast(device: Any, dtype: Any) -> Any:
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _batches(n: int, batch_size: int, generator: Any) -> Any:
    """Endless random batches of tile indices (all tiles when they fit in one batch)."""
    import torch

    while True:
        if n <= batch_size:
            yield torch.arange(n)
        else:
            for chunk in torch.randperm(n, generator=generator).split(batch_size):
                if len(chunk) == batch_size:
                    yield chunk


def _progress(report: Reporter, lo: float, hi: float, done: int, total: int) -> None:
    report.progress(lo + (hi - lo) * done / max(total, 1))


def _recalibrate(net: Any, images: Any, valid_any: bool, device: Any, dtype: Any) -> None:
    """Set batch-norm statistics to exact averages over ``images`` (train-mode stats)."""
    import torch

    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    net.eval()  # dropout off, as at inference; only the batch norms gather statistics
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    with torch.no_grad(), _autocast(device, dtype):
        for start in range(0, len(images), 4):
            net(images[start : start + 4].to(device))
    for m, momentum in zip(norms, saved, strict=True):
        m.momentum = momentum
    net.eval()


def train_kanezaki(
    images: np.ndarray,
    valid: np.ndarray,
    *,
    method: str = "dfc",
    n_channels: int = 100,
    n_conv: int = 2,
    min_clusters: int = 3,
    max_iter: int = 1000,
    learning_rate: float = 0.1,
    momentum: float = 0.9,
    mu: float = 1.0,
    segments: np.ndarray | None = None,
    scribbles: np.ndarray | None = None,
    scribble_weight: float = 0.5,
    batch_size: int = 4,
    seed: int = 42,
    device: str = "cpu",
    precision: str = "auto",
    channels_last: bool | None = None,
    reporter: Reporter | None = None,
    progress: tuple[float, float] = (0.0, 100.0),
) -> tuple[Any, TrainingHistory]:
    """Train the ISB or DFC network on one image or on a set of tiles.

    Parameters
    ----------
    images : (N, C, H, W) float32 ndarray
        Normalised bands; N = 1 in image mode.
    valid : (N, H, W) bool ndarray
        Pixels that take part in the losses.
    method : {"isb", "dfc"}
        ISB [1]_ (superpixel-refined targets) or DFC [2]_ (continuity loss).
    n_channels, n_conv : int
        Network size (:class:`core.nets.KanezakiNet`); ``n_channels`` is the largest
        number of clusters.
    min_clusters : int
        Stop when the argmax uses at most this many labels (the papers' ``minLabels``).
    max_iter : int
        Iteration limit (``maxIter``; one batch per iteration).
    learning_rate, momentum : float
        SGD settings (0.1 and 0.9 in the papers).
    mu : float
        DFC: weight of the continuity loss (``stepsize_con``).
    segments : (N, H, W) int ndarray, optional
        ISB: superpixel ids of each image (required for ISB).
    scribbles : (N, H, W) int ndarray, optional
        DFC: scribble class index 0..S-1 per pixel, -1 where none.
    scribble_weight : float
        DFC: weight of the scribble cross-entropy (``stepsize_scr``, 0.5).
    batch_size : int
        Tiles per iteration in dataset mode.
    seed : int
        Seeds the weights and the batch order.
    device, precision : str
        See :func:`core.inference.select_device` and ``select_precision``.
    channels_last : bool, optional
        Train in the channels-last memory format (the default; 5-25 % faster than the
        plain layout on the CPU in bf16 and fp32, docs/benchmarks.md, "Unsupervised deep
        segmentation"). ``False`` for comparison.
    reporter : Reporter, optional
        Progress and log sink.
    progress : (float, float)
        Percent range of the run this training covers.

    Returns
    -------
    net : KanezakiNet
        Trained network in eval mode with recalibrated batch-norm statistics, on CPU.
    history : TrainingHistory
    """
    import torch

    from .inference import select_device, select_precision
    from .nets import build_kanezaki

    if method not in ("isb", "dfc"):
        raise ValueError(f"method must be 'isb' or 'dfc', not {method!r}.")
    if method == "isb" and segments is None:
        raise ValueError("ISB needs superpixels (segments).")
    report = reporter or Reporter("text")
    dev, _ = select_device(device)
    dtype, _ = select_precision(precision, dev)
    history = TrainingHistory()
    started = time.perf_counter()
    with _deterministic(seed):
        net = build_kanezaki(in_channels=images.shape[1], n_channels=n_channels, n_conv=n_conv)
        if channels_last is None:
            channels_last = True
        layout = torch.channels_last if channels_last else torch.contiguous_format
        net = net.to(dev, memory_format=layout).train()
        optimizer = torch.optim.SGD(net.parameters(), lr=learning_rate, momentum=momentum)
        x_all = torch.from_numpy(np.ascontiguousarray(images))
        v_all = torch.from_numpy(np.ascontiguousarray(valid))
        s_all = None if scribbles is None else torch.from_numpy(scribbles.astype(np.int64))
        generator = torch.Generator().manual_seed(seed)
        batches = _batches(len(images), batch_size, generator)
        for iteration in range(max_iter):
            tick = time.perf_counter()
            index = next(batches)
            x = x_all[index].to(dev).contiguous(memory_format=layout)
            v = v_all[index].to(dev)
            with _autocast(dev, dtype):
                response = net(x)
            response = response.float()
            target = response.argmax(dim=1)
            if method == "isb":
                refined = refine_by_superpixels(
                    target.cpu().numpy(), segments[index.numpy()], n_channels
                )
                target = torch.from_numpy(refined).to(dev)
            ce = torch.nn.functional.cross_entropy(response, target, reduction="none")
            if s_all is not None:
                scribble = s_all[index].to(dev)
                marked = (scribble >= 0) & v
                free = (~marked) & v
                loss = (ce * free).sum() / free.sum().clamp_min(1)
                if marked.any():
                    ce_s = torch.nn.functional.cross_entropy(
                        response, scribble.clamp_min(0), reduction="none"
                    )
                    loss = loss + scribble_weight * (ce_s * marked).sum() / marked.sum()
            else:
                loss = (ce * v).sum() / v.sum().clamp_min(1)
            if method == "dfc":
                loss = loss + mu * continuity_loss(response, v)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            n_labels = int(torch.unique(response.argmax(dim=1)[v]).numel())
            history.loss.append(float(loss.detach()))
            history.n_labels.append(n_labels)
            history.iteration_seconds.append(time.perf_counter() - tick)
            _progress(report, *progress, iteration + 1, max_iter)
            if iteration % 25 == 0 or n_labels <= min_clusters:
                report.info(
                    f"iteration {iteration + 1}: loss {history.loss[-1]:.4f}, {n_labels} labels"
                )
            if n_labels <= min_clusters:
                history.stopped_early = True
                break
        _recalibrate(net, x_all.contiguous(memory_format=layout), True, dev, dtype)
    history.seconds = time.perf_counter() - started
    return net.cpu(), history


def train_wnet(
    images: np.ndarray,
    valid: np.ndarray,
    *,
    n_clusters: int = 20,
    hidden: int = 8,
    dropout: float = 0.2,
    min_clusters: int = 2,
    max_iter: int = 50,
    learning_rate: float = 0.05,
    momentum: float = 0.9,
    radius: int = 5,
    sigma_i: float = 0.1,
    sigma_x: float = 4.0,
    batch_size: int = 4,
    seed: int = 42,
    device: str = "cpu",
    precision: str = "auto",
    channels_last: bool | None = None,
    reporter: Reporter | None = None,
    progress: tuple[float, float] = (0.0, 100.0),
) -> tuple[Any, TrainingHistory]:
    """Train a W-Net [3]_: alternate a soft N-cut step and a reconstruction step.

    Parameters
    ----------
    images : (N, C, H, W) float32 ndarray
        Normalised bands; H and W multiples of 16.
    valid : (N, H, W) bool ndarray
        Pixels that take part in the losses.
    n_clusters : int
        K, the encoder's output channels.
    hidden, dropout : int, float
        U-Net width and dropout (:class:`core.nets.WNet`).
    min_clusters : int
        Stop when the encoder's argmax uses at most this many labels.
    max_iter : int
        Iterations; each is one N-cut step and one reconstruction step.
    learning_rate, momentum : float
        SGD settings of both steps (each over all parameters, as the reference code).
    radius, sigma_i, sigma_x : float
        Soft N-cut window and scales (:func:`core.ncut.ncut_weights`).
    batch_size, seed, device, precision, channels_last, reporter, progress
        As in :func:`train_kanezaki`.

    Returns
    -------
    net : WNet
        Trained network in eval mode, on CPU.
    history : TrainingHistory
        ``loss`` holds the soft N-cut loss of each step, ``reconstruction`` the MSE.
    """
    import torch

    from .inference import select_device, select_precision
    from .ncut import ncut_weights, soft_ncut_loss
    from .nets import build_wnet

    if images.shape[2] % 16 or images.shape[3] % 16:
        raise ValueError("W-Net needs tiles whose sides are multiples of 16.")
    report = reporter or Reporter("text")
    dev, _ = select_device(device)
    dtype, _ = select_precision(precision, dev)
    history = TrainingHistory()
    started = time.perf_counter()
    with _deterministic(seed):
        net = build_wnet(
            in_channels=images.shape[1], n_clusters=n_clusters, hidden=hidden, dropout=dropout
        )
        if channels_last is None:
            channels_last = True
        layout = torch.channels_last if channels_last else torch.contiguous_format
        net = net.to(dev, memory_format=layout).train()
        ncut_opt = torch.optim.SGD(net.parameters(), lr=learning_rate, momentum=momentum)
        recon_opt = torch.optim.SGD(net.parameters(), lr=learning_rate, momentum=momentum)
        x_all = torch.from_numpy(np.ascontiguousarray(images))
        v_all = torch.from_numpy(np.ascontiguousarray(valid))
        generator = torch.Generator().manual_seed(seed)
        batches = _batches(len(images), batch_size, generator)
        cache: dict[tuple[int, ...], Any] = {}
        for iteration in range(max_iter):
            tick = time.perf_counter()
            index = next(batches)
            key = tuple(index.tolist())
            x = x_all[index].to(dev).contiguous(memory_format=layout)
            v = v_all[index].to(dev).unsqueeze(1)
            if key not in cache:
                weights = ncut_weights(x, v, radius=radius, sigma_i=sigma_i, sigma_x=sigma_x)
                if len(images) <= batch_size:
                    cache[key] = weights
            else:
                weights = cache[key]
            with _autocast(dev, dtype):
                scores = net(x)
            probs = torch.softmax(scores.float(), dim=1)
            ncut = soft_ncut_loss(probs, weights, v, radius=radius)
            ncut_opt.zero_grad(set_to_none=True)
            ncut.backward()
            ncut_opt.step()
            with _autocast(dev, dtype):
                scores, recon = net.reconstruct(x)
            err = (recon.float() - x).pow(2).mean(dim=1, keepdim=True)
            mse = (err * v).sum() / v.sum().clamp_min(1)
            recon_opt.zero_grad(set_to_none=True)
            mse.backward()
            recon_opt.step()
            n_labels = int(torch.unique(scores.detach().argmax(dim=1)[v[:, 0]]).numel())
            history.loss.append(float(ncut.detach()))
            history.reconstruction.append(float(mse.detach()))
            history.n_labels.append(n_labels)
            history.iteration_seconds.append(time.perf_counter() - tick)
            _progress(report, *progress, iteration + 1, max_iter)
            if iteration % 10 == 0 or n_labels <= min_clusters:
                report.info(
                    f"iteration {iteration + 1}: soft N-cut {history.loss[-1]:.4f}, "
                    f"reconstruction {history.reconstruction[-1]:.5f}, {n_labels} labels"
                )
            if n_labels <= min_clusters:
                history.stopped_early = True
                break
        _recalibrate(net, x_all.contiguous(memory_format=layout), True, dev, dtype)
    history.seconds = time.perf_counter() - started
    return net.cpu(), history


# ---------------------------------------------------------------------------------------
# Data: whole image or sampled tiles


def _limits(
    image: np.ndarray, valid: np.ndarray, normalization: str, percentiles: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and scales ``(x - offset) / scale`` of each band."""
    n = image.shape[0]
    if normalization == "none":
        return np.zeros(n, np.float32), np.ones(n, np.float32)
    limits = normalize.band_limits(image, valid, method=normalization, percentiles=percentiles)
    low = limits[:, 0].astype(np.float32)
    span = (limits[:, 1] - limits[:, 0]).astype(np.float32)
    span[~(span > 0)] = 1.0
    return low, span


def _scale(image: np.ndarray, valid: np.ndarray, low: np.ndarray, span: np.ndarray) -> np.ndarray:
    out = (image - low[:, None, None]) / span[:, None, None]
    out[:, ~valid] = 0.0
    return out.astype(np.float32)


def _sample_statistics(
    src: rasterio.DatasetReader, bands: list[int], nodata_zero: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Bands and valid mask of a decimated read (at most :data:`STATS_PIXELS` pixels)."""
    factor = max(1.0, math.sqrt(src.width * src.height / STATS_PIXELS))
    shape = (max(1, int(src.height / factor)), max(1, int(src.width / factor)))
    image = src.read(bands, out_shape=(len(bands), *shape), resampling=Resampling.nearest)
    image = image.astype(np.float32)
    masks = src.read_masks(bands, out_shape=(len(bands), *shape), resampling=Resampling.nearest)
    valid = np.all(masks > 0, axis=0) & np.all(np.isfinite(image), axis=0)
    if nodata_zero:
        valid &= np.any(image != 0, axis=0)
    return image, valid


def _sample_windows(
    src: rasterio.DatasetReader,
    bands: list[int],
    *,
    n_tiles: int,
    tile: int,
    nodata_zero: bool,
    seed: int,
) -> tuple[list[Window], np.ndarray, np.ndarray]:
    """Read ``n_tiles`` random tile windows with at least half of their pixels valid."""
    rng = np.random.default_rng(seed)
    windows, images, valids = [], [], []
    attempts = 0
    while len(windows) < n_tiles and attempts < 20 * n_tiles:
        attempts += 1
        row = int(rng.integers(0, src.height - tile + 1))
        col = int(rng.integers(0, src.width - tile + 1))
        window = Window(col, row, tile, tile)
        image, valid = io.read_bands(src, bands, window=window, nodata_zero=nodata_zero)
        if valid.mean() < 0.5 and attempts < 10 * n_tiles:
            continue
        if not valid.any():
            continue
        windows.append(window)
        images.append(image)
        valids.append(valid)
    if not windows:
        raise EngineError(
            "No tile of the raster holds valid pixels to train on: check its nodata value "
            "and the selected bands."
        )
    return windows, np.stack(images), np.stack(valids)


def _read_scribbles(
    path: str, class_field: str | None, src: rasterio.DatasetReader, report: Reporter
) -> tuple[np.ndarray, list[ClassInfo], list[int]]:
    """Scribbles as class indices 0..S-1 on the raster grid (-1 elsewhere)."""
    from .labels import IGNORED, rasterize_labels, read_labels

    is_vector = os.path.splitext(path.partition("|")[0])[1].lower() in (
        ".gpkg",
        ".shp",
        ".geojson",
        ".json",
        ".fgb",
        ".gml",
        ".kml",
        ".sqlite",
    )
    if is_vector:
        if not class_field:
            raise EngineError(
                f"Scribbles {path} are vector features: give SCRIBBLE_FIELD, the field with "
                "each stroke's class."
            )
        labels, classes = rasterize_labels(path, class_field, src, reporter=report)
    else:
        labels, classes = read_labels(path, src, ignore_value=0, reporter=report)
    values = sorted(int(v) for v in np.unique(labels[labels != IGNORED]))
    if not values:
        raise EngineError(
            f"The scribbles {path} mark no pixel of the raster: draw them over the raster "
            "(lines or polygons with a class field, or a raster with class values > 0)."
        )
    lut = {v: i for i, v in enumerate(values)}
    out = np.full(labels.shape, -1, np.int16)
    for v, i in lut.items():
        out[labels == v] = i
    return out, classes, values


# ---------------------------------------------------------------------------------------
# Outputs


def _cluster_classes(n: int, names: dict[int, str] | None = None) -> list[ClassInfo]:
    colors = palette(n)
    names = names or {}
    return [ClassInfo(v, names.get(v, f"cluster {v}"), colors[v - 1]) for v in range(1, n + 1)]


def _write_labels(
    path: os.PathLike[str] | str,
    labels: np.ndarray,
    info: io.RasterInfo,
    classes: Sequence[ClassInfo],
) -> None:
    dtype = "uint8" if labels.max(initial=0) <= 255 else "uint16"
    io.write_raster(path, labels.astype(dtype), like=info, nodata=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "r+") as ds:
            write_raster_classes(ds, classes)


def _remap_stream(
    src_path: os.PathLike[str] | str,
    dst_path: os.PathLike[str] | str,
    lut: np.ndarray,
    info: io.RasterInfo,
    classes: Sequence[ClassInfo],
) -> None:
    """Write ``lut[value]`` of a label raster, ``_ROWS`` rows at a time."""
    top = int(lut.max(initial=0))
    dtype = "uint8" if top <= 255 else "uint16"
    profile = io.output_profile(info, count=1, dtype=dtype, nodata=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(src_path) as src, rasterio.open(dst_path, "w", **profile) as dst:
            for row in range(0, info.height, _ROWS):
                window = Window(0, row, info.width, min(_ROWS, info.height - row))
                values = src.read(1, window=window).astype(np.int64)
                values = np.clip(values, 0, len(lut) - 1)
                dst.write(lut[values].astype(dtype), 1, window=window)
            write_raster_classes(dst, classes)


def _map_to_reference(
    clusters_path: os.PathLike[str] | str,
    *,
    reference: str,
    assignment: str,
    classes_text: str | None,
    ignore_values: Sequence[float],
    mapped_path: os.PathLike[str] | str | None,
    csv_path: os.PathLike[str] | str | None,
    info: io.RasterInfo,
    report: Reporter,
) -> dict[str, Any]:
    """Map clusters to reference classes with :func:`core.accuracy.run_accuracy`."""
    from .accuracy import run_accuracy

    with tempfile.TemporaryDirectory(prefix="landseg-map-") as folder:
        metrics_path = os.path.join(folder, "metrics.json")
        metrics = run_accuracy(
            prediction=os.fspath(clusters_path),
            reference=reference,
            ignore_values=ignore_values,
            mode="clusters",
            assignment=assignment,
            classes=classes_text,
            dst_json=metrics_path,
            reporter=Reporter("json", out=open(os.devnull, "w")),
        )
        with open(metrics_path, encoding="utf-8") as stream:
            document = json.load(stream)
    with io.open_raster(reference) as ref:
        known = read_raster_classes(ref)
    given = parse_classes(classes_text)
    by_value = {c.value: c for c in known}
    by_value.update({c.value: c for c in given})
    rows = document["mapping"] or []
    targets = sorted({r["class"] for r in rows if r["class"] is not None})
    extra = iter(palette(len(targets), offset=len(by_value)))
    table = [
        by_value.get(v) or ClassInfo(v, f"class {v}", next(extra))
        for v in targets
        if 1 <= v <= 65535
    ]
    names = {c.value: c.name for c in table}
    report.info(f"Clusters mapped to reference classes ({assignment}):")
    report.info("cluster -> class (name): pixels, agreeing pixels")
    for r in rows:
        target = r["class"]
        name = names.get(target, "-") if target is not None else "unmatched"
        report.info(
            f"  {r['cluster']} -> {target if target is not None else '-'} ({name}): "
            f"{r['pixels']}, {r['agreeing_pixels']}"
        )
    unmatched = sum(r["pixels"] for r in rows if r["class"] is None)
    if unmatched:
        report.warning(
            f"{unmatched:,} pixels are in clusters that the one-to-one (Hungarian) mapping "
            "leaves unmatched; they are nodata in OUTPUT_MAPPED. Use the many-to-one "
            "(majority) assignment to give every cluster a class."
        )
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(["cluster", "class", "class_name", "pixels", "agreeing_pixels"])
            for r in rows:
                target = r["class"]
                writer.writerow(
                    [
                        r["cluster"],
                        "" if target is None else target,
                        names.get(target, "") if target is not None else "",
                        r["pixels"],
                        r["agreeing_pixels"],
                    ]
                )
    if mapped_path:
        top = max([r["cluster"] for r in rows] + [0])
        lut = np.zeros(top + 1, np.int64)
        for r in rows:
            if r["class"] is not None and 1 <= r["class"] <= 65535:
                lut[r["cluster"]] = r["class"]
        _remap_stream(clusters_path, mapped_path, lut, info, table)
    return {
        "ARI": metrics["ARI"],
        "OVERALL_ACCURACY": metrics["OVERALL_ACCURACY"],
        "MAPPING": [
            {"cluster": r["cluster"], "class": r["class"], "pixels": r["pixels"]} for r in rows
        ],
        "MAPPED_CLASSES": classes_to_json(table),
    }


# ---------------------------------------------------------------------------------------
# The engine command


def _check_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    specs = {p.name: p for p in (*UNSUPERVISED[method], *UNSUPERVISED_COMMON)}
    unknown = set(params) - set(specs)
    if unknown:
        raise EngineError(
            f"{method} has no parameter {', '.join(sorted(unknown))}; its parameters are "
            f"{', '.join(specs)}."
        )
    values = {name: spec.default for name, spec in specs.items()}
    values.update(params)
    for name, spec in specs.items():
        value = values[name]
        if spec.minimum is not None and value < spec.minimum:
            raise EngineError(f"{spec.key} must be at least {spec.minimum:g}, not {value}.")
        if spec.maximum is not None and value > spec.maximum:
            raise EngineError(f"{spec.key} must be at most {spec.maximum:g}, not {value}.")
    if values["min_clusters"] > values["max_clusters"]:
        raise EngineError(
            f"MIN_CLUSTERS ({values['min_clusters']}) is larger than MAX_CLUSTERS "
            f"({values['max_clusters']}): training stops when the clusters fall to "
            "MIN_CLUSTERS, so it must be at most MAX_CLUSTERS. Lower MIN_CLUSTERS or raise "
            "MAX_CLUSTERS."
        )
    return values


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
        Compute device, autocast precision and CPU threads (see :mod:`core.inference`).
    scribbles, scribble_field : str, optional
        DFC only: scribble raster (class values > 0) or vector file and its class field.
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
    import torch

    from .inference import select_device, select_precision, set_threads

    report = reporter or Reporter("text")
    if method not in METHODS:
        raise EngineError(f"Unknown method {method!r}: use {', '.join(METHODS)}.")
    values = _check_params(method, dict(params or {}))
    if mode not in ("auto", "image", "dataset"):
        raise EngineError(f"MODE must be auto, image or dataset, not {mode!r}.")
    if assignment not in ("hungarian", "majority"):
        raise EngineError(f"ASSIGNMENT must be hungarian or majority, not {assignment!r}.")
    if scribbles and method != "dfc":
        raise EngineError("Scribbles guide DFC only; use landseg:dfc for scribbles.")
    if (dst_mapped or dst_mapping_csv) and not reference:
        raise EngineError("OUTPUT_MAPPED and the mapping table need a REFERENCE raster.")
    outputs = [(dst, "OUTPUT")]
    for path, key in (
        (dst_model, "OUTPUT_MODEL"),
        (dst_mapped, "OUTPUT_MAPPED"),
        (dst_mapping_csv, "OUTPUT_MAPPING"),
    ):
        if path:
            outputs.append((path, key))
    for path in (dst, dst_mapped):
        if path and os.path.splitext(path)[1].lower() not in (".tif", ".tiff"):
            raise EngineError(f"{path}: raster outputs are GeoTIFF files; give a .tif path.")
    paths = [os.path.abspath(p) for p, _ in outputs]
    if len(set(paths)) != len(paths):
        raise EngineError("Two outputs have the same path; give each output its own file.")
    for path, _ in outputs:
        io.check_output_path(path, overwrite=overwrite)
    if reference:
        io.inspect_raster(reference)

    info = io.inspect_raster(src)
    band_list = io.resolve_bands(bands, info.count)
    n_threads = set_threads(threads)
    dev, dev_reason = select_device(device)
    dtype, precision_note = select_precision(precision, dev)
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

    # --- data -------------------------------------------------------------------------
    with io.open_raster(src) as raster:
        if mode == "image":
            image, valid = io.read_bands(raster, band_list, nodata_zero=nodata_zero)
            stats_image, stats_valid = image, valid
        else:
            stats_image, stats_valid = _sample_statistics(raster, band_list, nodata_zero)
        if not stats_valid.any():
            raise EngineError(
                f"{src} has no valid pixel in bands {band_list}: every pixel is nodata"
                f"{' or 0 in all bands' if nodata_zero else ''}. Check the raster's nodata "
                "value and the selected bands."
            )
        low, span = _limits(stats_image, stats_valid, normalization, percentiles)
        scribble_index = scribble_values = None
        scribble_table: list[ClassInfo] = []
        if scribbles:
            full, scribble_table, scribble_values = _read_scribbles(
                scribbles, scribble_field, raster, report
            )
            report.info(
                f"Scribbles: {int((full >= 0).sum()):,} pixels of {len(scribble_values)} "
                f"classes ({', '.join(map(str, scribble_values))})."
            )
        if mode == "image":
            windows = [Window(0, 0, info.width, info.height)]
            images = _scale(image, valid, low, span)[None]
            valids = valid[None]
            if scribbles:
                scribble_index = full[None]
        else:
            tile = min(tile, info.height, info.width)
            if method == "wnet":
                tile -= tile % 16
            if tile < 16:
                raise EngineError("The raster is too small for dataset mode; use image mode.")
            windows, raw, valids = _sample_windows(
                raster,
                band_list,
                n_tiles=int(values["n_tiles"]),
                tile=tile,
                nodata_zero=nodata_zero,
                seed=seed,
            )
            images = np.stack([_scale(r, v, low, span) for r, v in zip(raw, valids, strict=True)])
            if scribbles:
                scribble_index = np.stack(
                    [
                        full[
                            int(w.row_off) : int(w.row_off + w.height),
                            int(w.col_off) : int(w.col_off + w.width),
                        ]
                        for w in windows
                    ]
                )
            report.info(f"Training on {len(windows)} sampled tiles of {tile} x {tile} px.")
    n_valid = int(valids.sum())
    if n_valid == 0:
        raise EngineError(
            f"{src} has no valid pixel in bands {band_list}: every pixel is nodata. Check "
            "the raster's nodata value and the selected bands."
        )
    report.progress(5)

    # --- training ---------------------------------------------------------------------
    max_clusters = int(values["max_clusters"])
    min_clusters = int(values["min_clusters"])
    if scribbles and scribble_values is not None:
        if len(scribble_values) > max_clusters:
            raise EngineError(
                f"The scribbles have {len(scribble_values)} classes, more than MAX_CLUSTERS "
                f"({max_clusters}); raise MAX_CLUSTERS."
            )
        min_clusters = max(min_clusters, len(scribble_values))
    train_range = (5.0, 80.0)
    if method in ("isb", "dfc"):
        segments = None
        if method == "isb":
            segments = _superpixels(images, valids, values, report)
        net, history = train_kanezaki(
            images,
            valids,
            method=method,
            n_channels=max_clusters,
            n_conv=int(values["n_conv"]),
            min_clusters=min_clusters,
            max_iter=int(values["max_iter"]),
            learning_rate=float(values["learning_rate"]),
            mu=float(values.get("mu", 0.0)),
            segments=segments,
            scribbles=scribble_index,
            scribble_weight=float(values.get("scribble_weight", 0.5)),
            batch_size=int(values["batch_size"]),
            seed=seed,
            device=str(dev),
            precision=precision,
            reporter=report,
            progress=train_range,
        )
        arch_args = {
            "in_channels": len(band_list),
            "n_channels": max_clusters,
            "n_conv": int(values["n_conv"]),
        }
    else:
        pad_h = (-images.shape[2]) % 16
        pad_w = (-images.shape[3]) % 16
        if pad_h or pad_w:
            images = np.pad(images, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)))
            valids = np.pad(valids, ((0, 0), (0, pad_h), (0, pad_w)))
        net, history = train_wnet(
            images,
            valids,
            n_clusters=max_clusters,
            hidden=int(values["hidden"]),
            dropout=float(values["dropout"]),
            min_clusters=min_clusters,
            max_iter=int(values["max_iter"]),
            learning_rate=float(values["learning_rate"]),
            radius=int(values["radius"]),
            sigma_i=float(values["sigma_i"]),
            sigma_x=float(values["sigma_x"]),
            batch_size=int(values["batch_size"]),
            seed=seed,
            device=str(dev),
            precision=precision,
            reporter=report,
            progress=train_range,
        )
        arch_args = {
            "in_channels": len(band_list),
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

    # --- labelling and outputs -----------------------------------------------------------
    scribble_names: dict[int, str] = {}
    with contextlib.ExitStack() as stack:
        tmp = {
            key: stack.enter_context(io.atomic_output(path, overwrite=overwrite))
            for path, key in outputs
        }
        if mode == "image":
            with torch.no_grad(), _autocast(dev, dtype):
                scores = net.to(dev)(torch.from_numpy(images).to(dev)).float()
            raw = scores.argmax(dim=1)[0].cpu().numpy()[: info.height, : info.width]
            valid_px = valids[0][: info.height, : info.width]
            counts = np.bincount(raw[valid_px], minlength=max_clusters)
            lut = renumber_by_area(counts)
            channel_lut = lut
            labels = np.where(valid_px, lut[raw], 0)
            n_clusters = int(lut.max())
            if scribble_values:
                scribble_names = _scribble_names(lut, scribble_values, scribble_table)
            table = _cluster_classes(n_clusters, scribble_names)
            _write_labels(tmp["OUTPUT"], labels, info, table)
            report.progress(88)
        else:
            raw_path = tmp["OUTPUT"].with_name(tmp["OUTPUT"].stem + "-raw.tif")
            stack.callback(lambda: [p.unlink() for p in _with_sidecars(raw_path) if p.exists()])
            result = _predict(
                net,
                src,
                raw_path,
                band_list,
                low,
                span,
                max_clusters,
                tile,
                str(dev),
                precision,
                nodata_zero,
                n_threads,
                report,
            )
            counts = np.zeros(max_clusters + 1, np.int64)
            for value, count in result["COUNTS"].items():
                counts[int(value)] = count
            channel_lut = renumber_by_area(counts[1:])
            lut = np.concatenate([[0], channel_lut])
            n_clusters = int(lut.max())
            if scribble_values:
                scribble_names = _scribble_names(lut[1:], scribble_values, scribble_table)
            table = _cluster_classes(n_clusters, scribble_names)
            _remap_stream(raw_path, tmp["OUTPUT"], lut, info, table)
            report.progress(92)
        if n_clusters <= 1:
            report.warning(
                "Every pixel fell into one cluster. Raise MIN_CLUSTERS, lower the learning "
                "rate or (DFC) MU, or use other bands."
            )
        report.info(f"{n_clusters} clusters.")
        result_out: dict[str, Any] = {}
        if reference:
            result_out = _map_to_reference(
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
                f"Against the reference: ARI {result_out['ARI']:.3f}, overall accuracy after "
                f"mapping {result_out['OVERALL_ACCURACY']:.3f}."
            )
        if dst_model:
            from .modelfile import save_model

            save_model(
                tmp["OUTPUT_MODEL"],
                net.state_dict(),
                _model_metadata(
                    method,
                    arch_args,
                    band_list,
                    low,
                    span,
                    tile,
                    values,
                    history,
                    seed,
                    info,
                    max_clusters,
                    normalization,
                    channel_lut,
                    nodata_zero,
                ),
            )
    # Styles beside the final files (QGIS reads <raster>.qml as the default style).
    write_qml(dst, table)
    if dst_mapped and result_out:
        write_qml(dst_mapped, classes_from_json(result_out["MAPPED_CLASSES"]))
    report.progress(100)
    out: dict[str, Any] = {key: path for path, key in outputs}
    out.update(
        N_CLUSTERS=n_clusters,
        ITERATIONS=history.iterations,
        STOPPED_AT_MIN_CLUSTERS=history.stopped_early,
        MODE=mode,
        SECONDS_PER_ITERATION=round(history.seconds / max(history.iterations, 1), 4),
        CLASSES=classes_to_json(table),
    )
    if result_out:
        out.update(result_out)
    return out


def _with_sidecars(path: Any) -> list[Any]:
    return [path, *(path.with_name(path.name + ext) for ext in (".aux.xml", ".msk"))]


def _scribble_names(
    lut: np.ndarray, scribble_values: Sequence[int], table: Sequence[ClassInfo]
) -> dict[int, str]:
    names = {c.value: c.name for c in table}
    out = {}
    for index, value in enumerate(scribble_values):
        if index < len(lut) and lut[index] > 0:
            out[int(lut[index])] = f"scribble {names.get(value, f'class {value}')}"
    return out


def _superpixels(
    images: np.ndarray, valids: np.ndarray, values: dict[str, Any], report: Reporter
) -> np.ndarray:
    """SLIC superpixels of each image, ids 0..S-1 (nodata pixels share one more id)."""
    from .superpixels import slic

    out = np.zeros(valids.shape, np.int64)
    started = time.perf_counter()
    for k, (image, valid) in enumerate(zip(images, valids, strict=True)):
        n_segments = max(1, int(valid.sum() / float(values["segment_size"])))
        clipped = np.clip(image, 0.0, 1.0)
        labels = slic(
            clipped, mask=valid, n_segments=n_segments, compactness=float(values["compactness"])
        )
        labels = labels.astype(np.int64)
        labels[~valid] = labels.max() + 1
        out[k] = labels - labels.min()
    report.info(
        f"SLIC superpixels: {int(out[0].max()) + 1} on the first image "
        f"({time.perf_counter() - started:.1f} s)."
    )
    return out


def _predict(
    net: Any,
    src: str,
    dst: Any,
    band_list: list[int],
    low: np.ndarray,
    span: np.ndarray,
    n_clusters: int,
    tile: int,
    device: str,
    precision: str,
    nodata_zero: bool,
    threads: int,
    report: Reporter,
) -> dict[str, Any]:
    """Label every window with the frozen network (tiled inference engine)."""
    from .inference import predict_raster
    from .tiling import DEFAULT_OVERLAP

    class _Quiet(Reporter):
        def __init__(self, parent: Reporter) -> None:
            super().__init__("json", out=open(os.devnull, "w"))
            self.parent = parent

        def progress(self, percent: float) -> None:
            self.parent.progress(80 + 0.08 * percent)

        def info(self, message: str) -> None:
            self.parent.info(message)

        def warning(self, message: str) -> None:
            self.parent.warning(message)

    overlap = min(DEFAULT_OVERLAP, max(0, tile // 4 - 1))
    return predict_raster(
        net,
        src,
        os.fspath(dst),
        bands=band_list,
        offsets=low.tolist(),
        scales=span.tolist(),
        n_classes=n_clusters,
        tile_size=tile,
        overlap=overlap,
        device=device,
        precision=precision,
        nodata_zero=nodata_zero,
        overwrite=True,
        reporter=_Quiet(report),
        threads=threads,
    )


def _model_metadata(
    method: str,
    arch_args: dict[str, Any],
    band_list: list[int],
    low: np.ndarray,
    span: np.ndarray,
    tile: int,
    values: dict[str, Any],
    history: TrainingHistory,
    seed: int,
    info: io.RasterInfo,
    n_clusters: int,
    normalization: str,
    lut: np.ndarray,
    nodata_zero: bool,
) -> dict[str, Any]:
    from .tiling import DEFAULT_OVERLAP

    n_used = int(lut.max(initial=0))
    spare = iter(range(n_used + 1, n_clusters + 1))
    values_by_channel = [int(v) if v > 0 else next(spare) for v in lut[:n_clusters]]
    colors = palette(n_clusters)
    dtypes = sorted({info.dtypes[b - 1] for b in band_list})
    return {
        "architecture": method,
        "architecture_args": arch_args,
        "task": "unsupervised",
        "bands": {"count": len(band_list), "indices": band_list, "dtypes": dtypes},
        "nodata_zero": nodata_zero,
        "normalization": {
            "method": normalization,
            "offsets": [float(v) for v in low],
            "scales": [float(v) for v in span],
        },
        "tile_size": tile,
        "overlap": min(DEFAULT_OVERLAP, max(0, tile // 4 - 1)),
        # In channel order: applying the model to this raster gives the same cluster ids.
        "classes": classes_to_json(
            [ClassInfo(int(v), f"cluster {int(v)}", colors[int(v) - 1]) for v in values_by_channel]
        ),
        "training": {
            "method": method,
            "source": os.path.basename(info.path),
            "parameters": {k: v for k, v in values.items()},
            "seed": seed,
            "iterations": history.iterations,
            "stopped_at_min_clusters": history.stopped_early,
            "final_labels": history.n_labels[-1] if history.n_labels else None,
            "seconds": round(history.seconds, 2),
            "landseg_version": __version__,
        },
    }
