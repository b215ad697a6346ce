"""Self-contained HTML report of an accuracy assessment.

One HTML file with no external resource (no CDN, no script): headline numbers, a
confusion-matrix heatmap and per-class bar charts as embedded PNG pictures drawn with
matplotlib's Agg renderer (no pyplot, no display), the per-class table, the
cluster-to-class mapping in cluster mode, and the inputs and parameters used.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from . import __version__
from .metrics import AccuracyResult

__all__ = ["render_html"]

#: Colours accepted in ``class_colors`` (also written into CSS, so nothing else passes).
_COLOR = re.compile(r"^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,20})$")
#: Colours of the four per-class metrics in the bar chart (Okabe-Ito, colour-blind safe).
_METRIC_COLORS = {"precision": "#0072B2", "recall": "#E69F00", "f1": "#009E73", "iou": "#CC79A7"}
_METRIC_LABELS = {
    "precision": "Precision (user's acc.)",
    "recall": "Recall (producer's acc.)",
    "f1": "F1",
    "iou": "IoU",
}
#: Largest matrix whose cells get their count written in the heatmap.
_MAX_ANNOTATED = 25

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;
background:#f5f6f8;color:#1d2330;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.2em;margin:28px 0 10px;
border-bottom:1px solid #d8dce3;padding-bottom:4px}
.sub{color:#5b6475;margin:0 0 18px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);
padding:12px 18px;min-width:130px;flex:1}
.card .v{font-size:1.9em;font-weight:600}.card .k{color:#5b6475;font-size:.9em}
.card .h{color:#8a92a3;font-size:.78em}
figure{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);
margin:0 0 16px;padding:12px;text-align:center}
figure img{max-width:100%;height:auto}figcaption{color:#5b6475;font-size:.88em}
table{border-collapse:collapse;background:#fff;margin:0 0 12px;font-size:.92em}
th,td{border:1px solid #d8dce3;padding:4px 9px;text-align:right}
th{background:#eef0f4}td.l,th.l{text-align:left}
tr.avg td{background:#f7f8fa;font-style:italic}
.sw{display:inline-block;width:12px;height:12px;border:1px solid #888;
vertical-align:middle;margin-right:6px}
details{margin:0 0 12px}summary{cursor:pointer;color:#2c5aa0}
.note{color:#5b6475;font-size:.88em}
footer{color:#8a92a3;font-size:.8em;margin-top:30px}
"""


def _fmt(value: float, digits: int = 3) -> str:
    value = float(value)
    return "—" if not math.isfinite(value) else f"{value:.{digits}f}"


def _count(value: int) -> str:
    return f"{int(value):,}"


def _short_count(value: int) -> str:
    value = int(value)
    for limit, unit, suffix in (
        (1_000_000_000, 1e9, "G"),
        (1_000_000, 1e6, "M"),
        (10_000, 1e3, "k"),
    ):
        if value >= limit:
            return f"{value / unit:.3g}{suffix}"
    return str(value)


def _label(value: int, class_names: Mapping[int, str] | None) -> str:
    if class_names is not None and int(value) in class_names:
        return str(class_names[int(value)])
    return str(int(value))


def _short(text: str, width: int = 18) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _png(fig: object) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})  # type: ignore[attr-defined]
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(data: str, alt: str, caption: str) -> str:
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def matrix_png(
    share: np.ndarray,
    counts: np.ndarray,
    col_labels: Sequence[str],
    row_labels: Sequence[str],
    *,
    xlabel: str,
    ylabel: str,
    share_label: str,
) -> str:
    """Draw a normalized matrix as a heatmap with the counts in the cells (base64 PNG)."""
    from matplotlib.figure import Figure

    n_rows, n_cols = share.shape
    fig = Figure(figsize=(min(16, 2.8 + 0.62 * n_cols), min(14, 2.2 + 0.5 * n_rows)))
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label=share_label)
    ax.set_xticks(range(n_cols), [_short(t) for t in col_labels], rotation=45, ha="right")
    ax.set_yticks(range(n_rows), [_short(t) for t in row_labels])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if max(n_rows, n_cols) <= _MAX_ANNOTATED:
        size = 9 if max(n_rows, n_cols) <= 10 else 7
        for i in range(n_rows):
            for j in range(n_cols):
                ax.text(
                    j,
                    i,
                    _short_count(counts[i, j]),
                    ha="center",
                    va="center",
                    fontsize=size,
                    color="white" if share[i, j] > 0.55 else "#1d2330",
                )
    fig.tight_layout()
    return _png(fig)


