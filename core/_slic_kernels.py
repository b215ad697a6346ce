"""SLIC's numba kernels behind :func:`core.superpixels.slic` (private).

Block sums, the k-means iterations and the full-resolution assignment.

Shapes and units are the caller's job; conventions in :mod:`core._kernel_options`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._kernel_options import FASTMATH, JIT

__all__ = [
    "slic_assign_full",
    "slic_blocks",
    "slic_kmeans",
]


@numba.njit(parallel=True, fastmath=FASTMATH, **JIT)
def slic_blocks(
    image: np.ndarray, mask: np.ndarray, has_mask: bool, s: int, point: bool = True
) -> tuple[np.ndarray, np.ndarray, float, float, bool]:
    """One sample per ``s x s`` block, and the value range of the valid pixels.

    Returns the samples ``(C, h, w)`` float32: the block's middle pixel with ``point``
    (what SLIC uses: it keeps edges sharp), or where that pixel is masked and without
    ``point``, the mean of the block's valid pixels. Also returns the number of valid
    pixels per block ``(h, w)`` float32 (the sample weights), the minimum and maximum
    valid value over all bands, and whether the sum of the valid values is finite
    (False when a valid pixel is NaN or infinite, or rarely on float32 overflow).
    """
    n_bands, height, width = image.shape
    h = (height + s - 1) // s
    w = (width + s - 1) // s
    means = np.zeros((n_bands, h, w), dtype=np.float32)
    weight = np.zeros((h, w), dtype=np.float32)
    lows = np.full(h, np.inf, dtype=np.float32)
    highs = np.full(h, -np.inf, dtype=np.float32)
    totals = np.zeros(h, dtype=np.float32)
    for by in prange(h):
        y0 = by * s
        y1 = min(y0 + s, height)
        low = np.float32(np.inf)
        high = np.float32(-np.inf)
        total = np.float32(0.0)
        for y in range(y0, y1):
            for bx in range(w):
                x0 = bx * s
                x1 = min(x0 + s, width)
                n = 0
                for x in range(x0, x1):
                    if not has_mask or mask[y, x]:
                        n += 1
                weight[by, bx] += n
                for c in range(n_bands):
                    acc = np.float32(0.0)
                    for x in range(x0, x1):
                        if not has_mask or mask[y, x]:
                            v = image[c, y, x]
                            acc += v
                            low = min(low, v)
                            high = max(high, v)
                    means[c, by, bx] += acc
                    total += acc
        for bx in range(w):
            if weight[by, bx] > 0:
                inv = np.float32(1.0) / weight[by, bx]
                for c in range(n_bands):
                    means[c, by, bx] *= inv
            if point:
                y = min(y0 + (s - 1) // 2, height - 1)
                x = min(bx * s + (s - 1) // 2, width - 1)
                if not has_mask or mask[y, x]:
                    for c in range(n_bands):
                        means[c, by, bx] = image[c, y, x]
        lows[by] = low
        highs[by] = high
        totals[by] = total
    finite = bool(np.isfinite(totals).all())
    return means, weight, float(lows.min()), float(highs.max()), finite


@numba.njit(parallel=True, fastmath=FASTMATH, **JIT)
def _slic_assign_samples(
    means: np.ndarray,
    weight: np.ndarray,
    ys: np.ndarray,
    xs: np.ndarray,
    centres: np.ndarray,
    alive: np.ndarray,
    row_lo: np.ndarray,
    grid_x: np.ndarray,
    rows: int,
    cols: int,
    wsp: float,
    labels: np.ndarray,
    partial: np.ndarray,
    changes: np.ndarray,
    update: bool,
) -> None:
    """Assign each block sample to the nearest of the centres of its 3 x 3 grid cells.

    Works per band of grid row ``gy``: the 9 candidate centres of every sample column are
    first expanded into row-long arrays (shared by all sample rows of the band), so the
    distance loops are contiguous and vectorize. With ``update``, adds each sample's
    weight, weighted position and weighted values to its centre's per-chunk sums.
    """
    n_bands, _, w = means.shape
    n_chunks = partial.shape[0]
    n_feat = 2 + n_bands
    per = (rows + n_chunks - 1) // n_chunks
    wsp32 = np.float32(wsp)
    for chunk in prange(n_chunks):
        acc = partial[chunk]
        if update:
            acc[:] = 0.0
        changed = 0
        cand = np.empty((9, n_feat, w), dtype=np.float32)
        cand_k = np.empty((9, w), dtype=np.int32)
        dist = np.empty(w, dtype=np.float32)
        best = np.empty(w, dtype=np.float32)
        best_k = np.empty(w, dtype=np.int32)
        for gy in range(chunk * per, min((chunk + 1) * per, rows)):
            # Expand the 9 candidate centres of each sample column.
            for i in range(9):
                ny = gy + i // 3 - 1
                for bx in range(w):
                    nx = grid_x[bx] + i % 3 - 1
                    k = ny * cols + nx
                    if 0 <= ny < rows and 0 <= nx < cols and alive[k]:
                        cand_k[i, bx] = k
                        for j in range(n_feat):
                            cand[i, j, bx] = centres[k, j]
                    else:
                        cand_k[i, bx] = -1
                        cand[i, 0, bx] = np.inf
                        for j in range(1, n_feat):
                            cand[i, j, bx] = 0.0
            for by in range(row_lo[gy], row_lo[gy + 1]):
                py = ys[by]
                for bx in range(w):
                    best[bx] = np.inf
                    best_k[bx] = -1
                for i in range(9):
                    for bx in range(w):
                        dy = py - cand[i, 0, bx]
                        dx = xs[bx] - cand[i, 1, bx]
                        dist[bx] = (dy * dy + dx * dx) * wsp32
                    for c in range(n_bands):
                        for bx in range(w):
                            t = means[c, by, bx] - cand[i, 2 + c, bx]
                            dist[bx] += t * t
                    for bx in range(w):
                        if dist[bx] < best[bx]:
                            best[bx] = dist[bx]
                            best_k[bx] = cand_k[i, bx]
                for bx in range(w):
                    wt = weight[by, bx]
                    if wt == 0:
                        continue
                    k = best_k[bx]
                    if labels[by, bx] != k:
                        changed += 1
                        labels[by, bx] = k
                    if update:
                        acc[k, 0] += wt
                        acc[k, 1] += wt * py
                        acc[k, 2] += wt * xs[bx]
                        for c in range(n_bands):
                            acc[k, 3 + c] += wt * means[c, by, bx]
        changes[chunk] = changed


@numba.njit(fastmath=FASTMATH, **JIT)
def slic_kmeans(
    means: np.ndarray,
    weight: np.ndarray,
    s: int,
    height: int,
    width: int,
    rows: int,
    cols: int,
    wsp: float,
    n_iter: int,
    n_chunks: int,
    top: int = 0,
    left: int = 0,
    grid_height: int = 0,
    grid_width: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SLIC's k-means on block samples, started from the grid-cell means.

    ``wsp`` is the weight of squared pixel distances against squared value distances.
    The ``rows x cols`` grid covers the ``grid_height x grid_width`` pixels from
    (``top``, ``left``): the bounding box of the valid pixels (0 for the whole image).
    Returns the centres ``(K, 2 + C)`` float32 (row, column, band values), their
    ``alive`` flags and the sample labels ``(h, w)`` int32 (-1 for empty blocks).
    """
    n_bands, h, w = means.shape
    n_centres = rows * cols
    if grid_height <= 0 or grid_width <= 0:
        top, left, grid_height, grid_width = 0, 0, height, width
    cell_y = grid_height / rows
    cell_x = grid_width / cols
    # Sample positions (centre of the covered pixels) and their grid cells.
    ys = np.empty(h, dtype=np.float32)
    grid_y = np.empty(h, dtype=np.int64)
    for by in range(h):
        ys[by] = (by * s + min(by * s + s, height) - 1) * 0.5
        grid_y[by] = min(max(int(np.floor((ys[by] - top) / cell_y)), 0), rows - 1)
    xs = np.empty(w, dtype=np.float32)
    grid_x = np.empty(w, dtype=np.int64)
    for bx in range(w):
        xs[bx] = (bx * s + min(bx * s + s, width) - 1) * 0.5
        grid_x[bx] = min(max(int(np.floor((xs[bx] - left) / cell_x)), 0), cols - 1)
    # Initial centres: the sample nearest each grid-cell centre (or, when that block is
    # empty, the weighted mean of the cell's samples).
    sums = np.zeros((n_centres, 3 + n_bands), dtype=np.float64)
    labels = np.full((h, w), -1, dtype=np.int32)
    for by in range(h):
        for bx in range(w):
            wt = weight[by, bx]
            if wt == 0:
                continue
            k = grid_y[by] * cols + grid_x[bx]
            sums[k, 0] += wt
            sums[k, 1] += wt * ys[by]
            sums[k, 2] += wt * xs[bx]
            for c in range(n_bands):
                sums[k, 3 + c] += wt * means[c, by, bx]
    centres = np.zeros((n_centres, 2 + n_bands), dtype=np.float32)
    alive = np.zeros(n_centres, dtype=np.bool_)
    for k in range(n_centres):
        if sums[k, 0] > 0:
            alive[k] = True
            for j in range(2 + n_bands):
                centres[k, j] = sums[k, 1 + j] / sums[k, 0]
            gy = k // cols
            gx = k % cols
            by = min(int((top + (gy + 0.5) * cell_y) / s), h - 1)
            bx = min(int((left + (gx + 0.5) * cell_x) / s), w - 1)
            if weight[by, bx] > 0:
                centres[k, 0] = ys[by]
                centres[k, 1] = xs[bx]
                for c in range(n_bands):
                    centres[k, 2 + c] = means[c, by, bx]
    # Sample rows of each grid row: row_lo[gy] to row_lo[gy + 1].
    row_lo = np.zeros(rows + 1, dtype=np.int64)
    for by in range(h):
        row_lo[grid_y[by] + 1] += 1
    for gy in range(rows):
        row_lo[gy + 1] += row_lo[gy]
    partial = np.zeros((n_chunks, n_centres, 3 + n_bands), dtype=np.float64)
    changes = np.zeros(n_chunks, dtype=np.int64)
    for _ in range(n_iter):
        _slic_assign_samples(
            means, weight, ys, xs, centres, alive, row_lo, grid_x, rows, cols, wsp,
            labels, partial, changes, True,
        )  # fmt: skip
        if changes.sum() == 0:
            break
        for k in range(n_centres):
            total = 0.0
            for chunk in range(n_chunks):
                total += partial[chunk, k, 0]
            if total > 0:
                for j in range(2 + n_bands):
                    acc = 0.0
                    for chunk in range(n_chunks):
                        acc += partial[chunk, k, 1 + j]
                    centres[k, j] = acc / total
    # Final labels of the samples with the final centres.
    _slic_assign_samples(
        means, weight, ys, xs, centres, alive, row_lo, grid_x, rows, cols, wsp,
        labels, partial, changes, False,
    )  # fmt: skip
    return centres, alive, labels


