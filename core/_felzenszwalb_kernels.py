"""Felzenszwalb's numba kernels behind :func:`core.superpixels.felzenszwalb` (private).

Edge keys of the 8-connected pixel graph, their radix sort, and the graph merging.

Shapes and units are the caller's job; conventions in :mod:`core._kernel_options`.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from llvmlite.binding import llvm_version_info
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._kernel_options import FASTMATH, JIT

__all__ = [
    "FH_NODE",
    "fh_edges",
    "fh_labels",
    "fh_sort",
]


@numba.njit(parallel=True, fastmath=FASTMATH, **JIT)
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


@numba.njit(parallel=True, **JIT)
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


#: Felzenszwalb's state of a pixel in one 8-byte record: its union-find parent, or, for a
#: root, minus its segment's size (``p < 0``), and the segment's internal difference. A
#: root's size and internal difference come with the lookup that finds it.
FH_NODE = np.dtype([("p", np.int32), ("inner", np.float32)])

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


@numba.njit(inline="always", **JIT)
def _fh_ends(key: np.uint64, width: int) -> tuple[int, int]:
    """Return the two pixels (flat indices) of an edge key (see :func:`fh_edges`).

    Branch-free: the sorted edges' directions are random, and mispredicted branches on
    them cost the merge about 10 %.
    """
    e = np.int64(key & np.uint64((1 << 40) - 1))
    p = e >> 2
    d = e & 3
    # d = 0: (p, p + 1); 1: (p, p + width); 2: (p, p + width + 1); 3: (p + 1, p + width)
    return p + (d == 3), p + (d == 0) + (d != 0) * width + (d == 2)


@numba.njit(inline="always", **JIT)
def _root(node: np.ndarray, i: int) -> int:
    """Return the root of pixel ``i`` (path halving)."""
    while node[i].p >= 0:
        q = node[i].p
        if node[q].p >= 0:
            node[i].p = node[q].p
        i = q
    return i


@numba.njit(inline="always", **JIT)
def _is_set(bitset: np.ndarray, i: int) -> bool:
    return bool((bitset[i >> 6] >> np.uint64(i & 63)) & np.uint64(1))


#: Software prefetch distances of the merges, in edges: the pixels' records, their parents'.
_FAR = 32
_NEAR = 12


@numba.njit(**JIT)
def _fh_n_finite(keys: np.ndarray) -> int:
    """Count the keys with a finite cost (edges off the image or masked sort last)."""
    inf_key = np.uint64(0x7F800000 >> 8)
    lo = 0
    hi = keys.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if (keys[mid] >> np.uint64(40)) >= inf_key:
            hi = mid
        else:
            lo = mid + 1
    return lo


@numba.njit(**JIT)
def _fh_merge(keys: np.ndarray, node: np.ndarray, width: int, k: float) -> int:
    """Start every pixel as its own segment, merge over the sorted keys (finite costs).

    Returns the number of keys with a finite cost.
    """
    for i in range(node.shape[0]):
        node[i].p = -1
        node[i].inner = 0.0
    n_edges = _fh_n_finite(keys)
    bits = np.zeros(1, dtype=np.uint32)
    as_float = bits.view(np.float32)
    k32 = np.float32(k)
    far, near = _FAR, _NEAR
    for i in range(n_edges):
        if i + far < n_edges:  # inline: a prefetch helper, even inlined, costs ~30 %
            a, b = _fh_ends(keys[i + far], width)
            _prefetch(node, a)
            _prefetch(node, b)
        if i + near < n_edges:
            a, b = _fh_ends(keys[i + near], width)
            pa = node[a].p
            pb = node[b].p
            if pa >= 0:
                _prefetch(node, pa)
            if pb >= 0:
                _prefetch(node, pb)
        key = keys[i]
        a, b = _fh_ends(key, width)
        ra = _root(node, a)
        rb = _root(node, b)
        if ra == rb:
            continue
        bits[0] = np.uint32((key >> np.uint64(40)) << np.uint64(8))
        cost = as_float[0]
        sa = -node[ra].p
        sb = -node[rb].p
        if cost < min(node[ra].inner + k32 / sa, node[rb].inner + k32 / sb):
            if sa < sb:
                ra, rb = rb, ra
            node[rb].p = ra
            node[ra].p = -(sa + sb)
            node[ra].inner = cost
    return n_edges


@numba.njit(**JIT)
def _fh_flatten(node: np.ndarray, min_size: int) -> np.ndarray:
    """Point every pixel at its root; return the bitset of pixels in segments < min_size."""
    n = node.shape[0]
    small = np.zeros((n + 63) // 64, dtype=np.uint64)
    for p in range(n):
        r = _root(node, p)
        if r != p:
            node[p].p = r
        if -node[r].p < min_size:
            small[p >> 6] |= np.uint64(1) << np.uint64(p & 63)
    return small


@numba.njit(parallel=True, **JIT)
def _fh_keep_small(
    keys: np.ndarray, small: np.ndarray, n_edges: int, width: int, n_chunks: int
) -> int:
    """Move the keys of edges with a pixel in ``small`` to the front, in order; count them.

    Each of ``n_chunks`` parallel chunks packs its kept keys at its own start, then the
    chunks are moved together.
    """
    per = (n_edges + n_chunks - 1) // n_chunks
    counts = np.zeros(n_chunks, dtype=np.int64)
    for chunk in prange(n_chunks):
        start = chunk * per
        kept = start
        for i in range(start, min(start + per, n_edges)):
            key = keys[i]
            a, b = _fh_ends(key, width)
            keys[kept] = key  # branch-free: overwritten unless kept
            kept += _is_set(small, a) | _is_set(small, b)
        counts[chunk] = kept - start
    total = counts[0]
    for chunk in range(1, n_chunks):
        start = chunk * per
        for j in range(counts[chunk]):
            keys[total + j] = keys[start + j]
        total += counts[chunk]
    return total


@numba.njit(**JIT)
def _fh_merge_small(
    keys: np.ndarray, node: np.ndarray, n_keys: int, width: int, min_size: int
) -> None:
    """Join the two segments of each edge in order while one is smaller than ``min_size``."""
    far, near = _FAR, _NEAR
    for i in range(n_keys):
        if i + far < n_keys:  # inline: a prefetch helper, even inlined, costs ~30 %
            a, b = _fh_ends(keys[i + far], width)
            _prefetch(node, a)
            _prefetch(node, b)
        if i + near < n_keys:
            a, b = _fh_ends(keys[i + near], width)
            pa = node[a].p
            pb = node[b].p
            if pa >= 0:
                _prefetch(node, pa)
            if pb >= 0:
                _prefetch(node, pb)
        a, b = _fh_ends(keys[i], width)
        ra = _root(node, a)
        rb = _root(node, b)
        if ra == rb:
            continue
        sa = -node[ra].p
        sb = -node[rb].p
        if sa < min_size or sb < min_size:
            if sa < sb:
                ra, rb = rb, ra
            node[rb].p = ra
            node[ra].p = -(sa + sb)


@numba.njit(**JIT)
def _fh_number(
    node: np.ndarray, mask: np.ndarray, has_mask: bool, height: int, width: int
) -> np.ndarray:
    """(H, W) int32 segment ids 1..N in raster order of first pixel, 0 where masked."""
    out = np.zeros((height, width), dtype=np.int32)
    ident = np.zeros(height * width, dtype=np.int32)
    count = 0
    for y in range(height):
        for x in range(width):
            if has_mask and not mask[y, x]:
                continue
            r = _root(node, y * width + x)
            if ident[r] == 0:
                count += 1
                ident[r] = count
            out[y, x] = ident[r]
    return out


def fh_labels(
    keys: np.ndarray,
    mask: np.ndarray,
    has_mask: bool,
    height: int,
    width: int,
    *,
    k: float,
    min_size: int,
    n_chunks: int,
) -> np.ndarray:
    """Felzenszwalb-Huttenlocher merging over sorted edges, then small-segment merging.

    The merging visits the edges in order, so it is sequential and bound by memory
    latency (each edge touches two random pixels and their roots). Each pixel has one
    8-byte record (:data:`FH_NODE`), so finding a root also brings its size and internal
    difference. The records are allocated by numpy, which asks Linux for transparent huge
    pages, so these random accesses rarely miss the TLB. Two software prefetch stages
    hide most of the latency: :data:`_FAR` edges ahead the pixels' records, :data:`_NEAR`
    edges ahead their parents' (most often the roots). Then every pixel is pointed at its
    root. Only edges that touch a segment smaller than ``min_size`` after the first pass
    can merge in the small-segment pass (segments only grow): their keys are moved to the
    front of ``keys`` (which is overwritten) in ``n_chunks`` parallel chunks, and that
    pass, prefetching too, visits only them.
    Returns (H, W) int32 labels 1..N in raster order of first pixel, 0 where masked.
    """
    node = np.empty(height * width, dtype=FH_NODE)
    n_edges = _fh_merge(keys, node, width, k)
    small = _fh_flatten(node, min_size)
    n_small = _fh_keep_small(keys, small, n_edges, width, n_chunks)
    _fh_merge_small(keys, node, n_small, width, min_size)
    return _fh_number(node, mask, has_mask, height, width)
