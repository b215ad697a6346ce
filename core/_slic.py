"""numba kernels of LandSeg's SLIC: assignment, centre update, connectivity."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["enforce_connectivity", "slic_labels"]


@numba.njit(cache=True, nogil=True)
def _grid(height: int, width: int, step: float) -> tuple[int, int, float, float]:
    rows = max(round(height / step), 1)
    cols = max(round(width / step), 1)
    return rows, cols, height / rows, width / cols


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True, error_model="numpy")
def _assign(
    image: np.ndarray,
    mask: np.ndarray,
    centres: np.ndarray,
    alive: np.ndarray,
    rows: int,
    cols: int,
    cell_y: float,
    cell_x: float,
    weight: float,
    stride: int,
    labels: np.ndarray,
) -> None:
    """Label each pixel (every ``stride``-th row/column) with its nearest centre."""
    n_bands, height, width = image.shape
    n_rows = (height + stride - 1) // stride
    for ry in numba.prange(n_rows):
        y = ry * stride
        gy = min(int(y / cell_y), rows - 1)
        pixel = np.empty(n_bands, dtype=np.float32)
        for x in range(0, width, stride):
            if not mask[y, x]:
                labels[y, x] = -1
                continue
            for c in range(n_bands):
                pixel[c] = image[c, y, x]
            gx = min(int(x / cell_x), cols - 1)
            best = np.inf
            best_k = -1
            for ny in range(max(gy - 1, 0), min(gy + 2, rows)):
                for nx in range(max(gx - 1, 0), min(gx + 2, cols)):
                    k = ny * cols + nx
                    if not alive[k]:
                        continue
                    dy = y - centres[k, 0]
                    dx = x - centres[k, 1]
                    d = (dy * dy + dx * dx) * weight
                    if d >= best:
                        continue
                    for c in range(n_bands):
                        diff = pixel[c] - centres[k, 2 + c]
                        d += diff * diff
                    if d < best:
                        best = d
                        best_k = k
            labels[y, x] = best_k


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True, error_model="numpy")
def _assign_from_samples(
    image: np.ndarray,
    mask: np.ndarray,
    centres: np.ndarray,
    samples: np.ndarray,
    stride: int,
    weight: float,
) -> np.ndarray:
    """Full-resolution assignment that only weighs the labels of the surrounding samples.

    ``samples`` holds labels on every ``stride``-th row and column. A pixel whose four
    surrounding samples agree takes their label; elsewhere (near boundaries) it takes
    the nearest of their (at most four) centres.
    """
    n_bands, height, width = image.shape
    last_y = ((height - 1) // stride) * stride
    last_x = ((width - 1) // stride) * stride
    out = np.empty((height, width), dtype=np.int32)
    for y in numba.prange(height):
        y0 = (y // stride) * stride
        y1 = min(y0 + stride, last_y)
        candidates = np.empty(4, dtype=np.int32)
        for x in range(width):
            if not mask[y, x]:
                out[y, x] = -1
                continue
            x0 = (x // stride) * stride
            x1 = min(x0 + stride, last_x)
            candidates[0] = samples[y0, x0]
            candidates[1] = samples[y0, x1]
            candidates[2] = samples[y1, x0]
            candidates[3] = samples[y1, x1]
            first = -1
            same = True
            for i in range(4):
                if candidates[i] >= 0:
                    if first < 0:
                        first = candidates[i]
                    elif candidates[i] != first:
                        same = False
            if same:
                out[y, x] = first
                continue
            best = np.inf
            best_k = -1
            for i in range(4):
                k = candidates[i]
                if k < 0 or k == best_k:
                    continue
                dy = y - centres[k, 0]
                dx = x - centres[k, 1]
                d = (dy * dy + dx * dx) * weight
                for c in range(n_bands):
                    diff = image[c, y, x] - centres[k, 2 + c]
                    d += diff * diff
                if d < best:
                    best = d
                    best_k = k
            out[y, x] = best_k
    return out


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=True, error_model="numpy")
def _update(
    image: np.ndarray, labels: np.ndarray, n_centres: int, stride: int, n_chunks: int
) -> np.ndarray:
    """Mean position and band values of each centre's pixels (per-chunk partial sums)."""
    n_bands, height, width = image.shape
    n_rows = (height + stride - 1) // stride
    partial = np.zeros((n_chunks, n_centres, 3 + n_bands))
    per_chunk = (n_rows + n_chunks - 1) // n_chunks
    for chunk in numba.prange(n_chunks):
        acc = partial[chunk]
        for ry in range(chunk * per_chunk, min((chunk + 1) * per_chunk, n_rows)):
            y = ry * stride
            for x in range(0, width, stride):
                k = labels[y, x]
                if k < 0:
                    continue
                acc[k, 0] += 1.0
                acc[k, 1] += y
                acc[k, 2] += x
                for c in range(n_bands):
                    acc[k, 3 + c] += image[c, y, x]
    return partial.sum(axis=0)