def _heatmap(result: AccuracyResult, labels: list[str]) -> str:
    """Draw the row-normalized confusion matrix, counts written in the cells (base64 PNG)."""
    matrix = result.confusion_row_normalized
    counts = result.confusion
    row_labels = list(labels)
    if result.mode == "clusters" and result.unmatched.any():
        total = result.unmatched.sum()
        matrix = np.vstack([matrix, result.unmatched / total])
        counts = np.vstack([counts, result.unmatched])
        row_labels.append("unmatched")
    return matrix_png(
        matrix,
        counts,
        labels,
        row_labels,
        xlabel="Reference",
        ylabel="Prediction",
        share_label="share of the predicted row",
    )


def _bars(result: AccuracyResult, labels: list[str], class_colors: Mapping[int, str] | None) -> str:
    """Draw grouped bars of precision, recall, F1 and IoU per class (base64 PNG)."""
    from matplotlib.colors import is_color_like
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    k = len(labels)
    fig = Figure(figsize=(min(18, 3.0 + 0.75 * k), 4.2))
    ax = fig.add_subplot()
    x = np.arange(k)
    width = 0.2
    for m, (key, color) in enumerate(_METRIC_COLORS.items()):
        values = np.nan_to_num(getattr(result, key), nan=0.0)
        ax.bar(x + (m - 1.5) * width, values, width, color=color, label=_METRIC_LABELS[key])
    ax.set_xticks(x, [_short(t) for t in labels], rotation=30 if k > 6 else 0, ha="right")
    if k <= 6:
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("center")
    ax.set_ylim(0, 1.0)
    ax.set_xlim(-0.6, k - 0.4)
    ax.set_ylabel("score")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if class_colors:
        ax.tick_params(axis="x", pad=9)
        for i, value in enumerate(result.classes):
            bar_color = class_colors.get(int(value))
            if bar_color is not None and is_color_like(bar_color):
                ax.add_patch(
                    Rectangle(
                        (i - 0.42, -0.045),
                        0.84,
                        0.03,
                        facecolor=bar_color,
                        edgecolor="#555",
                        linewidth=0.5,
                        clip_on=False,
                    )
                )
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def _swatch(value: int, class_colors: Mapping[int, str] | None) -> str:
    if not class_colors:
        return ""
    color = class_colors.get(int(value))
    if color is None or not _COLOR.match(str(color)):
        return ""
    return f'<span class="sw" style="background:{html.escape(str(color))}"></span>'


def _card(value: str, key: str, hint: str) -> str:
    return (
        f'<div class="card"><div class="v">{value}</div><div class="k">{key}</div>'
        f'<div class="h">{hint}</div></div>'
    )


def _key_values(items: Mapping[str, object]) -> str:
    if not items:
        return '<p class="note">None given.</p>'
    rows = "".join(
        f'<tr><th class="l">{html.escape(str(k))}</th><td class="l">{html.escape(str(v))}</td></tr>'
        for k, v in items.items()
    )
    return f"<table>{rows}</table>"


