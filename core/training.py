"""Supervised training of a segmentation network on partially labelled scenes.

The data are a few scenes held in memory, each with class indices per pixel (-1 where
unlabelled) and a mask of the pixels whose labels may be used for training; the others
are validation pixels. Training tiles are random crops placed around labelled training
pixels, so tiles without labels are never drawn and sparse labels (a few thousand
pixels in a scene) are used as well as dense ones. The loss is class-weighted cross
entropy over labelled training pixels only (validation labels are masked out of every
training crop). Validation predicts crops around spatially separate blocks
(:func:`split_blocks`) and scores their pixels; training stops early when the
validation mean IoU stops improving, and the best epoch's weights are kept.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .averaging import weight_average
from .checkpoint import TrainingObjects, load_checkpoint, save_checkpoint
from .classes import ClassInfo
from .params import EMA_DECAY
from .protocol import Reporter
from .training_metadata import training_summary, unet_metadata

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "Scene",
    "TrainingResult",
    "band_statistics",
    "class_weights",
    "confusion_scores",
    "fit_unet",
    "split_blocks",
    "train_network",
    "training_summary",
    "unet_metadata",
]


@dataclass
class Scene:
    """One training image with its labels.

    Attributes
    ----------
    image : (C, H, W) float32 ndarray
        Normalised bands, 0 at nodata pixels.
    targets : (H, W) int64 ndarray
        Class indices 0..K-1, -1 where unlabelled.
    train : (H, W) bool ndarray
        Pixels whose labels are used for training; labelled pixels outside it are
        validation pixels.
    name : str
        For messages.
    """

    image: np.ndarray
    targets: np.ndarray
    train: np.ndarray
    name: str = ""

    @property
    def train_targets(self) -> np.ndarray:
        """Targets with validation pixels set to -1."""
        return np.where(self.train, self.targets, -1)

    @property
    def val_targets(self) -> np.ndarray:
        """Targets with training pixels set to -1."""
        return np.where(self.train, -1, self.targets)


@dataclass
class TrainingResult:
    """What :func:`train_network` returns.

    Attributes
    ----------
    state_dict : dict of str to torch.Tensor
        Weights of the best epoch (highest validation mIoU; the last epoch without
        validation).
    history : list of dict
        Per epoch: ``epoch``, ``loss``, ``lr``, ``seconds`` and, with validation,
        ``val_loss``, ``val_oa``, ``val_miou``.
    best_epoch : int
        1-based epoch whose weights were kept.
    confusion : (K, K) int64 ndarray or None
        Validation confusion matrix of the best epoch (rows reference, columns
        prediction).
    stopped_early : bool
        Whether early stopping ended training.
    seconds : float
        Total training time.
    """

    state_dict: dict[str, Any]
    history: list[dict[str, float]]
    best_epoch: int
    confusion: np.ndarray | None
    stopped_early: bool
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def band_statistics(
    images: Sequence[tuple[np.ndarray, np.ndarray]], *, max_samples: int = 2_000_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation over the valid pixels of several images.

    Parameters
    ----------
    images : sequence of ((C, H, W) float32 ndarray, (H, W) bool ndarray)
        Bands and valid masks.
    max_samples : int
        At most this many valid pixels are drawn (evenly over the images).

    Returns
    -------
    offsets, scales : (C,) float64 ndarrays
        Mean and standard deviation (at least 1e-6) per band; normalised values are
        ``(x - offset) / scale``.
    """
    rng = np.random.default_rng(seed)
    per_image = max(1, max_samples // max(len(images), 1))
    samples = []
    for image, valid in images:
        pixels = image[:, valid]
        if pixels.shape[1] > per_image:
            pixels = pixels[:, rng.choice(pixels.shape[1], per_image, replace=False)]
        samples.append(pixels.astype(np.float64))
    values = np.concatenate(samples, axis=1)
    if values.shape[1] == 0:
        raise ValueError("The training images have no valid pixel.")
    return values.mean(axis=1), np.maximum(values.std(axis=1), 1e-6)


def split_blocks(
    scenes: Sequence[Scene], *, block: int, fraction: float, seed: int
) -> tuple[int, int]:
    """Hold out whole square blocks of labelled pixels for validation (in place).

    Every scene is cut into ``block`` x ``block`` squares; the squares holding labels
    are shuffled (with ``seed``) and about ``fraction`` of them, at least one, become
    validation blocks: their pixels leave the scenes' ``train`` masks. At least one
    labelled block always stays for training. Validation pixels are therefore
    spatially separate from the training labels (Roberts et al., 2017, *Cross-validation
    strategies for data with temporal, spatial, hierarchical, or phylogenetic structure*,
    Ecography).

    Returns
    -------
    n_train, n_val : int
        Number of labelled blocks used for training and for validation.
    """
    blocks: list[tuple[int, int, int]] = []
    for index, scene in enumerate(scenes):
        labelled = scene.train & (scene.targets >= 0)
        height, width = labelled.shape
        for row in range(0, height, block):
            for col in range(0, width, block):
                if labelled[row : row + block, col : col + block].any():
                    blocks.append((index, row, col))
    if fraction <= 0 or len(blocks) < 2:
        return len(blocks), 0
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(blocks))
    n_val = min(max(1, round(fraction * len(blocks))), len(blocks) - 1)
    for k in order[:n_val]:
        index, row, col = blocks[k]
        scenes[index].train[row : row + block, col : col + block] = False
    return len(blocks) - n_val, n_val