@numba.njit(cache=True, nogil=True)
def _initial_centres(
    image: np.ndarray, mask: np.ndarray, rows: int, cols: int, cell_y: float, cell_x: float
) -> tuple[np.ndarray, np.ndarray]:
    """One centre per grid cell, at the cell middle (moved to a valid pixel if needed)."""
    n_bands, height, width = image.shape
    centres = np.zeros((rows * cols, 2 + n_bands), dtype=np.float32)
    alive = np.zeros(rows * cols, dtype=np.bool_)
    for gy in range(rows):
        for gx in range(cols):
            k = gy * cols + gx
            cy = min(int((gy + 0.5) * cell_y), height - 1)
            cx = min(int((gx + 0.5) * cell_x), width - 1)
            if not mask[cy, cx]:  # look for a valid pixel in the cell
                found = False
                y0 = int(gy * cell_y)
                x0 = int(gx * cell_x)
                for y in range(y0, min(int((gy + 1) * cell_y) + 1, height)):
                    for x in range(x0, min(int((gx + 1) * cell_x) + 1, width)):
                        if mask[y, x] and not found:
                            cy, cx, found = y, x, True
                if not found:
                    continue
            alive[k] = True
            centres[k, 0] = cy
            centres[k, 1] = cx
            for c in range(n_bands):
                centres[k, 2 + c] = image[c, cy, cx]
    return centres, alive


def slic_labels(image: np.ndarray, mask: np.ndarray, *, step: float, n_iter: int) -> np.ndarray:
    """Run SLIC's k-means; return (H, W) int32 centre indices, -1 outside the mask.

    ``image`` is already divided by the compactness, so the distance is
    ``|values|^2 + |position|^2 / step^2``.
    """
    _, height, width = image.shape
    rows, cols, cell_y, cell_x = _grid(height, width, step)
    weight = 1.0 / (step * step)
    centres, alive = _initial_centres(image, mask, rows, cols, cell_y, cell_x)
    labels = np.full((height, width), -1, dtype=np.int32)
    n_chunks = max(numba.get_num_threads() * 4, 1)
    # Iterate on every stride-th row and column (at least ~64 samples per segment;
    # centres converge as well), then assign every pixel once at full resolution.
    stride = int(min(max(step // 8, 1), 4)) if min(height, width) >= 8 * step else 1
    for _ in range(n_iter):
        _assign(image, mask, centres, alive, rows, cols, cell_y, cell_x, weight, stride, labels)
        sums = _update(image, labels, rows * cols, stride, n_chunks)
        filled = sums[:, 0] > 0
        centres[filled] = (sums[filled, 1:] / sums[filled, :1]).astype(np.float32)
    if stride == 1:
        _assign(image, mask, centres, alive, rows, cols, cell_y, cell_x, weight, 1, labels)
        return labels
    # One last assignment of the samples with the final centres, then every pixel.
    _assign(image, mask, centres, alive, rows, cols, cell_y, cell_x, weight, stride, labels)
    return _assign_from_samples(image, mask, centres, labels, stride, weight)


@numba.njit(cache=True, nogil=True)
def enforce_connectivity(
    labels: np.ndarray, mask: np.ndarray, min_size: int, max_size: int
) -> np.ndarray:
    """Relabel 4-connected regions 1..N; merge small ones into a neighbour.

    Regions smaller than ``min_size`` take the label of an adjacent, already labelled
    region; regions stop growing at ``max_size`` pixels (the rest starts a new region).
    Pixels outside ``mask`` get 0.
    """
    height, width = labels.shape
    out = np.zeros((height, width), dtype=np.int32)
    queue_y = np.empty(height * width, dtype=np.int32)
    queue_x = np.empty(height * width, dtype=np.int32)
    dys = np.array([-1, 1, 0, 0])
    dxs = np.array([0, 0, -1, 1])
    current = 0
    for y0 in range(height):
        for x0 in range(width):
            if out[y0, x0] != 0 or not mask[y0, x0]:
                continue
            current += 1
            target = labels[y0, x0]
            adjacent = 0
            for i in range(4):
                ny, nx = y0 + dys[i], x0 + dxs[i]
                if 0 <= ny < height and 0 <= nx < width and out[ny, nx] > 0:
                    adjacent = out[ny, nx]
            out[y0, x0] = current
            queue_y[0], queue_x[0] = y0, x0
            head, tail = 0, 1
            while head < tail and tail < max_size:
                y, x = queue_y[head], queue_x[head]
                head += 1
                for i in range(4):
                    ny, nx = y + dys[i], x + dxs[i]
                    if (
                        0 <= ny < height
                        and 0 <= nx < width
                        and out[ny, nx] == 0
                        and mask[ny, nx]
                        and labels[ny, nx] == target
                    ):
                        out[ny, nx] = current
                        queue_y[tail], queue_x[tail] = ny, nx
                        tail += 1
                        if tail >= max_size:
                            break
            if tail < min_size and adjacent > 0:
                for i in range(tail):
                    out[queue_y[i], queue_x[i]] = adjacent
                current -= 1
    return out