@numba.njit(parallel=True, fastmath=FASTMATH, **JIT)
def slic_assign_full(
    image: np.ndarray,
    mask: np.ndarray,
    has_mask: bool,
    s: int,
    samples: np.ndarray,
    centres: np.ndarray,
    wsp: float,
) -> np.ndarray:
    """Full-resolution labels guided by the block-sample labels.

    Each pixel lies between (at most) four block samples. Where their labels agree, the
    pixel takes it; elsewhere it takes the nearest (SLIC distance) of their centres.
    """
    n_bands, height, width = image.shape
    h, w = samples.shape
    half = (s - 1) * 0.5
    x0s = np.empty(width, dtype=np.int64)
    x1s = np.empty(width, dtype=np.int64)
    for x in range(width):
        b = max(int(np.floor((x - half) / s)), 0)
        x0s[x] = min(b, w - 1)
        x1s[x] = min(b + 1, w - 1)
    out = np.empty((height, width), dtype=np.int32)
    wsp32 = np.float32(wsp)
    for y in prange(height):
        b = max(int(np.floor((y - half) / s)), 0)
        by0 = min(b, h - 1)
        by1 = min(b + 1, h - 1)
        cand = np.empty(4, dtype=np.int32)
        for x in range(width):
            if has_mask and not mask[y, x]:
                out[y, x] = -1
                continue
            cand[0] = samples[by0, x0s[x]]
            cand[1] = samples[by0, x1s[x]]
            cand[2] = samples[by1, x0s[x]]
            cand[3] = samples[by1, x1s[x]]
            first = -1
            same = True
            for i in range(4):
                if cand[i] >= 0:
                    if first < 0:
                        first = cand[i]
                    elif cand[i] != first:
                        same = False
            if same:
                out[y, x] = first
                continue
            best = np.float32(np.inf)
            best_k = first
            for i in range(4):
                k = cand[i]
                if k < 0:
                    continue
                dy = y - centres[k, 0]
                dx = x - centres[k, 1]
                d = (dy * dy + dx * dx) * wsp32
                for c in range(n_bands):
                    t = image[c, y, x] - centres[k, 2 + c]
                    d += t * t
                if d < best:
                    best = d
                    best_k = k
            out[y, x] = best_k
    return out
