"""Accuracy of a land-cover map against a reference: one contingency table, every metric.

Everything here is computed from a single contingency table (prediction values x
reference values) that :class:`~core.contingency.ConfusionAccumulator` fills window by
window, so rasters larger than memory can be assessed. Two ways of reading the table:

``mode="classes"``
    The prediction holds the same class codes as the reference (a classification).
    Classes are the union of the values on both sides, matched by value.
``mode="clusters"``
    The prediction holds arbitrary cluster or segment ids (unsupervised segmentation).
    Each cluster is mapped to a reference class, one-to-one by the Hungarian
    algorithm (Kuhn, 1955) or many-to-one to its majority class, and the class
    metrics are computed on the remapped table.

The Rand index and the adjusted Rand index (Hubert & Arabie, 1985) do not depend on
label values; they are computed from the table as it is, in both modes.

Conventions: rows are prediction values, columns are reference values. Precision is
the user's accuracy, recall the producer's accuracy, support the number of reference
pixels of a class.

References
----------
.. [1] J. Cohen, "A coefficient of agreement for nominal scales", *Educational and
   Psychological Measurement* 20(1), 37-46, 1960.
.. [2] L. Hubert and P. Arabie, "Comparing partitions", *Journal of Classification*
   2(1), 193-218, 1985.
.. [3] H. W. Kuhn, "The Hungarian method for the assignment problem", *Naval Research
   Logistics Quarterly* 2(1-2), 83-97, 1955.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from .contingency import ConfusionAccumulator, ContingencyTable

__all__ = [
    "ASSIGNMENTS",
    "MODES",
    "AccuracyResult",
    "assess_accuracy",
    "confusion_csv",
    "match_clusters",
    "rand_indices",
    "to_json_dict",
    "write_confusion_csv",
]

#: How the prediction relates to the reference.
MODES = ("classes", "clusters")
#: How clusters are mapped to reference classes in ``mode="clusters"``.
ASSIGNMENTS = ("hungarian", "majority")

_NO_VALID_PIXEL = (
    "No pixel is valid in both rasters after ignoring nodata and ignored values; "
    "check IGNORE_VALUE / nodata / overlap (do the two rasters cover the same area?)."
)


def _comb2(values: Iterable[int]) -> int:
    """Sum of n (n - 1) / 2 over the values, exactly (Python integers)."""
    return sum(n * (n - 1) // 2 for n in (int(v) for v in values))


def rand_indices(counts: np.ndarray) -> tuple[float, float]:
    """Rand index and adjusted Rand index of two labelings from their contingency table.

    Pair counts are computed with exact Python integers, so tables of billions of
    pixels neither overflow nor lose precision (n (n - 1) / 2 exceeds int64 beyond
    about 4.3e9 pixels). The results equal ``sklearn.metrics.rand_score`` and
    ``adjusted_rand_score``, including their conventions for degenerate labelings
    (both 1.0 when the two partitions are identical in pair terms).

    Parameters
    ----------
    counts : (P, R) int array_like
        Contingency table; label values do not matter.

    Returns
    -------
    rand_index : float
        Fraction of pixel pairs on which both labelings agree (same/same or
        different/different), in [0, 1].
    adjusted_rand_index : float
        Rand index corrected for chance (Hubert & Arabie, 1985): 0 for random
        labelings, 1 for identical partitions, at least -0.5.

    Raises
    ------
    ValueError
        If the table is empty.
    """
    counts = np.asarray(counts)
    n = int(counts.sum())
    if n == 0:
        raise ValueError(_NO_VALID_PIXEL)
    same_both = _comb2(counts.ravel())
    same_pred = _comb2(counts.sum(axis=1))
    same_ref = _comb2(counts.sum(axis=0))
    pairs = n * (n - 1) // 2
    # Pair confusion matrix, as in sklearn.metrics.cluster.pair_confusion_matrix.
    tp = same_both
    fp = same_pred - same_both
    fn = same_ref - same_both
    tn = pairs - same_pred - same_ref + same_both
    ri = 1.0 if pairs == 0 else (tp + tn) / pairs
    if fn == 0 and fp == 0:
        return ri, 1.0
    ari = 2 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))
    return ri, ari


def match_clusters(
    table: ContingencyTable, *, assignment: str = "hungarian"
) -> dict[int, int | None]:
    """Map prediction clusters to reference classes.

    Parameters
    ----------
    table : ContingencyTable
        Rows are clusters, columns reference classes.
    assignment : {"hungarian", "majority"}
        ``"hungarian"``: one-to-one assignment maximizing the pixels on which cluster
        and class agree (Kuhn, 1955; ``scipy.optimize.linear_sum_assignment``). With
        more clusters than classes, the extra clusters stay unmatched (``None``);
        with fewer, some classes get no cluster. ``"majority"``: many-to-one, each
        cluster to the class it overlaps most (ties: the smallest class value).

    Returns
    -------
    dict of int to int or None
        Class value for every cluster value; ``None`` for an unmatched cluster.
    """
    from scipy.optimize import linear_sum_assignment

    pred, ref, counts = table
    if assignment == "majority":
        best = counts.argmax(axis=1)
        return {int(p): int(ref[j]) for p, j in zip(pred, best, strict=True)}
    if assignment != "hungarian":
        raise ValueError(
            f"Unknown cluster assignment {assignment!r}: use one of {', '.join(ASSIGNMENTS)}."
        )
    mapping: dict[int, int | None] = {int(p): None for p in pred}
    if counts.size:
        rows, cols = linear_sum_assignment(counts.astype(np.float64), maximize=True)
        for i, j in zip(rows, cols, strict=True):
            mapping[int(pred[i])] = int(ref[j])
    return mapping


@dataclass(frozen=True)
class AccuracyResult:
    """Every accuracy metric of one assessment (see :func:`assess_accuracy`).

    Per-class arrays follow ``classes``. A ratio whose denominator is 0 (precision
    of a class never predicted, recall of a class absent from the reference) is
    ``zero_division`` (0.0 by default, as scikit-learn).

    Attributes
    ----------
    mode : {"classes", "clusters"}
        How the prediction was read.
    assignment : str or None
        ``"hungarian"`` or ``"majority"`` in cluster mode, None in class mode.
    classes : (K,) int64 ndarray
        Class values: rows and columns of ``confusion``. Class mode: union of the
        prediction and reference values. Cluster mode: the reference values.
    confusion : (K, K) int64 ndarray
        Confusion matrix, rows = predicted class, columns = reference class.
    unmatched : (K,) int64 ndarray
        Cluster mode: reference pixels of each class that fell in unmatched clusters
        (an extra prediction row, "unmatched"). Zeros otherwise.
    confusion_row_normalized : (K, K) float64 ndarray
        ``confusion`` divided by its row sums (diagonal = precision); 0 for empty rows.
    confusion_col_normalized : (K, K) float64 ndarray
        ``confusion`` divided by ``support`` (diagonal = recall); 0 for empty columns.
    n_pixels : int
        Pixels assessed.
    overall_accuracy : float
        Fraction of pixels on the diagonal.
    kappa : float
        Cohen's kappa (Cohen, 1960); NaN when chance agreement is 1 (one class only).
    precision, recall, f1, iou : (K,) float64 ndarray
        Per class: user's accuracy, producer's accuracy, F1 score, intersection over
        union (Jaccard index).
    support : (K,) int64 ndarray
        Reference pixels per class.
    predicted : (K,) int64 ndarray
        Predicted pixels per class.
    macro : dict of str to float
        Unweighted means over classes of ``precision``, ``recall``, ``f1``, ``iou``.
    weighted : dict of str to float
        Means weighted by ``support``, same keys.
    mean_iou : float
        ``macro["iou"]``.
    rand_index, adjusted_rand_index : float
        Computed on ``contingency`` (label-free; Hubert & Arabie, 1985).
    contingency : ContingencyTable
        The table the metrics come from (cluster ids x reference values in cluster mode).
    mapping : dict of int to int or None, or None
        Cluster mode: class value per cluster value, None for unmatched clusters.
    """

    mode: str
    assignment: str | None
    classes: np.ndarray
    confusion: np.ndarray
    unmatched: np.ndarray
    confusion_row_normalized: np.ndarray
    confusion_col_normalized: np.ndarray
    n_pixels: int
    overall_accuracy: float
    kappa: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    iou: np.ndarray
    support: np.ndarray
    predicted: np.ndarray
    macro: dict[str, float]
    weighted: dict[str, float]
    mean_iou: float
    rand_index: float
    adjusted_rand_index: float
    contingency: ContingencyTable
    mapping: dict[int, int | None] | None


def _ratio(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    out = np.full(num.shape, zero_division, np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _mean(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean that skips NaN (zero_division=nan), as scikit-learn's averages do."""
    keep = ~np.isnan(values)
    if weights is not None:
        keep &= weights > 0
    if not keep.any():
        return math.nan
    return float(np.average(values[keep], weights=None if weights is None else weights[keep]))


