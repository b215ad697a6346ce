"""Claiming of block-wise superpixels: raster-wide ids that cross block borders.

Steps 3 and 4 of the scheme of :mod:`core.superpixel_blocks`: a block claims the local
segments with a pixel in its core; a complete segment is claimed whole, an open one (cut
by an inner window edge) only inside the core, with *hints* beyond it that a later
block's segment continues when it lies for more than half on them.
"""

from __future__ import annotations

import numpy as np
from rasterio.windows import Window

from ._block_kernels import paint_ids, segment_sizes, spread_hints

__all__ = ["claim_segments", "open_edges"]


def open_edges(window: Window, height: int, width: int) -> tuple[bool, bool, bool, bool]:
    """Which edges of a window (top, bottom, left, right) lie inside the raster."""
    return (
        window.row_off > 0,
        window.row_off + window.height < height,
        window.col_off > 0,
        window.col_off + window.width < width,
    )


def _touching(local: np.ndarray, n: int, edges: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """Which local segments (1..n) touch an open window edge."""
    touch = np.zeros(n + 1, dtype=bool)
    for is_open, line in zip(edges, (local[0], local[-1], local[:, 0], local[:, -1]), strict=True):
        if is_open:
            touch[line] = True
    touch[0] = False
    return touch


def _neighbour_pairs(local: np.ndarray, claimed: np.ndarray) -> np.ndarray:
    """Codes ``local * 2**32 + claimed`` of 4-adjacent (local segment, claimed id) pairs."""
    codes = []
    for a, b in (
        (local[:, :-1], claimed[:, 1:]),
        (local[:, 1:], claimed[:, :-1]),
        (local[:-1], claimed[1:]),
        (local[1:], claimed[:-1]),
    ):
        hit = (a > 0) & (b > 0)
        codes.append((a[hit].astype(np.int64) << 32) | b[hit].astype(np.int64))
    return np.unique(np.concatenate(codes))


def _continuations(
    local: np.ndarray, hints: np.ndarray, claimed: np.ndarray, sizes: np.ndarray
) -> np.ndarray:
    """For each local segment, the id it continues (0: none).

    A local segment continues id ``g`` when more than half of its pixels carry ``g``'s
    hint and it touches a pixel claimed with ``g``; each ``g`` is continued by at most
    one local segment (the one with most of its hints).
    """
    take = np.zeros(sizes.shape[0], dtype=np.int64)
    if not hints.any():
        return take
    sel = (local > 0) & (hints > 0)
    if not sel.any():
        return take
    codes, counts = np.unique(
        (local[sel].astype(np.int64) << 32) | hints[sel].astype(np.int64), return_counts=True
    )
    segs, ids = codes >> 32, codes & 0xFFFFFFFF
    ok = 2 * counts > sizes[segs]
    ok &= np.isin(codes, _neighbour_pairs(local, claimed))
    segs, ids, counts = segs[ok], ids[ok], counts[ok]
    order = np.lexsort((-counts, ids))  # by id, most hints first
    segs, ids = segs[order], ids[order]
    first = np.ones(ids.shape[0], dtype=bool)
    first[1:] = ids[1:] != ids[:-1]
    take[segs[first]] = ids[first]
    return take


def claim_segments(
    local: np.ndarray,
    claimed: np.ndarray,
    hints: np.ndarray,
    core: tuple[slice, slice],
    edges: tuple[bool, bool, bool, bool],
    next_id: int,
    *,
    connectivity: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Give raster-wide ids to the local segments this block owns (scheme in the module doc).

    Returns the window's updated labels and hints and the next unused id. The hints are
    the ``hints`` object itself when no segment is open (nothing to add).
    """
    from skimage.measure import label as components

    n = int(local.max())
    local = np.ascontiguousarray(local, dtype=np.int32)
    rows, cols = core
    sizes, in_core = segment_sizes(local, n, rows.start, rows.stop, cols.start, cols.stop)
    touch = _touching(local, n, edges)
    take = _continuations(local, hints, claimed, sizes)
    complete = in_core & ~touch
    open_ = in_core & touch

    ids = np.zeros(n + 1, dtype=np.int64)
    new = (complete | open_) & (take == 0)
    ids[new] = next_id + np.arange(int(new.sum()))
    next_id += int(new.sum())
    ids[take > 0] = take[take > 0]

    labels = np.array(claimed, dtype=np.int32)  # a copy
    paint_ids(labels, local, np.where(complete, ids, 0))
    if open_.any():
        hints = np.array(hints, dtype=np.int32)  # a copy
        core_local = local[core]
        pieces_local = np.where(open_[core_local], core_local, 0)
        pieces = components(pieces_local, background=0, connectivity=connectivity)
        m = int(pieces.max())
        piece_size = np.bincount(pieces.ravel(), minlength=m + 1)
        piece_seg = np.zeros(m + 1, dtype=np.int64)
        piece_seg[pieces.ravel()] = pieces_local.ravel()
        # The largest piece of each open segment keeps its id; the others get new ones.
        order = np.lexsort((-piece_size[1:], piece_seg[1:])) + 1
        keep = np.zeros(m + 1, dtype=bool)
        seg_sorted = piece_seg[order]
        keep[order[np.r_[True, seg_sorted[1:] != seg_sorted[:-1]]]] = True
        piece_id = np.zeros(m + 1, dtype=np.int64)
        piece_id[keep] = ids[piece_seg[keep]]
        extra = ~keep
        extra[0] = False
        piece_id[extra] = next_id + np.arange(int(extra.sum()))
        next_id += int(extra.sum())
        core_labels = labels[core]
        hit = pieces > 0
        core_labels[hit] = piece_id[pieces[hit]]
        labels[core] = core_labels
        # Hints: the open segments' pixels beyond the core, still unclaimed.
        spread_hints(hints, labels, local, open_, ids)
    return labels, hints, next_id
