"""Unsupervised deep segmentation: ISB, DFC and W-Net, trained on the raster itself.

This module holds the science (losses, training loops, label refinement, tile sampling);
the ``isb``, ``dfc`` and ``wnet`` commands are :mod:`core.commands.unsupervised`.

Each method trains a network on the raster to segment, without labels, and writes the
argmax clusters, renumbered 1..K by decreasing area.

ISB (Kanezaki, 2018 [1]_)
    :class:`core.networks.KanezakiNet`; each iteration takes the argmax of the response map,
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
    :class:`core.networks.WNet`; each iteration takes one step on the soft normalized cut of
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
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import __version__, io
from .classes import ClassInfo, classes_to_json, palette
from .protocol import Reporter
from .tiling import DEFAULT_OVERLAP

__all__ = [
    "IMAGE_MODE_PIXELS",
    "TrainingHistory",
    "continuity_loss",
    "merge_small_segments",
    "model_metadata",
    "refine_by_superpixels",
    "renumber_by_area",
    "train_kanezaki",
    "train_wnet",
]

#: Rasters with at most this many pixels train on the whole image (image mode).
IMAGE_MODE_PIXELS = 512 * 512
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


def merge_small_segments(labels: np.ndarray, valid: np.ndarray, *, min_size: int) -> np.ndarray:
    """Give segments smaller than ``min_size`` pixels the label of the nearest larger one.

    A segment is a 4-connected group of valid pixels with one label. Each pixel of a
    small segment takes the label of the nearest pixel (Euclidean) of a segment that is
    kept, so small specks and thin slivers join what surrounds them (W-Net's merging of
    small segments; deterministic). A label may vanish when all its segments are small;
    when fewer than two labels would be left, the labels are returned unchanged.

    Parameters
    ----------
    labels : (H, W) int ndarray
        Cluster labels.
    valid : (H, W) bool ndarray
        Pixels that belong to the image; others are neither merged nor used as targets.
    min_size : int
        Segments with fewer pixels are merged; 0 or 1 leaves the labels as they are.

    Returns
    -------
    (H, W) ndarray
        Labels with the small segments merged (a copy; same dtype).
    """
    from scipy import ndimage

    out = labels.copy()
    if min_size <= 1 or not valid.any():
        return out
    small = np.zeros(labels.shape, bool)
    for value in np.unique(labels[valid]):
        segments, _ = ndimage.label((labels == value) & valid)
        sizes = np.bincount(segments.ravel())
        too_small = sizes < min_size
        too_small[0] = False
        small |= too_small[segments]
    kept = valid & ~small
    if not small.any() or len(np.unique(labels[kept])) < 2:
        return out  # nothing to merge, or merging would leave a single cluster
    nearest = ndimage.distance_transform_edt(~kept, return_distances=False, return_indices=True)
    rows, cols = nearest[0][small], nearest[1][small]
    out[small] = labels[rows, cols]
    return out


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
        Network size (:class:`core.networks.KanezakiNet`); ``n_channels`` is the largest
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
        See :func:`core.device.select_device` and ``select_precision``.
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

    from .networks import build_kanezaki

    if method not in ("isb", "dfc"):
        raise ValueError(f"method must be 'isb' or 'dfc', not {method!r}.")
    if method == "isb" and segments is None:
        raise ValueError("ISB needs superpixels (segments).")
    v_all = torch.from_numpy(np.ascontiguousarray(valid))
    s_all = None if scribbles is None else torch.from_numpy(scribbles.astype(np.int64))

    def make_step(net: Any, dev: Any, dtype: Any) -> Callable[..., int]:
        optimizer = torch.optim.SGD(net.parameters(), lr=learning_rate, momentum=momentum)

        def step(index: Any, x: Any, history: TrainingHistory) -> int:
            v = v_all[index].to(dev)
            with _autocast(dev, dtype):
                response = net(x)
            response = response.float()
            target = response.argmax(dim=1)
            if method == "isb":
                assert segments is not None  # ISB gets its superpixels
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
            history.loss.append(float(loss.detach()))
            return int(torch.unique(response.argmax(dim=1)[v]).numel())

        return step

    return _train_loop(
        lambda: build_kanezaki(in_channels=images.shape[1], n_channels=n_channels, n_conv=n_conv),
        make_step,
        images,
        max_iter=max_iter,
        min_clusters=min_clusters,
        batch_size=batch_size,
        seed=seed,
        device=device,
        precision=precision,
        channels_last=channels_last,
        reporter=reporter,
        progress=progress,
        log_every=25,
        describe=lambda history: f"loss {history.loss[-1]:.4f}",
    )


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
    sigma_i: float = 0.05,
    sigma_x: float = 4.0,
    ncut_weight: float = 1.0,
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
        U-Net width and dropout (:class:`core.networks.WNet`).
    min_clusters : int
        Stop when the encoder's argmax uses at most this many labels.
    max_iter : int
        Iterations; each is one N-cut step and one reconstruction step.
    learning_rate, momentum : float
        SGD settings of both steps (each over all parameters, as the reference code).
    radius, sigma_i, sigma_x : float
        Soft N-cut window and scales (:func:`core.ncut.ncut_weights`).
    ncut_weight : float
        Factor of the soft N-cut loss in its step (1 in the paper); 0 trains on the
        reconstruction alone (the N-cut is still computed, for the history).
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

    from .ncut import ncut_weights, soft_ncut_loss
    from .networks import build_wnet

    if images.shape[2] % 16 or images.shape[3] % 16:
        raise ValueError("W-Net needs tiles whose sides are multiples of 16.")
    v_all = torch.from_numpy(np.ascontiguousarray(valid))
    cache: dict[tuple[int, ...], Any] = {}

    def make_step(net: Any, dev: Any, dtype: Any) -> Callable[..., int]:
        ncut_opt = torch.optim.SGD(net.parameters(), lr=learning_rate, momentum=momentum)
        recon_opt = torch.optim.SGD(net.parameters(), lr=learning_rate, momentum=momentum)

        def step(index: Any, x: Any, history: TrainingHistory) -> int:
            key = tuple(index.tolist())
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
            (ncut_weight * ncut).backward()
            ncut_opt.step()
            with _autocast(dev, dtype):
                scores, recon = net.reconstruct(x)
            err = (recon.float() - x).pow(2).mean(dim=1, keepdim=True)
            mse = (err * v).sum() / v.sum().clamp_min(1)
            recon_opt.zero_grad(set_to_none=True)
            mse.backward()
            recon_opt.step()
            history.loss.append(float(ncut.detach()))
            history.reconstruction.append(float(mse.detach()))
            return int(torch.unique(scores.detach().argmax(dim=1)[v[:, 0]]).numel())

        return step

    return _train_loop(
        lambda: build_wnet(
            in_channels=images.shape[1], n_clusters=n_clusters, hidden=hidden, dropout=dropout
        ),
        make_step,
        images,
        max_iter=max_iter,
        min_clusters=min_clusters,
        batch_size=batch_size,
        seed=seed,
        device=device,
        precision=precision,
        channels_last=channels_last,
        reporter=reporter,
        progress=progress,
        log_every=10,
        describe=lambda history: (
            f"soft N-cut {history.loss[-1]:.4f}, reconstruction {history.reconstruction[-1]:.5f}"
        ),
    )


def _train_loop(
    build: Callable[[], Any],
    make_step: Callable[[Any, Any, Any], Callable[..., int]],
    images: np.ndarray,
    *,
    max_iter: int,
    min_clusters: int,
    batch_size: int,
    seed: int,
    device: str,
    precision: str,
    channels_last: bool | None,
    reporter: Reporter | None,
    progress: tuple[float, float],
    log_every: int,
    describe: Callable[[TrainingHistory], str],
) -> tuple[Any, TrainingHistory]:
    """Run the loop both trainers share: batches, history, progress, early stop.

    ``make_step(net, device, dtype)`` returns the method's step: given a batch's indices
    and images it takes one optimisation step, records its losses in the history and
    returns the number of labels the argmax uses.
    """
    import torch

    from .device import select_device, select_precision

    report = reporter or Reporter("text")
    dev, _ = select_device(device)
    dtype, _ = select_precision(precision, dev)
    history = TrainingHistory()
    started = time.perf_counter()
    with _deterministic(seed):
        net = build()
        if channels_last is None:
            channels_last = True
        layout = torch.channels_last if channels_last else torch.contiguous_format
        net = net.to(dev, memory_format=layout).train()
        step = make_step(net, dev, dtype)
        x_all = torch.from_numpy(np.ascontiguousarray(images))
        generator = torch.Generator().manual_seed(seed)
        batches = _batches(len(images), batch_size, generator)
        for iteration in range(max_iter):
            tick = time.perf_counter()
            index = next(batches)
            x = x_all[index].to(dev).contiguous(memory_format=layout)
            n_labels = step(index, x, history)
            history.n_labels.append(n_labels)
            history.iteration_seconds.append(time.perf_counter() - tick)
            _progress(report, *progress, iteration + 1, max_iter)
            if iteration % log_every == 0 or n_labels <= min_clusters:
                report.info(f"iteration {iteration + 1}: {describe(history)}, {n_labels} labels")
            if n_labels <= min_clusters:
                history.stopped_early = True
                break
        _recalibrate(net, x_all.contiguous(memory_format=layout), True, dev, dtype)
    history.seconds = time.perf_counter() - started
    return net.cpu(), history


# ---------------------------------------------------------------------------------------
# Data: whole image or sampled tiles


# ---------------------------------------------------------------------------------------
# Outputs


# ---------------------------------------------------------------------------------------
# The engine command


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


def model_metadata(
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
    """Describe a trained ISB/DFC/W-Net for its model file (bands, stretch, clusters)."""
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