def assess_accuracy(
    table: ContingencyTable | ConfusionAccumulator,
    *,
    mode: str = "classes",
    assignment: str = "hungarian",
    zero_division: float = 0.0,
) -> AccuracyResult:
    """Compute every accuracy metric from a contingency table.

    Parameters
    ----------
    table : ContingencyTable or ConfusionAccumulator
        Counts of (prediction value, reference value) pairs.
    mode : {"classes", "clusters"}
        ``"classes"``: prediction and reference share class codes, matched by value.
        ``"clusters"``: prediction values are cluster ids, mapped to classes first
        (see :func:`match_clusters`).
    assignment : {"hungarian", "majority"}
        Cluster-to-class mapping in cluster mode (ignored in class mode).
    zero_division : float
        Value of a per-class ratio whose denominator is 0 (0.0 or NaN; NaN values
        are left out of the averages).

    Returns
    -------
    AccuracyResult
        Confusion matrices, overall accuracy, kappa, per-class and averaged
        precision / recall / F1 / IoU, Rand indices, and the cluster mapping.

    Raises
    ------
    ValueError
        If no pixel was counted, or in class mode if prediction and reference have no
        class value in common.
    """
    if isinstance(table, ConfusionAccumulator):
        table = table.table
    pred, ref, counts = (np.asarray(a, np.int64) for a in table)
    n = int(counts.sum())
    if n == 0:
        raise ValueError(_NO_VALID_PIXEL)
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}: use one of {', '.join(MODES)}.")
    # Drop empty rows and columns (values seen only in ignored pixels of a merged table).
    rows, cols = counts.any(axis=1), counts.any(axis=0)
    pred, ref, counts = pred[rows], ref[cols], counts[np.ix_(rows, cols)]
    table = ContingencyTable(pred, ref, counts)

    mapping: dict[int, int | None] | None = None
    if mode == "classes":
        if np.intersect1d(pred, ref).size == 0:
            raise ValueError(
                f"The prediction (values {_values_text(pred)}) and the reference (values "
                f"{_values_text(ref)}) have no class value in common: if the prediction "
                "holds cluster or segment ids, use the cluster mode, which maps clusters "
                "to classes."
            )
        classes = np.union1d(pred, ref)
        confusion = np.zeros((classes.size, classes.size), np.int64)
        confusion[np.ix_(np.searchsorted(classes, pred), np.searchsorted(classes, ref))] = counts
        unmatched = np.zeros(classes.size, np.int64)
        assignment_used = None
    else:
        mapping = match_clusters(table, assignment=assignment)
        classes = ref.copy()
        confusion = np.zeros((classes.size, classes.size), np.int64)
        targets = [mapping[int(c)] for c in pred]
        matched = np.array([t is not None for t in targets], bool)
        unmatched = counts[~matched].sum(axis=0)
        rows_of = np.searchsorted(
            classes, np.array([t for t in targets if t is not None], np.int64)
        )
        np.add.at(confusion, rows_of, counts[matched])
        assignment_used = assignment

    tp = np.diag(confusion).copy()
    predicted = confusion.sum(axis=1)
    support = confusion.sum(axis=0) + unmatched
    precision = _ratio(tp, predicted, zero_division)
    recall = _ratio(tp, support, zero_division)
    f1 = _ratio(2 * tp, predicted + support, zero_division)
    iou = _ratio(tp, predicted + support - tp, zero_division)

    n_f = float(n)
    p_observed = tp.sum() / n_f
    p_chance = float(np.sum(predicted.astype(np.float64) * support.astype(np.float64))) / n_f**2
    kappa = math.nan if p_chance >= 1.0 else (p_observed - p_chance) / (1.0 - p_chance)

    per_class = {"precision": precision, "recall": recall, "f1": f1, "iou": iou}
    macro = {key: _mean(values) for key, values in per_class.items()}
    weighted = {key: _mean(values, support.astype(np.float64)) for key, values in per_class.items()}
    ri, ari = rand_indices(counts)
    return AccuracyResult(
        mode=mode,
        assignment=assignment_used,
        classes=classes.astype(np.int64),
        confusion=confusion,
        unmatched=unmatched,
        confusion_row_normalized=_ratio(confusion, predicted[:, None], 0.0),
        confusion_col_normalized=_ratio(confusion, support[None, :], 0.0),
        n_pixels=n,
        overall_accuracy=float(p_observed),
        kappa=float(kappa),
        precision=precision,
        recall=recall,
        f1=f1,
        iou=iou,
        support=support,
        predicted=predicted,
        macro=macro,
        weighted=weighted,
        mean_iou=macro["iou"],
        rand_index=float(ri),
        adjusted_rand_index=float(ari),
        contingency=table,
        mapping=mapping,
    )


