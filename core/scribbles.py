"""Clusters named by class-carrying scribbles.

An unsupervised segmentation (ISB, DFC) returns anonymous clusters numbered by area.
When the user drew scribbles that carry classes (value, name, colour), each cluster takes
the class of the scribbled pixels it holds (the majority when several classes fall in
one cluster). Clusters that no scribble touched either become extra unnamed classes
(``"extra"``) or merge into the named class whose pixels they resemble most
(``"merge"``: nearest class mean in feature space, e.g. the mean band values).

The functions here are pure NumPy: they take counts and means, so callers can gather
those in one pass over a raster of any size (:func:`scribble_counts`,
:func:`cluster_sums`) and then write ``lut[clusters]``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .classes import ClassInfo, palette
from .params import UNSCRIBBLED_RULES

__all__ = [
    "UNSCRIBBLED_RULES",
    "ScribbleAssignment",
    "assign_clusters",
    "classes_from_scribbles",
    "cluster_sums",
    "scribble_counts",
    "write_scribble_classes",
]


@dataclass(frozen=True)
class ScribbleAssignment:
    """Clusters to classes.

    Attributes
    ----------
    lut : (K + 1,) int64 ndarray
        ``lut[cluster]`` is the class value of cluster ``1..K``; ``lut[0] == 0`` (nodata).
    classes : list of ClassInfo
        The class table of the class map: the scribbled classes with their names and
        colours, then the extra classes (rule ``"extra"``).
    scribbled : (K + 1,) bool ndarray
        True for clusters that hold scribbled pixels.
    """

    lut: np.ndarray
    classes: list[ClassInfo]
    scribbled: np.ndarray


def scribble_counts(
    clusters: np.ndarray,
    scribbles: np.ndarray,
    values: Sequence[int],
    *,
    n_clusters: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Count scribbled pixels per cluster and class.

    Parameters
    ----------
    clusters : int ndarray
        Cluster ids ``0..n_clusters`` (0: nodata).
    scribbles : int ndarray
        Same shape: the scribbled class value, 0 (or anything not in ``values``) where
        no scribble is.
    values : sequence of int
        The scribble class values, in the order of the columns.
    n_clusters : int
        Highest cluster id.
    out : ndarray, optional
        ``(n_clusters + 1, len(values))`` counts to add to (a block-wise pass).

    Returns
    -------
    (n_clusters + 1, S) int64 ndarray
    """
    counts = np.zeros((n_clusters + 1, len(values)), np.int64) if out is None else out
    clusters = np.asarray(clusters).ravel().astype(np.int64)
    scribbles = np.asarray(scribbles).ravel()
    if clusters.shape != scribbles.shape:
        raise ValueError("clusters and scribbles must have the same shape.")
    if clusters.size and (clusters.min() < 0 or clusters.max() > n_clusters):
        raise ValueError(f"Cluster ids must lie in 0..{n_clusters}.")
    for column, value in enumerate(values):
        hit = clusters[scribbles == value]
        counts[:, column] += np.bincount(hit, minlength=n_clusters + 1)
    return counts


