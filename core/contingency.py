"""The contingency table every accuracy metric reads, counted window by window.

:class:`ConfusionAccumulator` counts the (prediction value, reference value) pairs of
rasters larger than memory, one window at a time, and merges the tables of parallel
workers; :class:`ContingencyTable` is what it returns. The metrics themselves are in
:mod:`core.metrics`.

Conventions: rows are prediction values, columns are reference values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

__all__ = ["ConfusionAccumulator", "ContingencyTable"]

#: Largest dense (prediction range x reference range) table counted with one bincount;
#: beyond it, values are first compacted with np.unique.
_MAX_DENSE_CELLS = 1 << 22


class ContingencyTable(NamedTuple):
    """Pixel counts of every (prediction value, reference value) pair.

    Attributes
    ----------
    pred_values : (P,) int64 ndarray
        Sorted prediction values (row labels).
    ref_values : (R,) int64 ndarray
        Sorted reference values (column labels).
    counts : (P, R) int64 ndarray
        ``counts[i, j]`` pixels have prediction ``pred_values[i]`` and reference
        ``ref_values[j]``.
    """

    pred_values: np.ndarray
    ref_values: np.ndarray
    counts: np.ndarray


def _as_labels(array: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Return integer labels and the mask of NaN pixels (None when there is none)."""
    array = np.asarray(array)
    if array.dtype.kind in "iub":
        return array, None
    if array.dtype.kind != "f":
        raise ValueError(f"The {name} must hold integer class values, not {array.dtype}.")
    finite = np.isfinite(array)
    if not np.array_equal(array[finite], np.round(array[finite])):
        raise ValueError(
            f"The {name} holds non-integer values: it must be a class or cluster raster."
        )
    nan = None if finite.all() else ~finite
    return np.where(finite, array, 0).astype(np.int64), nan


def _count_pairs(pred: np.ndarray, ref: np.ndarray) -> ContingencyTable:
    """Contingency table of two 1-D integer arrays of equal length."""
    if pred.size == 0:
        empty = np.zeros(0, np.int64)
        return ContingencyTable(empty, empty.copy(), np.zeros((0, 0), np.int64))
    pmin, pmax = int(pred.min()), int(pred.max())
    rmin, rmax = int(ref.min()), int(ref.max())
    prange, rrange = pmax - pmin + 1, rmax - rmin + 1
    if prange * rrange <= max(_MAX_DENSE_CELLS, pred.size):
        # Small value ranges (class codes, cluster ids): one O(n) bincount.
        codes = (pred.astype(np.int64) - pmin) * rrange + (ref.astype(np.int64) - rmin)
        dense = np.bincount(codes, minlength=prange * rrange).reshape(prange, rrange)
        rows = np.flatnonzero(dense.any(axis=1))
        cols = np.flatnonzero(dense.any(axis=0))
        return ContingencyTable(
            rows.astype(np.int64) + pmin,
            cols.astype(np.int64) + rmin,
            dense[np.ix_(rows, cols)].astype(np.int64),
        )
    pvals, pinv = np.unique(pred, return_inverse=True)
    rvals, rinv = np.unique(ref, return_inverse=True)
    codes = pinv.astype(np.int64).ravel() * rvals.size + rinv.astype(np.int64).ravel()
    counts = np.bincount(codes, minlength=pvals.size * rvals.size)
    return ContingencyTable(
        pvals.astype(np.int64),
        rvals.astype(np.int64),
        counts.reshape(pvals.size, rvals.size).astype(np.int64),
    )


