"""Resumable U-Net training: the whole training state after each epoch, without pickle.

A long CPU training (hours on a large data set) that is interrupted (a reboot, a killed
job) resumes from the last finished epoch and ends with exactly the model an
uninterrupted run gives: the network, the weight average, the optimiser and its schedule,
both random generators, the best epoch so far and the history are saved. The file is a
safetensors file of tensors with a JSON document in its metadata, like the model files
(:mod:`core.modelfile`), so loading a checkpoint can never run code. It is written to a
temporary name and renamed, so an interruption while writing leaves the previous one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TrainingObjects", "load_checkpoint", "save_checkpoint"]

_FORMAT = "landseg-training-checkpoint"
_VERSION = 1


@dataclass(frozen=True)
class TrainingObjects:
    """The live training objects whose state a checkpoint holds.

    Attributes
    ----------
    network : torch.nn.Module
        The trained network.
    averaged : torch.optim.swa_utils.AveragedModel or None
        Its weight average, when one is kept.
    optimizer, scheduler
        The optimiser and its learning-rate schedule (their ``state_dict`` is saved:
        tensors as tensors, the rest as JSON).
    rng : numpy.random.Generator
        Draws the crops.
    generator : torch.Generator
        Draws the augmentation.
    """

    network: Any
    averaged: Any | None
    optimizer: Any
    scheduler: Any
    rng: np.random.Generator
    generator: Any


def _flatten(prefix: str, state: Mapping[str, Any], tensors: dict[str, Any]) -> None:
    for key, value in state.items():
        tensors[f"{prefix}{key}"] = value.detach().cpu().contiguous()


def _unflatten(prefix: str, tensors: Mapping[str, Any]) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def save_checkpoint(
    path: str | os.PathLike[str],
    objects: TrainingObjects,
    *,
    config: Mapping[str, Any],
    progress: Mapping[str, Any],
    best_state: Mapping[str, Any] | None,
    best_confusion: np.ndarray | None,
) -> None:
    """Write the training state after an epoch.

    Parameters
    ----------
    path : path-like
        The checkpoint file (replaced atomically).
    objects : TrainingObjects
        The network, its average, optimiser, schedule and random generators.
    config : mapping
        What must match for a resume (epochs, batch size, seed, data sizes, ...).
    progress : mapping
        JSON-able loop state: ``epoch`` (the last finished one), ``history``,
        ``best_score``, ``best_epoch``, ``stale``, ``seconds``.
    best_state : mapping of str to tensor, optional
        Weights of the best epoch so far.
    best_confusion : (K, K) ndarray, optional
        Its validation confusion matrix.
    """
    import torch
    from safetensors.torch import save_file

    tensors: dict[str, Any] = {}
    _flatten("network.", objects.network.state_dict(), tensors)
    if objects.averaged is not None:
        _flatten("averaged.", objects.averaged.state_dict(), tensors)
    if best_state is not None:
        _flatten("best.", best_state, tensors)
    if best_confusion is not None:
        tensors["best_confusion"] = torch.from_numpy(np.ascontiguousarray(best_confusion))
    opt = objects.optimizer.state_dict()
    for index, slots in opt["state"].items():
        for name, value in slots.items():
            if not torch.is_tensor(value):
                raise TypeError(f"Optimizer state {name!r} is not a tensor; cannot checkpoint it.")
            tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
    tensors["generator"] = objects.generator.get_state()
    tensors["torch_rng"] = torch.get_rng_state()
    document = {
        "format": _FORMAT,
        "version": _VERSION,
        "config": dict(config),
        "progress": dict(progress),
        "optimizer_groups": opt["param_groups"],
        "scheduler": objects.scheduler.state_dict(),
        "rng": objects.rng.bit_generator.state,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    save_file(tensors, str(partial), metadata={"landseg": json.dumps(document)})
    os.replace(partial, target)


def load_checkpoint(
    path: str | os.PathLike[str],
    objects: TrainingObjects,
    *,
    config: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any] | None, np.ndarray | None]:
    """Restore what :func:`save_checkpoint` wrote into fresh training objects.

    Parameters
    ----------
    path : path-like
        The checkpoint file.
    objects : TrainingObjects
        Freshly built training objects, loaded in place.
    config : mapping
        The settings of this run; each must equal the saved one.

    Returns
    -------
    progress : dict
        The loop state saved with it.
    best_state : dict of str to tensor or None
    best_confusion : ndarray or None

    Raises
    ------
    ValueError
        When the file is not a checkpoint, or was written for other settings or data
        (naming the difference: delete the checkpoint to start afresh).
    """
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    try:
        document = json.loads(meta["landseg"])
        if document["format"] != _FORMAT:
            raise KeyError("format")
    except (KeyError, ValueError) as err:
        raise ValueError(
            f"{path} is not a LandSeg training checkpoint; delete it or choose another path."
        ) from err
    saved = document["config"]
    wanted = json.loads(json.dumps(dict(config)))
    changed = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} then, {wanted.get(k)!r} now" for k in changed)
        raise ValueError(
            f"The checkpoint {path} was written for other settings or data ({details}); "
            "train with the same ones to resume, or delete it to start afresh."
        )
    tensors = load_file(str(path))
    try:
        objects.network.load_state_dict(_unflatten("network.", tensors))
    except RuntimeError as err:  # another encoder, band count or class count
        raise ValueError(
            f"The checkpoint {path} was written for another network ({str(err).splitlines()[0]}); "
            "train with the same encoder, bands and classes to resume, or delete it."
        ) from err
    if objects.averaged is not None:
        objects.averaged.load_state_dict(_unflatten("averaged.", tensors))
    state: dict[int, dict[str, Any]] = {}
    for key, value in _unflatten("optimizer.", tensors).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = document["optimizer_groups"]
    objects.optimizer.load_state_dict({"state": state, "param_groups": groups})
    objects.scheduler.load_state_dict(document["scheduler"])
    objects.rng.bit_generator.state = document["rng"]
    objects.generator.set_state(tensors["generator"])
    torch.set_rng_state(tensors["torch_rng"])
    best = _unflatten("best.", tensors) or None
    confusion = tensors.get("best_confusion")
    return (
        document["progress"],
        best,
        None if confusion is None else confusion.numpy(),
    )
