"""What a trained U-Net's model file says about it: the training summary and the description.

:func:`training_summary` is the ``training`` entry of the model's metadata (and of the HTML
report); :func:`unet_metadata` the whole description stored next to the weights
(:mod:`core.modelfile`). Both are re-exported by :mod:`core.training`.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from . import __version__
from .classes import ClassInfo, classes_to_json

__all__ = ["training_summary", "unet_metadata"]


def training_summary(
    result: Any,
    *,
    epochs: int,
    device: str,
    counts: dict[int, int],
    table: list[ClassInfo],
    train_data: list[dict[str, Any]],
    validation: str,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Summarise the training for the model's metadata (its ``training`` entry)."""
    best = next(h for h in result.history if h["epoch"] == result.best_epoch)
    return {
        "epochs_run": len(result.history),
        "epochs_max": epochs,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "seconds": round(result.seconds, 1),
        "device": device,
        "val_miou": _finite(best.get("val_miou")),
        "val_oa": _finite(best.get("val_oa")),
        "val_macro_f1": _finite(best.get("val_macro_f1")),
        "train_loss": _finite(best["loss"]),
        "labelled_pixels": {str(c.value): int(counts.get(c.value, 0)) for c in table},
        "inputs": [os.path.basename(d["path"]) for d in train_data],
        "validation": validation,
        **settings,
        "history": [{k: _finite(v) for k, v in h.items()} for h in result.history],
    }


def unet_metadata(
    encoder: str,
    count: int,
    table: list[ClassInfo],
    first: dict[str, Any],
    offsets: np.ndarray,
    scales: np.ndarray,
    *,
    nodata_zero: bool,
    tile_size: int,
    ignore_value: float | None,
    summary: dict[str, Any],
    normalization: str = "training",
    harmonize: bool = False,
) -> dict[str, Any]:
    """Describe the model for its file: architecture, bands, normalisation, classes."""
    return {
        "architecture": "unet",
        "architecture_args": {"encoder": encoder, "in_channels": count, "classes": len(table)},
        "bands": {
            "count": count,
            "indices": first["bands"],
            "names": first["descriptions"],
            "dtypes": first["dtypes"],
        },
        "normalization": {
            "method": "standardize",
            "offsets": [float(v) for v in offsets],
            "scales": [float(v) for v in scales],
            # how prediction rebuilds the inputs (core.acquisition.raster_normalization)
            "mode": normalization,
            "harmonize": harmonize,
        },
        "nodata_zero": nodata_zero,
        "resolution": first["resolution"],
        "crs": first["crs"],
        # Fully convolutional: prediction uses larger tiles than training (more context,
        # fewer seams) and any multiple of 32 works.
        "tile_size": max(256, tile_size),
        "overlap": max(256, tile_size) // 4,
        "classes": classes_to_json(table),
        "ignore_value": ignore_value,
        "training": summary,
        "landseg_version": __version__,
    }


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
