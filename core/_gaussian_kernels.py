"""Gaussian smoothing of band-first images as SciPy computes it, in parallel (private).

:func:`gaussian` gives bit for bit what ``scipy.ndimage.gaussian_filter(band, sigma,
mode="reflect")`` gives for each float32 band: the same float64 weights, the same order
of float64 operations (SciPy's loop for symmetric kernels: the centre tap, then the pairs
from the outermost inwards), the rows (axis 0) first with the intermediate rounded to
float32, then the columns. It runs over all bands and rows in numba's threads, where
SciPy runs one band per call in one thread. No fast-math: reordering the sums would
change the last bits, and with them Felzenszwalb's ties.

Conventions in :mod:`core._kernel_options`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._kernel_options import JIT

__all__ = ["gaussian", "gaussian_weights"]


def gaussian_weights(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """SciPy's float64 taps for ``sigma``: radius ``int(truncate * sigma + 0.5)``, sum 1.

    A ``sigma`` of 1e-15 or less gives the single tap 1 (SciPy copies the image then).
    """
    if sigma <= 1e-15:
        return np.ones(1)
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    return phi / phi.sum()


@numba.njit(inline="always", **JIT)
def _reflect(i: int, n: int) -> int:
    """SciPy's ``reflect`` extension (``dcba|abcd|dcba``, repeated) of index ``i``."""
    m = i % (2 * n)
    return 2 * n - 1 - m if m >= n else m


@numba.njit(parallel=True, **JIT)
def gaussian(image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Smooth each band of a (C, H, W) float32 image with the symmetric ``weights``.

    Returns a new (C, H, W) float32 array, equal bit for bit to SciPy's
    ``gaussian_filter(image[c], sigma, mode="reflect")`` per band (see the module).
    """
    n_bands, height, width = image.shape
    radius = weights.shape[0] // 2
    mid = weights[radius:]  # mid[j]: the tap at distance j
    rows = np.empty_like(image)
    out = np.empty_like(image)
    for cy in prange(n_bands * height):
        c = cy // height
        y = cy % height
        acc = np.empty(width, dtype=np.float64)
        for x in range(width):
            acc[x] = np.float64(image[c, y, x]) * mid[0]
        for j in range(radius, 0, -1):
            up = _reflect(y - j, height)
            down = _reflect(y + j, height)
            w = mid[j]
            for x in range(width):
                acc[x] += (np.float64(image[c, up, x]) + np.float64(image[c, down, x])) * w
        for x in range(width):
            rows[c, y, x] = np.float32(acc[x])
    for cy in prange(n_bands * height):
        c = cy // height
        y = cy % height
        line = np.empty(width + 2 * radius, dtype=np.float64)
        for x in range(-radius, width + radius):
            line[x + radius] = np.float64(rows[c, y, _reflect(x, width)])
        acc = np.empty(width, dtype=np.float64)
        for x in range(width):
            acc[x] = line[x + radius] * mid[0]
        for j in range(radius, 0, -1):
            w = mid[j]
            for x in range(width):
                acc[x] += (line[x + radius - j] + line[x + radius + j]) * w
        for x in range(width):
            out[c, y, x] = np.float32(acc[x])
    return out