class ConfusionAccumulator:
    """Contingency table of prediction x reference values, filled window by window.

    Values are arbitrary integers (class codes such as 1..7 or 0/255, cluster ids such
    as 1..37); the table grows as new values appear. Counting is O(n) per window
    (one ``np.bincount`` of combined codes; ``np.unique`` first when the values span
    a very large range), never a loop over pairs.

    Parameters
    ----------
    ignore_reference : iterable of int
        Reference values to leave out (for example 0 = unlabelled, 255 = no data).
    ignore_prediction : iterable of int
        Prediction values to leave out.

    Attributes
    ----------
    pixels_seen : int
        Pixels passed to :meth:`update`, valid or not.

    Examples
    --------
    >>> acc = ConfusionAccumulator(ignore_reference=[0])
    >>> acc.update(np.array([[1, 2], [2, 2]]), np.array([[1, 2], [1, 0]]))
    >>> acc.table.counts.tolist()
    [[1, 0], [1, 1]]
    """

    def __init__(
        self, *, ignore_reference: Iterable[int] = (), ignore_prediction: Iterable[int] = ()
    ) -> None:
        self.ignore_reference = tuple(int(v) for v in ignore_reference)
        self.ignore_prediction = tuple(int(v) for v in ignore_prediction)
        self.pixels_seen = 0
        self._pred = np.zeros(0, np.int64)
        self._ref = np.zeros(0, np.int64)
        self._counts = np.zeros((0, 0), np.int64)

    @classmethod
    def from_counts(
        cls,
        counts: np.ndarray,
        pred_values: Iterable[int] | None = None,
        ref_values: Iterable[int] | None = None,
    ) -> ConfusionAccumulator:
        """Build an accumulator from a known table (for example a published matrix).

        Parameters
        ----------
        counts : (P, R) int array_like
            Pixel counts; rows are prediction values, columns reference values.
        pred_values : (P,) iterable of int, optional
            Row labels; ``1..P`` when omitted.
        ref_values : (R,) iterable of int, optional
            Column labels; ``1..R`` when omitted.

        Returns
        -------
        ConfusionAccumulator
            An accumulator holding exactly this table.
        """
        counts = np.asarray(counts)
        if counts.ndim != 2 or (counts < 0).any():
            raise ValueError("counts must be a 2-D table of non-negative pixel counts.")
        p, r = counts.shape
        pv = np.arange(1, p + 1) if pred_values is None else np.asarray(list(pred_values))
        rv = np.arange(1, r + 1) if ref_values is None else np.asarray(list(ref_values))
        if pv.shape != (p,) or rv.shape != (r,):
            raise ValueError(f"counts is {p}x{r}: give {p} prediction and {r} reference values.")
        if np.unique(pv).size != p or np.unique(rv).size != r:
            raise ValueError("Prediction values and reference values must each be distinct.")
        acc = cls()
        acc._merge(ContingencyTable(pv.astype(np.int64), rv.astype(np.int64), counts))
        acc.pixels_seen = int(counts.sum())
        return acc

    def update(
        self, prediction: np.ndarray, reference: np.ndarray, valid: np.ndarray | None = None
    ) -> None:
        """Count one window of pixels.

        Parameters
        ----------
        prediction : (H, W) int ndarray
            Predicted class or cluster per pixel. Float arrays are accepted when their
            values are whole numbers (Float32 class rasters); NaN pixels are skipped.
        reference : (H, W) int ndarray
            Reference class per pixel (same rules).
        valid : (H, W) bool ndarray, optional
            Pixels to count (valid in both rasters, inside the area of interest); all
            pixels when omitted. Ignored values are removed on top of it.

        Raises
        ------
        ValueError
            If the shapes differ or a raster holds non-integer values.
        """
        prediction = np.asarray(prediction)
        reference = np.asarray(reference)
        if prediction.shape != reference.shape:
            raise ValueError(
                f"The prediction ({'x'.join(map(str, prediction.shape))}) and the reference "
                f"({'x'.join(map(str, reference.shape))}) windows differ in shape: "
                "resample one raster onto the other's grid first."
            )
        if valid is not None:
            valid = np.asarray(valid, dtype=bool)
            if valid.shape != prediction.shape:
                raise ValueError(
                    f"The valid mask is {valid.shape}, the rasters {prediction.shape}."
                )
        self.pixels_seen += prediction.size
        pred, pred_nan = _as_labels(prediction, "prediction")
        ref, ref_nan = _as_labels(reference, "reference")
        keep = np.ones(prediction.shape, bool) if valid is None else valid.copy()
        for nan in (pred_nan, ref_nan):
            if nan is not None:
                keep &= ~nan
        if self.ignore_reference:
            keep &= ~np.isin(ref, self.ignore_reference)
        if self.ignore_prediction:
            keep &= ~np.isin(pred, self.ignore_prediction)
        if keep.all():
            self._merge(_count_pairs(pred.ravel(), ref.ravel()))
        else:
            self._merge(_count_pairs(pred[keep], ref[keep]))

    def merge(self, other: ConfusionAccumulator) -> None:
        """Add the counts of another accumulator (for example from another process).

        Parameters
        ----------
        other : ConfusionAccumulator
            Accumulator whose table is added to this one.
        """
        self._merge(other.table)
        self.pixels_seen += other.pixels_seen

    def _merge(self, part: ContingencyTable) -> None:
        if part.counts.size == 0:
            return
        pred = np.union1d(self._pred, part.pred_values)
        ref = np.union1d(self._ref, part.ref_values)
        if pred.size != self._pred.size or ref.size != self._ref.size:
            grown = np.zeros((pred.size, ref.size), np.int64)
            grown[np.ix_(np.searchsorted(pred, self._pred), np.searchsorted(ref, self._ref))] = (
                self._counts
            )
            self._pred, self._ref, self._counts = pred, ref, grown
        rows = np.searchsorted(self._pred, part.pred_values)
        cols = np.searchsorted(self._ref, part.ref_values)
        self._counts[np.ix_(rows, cols)] += part.counts

    @property
    def n_pixels(self) -> int:
        """Pixels counted (valid and not ignored)."""
        return int(self._counts.sum())

    @property
    def table(self) -> ContingencyTable:
        """The table so far, as a copy: ``(pred_values, ref_values, counts)``.

        Returns
        -------
        ContingencyTable
            ``pred_values`` (P,) int64, ``ref_values`` (R,) int64 (both sorted) and
            ``counts`` (P, R) int64 with rows = prediction values.
        """
        return ContingencyTable(self._pred.copy(), self._ref.copy(), self._counts.copy())