def class_weights(counts: np.ndarray, *, power: float = 0.5) -> np.ndarray:
    """Inverse-frequency class weights, ``(n / n_c) ** power``, mean 1 over present classes.

    ``power`` 0.5 (square-root balancing) lifts rare classes without letting a handful of
    pixels dominate the loss; absent classes get weight 0.
    """
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.zeros_like(counts)
    present = counts > 0
    weights[present] = (counts[present].sum() / counts[present]) ** power
    if present.any():
        weights[present] /= weights[present].mean()
    return weights


def confusion_scores(confusion: np.ndarray) -> dict[str, float]:
    """Overall accuracy, mean IoU and macro F1 of a (K, K) confusion matrix.

    Means are over classes present in the reference or the prediction.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    total = confusion.sum()
    tp = np.diag(confusion)
    ref = confusion.sum(axis=1)
    pred = confusion.sum(axis=0)
    present = (ref + pred) > 0
    union = ref + pred - tp
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=union > 0)
    f1 = np.divide(2 * tp, ref + pred, out=np.zeros_like(tp), where=(ref + pred) > 0)
    return {
        "oa": float(tp.sum() / total) if total else float("nan"),
        "miou": float(iou[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
    }


def _pad_scene(scene: Scene, tile: int) -> Scene:
    _, height, width = scene.image.shape
    ph, pw = max(0, tile - height), max(0, tile - width)
    if not ph and not pw:
        return scene
    return Scene(
        np.pad(scene.image, ((0, 0), (0, ph), (0, pw))),
        np.pad(scene.targets, ((0, ph), (0, pw)), constant_values=-1),
        np.pad(scene.train, ((0, ph), (0, pw))),
        scene.name,
    )


class _Sampler:
    """Random crops around labelled training pixels."""

    def __init__(self, scenes: Sequence[Scene], tile: int) -> None:
        self.scenes = scenes
        self.tile = tile
        self.targets = [s.train_targets for s in scenes]
        self.points = [np.flatnonzero(t >= 0) for t in self.targets]
        self.sizes = np.array([len(p) for p in self.points], dtype=np.float64)

    @property
    def n_labelled(self) -> int:
        return int(self.sizes.sum())

    def n_tiles(self) -> int:
        """Grid tiles (stride = tile) holding training labels, over all scenes."""
        count = 0
        for t in self.targets:
            h, w = t.shape
            for r in range(0, h, self.tile):
                for c in range(0, w, self.tile):
                    count += bool((t[r : r + self.tile, c : c + self.tile] >= 0).any())
        return count

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        tile = self.tile
        scene_ids = rng.choice(len(self.scenes), size=n, p=self.sizes / self.sizes.sum())
        xs, ys = [], []
        for index in scene_ids:
            scene, targets = self.scenes[index], self.targets[index]
            height, width = targets.shape
            point = self.points[index][rng.integers(len(self.points[index]))]
            row, col = divmod(int(point), width)
            top = int(np.clip(row - rng.integers(tile), 0, height - tile))
            left = int(np.clip(col - rng.integers(tile), 0, width - tile))
            xs.append(scene.image[:, top : top + tile, left : left + tile])
            ys.append(targets[top : top + tile, left : left + tile])
        return np.stack(xs), np.stack(ys)


def _val_crops(scenes: Sequence[Scene], tile: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """One crop per validation block (centred on it), labels only inside the block."""
    xs, ys = [], []
    for scene in scenes:
        val = scene.val_targets
        height, width = val.shape
        for row in range(0, height, block):
            for col in range(0, width, block):
                part = val[row : row + block, col : col + block]
                if not (part >= 0).any():
                    continue
                top = int(np.clip(row + block // 2 - tile // 2, 0, height - tile))
                left = int(np.clip(col + block // 2 - tile // 2, 0, width - tile))
                y = np.full((tile, tile), -1, dtype=np.int64)
                r0, c0 = row - top, col - left
                y[r0 : r0 + part.shape[0], c0 : c0 + part.shape[1]] = part
                xs.append(scene.image[:, top : top + tile, left : left + tile])
                ys.append(y)
    if not xs:
        return np.empty((0,)), np.empty((0,))
    return np.stack(xs), np.stack(ys)


def train_network(
    network: torch.nn.Module,
    scenes: Sequence[Scene],
    *,
    n_classes: int,
    tile_size: int = 64,
    block_size: int | None = None,
    epochs: int = 40,
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    patience: int = 8,
    min_epochs: int | None = None,
    class_weighting: bool = True,
    augment: bool = True,
    acquisition_augment: bool = False,
    weight_averaging: str = "none",
    ema_decay: float = EMA_DECAY,
    min_samples_per_epoch: int = 32,
    seed: int = 42,
    device: str | torch.device = "cpu",
    reporter: Reporter | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> TrainingResult:
    """Train a segmentation network on scenes with partial labels.

    Parameters
    ----------
    network : torch.nn.Module
        Maps (N, C, T, T) to (N, K, T, T) logits (a U-Net, :mod:`core.networks`).
    scenes : sequence of Scene
        Training data; labelled pixels outside ``Scene.train`` are for validation.
    n_classes : int
        K, the number of classes.
    tile_size : int
        Side of the square training crops (a multiple of 32). Scenes smaller than a
        tile are zero-padded (padding is unlabelled).
    block_size : int, optional
        Block size used by :func:`split_blocks`, for the validation crops; ``tile_size
        // 2`` by default.
    epochs : int
        Largest number of epochs. One epoch draws as many crops as there are
        ``tile_size`` grid tiles holding training labels, at least
        ``min_samples_per_epoch``.
    batch_size : int
        Crops per optimisation step.
    learning_rate, weight_decay : float
        AdamW (Loshchilov & Hutter, 2019) settings; the learning rate follows a cosine
        schedule over ``epochs`` (Loshchilov & Hutter, 2017, SGDR).
    patience : int
        Stop after this many epochs without a better validation mean IoU (0: never).
    min_epochs : int, optional
        Never stop before this epoch (``2 * patience`` by default): the first epochs'
        validation scores are noisy while BatchNorm statistics settle.
    class_weighting : bool
        Weight the cross entropy by :func:`class_weights` of the training labels.
    augment : bool
        Random flips, 90-degree rotations and radiometric jitter
        (:func:`core.augment.augment_batch`).
    acquisition_augment : bool
        With ``augment``, also make each crop look like another acquisition date:
        per-band gain and offset, brightness, blur and noise
        (:func:`core.augment.acquisition_jitter`).
    weight_averaging : {"none", "ema"}
        ``"ema"``: validate, early-stop on and keep an exponential moving average of the
        weights and BatchNorm buffers, updated after every step (:mod:`core.averaging`).
    ema_decay : float
        Largest decay per step of that average, in (0, 1).
    seed : int
        Seed of weights' initialisation order, crops and augmentation; the same seed
        gives the same model on CPU.
    device : str or torch.device
        Where to train.
    reporter : Reporter, optional
        Receives per-epoch log lines and progress.
    on_epoch : callable, optional
        Called with each epoch's history entry (instead of reporting progress).
    checkpoint : path-like, optional
        Save the whole training state there after every epoch and, when the file exists,
        resume from it (:mod:`core.checkpoint`); the result is the same as without an
        interruption. Removed when training ends.

    Returns
    -------
    TrainingResult
    """
    import torch

    report = reporter or Reporter("text")
    if tile_size % 32:
        raise ValueError(f"tile_size must be a multiple of 32, not {tile_size}.")
    block = block_size or max(tile_size // 2, 32)
    device = torch.device(device)
    scenes = [_pad_scene(s, tile_size) for s in scenes]
    sampler = _Sampler(scenes, tile_size)
    if sampler.n_labelled == 0:
        raise ValueError("No labelled training pixel.")
    counts = np.zeros(n_classes, dtype=np.int64)
    for targets in sampler.targets:
        valid = targets[targets >= 0]
        counts += np.bincount(valid, minlength=n_classes)[:n_classes]
    weights = class_weights(counts) if class_weighting else (counts > 0).astype(np.float64)
    val_x, val_y = _val_crops(scenes, tile_size, min(block, tile_size))
    has_val = len(val_x) > 0
    samples = max(sampler.n_tiles(), min_samples_per_epoch, batch_size)
    steps = math.ceil(samples / batch_size)

    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    network = network.to(device)
    averaged = weight_average(network, weight_averaging, decay=ema_decay)
    kept = network if averaged is None else averaged.module  # validated and kept
    optimizer = torch.optim.AdamW(network.parameters(), lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    weight_t = torch.as_tensor(weights, dtype=torch.float32, device=device)

    history: list[dict[str, float]] = []
    best_score, best_epoch, best_state, best_confusion = -1.0, 0, None, None
    stale, first, before = 0, 1, 0.0
    stopped_early = False
    start = time.perf_counter()
    report.info(
        f"Training on {sampler.n_labelled:,} labelled pixels "
        f"({', '.join(str(int(c)) for c in counts)} "
        f"per class), {samples} crops of {tile_size}x{tile_size} per epoch in {steps} steps; "
        f"{len(val_x)} validation crops."
    )
    config = {
        "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
        "weight_decay": weight_decay, "patience": patience, "min_epochs": min_epochs,
        "tile_size": tile_size, "n_classes": n_classes, "seed": seed, "samples": samples,
        "labelled": int(sampler.n_labelled), "class_counts": [int(c) for c in counts],
        "validation_crops": len(val_x), "augment": augment,
        "acquisition_augment": acquisition_augment, "weight_averaging": weight_averaging,
        "ema_decay": ema_decay, "class_weighting": class_weighting,
    }  # fmt: skip
    objects = TrainingObjects(network, averaged, optimizer, scheduler, rng, generator)
    if checkpoint is not None and os.path.exists(checkpoint):
        progress, best_state, best_confusion = load_checkpoint(checkpoint, objects, config=config)
        history = progress["history"]
        best_score, best_epoch = progress["best_score"], progress["best_epoch"]
        stale, first, before = progress["stale"], progress["epoch"] + 1, progress["seconds"]
        for done in history:
            report.info(_epoch_message(done, epochs))
        report.info(f"Resumed from {checkpoint} after epoch {progress['epoch']}.")
    for epoch in range(first, epochs + 1):
        entry, confusion = _fit_epoch(
            epoch, network, kept, sampler, optimizer, scheduler, weight_t, (val_x, val_y),
            n_classes=n_classes, rng=rng, generator=generator, steps=steps, samples=samples,
            batch_size=batch_size, augment=augment, acquisition_augment=acquisition_augment,
            device=device, averaged=averaged,
        )  # fmt: skip
        history.append(entry)
        report.info(_epoch_message(entry, epochs))
        if on_epoch is not None:
            on_epoch(entry)
        else:
            report.progress(100.0 * epoch / epochs)
        score = entry.get("val_miou", float(epoch)) if has_val else float(epoch)
        if score > best_score:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in kept.state_dict().items()})
            best_confusion = confusion
        else:
            stale += 1
        warm = min_epochs if min_epochs is not None else 2 * patience
        if has_val and patience and stale >= patience and warm <= epoch < epochs:
            report.info(
                f"Early stop: validation mIoU has not improved for {patience} epochs; "
                f"keeping epoch {best_epoch} (mIoU {best_score:.3f})."
            )
            stopped_early = True
            break
        if checkpoint is not None:
            progress = {"epoch": epoch, "history": history, "best_score": best_score,
                        "best_epoch": best_epoch, "stale": stale,
                        "seconds": before + time.perf_counter() - start}  # fmt: skip
            save_checkpoint(checkpoint, objects, config=config, progress=progress,
                            best_state=best_state, best_confusion=best_confusion)  # fmt: skip
    assert best_state is not None
    if checkpoint is not None and os.path.exists(checkpoint):
        os.remove(checkpoint)
    return TrainingResult(
        state_dict=best_state,
        history=history,
        best_epoch=best_epoch,
        confusion=best_confusion,
        stopped_early=stopped_early,
        seconds=before + time.perf_counter() - start,
    )


def _fit_epoch(
    epoch: int,
    network: torch.nn.Module,
    kept: torch.nn.Module,
    sampler: _Sampler,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    weight: torch.Tensor,
    validation: tuple[np.ndarray, np.ndarray],
    *,
    n_classes: int,
    batch_size: int,
    device: torch.device,
    **options: Any,
) -> tuple[dict[str, float], np.ndarray | None]:
    """Train one epoch, step the schedule and validate ``kept``.

    Returns the epoch's history entry and its validation confusion matrix (None without
    validation).
    """
    tick = time.perf_counter()
    loss = _train_epoch(
        network, sampler, optimizer, weight, batch_size=batch_size, device=device, **options
    )
    scheduler.step()
    entry: dict[str, float] = {
        "epoch": epoch,
        "loss": loss,
        "lr": float(optimizer.param_groups[0]["lr"]),
    }
    confusion = None
    val_x, val_y = validation
    if len(val_x):
        val_loss, confusion = _evaluate(kept, val_x, val_y, n_classes, batch_size, device)
        scores = confusion_scores(confusion)
        entry.update(val_loss=val_loss, val_oa=scores["oa"], val_miou=scores["miou"])
        entry["val_macro_f1"] = scores["macro_f1"]
    entry["seconds"] = time.perf_counter() - tick
    return entry, confusion


def _train_epoch(
    network: torch.nn.Module,
    sampler: _Sampler,
    optimizer: torch.optim.Optimizer,
    weight: torch.Tensor,
    *,
    rng: np.random.Generator,
    generator: torch.Generator,
    steps: int,
    samples: int,
    batch_size: int,
    augment: bool,
    acquisition_augment: bool,
    device: torch.device,
    averaged: torch.optim.swa_utils.AveragedModel | None = None,
) -> float:
    """One epoch of optimisation steps on random crops; return the mean training loss."""
    import torch
    import torch.nn.functional as F

    from .augment import acquisition_jitter, augment_batch

    network.train()
    total, seen = 0.0, 0
    for step in range(steps):
        n = min(batch_size, samples - step * batch_size)
        x_np, y_np = sampler.draw(rng, max(n, 2))  # BatchNorm needs 2 samples
        x = torch.from_numpy(x_np)
        y = torch.from_numpy(y_np)
        if augment:
            x, y = augment_batch(x, y, generator)
            if acquisition_augment:
                x = acquisition_jitter(x, generator)
        x, y = x.to(device), y.to(device)
        logits = network(x)
        loss = F.cross_entropy(logits, y, weight=weight, ignore_index=-1)
        if not torch.isfinite(loss):
            continue  # a batch whose labels all have weight 0
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if averaged is not None:
            averaged.update_parameters(network)
        total += float(loss.detach()) * len(x_np)
        seen += len(x_np)
    return total / max(seen, 1)


def _epoch_message(entry: dict[str, float], epochs: int) -> str:
    """Return the log line of one epoch: training loss, validation scores, seconds."""
    message = f"Epoch {int(entry['epoch'])}/{epochs}: loss {entry['loss']:.4f}"
    if "val_loss" in entry:
        message += (
            f", validation loss {entry['val_loss']:.4f}, OA {entry['val_oa']:.3f}, "
            f"mIoU {entry['val_miou']:.3f}"
        )
    return message + f" ({entry['seconds']:.1f} s)"


def fit_unet(
    scenes: list[Any],
    table: Sequence[ClassInfo],
    count: int,
    block: int,
    *,
    encoder: str,
    encoder_weights: str | None,
    tile_size: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    patience: int,
    class_weighting: bool,
    augment: bool,
    acquisition_augment: bool,
    weight_averaging: str,
    seed: int,
    device: str,
    threads: int | None,
    report: Reporter,
    checkpoint: str | None = None,
) -> tuple[TrainingResult, Any]:
    """Build the U-Net (random or local encoder weights) and train it (progress 5-95 %).

    Returns the :class:`TrainingResult` and the torch device it trained on.
    """
    import torch

    from .device import select_device
    from .networks import build_unet, load_encoder_weights

    if threads:
        torch.set_num_threads(int(threads))
    torch_device, reason = select_device(device)
    report.info(f"Training a U-Net ({encoder}, {count} bands, {len(table)} classes) on {reason}.")
    torch.manual_seed(seed)
    network = build_unet(encoder=encoder, in_channels=count, classes=len(table))
    if encoder_weights:
        skipped = load_encoder_weights(network, encoder_weights)
        if skipped:
            report.warning(
                f"{len(skipped)} encoder weights did not fit and keep their random values "
                f"(e.g. {skipped[0]})."
            )

    def on_epoch(entry: dict[str, float]) -> None:
        report.progress(5.0 + 90.0 * entry["epoch"] / epochs)

    result = train_network(
        network,
        scenes,
        n_classes=len(table),
        tile_size=tile_size,
        block_size=block,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        patience=patience,
        class_weighting=class_weighting,
        augment=augment,
        acquisition_augment=acquisition_augment,
        weight_averaging=weight_averaging,
        seed=seed,
        device=torch_device,
        reporter=report,
        on_epoch=on_epoch,
        checkpoint=checkpoint,
    )
    return result, torch_device


def _evaluate(
    network: torch.nn.Module,
    xs: np.ndarray,
    ys: np.ndarray,
    n_classes: int,
    batch_size: int,
    device: torch.device,
) -> tuple[float, np.ndarray]:
    import torch
    import torch.nn.functional as F

    network.eval()
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    loss_sum, pixels = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(xs), batch_size):
            x = torch.from_numpy(xs[start : start + batch_size]).to(device)
            y = torch.from_numpy(ys[start : start + batch_size]).to(device)
            logits = network(x)
            labelled = y >= 0
            n = int(labelled.sum())
            if n:
                loss_sum += float(F.cross_entropy(logits, y, ignore_index=-1, reduction="sum"))
                pixels += n
            pred = logits.argmax(1)[labelled].cpu().numpy()
            ref = y[labelled].cpu().numpy()
            confusion += np.bincount(ref * n_classes + pred, minlength=n_classes**2).reshape(
                n_classes, n_classes
            )
    return loss_sum / max(pixels, 1), confusion
