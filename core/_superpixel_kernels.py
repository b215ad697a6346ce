"""numba kernels behind :mod:`core.superpixels` (private; shapes and units are the caller's job).

Conventions: images are band-first ``(C, H, W)`` float32, C-contiguous; ``mask`` is an
``(H, W)`` bool array, or a ``(1, 1)`` placeholder when ``has_mask`` is False; working
labels are int32 with ``-1`` for masked-out pixels. Kernels compile on first call and are
cached on disk (``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from llvmlite.binding import llvm_version_info
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "connected_relabel",
    "fh_edges",
    "fh_labels",
    "fh_sort",
    "qs_density",
    "qs_labels",
    "qs_parents",
    "relabel_consecutive",
    "slic_assign_full",
    "slic_blocks",
    "slic_kmeans",
]

# Fast-math without 'nnan'/'ninf': NaN and inf checks stay meaningful.
_FM = {"nsz", "arcp", "contract", "afn", "reassoc"}
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


# --------------------------------------------------------------------------- SLIC
@numba.njit(parallel=True, fastmath=_FM, **_JIT)
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


@numba.njit(parallel=True, fastmath=_FM, **_JIT)
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


@numba.njit(fastmath=_FM, **_JIT)
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


@numba.njit(parallel=True, fastmath=_FM, **_JIT)
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


# ------------------------------------------------------------ connectivity (runs)
@numba.njit(parallel=True, **_JIT)
def _count_runs(labels: np.ndarray) -> np.ndarray:
    height, width = labels.shape
    counts = np.zeros(height + 1, dtype=np.int64)
    for y in prange(height):
        n = 0
        prev = -1
        for x in range(width):
            v = labels[y, x]
            if v >= 0 and v != prev:
                n += 1
            prev = v
        counts[y + 1] = n
    return counts


@numba.njit(parallel=True, **_JIT)
def _fill_runs(labels: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = labels.shape
    n_runs = offsets[height]
    starts = np.empty(n_runs, dtype=np.int32)
    ends = np.empty(n_runs, dtype=np.int32)
    for y in prange(height):
        i = offsets[y] - 1
        prev = -1
        for x in range(width):
            v = labels[y, x]
            if v >= 0 and v != prev:
                i += 1
                starts[i] = x
            if v >= 0:
                ends[i] = x + 1
            prev = v
    return starts, ends


@numba.njit(inline="always", **_JIT)
def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(inline="always", **_JIT)
def _union_min(parent: np.ndarray, a: int, b: int) -> None:
    """Union keeping the smaller index as root (the root is a set's first run)."""
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra < rb:
        parent[rb] = ra
    elif rb < ra:
        parent[ra] = rb


@numba.njit(**_JIT)
def _join_rows(
    labels: np.ndarray,
    offsets: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    parent: np.ndarray,
    y: int,
) -> None:
    """Union the runs of row ``y`` with the 4-adjacent runs of row ``y - 1``."""
    i = offsets[y - 1]
    i_end = offsets[y]
    j = offsets[y]
    j_end = offsets[y + 1]
    while i < i_end and j < j_end:
        if starts[i] < ends[j] and starts[j] < ends[i]:
            if labels[y - 1, starts[i]] == labels[y, starts[j]]:
                _union_min(parent, i, j)
        if ends[i] < ends[j]:
            i += 1
        else:
            j += 1


@numba.njit(parallel=True, **_JIT)
def _union_runs(
    labels: np.ndarray,
    offsets: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    n_chunks: int,
) -> np.ndarray:
    height = labels.shape[0]
    parent = np.arange(offsets[height], dtype=np.int64)
    per = (height + n_chunks - 1) // n_chunks
    for chunk in prange(n_chunks):
        for y in range(chunk * per + 1, min((chunk + 1) * per, height)):
            _join_rows(labels, offsets, starts, ends, parent, y)
    for chunk in range(1, n_chunks):
        y = chunk * per
        if y < height:
            _join_rows(labels, offsets, starts, ends, parent, y)
    return parent


@numba.njit(**_JIT)
def _run_above(offsets: np.ndarray, starts: np.ndarray, ends: np.ndarray, y: int, x: int) -> int:
    """Index of the run of row ``y`` that covers column ``x``, or -1."""
    lo = offsets[y]
    hi = offsets[y + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        if ends[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    if lo < offsets[y + 1] and starts[lo] <= x:
        return lo
    return -1


@numba.njit(**_JIT)
def _split_large(
    out: np.ndarray,
    seen: np.ndarray,
    ident: int,
    box: np.ndarray,
    min_size: int,
    max_size: int,
    next_id: int,
) -> int:
    """Cut segment ``ident`` (inside ``box`` = y0, y1, x0, x1) into BFS pieces of ``max_size`` px.

    The first piece keeps ``ident``; the others get ``next_id``, ``next_id + 1``... A
    piece smaller than ``min_size`` is merged back, as scikit-image does: into an
    earlier piece of the segment it touches, or else the neighbouring segment it touches
    last in breadth-first order. Returns the next unused id.
    """
    height, width = out.shape
    y0, y1, x0, x1 = box[0], box[1], box[2], box[3]
    queue = np.empty(max_size + 4, dtype=np.int64)
    first_id = next_id
    first = True
    y_start = y0
    while True:
        sy = -1
        sx = -1
        for y in range(y_start, y1):
            for x in range(x0, x1):
                if out[y, x] == ident and not seen[y, x]:
                    sy, sx = y, x
                    break
            if sy >= 0:
                break
        if sy < 0:
            return next_id
        y_start = sy
        new = ident
        if not first:
            new = next_id
            next_id += 1
        first = False
        head = 0
        tail = 1
        adjacent = 0
        own = 0
        queue[0] = sy * width + sx
        seen[sy, sx] = True
        while head < tail:
            p = queue[head]
            head += 1
            y = p // width
            x = p % width
            out[y, x] = new
            for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):  # scikit-image's order
                ny = y + dy
                nx = x + dx
                if not (0 <= ny < height and 0 <= nx < width):
                    continue
                v = out[ny, nx]
                if v == ident and not seen[ny, nx]:
                    if tail < max_size:
                        seen[ny, nx] = True
                        queue[tail] = ny * width + nx
                        tail += 1
                elif v > 0 and v != new:
                    if v == ident or first_id <= v < new:
                        own = v  # an earlier piece of this segment
                    else:
                        adjacent = v
        if tail < min_size and new != ident:
            target = own if own > 0 else adjacent
            if target > 0:
                for i in range(tail):
                    out[queue[i] // width, queue[i] % width] = target
                next_id -= 1


@numba.njit(parallel=True, **_JIT)
def _paint_runs(
    offsets: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    run_id: np.ndarray,
    height: int,
    width: int,
) -> np.ndarray:
    out = np.empty((height, width), dtype=np.int32)
    for y in prange(height):
        x = 0
        for i in range(offsets[y], offsets[y + 1]):
            while x < starts[i]:
                out[y, x] = 0
                x += 1
            value = run_id[i]
            for xx in range(starts[i], ends[i]):
                out[y, xx] = value
            x = ends[i]
        while x < width:
            out[y, x] = 0
            x += 1
    return out


@numba.njit(**_JIT)
def connected_relabel(
    labels: np.ndarray, min_size: int, max_size: int, n_chunks: int
) -> np.ndarray:
    """Make every label one 4-connected segment, numbered 1..N in raster order.

    Works on horizontal runs: runs of equal label are joined with the overlapping runs
    of the row above (union-find, rows in parallel strips). A segment smaller than
    ``min_size`` pixels joins the segment above (or left of) its first pixel, as
    scikit-image's ``_enforce_label_connectivity_cython`` does; a connected piece larger
    than ``max_size`` is cut into breadth-first pieces of ``max_size`` pixels, and a cut
    piece smaller than ``min_size`` joins back. Pixels with label < 0 get 0.
    """
    height, width = labels.shape
    offsets = np.cumsum(_count_runs(labels))
    starts, ends = _fill_runs(labels, offsets)
    parent = _union_runs(labels, offsets, starts, ends, n_chunks)
    n_runs = parent.shape[0]
    size = np.zeros(n_runs, dtype=np.int64)
    for i in range(n_runs):  # roots precede their runs: one pass resolves them
        parent[i] = parent[parent[i]]
        size[parent[i]] += ends[i] - starts[i]
    row_of = np.empty(n_runs, dtype=np.int32)
    for y in range(height):
        for i in range(offsets[y], offsets[y + 1]):
            row_of[i] = y
    ident = np.zeros(n_runs, dtype=np.int32)
    n = 0
    large = 0
    for r in range(n_runs):
        if parent[r] != r:
            continue
        target = -1
        if size[r] < min_size:
            y = row_of[r]
            if y > 0:
                target = _run_above(offsets, starts, ends, y - 1, starts[r])
            if target < 0 and r > offsets[y] and ends[r - 1] == starts[r]:
                target = r - 1
        if target >= 0:
            ident[r] = ident[parent[target]]
        else:
            n += 1
            ident[r] = n
            if size[r] > max_size:
                large += 1
    run_id = np.empty(n_runs, dtype=np.int32)
    for i in range(n_runs):
        run_id[i] = ident[parent[i]]
    out = _paint_runs(offsets, starts, ends, run_id, height, width)
    if large > 0:
        # Bounding box of each segment, then cut the oversized ones (rare).
        box = np.empty((n + 1, 4), dtype=np.int64)
        box[:, 0] = height
        box[:, 1] = 0
        box[:, 2] = width
        box[:, 3] = 0
        for i in range(n_runs):
            j = run_id[i]
            box[j, 0] = min(box[j, 0], row_of[i])
            box[j, 1] = max(box[j, 1], row_of[i] + 1)
            box[j, 2] = min(box[j, 2], starts[i])
            box[j, 3] = max(box[j, 3], ends[i])
        seen = np.zeros((height, width), dtype=np.bool_)
        next_id = n + 1
        for r in range(n_runs):
            if parent[r] == r and size[r] > max_size and ident[r] > 0:
                next_id = _split_large(
                    out, seen, ident[r], box[ident[r]], min_size, max_size, next_id
                )
    return out


@numba.njit(parallel=True, **_JIT)
def relabel_consecutive(labels: np.ndarray, n_labels: int) -> np.ndarray:
    """Map labels 0..n_labels-1 (or -1) to 1..N in order of first use; -1 to 0."""
    height, width = labels.shape
    used = np.zeros(n_labels, dtype=np.bool_)
    for y in range(height):
        for x in range(width):
            if labels[y, x] >= 0:
                used[labels[y, x]] = True
    ident = np.zeros(n_labels, dtype=np.int32)
    n = 0
    for k in range(n_labels):
        if used[k]:
            n += 1
            ident[k] = n
    out = np.empty((height, width), dtype=np.int32)
    for y in prange(height):
        for x in range(width):
            v = labels[y, x]
            out[y, x] = ident[v] if v >= 0 else 0
    return out


# ------------------------------------------------------------------ Felzenszwalb
@numba.njit(parallel=True, fastmath=_FM, **_JIT)
def fh_edges(image: np.ndarray, mask: np.ndarray, has_mask: bool) -> np.ndarray:
    """8-connectivity edge keys ``(24-bit float cost << 40) | edge`` (edge = 4 p + d).

    Directions ``d``: 0 right, 1 down, 2 down-right, 3 (y, x+1)-(y+1, x). Costs are the
    Euclidean band distance; edges that leave the image or touch a masked pixel get an
    infinite cost and sort last. The keys are written in one pass (no cost array).
    """
    n_bands, height, width = image.shape
    n = height * width
    keys = np.empty(4 * n, dtype=np.uint64)
    for yy in prange(height):
        y = np.int64(yy)
        for x in range(width):
            p = y * width + x
            for d in range(4):
                if d == 0:
                    ay, ax, by, bx = y, x, y, x + 1
                elif d == 1:
                    ay, ax, by, bx = y, x, y + 1, x
                elif d == 2:
                    ay, ax, by, bx = y, x, y + 1, x + 1
                else:
                    ay, ax, by, bx = y, x + 1, y + 1, x
                cost = np.float32(np.inf)
                if (
                    by < height
                    and bx < width
                    and ax < width
                    and (not has_mask or (mask[ay, ax] and mask[by, bx]))
                ):
                    acc = np.float32(0.0)
                    for c in range(n_bands):
                        t = image[c, ay, ax] - image[c, by, bx]
                        acc += t * t
                    cost = np.sqrt(acc)
                bits = np.uint64(np.float32(cost).view(np.uint32))
                i = 4 * p + d
                keys[i] = ((bits >> np.uint64(8)) << np.uint64(40)) | np.uint64(i)
    return keys


@numba.njit(parallel=True, **_JIT)
def fh_sort(keys: np.ndarray, n_chunks: int) -> np.ndarray:
    """Stable LSD radix sort of the keys on their top 24 bits (two 12-bit passes)."""
    n = keys.shape[0]
    src = keys
    dst = np.empty_like(keys)
    per = (n + n_chunks - 1) // n_chunks
    for shift in (40, 52):
        sh = np.uint64(shift)
        hist = np.zeros((n_chunks, 4096), dtype=np.int64)
        for chunk in prange(n_chunks):
            for i in range(chunk * per, min((chunk + 1) * per, n)):
                hist[chunk, (src[i] >> sh) & np.uint64(4095)] += 1
        total = 0
        for digit in range(4096):
            for chunk in range(n_chunks):
                count = hist[chunk, digit]
                hist[chunk, digit] = total
                total += count
        for chunk in prange(n_chunks):
            pos = hist[chunk]
            for i in range(chunk * per, min((chunk + 1) * per, n)):
                v = src[i]
                digit = (v >> sh) & np.uint64(4095)
                dst[pos[digit]] = v
                pos[digit] += 1
        src, dst = dst, src
    return src


#: Felzenszwalb's per-node state beside the union-find parent: one cache line holds both.
_FH_NODE = np.dtype([("size", np.int32), ("inner", np.float32)])


# LLVM names the intrinsic by pointer type: opaque pointers ("p0") since LLVM 15.
_PREFETCH = "llvm.prefetch.p0" if llvm_version_info >= (15,) else "llvm.prefetch.p0i8"


@intrinsic
def _prefetch(typingctx, array, index):  # noqa: ANN001, ANN202 (numba typing signature)
    """Hint the CPU to fetch ``array[index]`` into the caches (LLVM ``llvm.prefetch``)."""
    sig = types.void(array, index)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(
            context, builder, signature.args[0], ary, [args[1]], wraparound=False
        )
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _PREFETCH)
        # read, high temporal locality, data cache
        builder.call(
            fn,
            [
                builder.bitcast(ptr, i8p),
                ir.Constant(i32, 0),
                ir.Constant(i32, 3),
                ir.Constant(i32, 1),
            ],
        )
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(inline="always", **_JIT)
def _fh_ends(key: np.uint64, width: int) -> tuple[int, int]:
    """Return the two pixels (flat indices) of an edge key (see :func:`fh_edges`)."""
    e = np.int64(key & np.uint64((1 << 40) - 1))
    p = e >> 2
    d = e & 3
    if d == 0:
        return p, p + 1
    if d == 1:
        return p, p + width
    if d == 2:
        return p, p + width + 1
    return p + 1, p + width


@numba.njit(inline="always", **_JIT)
def _is_set(bitset: np.ndarray, i: int) -> bool:
    return bool((bitset[i >> 6] >> np.uint64(i & 63)) & np.uint64(1))


@numba.njit(**_JIT)
def fh_labels(
    keys: np.ndarray,
    mask: np.ndarray,
    has_mask: bool,
    height: int,
    width: int,
    k: float,
    min_size: int,
) -> np.ndarray:
    """Felzenszwalb-Huttenlocher merging over sorted edges, then small-segment merging.

    The merging visits the edges in order, so it is sequential and bound by memory
    latency (each edge touches two random pixels and their roots). Two software
    prefetch stages hide most of it: 32 edges ahead the pixels' parents, 12 edges ahead
    the parents' parents and sizes (most often the roots). The small-segment pass only
    looks up edges that touch a segment smaller than ``min_size`` after the first pass
    (a bitset of their pixels): segments only grow, so no other edge can merge.
    Returns (H, W) int32 labels 1..N in raster order of first pixel, 0 where masked.
    """
    n = height * width
    parent = np.arange(n, dtype=np.int32)
    node = np.empty(n, dtype=_FH_NODE)
    for i in range(n):
        node[i].size = 1
        node[i].inner = 0.0
    bits = np.zeros(1, dtype=np.uint32)
    as_float = bits.view(np.float32)
    inf_key = np.uint64(0x7F800000 >> 8)
    k32 = np.float32(k)
    lo = 0
    hi = keys.shape[0]
    while lo < hi:  # edges with an infinite cost (masked, off the image) sort last
        mid = (lo + hi) // 2
        if (keys[mid] >> np.uint64(40)) >= inf_key:
            hi = mid
        else:
            lo = mid + 1
    n_edges = lo
    far = 32
    near = 12
    for i in range(n_edges):
        if i + far < n_edges:
            a, b = _fh_ends(keys[i + far], width)
            _prefetch(parent, a)
            _prefetch(parent, b)
        if i + near < n_edges:
            a, b = _fh_ends(keys[i + near], width)
            pa = parent[a]
            pb = parent[b]
            _prefetch(parent, pa)
            _prefetch(node, pa)
            _prefetch(parent, pb)
            _prefetch(node, pb)
        key = keys[i]
        a, b = _fh_ends(key, width)
        ra = _find(parent, a)
        rb = _find(parent, b)
        if ra == rb:
            continue
        bits[0] = np.uint32((key >> np.uint64(40)) << np.uint64(8))
        cost = as_float[0]
        sa = node[ra].size
        sb = node[rb].size
        if cost < min(node[ra].inner + k32 / sa, node[rb].inner + k32 / sb):
            if sa < sb:
                ra, rb = rb, ra
            parent[rb] = ra
            node[ra].size = sa + sb
            node[ra].inner = cost
    small = np.zeros((n + 63) // 64, dtype=np.uint64)
    any_small = False
    for p in range(n):
        if node[_find(parent, p)].size < min_size:
            small[p >> 6] |= np.uint64(1) << np.uint64(p & 63)
            any_small = True
    if any_small:
        for i in range(n_edges):
            a, b = _fh_ends(keys[i], width)
            if not (_is_set(small, a) or _is_set(small, b)):
                continue
            ra = _find(parent, a)
            rb = _find(parent, b)
            if ra == rb:
                continue
            sa = node[ra].size
            sb = node[rb].size
            if sa < min_size or sb < min_size:
                if sa < sb:
                    ra, rb = rb, ra
                parent[rb] = ra
                node[ra].size = sa + sb
    out = np.zeros((height, width), dtype=np.int32)
    ident = np.zeros(n, dtype=np.int32)
    count = 0
    for y in range(height):
        for x in range(width):
            if has_mask and not mask[y, x]:
                continue
            r = _find(parent, y * width + x)
            if ident[r] == 0:
                count += 1
                ident[r] = count
            out[y, x] = ident[r]
    return out


# -------------------------------------------------------------------- QuickShift
@numba.njit(inline="always", fastmath=_FM, **_JIT)
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


@numba.njit(parallel=True, fastmath=_FM, **_JIT)
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


@numba.njit(parallel=True, fastmath=_FM, **_JIT)
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


@numba.njit(**_JIT)
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
