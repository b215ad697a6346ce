"""Connected-component numba kernels shared by the superpixel methods (private).

Run-length union-find that splits labels into connected segments (size limits), consecutive
relabelling, and the union-find primitives Felzenszwalb reuses.

Shapes and units are the caller's job; conventions in :mod:`core._kernel_options`.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._kernel_options import JIT

__all__ = [
    "connected_relabel",
    "find",
    "relabel_consecutive",
    "union_min",
]


@numba.njit(parallel=True, **JIT)
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


@numba.njit(parallel=True, **JIT)
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


@numba.njit(inline="always", **JIT)
def find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(inline="always", **JIT)
def union_min(parent: np.ndarray, a: int, b: int) -> None:
    """Union keeping the smaller index as root (the root is a set's first run)."""
    ra = find(parent, a)
    rb = find(parent, b)
    if ra < rb:
        parent[rb] = ra
    elif rb < ra:
        parent[ra] = rb


@numba.njit(**JIT)
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
                union_min(parent, i, j)
        if ends[i] < ends[j]:
            i += 1
        else:
            j += 1


@numba.njit(parallel=True, **JIT)
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


@numba.njit(**JIT)
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


@numba.njit(**JIT)
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


@numba.njit(parallel=True, **JIT)
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


@numba.njit(**JIT)
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


@numba.njit(parallel=True, **JIT)
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
