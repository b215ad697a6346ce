"""Numba kernels of the block-wise superpixel path (private).

Per-pixel passes over one block's window that numpy does in several full-size
temporaries: the table lookup that stretches 8- and 16-bit bands, and the claiming
passes of :func:`core.superpixel_claims.claim_segments`. All are serial (no ``prange``):
the lookup runs in the reader thread while the segmenter's parallel kernels run in the
main thread, and the claiming passes are memory-bound single sweeps.

Conventions in :mod:`core._kernel_options`.
"""

from __future__ import annotations

import numba
import numpy as np

from ._kernel_options import JIT

__all__ = ["apply_tables", "paint_ids", "segment_sizes", "spread_hints"]


@numba.njit(**JIT)
def apply_tables(raw: np.ndarray, tables: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``out[c, y, x] = tables[c, raw[c, y, x]]`` on valid pixels, 0 elsewhere (float32)."""
    bands, height, width = raw.shape
    out = np.empty((bands, height, width), dtype=np.float32)
    for c in range(bands):
        table = tables[c]
        for y in range(height):
            for x in range(width):
                out[c, y, x] = table[raw[c, y, x]] if valid[y, x] else np.float32(0)
    return out


@numba.njit(**JIT)
def segment_sizes(
    local: np.ndarray, n: int, r0: int, r1: int, c0: int, c1: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of each local segment 0..n, and whether it has a pixel in rows r0:r1, c0:c1."""
    sizes = np.zeros(n + 1, dtype=np.int64)
    in_core = np.zeros(n + 1, dtype=np.bool_)
    height, width = local.shape
    for y in range(height):
        inside = r0 <= y < r1
        for x in range(width):
            s = local[y, x]
            sizes[s] += 1
            if inside and c0 <= x < c1:
                in_core[s] = True
    in_core[0] = False
    return sizes, in_core


@numba.njit(**JIT)
def paint_ids(labels: np.ndarray, local: np.ndarray, table: np.ndarray) -> None:
    """``labels[p] = table[local[p]]`` wherever that is non-zero (in place)."""
    height, width = local.shape
    for y in range(height):
        for x in range(width):
            value = table[local[y, x]]
            if value != 0:
                labels[y, x] = value


@numba.njit(**JIT)
def spread_hints(
    hints: np.ndarray, labels: np.ndarray, local: np.ndarray, open_: np.ndarray, ids: np.ndarray
) -> None:
    """``hints[p] = ids[local[p]]`` where ``local[p]`` is open and ``labels[p]`` is 0."""
    height, width = local.shape
    for y in range(height):
        for x in range(width):
            s = local[y, x]
            if open_[s] and labels[y, x] == 0:
                hints[y, x] = ids[s]