def cluster_sums(
    clusters: np.ndarray,
    features: np.ndarray,
    *,
    n_clusters: int,
    valid: np.ndarray | None = None,
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum features per cluster (for the class means of rule ``"merge"``).

    Parameters
    ----------
    clusters : (H, W) int ndarray
        Cluster ids ``0..n_clusters``.
    features : (C, H, W) ndarray
        Per-pixel features (e.g. the stretched bands).
    n_clusters : int
        Highest cluster id.
    valid : (H, W) bool ndarray, optional
        Pixels to count (default: every pixel of a cluster > 0).
    out : (sums, counts), optional
        Running totals to add to.

    Returns
    -------
    sums : (n_clusters + 1, C) float64 ndarray
    counts : (n_clusters + 1,) int64 ndarray
    """
    features = np.asarray(features)
    n_features = features.shape[0]
    if out is None:
        sums = np.zeros((n_clusters + 1, n_features), np.float64)
        counts = np.zeros(n_clusters + 1, np.int64)
    else:
        sums, counts = out
    ids = np.asarray(clusters).astype(np.int64)
    keep = ids > 0 if valid is None else (ids > 0) & valid
    ids = ids[keep]
    counts += np.bincount(ids, minlength=n_clusters + 1)
    for channel in range(n_features):
        layer = features[channel][keep].astype(np.float64)
        finite = np.isfinite(layer)
        sums[:, channel] += np.bincount(ids[finite], layer[finite], minlength=n_clusters + 1)
    return sums, counts


def assign_clusters(
    counts: np.ndarray,
    classes: Sequence[ClassInfo],
    *,
    rule: str = "extra",
    means: np.ndarray | None = None,
    sizes: np.ndarray | None = None,
) -> ScribbleAssignment:
    """Give each cluster the class of its scribbles; decide the others by ``rule``.

    Parameters
    ----------
    counts : (K + 1, S) int ndarray
        Scribbled pixels per cluster (row 0: nodata, ignored) and scribble class
        (columns in the order of ``classes``), from :func:`scribble_counts`.
    classes : sequence of ClassInfo
        The scribble classes (value, name, colour), one per column of ``counts``.
    rule : {"extra", "merge"}
        Clusters without scribbles: ``"extra"`` makes each one a new class numbered after
        the highest scribble value, named ``unnamed N``; ``"merge"`` gives it the named
        class with the nearest mean feature vector.
    means : (K + 1, C) ndarray, optional
        Mean features per cluster; required by ``"merge"`` (from :func:`cluster_sums`).
    sizes : (K + 1,) int ndarray, optional
        Pixels per cluster; with ``"merge"`` the class means weigh clusters by size, and
        empty clusters are left out of the extra classes of ``"extra"``.

    Returns
    -------
    ScribbleAssignment

    Raises
    ------
    ValueError
        On an unknown rule, mismatched shapes, no scribbled pixel at all, or ``"merge"``
        without ``means``.

    Notes
    -----
    A tie between classes in one cluster goes to the class listed first. A class whose
    scribbles all fall in clusters won by other classes is absent from the map but kept in
    the table, so legends stay the same between runs.
    """
    if rule not in UNSCRIBBLED_RULES:
        raise ValueError(f"rule must be one of {', '.join(UNSCRIBBLED_RULES)}, not {rule!r}.")
    counts = np.asarray(counts, np.int64)
    if counts.ndim != 2 or counts.shape[1] != len(classes):
        raise ValueError("counts must have one column per scribble class.")
    n = counts.shape[0] - 1
    values = np.array([c.value for c in classes], np.int64)
    totals = counts.sum(axis=1)
    totals[0] = 0
    scribbled = totals > 0
    if not scribbled.any():
        raise ValueError(
            "No scribbled pixel falls in a cluster: draw the scribbles over valid pixels "
            "of the raster."
        )
    lut = np.zeros(n + 1, np.int64)
    lut[scribbled] = values[counts[scribbled].argmax(axis=1)]
    table = list(classes)
    rest = np.flatnonzero(~scribbled)
    rest = rest[rest > 0]
    if sizes is not None:
        sizes = np.asarray(sizes, np.int64)
        if sizes.shape != (n + 1,):
            raise ValueError("sizes must have one entry per cluster id 0..K.")
    if rule == "extra":
        if sizes is not None:
            rest = rest[sizes[rest] > 0]
        top = int(values.max(initial=0))
        colors = palette(len(rest), offset=len(classes))
        for i, cluster in enumerate(rest):
            value = top + 1 + i
            if value > 65535:
                raise ValueError("Too many extra classes for 16-bit class values.")
            lut[cluster] = value
            table.append(ClassInfo(value, f"unnamed {i + 1}", colors[i]))
        return ScribbleAssignment(lut, table, scribbled)
    if means is None:
        raise ValueError('rule "merge" needs the mean features of each cluster (means).')
    means = np.asarray(means, np.float64)
    if means.ndim != 2 or means.shape[0] != n + 1:
        raise ValueError("means must have one row per cluster id 0..K.")
    weights = np.ones(n + 1) if sizes is None else np.maximum(np.asarray(sizes, np.float64), 0)
    class_means = []
    present = []
    for value in values:
        members = np.flatnonzero((lut == value) & scribbled)
        w = weights[members]
        if members.size and w.sum() > 0 and np.isfinite(means[members]).all():
            class_means.append((means[members] * w[:, None]).sum(axis=0) / w.sum())
            present.append(value)
    if not class_means:
        raise ValueError("The scribbled clusters have no valid features to merge into.")
    centres = np.stack(class_means)
    for cluster in rest:
        if not np.isfinite(means[cluster]).all():
            lut[cluster] = present[0]
            continue
        distance = ((centres - means[cluster]) ** 2).sum(axis=1)
        lut[cluster] = present[int(distance.argmin())]
    return ScribbleAssignment(lut, table, scribbled)


def classes_from_scribbles(
    clusters: np.ndarray,
    scribbles: np.ndarray,
    classes: Sequence[ClassInfo],
    *,
    rule: str = "extra",
    features: np.ndarray | None = None,
) -> tuple[np.ndarray, ScribbleAssignment]:
    """Turn a cluster raster into a class map in the scribbles' classes (in memory).

    Parameters
    ----------
    clusters : (H, W) int ndarray
        Cluster ids ``1..K``, 0 for nodata.
    scribbles : (H, W) int ndarray
        Scribbled class values, 0 where no scribble is.
    classes : sequence of ClassInfo
        The scribble classes; values present in ``scribbles`` but missing here are named
        ``class N``.
    rule : {"extra", "merge"}
        See :func:`assign_clusters`.
    features : (C, H, W) ndarray, optional
        Per-pixel features for rule ``"merge"``.

    Returns
    -------
    class_map : (H, W) int64 ndarray
        Class values, 0 where ``clusters`` is 0.
    assignment : ScribbleAssignment
    """
    from .classes import complete_classes

    clusters = np.asarray(clusters).astype(np.int64)
    scribbles = np.asarray(scribbles)
    present = sorted(int(v) for v in np.unique(scribbles[(scribbles > 0) & (clusters > 0)]))
    table = complete_classes(present, [c for c in classes])
    n = int(clusters.max(initial=0))
    counts = scribble_counts(clusters, scribbles, [c.value for c in table], n_clusters=n)
    means = sizes = None
    if features is not None:
        sums, sizes = cluster_sums(clusters, features, n_clusters=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums / sizes[:, None]
    elif rule == "merge":
        raise ValueError('rule "merge" needs per-pixel features.')
    else:
        sizes = np.bincount(clusters.ravel(), minlength=n + 1)
    assignment = assign_clusters(counts, table, rule=rule, means=means, sizes=sizes)
    return assignment.lut[clusters], assignment


def write_scribble_classes(
    clusters_path: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    scribbles: np.ndarray,
    classes: Sequence[ClassInfo],
    *,
    rule: str = "extra",
    features: Callable[[int, int], np.ndarray] | None = None,
    rows: int = 512,
) -> ScribbleAssignment:
    """Write the class map of a cluster raster named by scribbles, strip by strip.

    Parameters
    ----------
    clusters_path : path-like
        Cluster raster (ids 1..K, 0 nodata), e.g. the output of ISB or DFC.
    dst : path-like
        Class raster to write (GeoTIFF on the same grid, colour table, class tag; the
        caller writes the ``.qml`` beside the final file).
    scribbles : (H, W) int ndarray
        Scribbled class values on the cluster grid, 0 (or negative) where none.
    classes : sequence of ClassInfo
        Names and colours of the scribble classes; values present in ``scribbles`` but
        missing here are named ``class N``.
    rule : {"extra", "merge"}
        Clusters without scribbles (see :func:`assign_clusters`).
    features : callable, optional
        ``features(row, height)`` returns the ``(C, height, W)`` features of those rows
        (e.g. the stretched bands); required by ``"merge"``.
    rows : int
        Rows per strip.

    Returns
    -------
    ScribbleAssignment
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.windows import Window

    from .classes import complete_classes, write_raster_classes

    if rule == "merge" and features is None:
        raise ValueError('rule "merge" needs the image features.')
    scribbles = np.asarray(scribbles)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(clusters_path) as src:
            if scribbles.shape != (src.height, src.width):
                raise ValueError("The scribbles must lie on the cluster raster's grid.")
            profile = src.profile
            height, width = src.height, src.width
            n = 0
            for row in range(0, height, rows):
                window = Window(0, row, width, min(rows, height - row))
                n = max(n, int(src.read(1, window=window).max(initial=0)))
            present = sorted(int(v) for v in np.unique(scribbles[scribbles > 0]))
            table = complete_classes(present, list(classes))
            values = [c.value for c in table]
            counts = np.zeros((n + 1, len(values)), np.int64)
            totals: tuple[np.ndarray, np.ndarray] | None = None
            sizes = np.zeros(n + 1, np.int64)
            for row in range(0, height, rows):
                h = min(rows, height - row)
                block = src.read(1, window=Window(0, row, width, h)).astype(np.int64)
                scribbled = scribbles[row : row + h]
                scribble_counts(block, scribbled, values, n_clusters=n, out=counts)
                sizes += np.bincount(block.ravel(), minlength=n + 1)
                if features is not None:
                    if totals is None:
                        first = features(row, h)
                        totals = cluster_sums(block, first, n_clusters=n)
                    else:
                        cluster_sums(block, features(row, h), n_clusters=n, out=totals)
            means = None
            if totals is not None:
                with np.errstate(invalid="ignore", divide="ignore"):
                    means = totals[0] / totals[1][:, None]
            assignment = assign_clusters(counts, table, rule=rule, means=means, sizes=sizes)
            top = int(assignment.lut.max(initial=0))
            dtype = "uint8" if top <= 255 else "uint16"
            profile.update(dtype=dtype, nodata=0, count=1)
            with rasterio.open(dst, "w", **profile) as out:
                for row in range(0, height, rows):
                    window = Window(0, row, width, min(rows, height - row))
                    block = src.read(1, window=window).astype(np.int64)
                    out.write(assignment.lut[np.clip(block, 0, n)].astype(dtype), 1, window=window)
                write_raster_classes(out, assignment.classes)
    return assignment