def _values_text(values: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return shown + (f", … ({values.size} values)" if values.size > limit else "")


def _float(value: float) -> float | None:
    """JSON has no NaN: undefined values become null."""
    value = float(value)
    return value if math.isfinite(value) else None


def _name(value: int, class_names: Mapping[int, str] | None) -> str | None:
    if class_names is None:
        return None
    name = class_names.get(int(value))
    return None if name is None else str(name)


def to_json_dict(
    result: AccuracyResult, *, class_names: Mapping[int, str] | None = None
) -> dict[str, Any]:
    """Every metric as plain JSON types (``json.dumps`` works on the result as it is).

    Parameters
    ----------
    result : AccuracyResult
        Result of :func:`assess_accuracy`.
    class_names : dict of int to str, optional
        Names of class values, copied beside the values.

    Returns
    -------
    dict
        Keys: ``mode``, ``assignment``, ``n_pixels``, ``overall_accuracy``, ``kappa``,
        ``mean_iou``, ``rand_index``, ``adjusted_rand_index``, ``macro`` and
        ``weighted`` (dicts of precision / recall / f1 / iou), ``classes`` (one dict
        per class: ``value`` int, ``name`` str or null, ``precision``, ``recall``,
        ``f1``, ``iou``, ``support``, ``predicted``), ``confusion_matrix`` (``rows``
        and ``columns`` descriptions, ``labels`` int list, ``names``, ``counts``,
        ``row_normalized``, ``col_normalized`` nested lists, ``unmatched`` list or
        null), ``contingency`` (``prediction_values``, ``reference_values``,
        ``counts``) and ``mapping`` (cluster mode: list of dicts ``cluster``,
        ``class`` int or null, ``name``, ``pixels``, ``agreeing_pixels``; null in
        class mode). Undefined numbers (NaN) are null.
    """
    classes = [int(v) for v in result.classes]
    names = [_name(v, class_names) for v in classes]
    per_class = [
        {
            "value": v,
            "name": names[k],
            "precision": _float(result.precision[k]),
            "recall": _float(result.recall[k]),
            "f1": _float(result.f1[k]),
            "iou": _float(result.iou[k]),
            "support": int(result.support[k]),
            "predicted": int(result.predicted[k]),
        }
        for k, v in enumerate(classes)
    ]
    mapping = None
    if result.mapping is not None:
        mapping = [
            {
                "cluster": cluster,
                "class": target,
                "name": None if target is None else _name(target, class_names),
                "pixels": pixels,
                "agreeing_pixels": agree,
            }
            for cluster, target, pixels, agree in _mapping_rows(result)
        ]
    pred, ref, counts = result.contingency
    return {
        "mode": result.mode,
        "assignment": result.assignment,
        "n_pixels": int(result.n_pixels),
        "overall_accuracy": _float(result.overall_accuracy),
        "kappa": _float(result.kappa),
        "mean_iou": _float(result.mean_iou),
        "rand_index": _float(result.rand_index),
        "adjusted_rand_index": _float(result.adjusted_rand_index),
        "macro": {k: _float(v) for k, v in result.macro.items()},
        "weighted": {k: _float(v) for k, v in result.weighted.items()},
        "classes": per_class,
        "confusion_matrix": {
            "rows": "prediction",
            "columns": "reference",
            "labels": classes,
            "names": names,
            "counts": result.confusion.tolist(),
            "row_normalized": [[_float(x) for x in row] for row in result.confusion_row_normalized],
            "col_normalized": [[_float(x) for x in row] for row in result.confusion_col_normalized],
            "unmatched": result.unmatched.tolist() if result.mode == "clusters" else None,
        },
        "contingency": {
            "prediction_values": pred.tolist(),
            "reference_values": ref.tolist(),
            "counts": counts.tolist(),
        },
        "mapping": mapping,
    }


def _mapping_rows(result: AccuracyResult) -> list[tuple[int, int | None, int, int]]:
    """(cluster, class or None, cluster pixels, pixels where the class agrees) per cluster."""
    assert result.mapping is not None
    pred, ref, counts = result.contingency
    rows = []
    for i, cluster in enumerate(pred):
        target = result.mapping[int(cluster)]
        agree = 0 if target is None else int(counts[i, np.searchsorted(ref, target)])
        rows.append((int(cluster), target, int(counts[i].sum()), agree))
    return rows


def _label(value: int, class_names: Mapping[int, str] | None) -> str:
    name = _name(value, class_names)
    return str(int(value)) if name is None else name


def confusion_csv(result: AccuracyResult, *, class_names: Mapping[int, str] | None = None) -> str:
    r"""Format the confusion matrix (pixel counts) as CSV text.

    Parameters
    ----------
    result : AccuracyResult
        Result of :func:`assess_accuracy`.
    class_names : dict of int to str, optional
        Names used instead of the class values in the header and first column.

    Returns
    -------
    str
        First row: ``prediction \ reference`` then the reference classes; then one
        row per predicted class (its label, then counts), plus an ``unmatched`` row in
        cluster mode when some clusters are unmatched.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    labels = [_label(v, class_names) for v in result.classes]
    writer.writerow(["prediction \\ reference", *labels])
    for label, row in zip(labels, result.confusion, strict=True):
        writer.writerow([label, *(int(x) for x in row)])
    if result.mode == "clusters" and result.unmatched.any():
        writer.writerow(["unmatched", *(int(x) for x in result.unmatched)])
    return buffer.getvalue()


def write_confusion_csv(
    result: AccuracyResult,
    target: str | os.PathLike[str] | TextIO,
    *,
    class_names: Mapping[int, str] | None = None,
) -> None:
    """Write :func:`confusion_csv` to a path (UTF-8) or an open text file.

    Parameters
    ----------
    result : AccuracyResult
        Result of :func:`assess_accuracy`.
    target : path or text file
        Where to write.
    class_names : dict of int to str, optional
        Names used instead of the class values.
    """
    text = confusion_csv(result, class_names=class_names)
    if isinstance(target, str | os.PathLike):
        with open(target, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    else:
        target.write(text)