def _class_table(
    result: AccuracyResult,
    class_names: Mapping[int, str] | None,
    class_colors: Mapping[int, str] | None,
) -> str:
    head = (
        '<tr><th class="l">Class</th><th class="l">Name</th><th>Precision<br>(user\'s)</th>'
        "<th>Recall<br>(producer's)</th><th>F1</th><th>IoU</th><th>Support<br>(reference px)</th>"
        "<th>Predicted px</th></tr>"
    )
    rows = []
    for k, value in enumerate(result.classes):
        name = "" if class_names is None else str(class_names.get(int(value), ""))
        rows.append(
            f'<tr><td class="l">{_swatch(value, class_colors)}{int(value)}</td>'
            f'<td class="l">{html.escape(name)}</td>'
            f"<td>{_fmt(result.precision[k])}</td><td>{_fmt(result.recall[k])}</td>"
            f"<td>{_fmt(result.f1[k])}</td><td>{_fmt(result.iou[k])}</td>"
            f"<td>{_count(result.support[k])}</td><td>{_count(result.predicted[k])}</td></tr>"
        )
    for title, avg in (("Macro average", result.macro), ("Weighted average", result.weighted)):
        rows.append(
            f'<tr class="avg"><td class="l" colspan="2">{title}</td>'
            f"<td>{_fmt(avg['precision'])}</td><td>{_fmt(avg['recall'])}</td>"
            f"<td>{_fmt(avg['f1'])}</td><td>{_fmt(avg['iou'])}</td>"
            f"<td>{_count(result.support.sum())}</td><td>{_count(result.predicted.sum())}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _confusion_table(result: AccuracyResult, labels: list[str]) -> str:
    head = '<tr><th class="l">prediction \\ reference</th>' + "".join(
        f"<th>{html.escape(t)}</th>" for t in labels
    )
    head += "<th>Total</th></tr>"
    rows = []
    matrix_rows = list(zip(labels, result.confusion, strict=True))
    if result.mode == "clusters" and result.unmatched.any():
        matrix_rows.append(("unmatched", result.unmatched))
    for label, row in matrix_rows:
        cells = "".join(f"<td>{_count(x)}</td>" for x in row)
        rows.append(
            f'<tr><th class="l">{html.escape(label)}</th>{cells}<td>{_count(row.sum())}</td></tr>'
        )
    totals = "".join(f"<td>{_count(x)}</td>" for x in result.support)
    rows.append(
        f'<tr class="avg"><th class="l">Total</th>{totals}<td>{_count(result.n_pixels)}</td></tr>'
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _mapping_table(result: AccuracyResult, class_names: Mapping[int, str] | None) -> str:
    assert result.mapping is not None
    pred, ref, counts = result.contingency
    rows = []
    for i, cluster in enumerate(pred):
        target = result.mapping[int(cluster)]
        pixels = int(counts[i].sum())
        if target is None:
            rows.append(
                f'<tr><td>{int(cluster)}</td><td class="l"><i>unmatched</i></td>'
                f"<td>{_count(pixels)}</td><td>—</td><td>—</td></tr>"
            )
            continue
        agree = int(counts[i, np.searchsorted(ref, target)])
        name = _label(target, class_names)
        shown = html.escape(name if name == str(target) else f"{target} {name}")
        purity = _fmt(agree / pixels) if pixels else "—"
        rows.append(
            f'<tr><td>{int(cluster)}</td><td class="l">{shown}</td><td>{_count(pixels)}</td>'
            f"<td>{_count(agree)}</td><td>{purity}</td></tr>"
        )
    head = (
        '<tr><th>Cluster</th><th class="l">Class</th><th>Pixels</th>'
        "<th>Pixels of that class</th><th>Share</th></tr>"
    )
    method = (
        "one-to-one Hungarian assignment maximizing agreeing pixels (Kuhn, 1955)"
        if result.assignment == "hungarian"
        else "many-to-one: each cluster to its majority class"
    )
    n_unmatched = sum(1 for v in result.mapping.values() if v is None)
    note = f"{len(result.mapping)} clusters mapped by {method}"
    if n_unmatched:
        note += (
            f"; {n_unmatched} unmatched cluster(s) (more clusters than classes) count as "
            "errors for every class"
        )
    table = f"<table>{head}{''.join(rows)}</table>"
    opened = " open" if len(rows) <= 50 else ""
    return (
        f'<p class="note">{html.escape(note)}.</p>'
        f"<details{opened}><summary>Mapping of the {len(rows)} clusters</summary>{table}</details>"
    )


def render_html(
    result: AccuracyResult,
    *,
    title: str = "LandSeg accuracy assessment",
    inputs: Mapping[str, str] | None = None,
    parameters: Mapping[str, object] | None = None,
    class_names: Mapping[int, str] | None = None,
    class_colors: Mapping[int, str] | None = None,
) -> str:
    """Render an accuracy assessment as one self-contained HTML page.

    Parameters
    ----------
    result : AccuracyResult
        Result of :func:`core.metrics.assess_accuracy`.
    title : str
        Page title and heading.
    inputs : dict of str to str, optional
        What was compared (for example ``{"Prediction": path, "Reference": path}``).
    parameters : dict of str to object, optional
        Settings used, shown with ``str()``.
    class_names : dict of int to str, optional
        Names of the class values, used on the axes and in the tables.
    class_colors : dict of int to str, optional
        Colours of the class values (``#rrggbb`` or a colour name), shown as swatches.

    Returns
    -------
    str
        The HTML document. Pictures are embedded as ``data:image/png;base64`` URIs;
        every user-supplied string is escaped.
    """
    labels = [_label(v, class_names) for v in result.classes]
    cards = "".join(
        [
            _card(
                _fmt(result.overall_accuracy),
                "Overall accuracy",
                f"{_count(round(result.overall_accuracy * result.n_pixels))} of "
                f"{_count(result.n_pixels)} px",
            ),
            _card(_fmt(result.kappa), "Cohen's kappa", "agreement beyond chance"),
            _card(_fmt(result.mean_iou), "Mean IoU", "macro Jaccard"),
            _card(_fmt(result.macro["f1"]), "Macro F1", "mean over classes"),
            _card(
                _fmt(result.adjusted_rand_index),
                "Adjusted Rand index",
                f"Rand index {_fmt(result.rand_index)}",
            ),
        ]
    )
    if result.mode == "clusters":
        how = "Hungarian one-to-one" if result.assignment == "hungarian" else "majority many-to-one"
        mode_text = f"Cluster mode: clusters mapped to reference classes ({how})."
    else:
        mode_text = "Class mode: prediction and reference classes matched by value."
    heatmap = _img(
        _heatmap(result, labels),
        "Confusion matrix heatmap",
        "Confusion matrix: rows are predicted classes, columns reference classes; colour is the "
        "share of the row (diagonal = precision), numbers are pixel counts.",
    )
    bars = _img(
        _bars(result, labels, class_colors),
        "Per-class precision, recall, F1 and IoU",
        "Per-class precision (user's accuracy), recall (producer's accuracy), F1 and IoU.",
    )
    mapping = ""
    if result.mapping is not None:
        mapping = "<h2>Cluster → class mapping</h2>" + _mapping_table(result, class_names)
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
<p class="sub">{_count(result.n_pixels)} pixels assessed · {len(labels)} classes ·
{html.escape(mode_text)}</p>
<div class="cards">{cards}</div>
<h2>Confusion matrix</h2>
{heatmap}
<details><summary>Confusion matrix as a table (pixel counts)</summary>
{_confusion_table(result, labels)}</details>
<h2>Per-class accuracy</h2>
{bars}
{_class_table(result, class_names, class_colors)}
<p class="note">Weighted averages are weighted by support. Kappa: Cohen (1960).
Rand index and adjusted Rand index: Hubert &amp; Arabie (1985), computed on the
prediction values as they are, before any mapping.</p>
{mapping}
<h2>Inputs</h2>
{_key_values(inputs or {})}
<h2>Parameters</h2>
{_key_values(parameters or {})}
<footer>Made by LandSeg {html.escape(__version__)}.</footer>
</main>
</body>
</html>
"""
