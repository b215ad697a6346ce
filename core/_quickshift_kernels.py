"""QuickShift's numba kernels behind :func:`core.superpixels.quickshift` (private).

Parzen density, parents (nearest denser neighbour) and the labels of the resulting trees.

Shapes and units are the caller's job; conventions in :mod:`core._kernel_options`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._kernel_options import FASTMATH, JIT

__all__ = [
    "qs_density",
    "qs_labels",
    "qs_parents",
]


@numba.njit(inline="always", fastmath=FASTMATH, **JIT)
def _exp_neg(x: float) -> float:
    """``exp(x)`` for ``x <= 0`` in float32 (relative error < 2e-7; 0 below -43).

    Branch-free (``2**floor`` from bit tests, a degree-5 polynomial for ``2**fraction``),
    so loops calling it vectorize; numba's ``np.exp`` would be a scalar libm call.
    """
    t = max(x * np.float32(1.4426950408889634), np.float32(-63.0))
    n = np.floor(t)
    f = t - n
    p = np.float32(0.99999993) + f * (
        np.float32(0.69315296)
        + f
        * (
            np.float32(0.24015454)
            + f
            * (np.float32(0.05582358) + f * (np.float32(0.00899259) + f * np.float32(0.00187623)))
        )
    )
    k = np.int32(-n)
    p *= np.float32(0.5) if k & 1 else np.float32(1.0)
    p *= np.float32(0.25) if k & 2 else np.float32(1.0)
    p *= np.float32(0.0625) if k & 4 else np.float32(1.0)
    p *= np.float32(0.00390625) if k & 8 else np.float32(1.0)
    p *= np.float32(1.52587890625e-05) if k & 16 else np.float32(1.0)
    p *= np.float32(2.3283064365386963e-10) if k & 32 else np.float32(1.0)
    return p


@numba.njit(parallel=True, fastmath=FASTMATH, **JIT)
def qs_density(
    image: np.ndarray, mask: np.ndarray, has_mask: bool, kernel_width: int, inv: float
) -> np.ndarray:
    """Parzen density of each pixel: sum over the window of exp(inv * joint distance^2).

    ``inv`` is ``-0.5 / kernel_size**2``; the window is ``2 * kernel_width + 1`` wide;
    masked pixels neither receive nor contribute density. Returns float64 ``(H, W)``.
    """
    n_bands, height, width = image.shape
    kw = kernel_width
    spatial = np.empty((2 * kw + 1, 2 * kw + 1), dtype=np.float32)
    for i in range(2 * kw + 1):
        for j in range(2 * kw + 1):
            spatial[i, j] = np.exp(((i - kw) ** 2 + (j - kw) ** 2) * inv)
    inv32 = np.float32(inv)
    weight = np.empty((height, width) if has_mask else (1, 1), dtype=np.float32)
    if has_mask:
        for r in prange(height):
            for c in range(width):
                weight[r, c] = 1.0 if mask[r, c] else 0.0
    density = np.zeros((height, width), dtype=np.float64)
    for r in prange(height):
        acc = np.zeros(width, dtype=np.float32)
        dist = np.empty(width, dtype=np.float32)
        for r2 in range(max(r - kw, 0), min(r + kw + 1, height)):
            for dc in range(-kw, kw + 1):
                c_lo = max(0, -dc)
                c_hi = min(width, width - dc)
                if c_lo >= c_hi:
                    continue
                sw = spatial[r2 - r + kw, dc + kw]
                n = c_hi - c_lo
                d = dist[:n]
                d[:] = 0.0
                for ch in range(n_bands):
                    a = image[ch, r, c_lo:c_hi]
                    b = image[ch, r2, c_lo + dc : c_hi + dc]
                    for i in range(n):
                        t = a[i] - b[i]
                        d[i] += t * t
                out = acc[c_lo:c_hi]
                if has_mask:
                    m = weight[r2, c_lo + dc : c_hi + dc]
                    for i in range(n):
                        out[i] += sw * m[i] * _exp_neg(d[i] * inv32)
                else:
                    for i in range(n):
                        out[i] += sw * _exp_neg(d[i] * inv32)
        for c in range(width):
            density[r, c] = acc[c]
    return density


@numba.njit(parallel=True, fastmath=FASTMATH, **JIT)
def qs_parents(
    image: np.ndarray, density: np.ndarray, kernel_width: int, max_dist: float
) -> np.ndarray:
    """Index of the nearest pixel of higher density within the window and ``max_dist``.

    Nearest in the joint (band, position) distance; ties go to the first pixel in raster
    order, as in scikit-image. A pixel with no such neighbour is its own parent (a root).
    Masked pixels must have density ``-inf`` (never a parent). Each image row is
    processed as a vector, visiting window offsets by increasing spatial distance and
    stopping once that alone exceeds every pixel's best distance (or ``max_dist``).
    """
    n_bands, height, width = image.shape
    kw = kernel_width
    side = 2 * kw + 1
    d2 = np.empty(side * side, dtype=np.float64)
    for i in range(side):
        for j in range(side):
            d2[i * side + j] = (i - kw) ** 2 + (j - kw) ** 2
    order = np.argsort(d2, kind="mergesort")
    n_off = side * side
    off_r = np.empty(n_off, dtype=np.int64)
    off_c = np.empty(n_off, dtype=np.int64)
    off_d = np.empty(n_off, dtype=np.float32)
    for i in range(n_off):
        off_r[i] = order[i] // side - kw
        off_c[i] = order[i] % side - kw
        off_d[i] = d2[order[i]]
    limit = np.float32(max_dist * max_dist)
    parent = np.empty(height * width, dtype=np.int64)
    for r in prange(height):
        closest = np.full(width, np.inf, dtype=np.float32)
        best = np.empty(width, dtype=np.int64)
        dist = np.empty(width, dtype=np.float32)
        own = density[r]
        for c in range(width):
            best[c] = r * width + c
        worst = np.float32(np.inf)
        for i in range(n_off):
            sd = off_d[i]
            if sd > limit:
                break
            if i > 0 and sd != off_d[i - 1]:
                worst = np.float32(0.0)
                for c in range(width):
                    worst = max(worst, closest[c])
            if sd > worst:
                break
            r2 = r + off_r[i]
            dc = off_c[i]
            if r2 < 0 or r2 >= height:
                continue
            c_lo = max(0, -dc)
            c_hi = min(width, width - dc)
            if c_lo >= c_hi:
                continue
            n = c_hi - c_lo
            d = dist[:n]
            d[:] = sd
            for ch in range(n_bands):
                a = image[ch, r, c_lo:c_hi]
                b = image[ch, r2, c_lo + dc : c_hi + dc]
                for j in range(n):
                    t = a[j] - b[j]
                    d[j] += t * t
            higher = density[r2, c_lo + dc : c_hi + dc]
            mine = own[c_lo:c_hi]
            cl = closest[c_lo:c_hi]
            bs = best[c_lo:c_hi]
            base = r2 * width + c_lo + dc
            for j in range(n):
                q = base + j
                if higher[j] > mine[j] and (d[j] < cl[j] or (d[j] == cl[j] and q < bs[j])):
                    cl[j] = d[j]
                    bs[j] = q
        for c in range(width):
            parent[r * width + c] = best[c] if closest[c] <= limit else r * width + c
    return parent


@numba.njit(**JIT)
def qs_labels(
    parent: np.ndarray, mask: np.ndarray, has_mask: bool, height: int, width: int
) -> np.ndarray:
    """Label each pixel by the root of its parent tree: 1..N in raster order of first use."""
    n = height * width
    root = np.full(n, -1, dtype=np.int64)
    for p in range(n):
        if root[p] >= 0:
            continue
        q = p
        while root[q] < 0 and parent[q] != q:
            q = parent[q]
        top = root[q] if root[q] >= 0 else q
        q = p
        while root[q] < 0:
            nxt = parent[q]
            root[q] = top
            q = nxt
    out = np.zeros((height, width), dtype=np.int32)
    ident = np.zeros(n, dtype=np.int32)
    count = 0
    for y in range(height):
        for x in range(width):
            if has_mask and not mask[y, x]:
                continue
            r = root[y * width + x]
            if ident[r] == 0:
                count += 1
                ident[r] = count
            out[y, x] = ident[r]
    return out
