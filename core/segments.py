"""Statistics of labelled segments: pixel counts, band means, mean-colour images."""

from __future__ import annotations

import numpy as np

__all__ = ["mean_image", "segment_counts", "segment_means"]


def segment_counts(labels: np.ndarray, n_segments: int) -> np.ndarray:
    """Count the pixels of each segment.

    Parameters
    ----------
    labels : (H, W) int ndarray
        Segment ids 1..N, 0 for no segment.
    n_segments : int
        N, the largest id.

    Returns
    -------
    (N + 1,) int64 ndarray
        Pixel count per id; index 0 counts the pixels outside every segment.
    """
    return np.bincount(labels.ravel(), minlength=n_segments + 1).astype(np.int64)


def segment_means(image: np.ndarray, labels: np.ndarray, n_segments: int) -> np.ndarray:
    """Mean of each band inside each segment.

    Parameters
    ----------
    image : (C, H, W) ndarray
        Band values (original units, not stretched).
    labels : (H, W) int ndarray
        Segment ids 1..N, 0 for no segment.
    n_segments : int
        N, the largest id.

    Returns
    -------
    (N + 1, C) float64 ndarray
        Band means per id; row 0 (no segment) is NaN.
    """
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n_segments + 1).astype(np.float64)
    means = np.empty((n_segments + 1, image.shape[0]), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        for band in range(image.shape[0]):
            sums = np.bincount(
                flat, weights=image[band].ravel().astype(np.float64), minlength=n_segments + 1
            )
            means[:, band] = sums / counts
    means[0] = np.nan
    return means


def mean_image(labels: np.ndarray, means: np.ndarray, *, nodata: float) -> np.ndarray:
    """Paint each segment with its mean band values.

    Parameters
    ----------
    labels : (H, W) int ndarray
        Segment ids 1..N, 0 for no segment.
    means : (N + 1, C) ndarray
        Band means per id (see :func:`segment_means`).
    nodata : float
        Value of pixels outside every segment.

    Returns
    -------
    (C, H, W) float32 ndarray
    """
    table = means.astype(np.float32).copy()
    table[0] = nodata
    return np.moveaxis(table[labels], -1, 0)
