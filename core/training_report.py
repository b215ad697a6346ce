"""Self-contained HTML report of a training run: curves and validation confusion matrix."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, io
from .classes import ClassInfo
from .report import _CSS, _card, _fmt, _img, _key_values, _png, matrix_png

__all__ = ["render_training_html", "write_training_report"]


def _curves(history: Sequence[Mapping[str, float]], best_epoch: int) -> str:
    from matplotlib.figure import Figure

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(epochs, [h["loss"] for h in history], "-o", ms=3, label="training", color="#0072B2")
    if "val_loss" in history[0]:
        ax1.plot(
            epochs,
            [h["val_loss"] for h in history],
            "-o",
            ms=3,
            label="validation",
            color="#E69F00",
        )
        for key, label, color in (
            ("val_miou", "mean IoU", "#009E73"),
            ("val_oa", "overall accuracy", "#CC79A7"),
            ("val_macro_f1", "macro F1", "#56B4E9"),
        ):
            ax2.plot(
                epochs, [h.get(key, np.nan) for h in history], "-o", ms=3, label=label, color=color
            )
        ax2.set_ylim(0, 1)
        ax2.axvline(best_epoch, color="#999", ls="--", lw=1)
        ax2.legend(fontsize=8)
    else:
        ax2.text(0.5, 0.5, "no validation pixels", ha="center", va="center")
    ax1.set_title("Loss (class-weighted cross entropy)", fontsize=10)
    ax2.set_title("Validation metrics", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _confusion(confusion: np.ndarray, labels: list[str]) -> str:
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    return matrix_png(
        share,
        confusion,
        labels,
        labels,
        xlabel="Prediction",
        ylabel="Reference (validation labels)",
        share_label="share of the reference row",
    )


def render_training_html(
    *,
    history: Sequence[Mapping[str, float]],
    best_epoch: int,
    confusion: np.ndarray | None,
    classes: Sequence[ClassInfo],
    inputs: Mapping[str, object],
    parameters: Mapping[str, object],
    title: str = "LandSeg U-Net training",
    held_out: Sequence[str] = (),
) -> str:
    """Render a training run as one HTML page with embedded pictures.

    Parameters
    ----------
    history : sequence of dict
        Per-epoch entries of :class:`core.training.TrainingResult`.
    best_epoch : int
        Epoch whose weights were kept.
    confusion : (K, K) ndarray or None
        Validation confusion matrix of the best epoch (rows reference).
    classes : sequence of ClassInfo
        Classes in index order.
    inputs, parameters : mapping
        Shown as tables.
    held_out : sequence of str
        Names of whole validation images (a held-out date or place): the validation
        metrics are then shown as theirs, in a section of their own.
    """
    best = next((h for h in history if h["epoch"] == best_epoch), history[-1])
    cards = [
        _card(str(best_epoch), "Best epoch", f"of {len(history)} run"),
        _card(_fmt(best["loss"], 4), "Training loss", "at the best epoch"),
    ]
    where = "held-out image" if held_out else "spatially held-out blocks"
    if "val_miou" in best:
        cards += [
            _card(_fmt(best["val_miou"]), "Validation mIoU", where),
            _card(_fmt(best["val_oa"]), "Validation OA", where),
            _card(_fmt(best.get("val_macro_f1", float("nan"))), "Validation macro F1", where),
        ]
    holdout = ""
    if held_out and "val_miou" in best:
        names = ", ".join(html.escape(n) for n in held_out)
        holdout = (
            "<h2>Held-out image</h2><p>Validation used whole images that training never saw "
            f"({names}): these metrics, and early stopping, measure generalisation to an unseen "
            "date or place, not fit.</p>"
            + _key_values(
                {
                    "Images": ", ".join(held_out),
                    "Overall accuracy": _fmt(best["val_oa"]),
                    "Mean IoU": _fmt(best["val_miou"]),
                    "Macro F1": _fmt(best.get("val_macro_f1", float("nan"))),
                    "Epoch": str(best_epoch),
                }
            )
        )
    labels = [c.name for c in classes]
    matrix = ""
    if confusion is not None and confusion.sum() > 0:
        matrix = "<h2>Validation confusion matrix</h2>" + _img(
            _confusion(confusion, labels),
            "Validation confusion matrix",
            "Rows: validation labels; columns: prediction; colour: share of the row (recall); "
            "numbers: pixel counts.",
        )
    swatches = "".join(
        f'<tr><td class="l"><span class="sw" style="background:{html.escape(c.color)}"></span>'
        f"{html.escape(c.name)}</td><td>{c.value}</td></tr>"
        for c in classes
    )
    curves = _img(
        _curves(history, best_epoch),
        "Loss and validation curves",
        "Training and validation loss per epoch, and validation metrics "
        "(dashed line: the epoch kept).",
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>{html.escape(title)}</h1>
<div class="cards">{"".join(cards)}</div>
{holdout}
<h2>Curves</h2>
{curves}
{matrix}
<h2>Classes</h2>
<table><tr><th class="l">class</th><th>value</th></tr>{swatches}</table>
<h2>Inputs</h2>
{_key_values({k: str(v) for k, v in inputs.items()})}
<h2>Parameters</h2>
{_key_values({k: str(v) for k, v in parameters.items()})}
<footer>Made by LandSeg {html.escape(__version__)}.</footer>
</main>
</body>
</html>
"""


def write_training_report(
    path: str,
    result: Any,
    table: list[ClassInfo],
    train_data: list[dict[str, Any]],
    dst_model: str,
    *,
    encoder: str,
    epochs: int,
    summary: dict[str, Any],
    device: str,
    overwrite: bool,
) -> None:
    """Write the HTML training report (curves, confusion matrix, settings)."""
    text = render_training_html(
        history=result.history,
        best_epoch=result.best_epoch,
        confusion=result.confusion,
        classes=table,
        inputs={"Images": ", ".join(d["path"] for d in train_data), "Model": dst_model},
        parameters={
            "Encoder": encoder,
            "Tile size": summary["tile_size"],
            "Epochs (max)": epochs,
            "Batch size": summary["batch_size"],
            "Learning rate": summary["learning_rate"],
            "Early-stopping patience": summary["patience"],
            "Validation": summary["validation"],
            "Class weighting": summary["class_weighting"],
            "Augmentation": summary["augment"],
            "Acquisition augmentation": summary.get("acquisition_augment", False),
            "Weight averaging": summary.get("weight_averaging", "none"),
            "Normalisation": summary.get("normalization", "training"),
            "Sentinel-2 harmonisation": summary.get("harmonize", False),
            "Seed": summary["seed"],
            "Device": device,
        },
        held_out=summary.get("validation_images") or (),
    )
    with io.atomic_output(path, overwrite=overwrite) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
