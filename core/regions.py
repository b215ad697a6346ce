"""Connected regions of a label raster of any size, strip by strip, with a sieve.

:func:`iter_regions` reads a class or segment raster in strips of rows; each strip is
labelled into connected regions (:func:`skimage.measure.label`) and traced by GDAL's
polygonizer (:func:`rasterio.features.shapes`) in pixel coordinates, and regions cut by a
strip border are joined across it with a union-find on the two rows along the cut. A
region is yielded as soon as it no longer touches the cut line, so memory is bounded by
the regions open on the cut, not by the raster size. Coordinates stay integers, so the
joins are exact. :func:`sieve` merges regions smaller than a minimum size into the
neighbour they share the longest border with.

Writing the regions as polygons is :mod:`core.vectorize`'s job.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
import rasterio.features
import shapely
from affine import Affine
from rasterio.windows import Window
from shapely.geometry import MultiPolygon, Polygon

from .protocol import EngineError, Reporter

__all__ = ["Region", "iter_regions", "sieve"]

#: Pixels per strip (rows = this / width, at least 64 rows).
STRIP_PIXELS = 4_000_000

#: Rasters up to this many pixels are sieved whole (exactly); larger ones strip by strip
#: with a halo of ``2 * min_pixels + 2`` rows, where a chain of merges longer than the
#: halo across a strip cut can end differently.
SIEVE_WHOLE_PIXELS = 16_000_000

_NONE = np.iinfo(np.int64).min


# --------------------------------------------------------------------------- sieve


def _components(values: np.ndarray, valid: np.ndarray, connectivity: int) -> np.ndarray:
    """Label connected regions of equal value: (H, W) int32 ids 1..N, 0 where not valid."""
    from skimage.measure import label

    keyed = values.astype(np.int64, copy=True)
    keyed[~valid] = _NONE
    return label(keyed, background=_NONE, connectivity=1 if connectivity == 4 else 2).astype(
        np.int32, copy=False
    )


def _region_values(comp: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n + 1, dtype=np.int64)
    out[comp.ravel()] = values.ravel()
    out[0] = 0
    return out


def sieve(
    values: np.ndarray,
    valid: np.ndarray,
    min_pixels: int,
    *,
    connectivity: int = 4,
    open_top: bool = False,
    open_bottom: bool = False,
) -> np.ndarray:
    """Merge regions smaller than ``min_pixels`` into neighbours until none is left.

    A region is a connected set of pixels of one value. The smallest region (ties: the
    lowest region number, in reading order) is merged into the neighbour with which it
    shares the most pixel edges (ties: the lower value), the merged region is joined with
    the regions of its new value it now touches, and so on while a region smaller than
    ``min_pixels`` has a neighbour. Regions with no neighbour (surrounded by nodata) are
    kept, as GDAL's sieve keeps isolated regions. Unlike :func:`rasterio.features.sieve`,
    which merges into the largest neighbour, the longest shared border keeps the merged
    shapes compact.

    The order of the merges does not depend on ``min_pixels``, which only says when to
    stop: a larger minimum continues the same sequence, so it never gives more regions nor
    a smaller one (it coarsens the smaller minimum's result). Nodata pixels are never
    changed and are no neighbour.

    Parameters
    ----------
    values : (H, W) integer ndarray
        Class or segment values.
    valid : (H, W) bool ndarray
        False on nodata pixels.
    min_pixels : int
        Smallest region kept (unless isolated).
    connectivity : {4, 8}
        Pixel connectivity of the regions (8: regions touching at a corner are
        neighbours too, sharing no edge).
    open_top, open_bottom : bool
        The array is a window of a larger raster cut at its top/bottom row: regions
        touching a cut row are never merged away (their true size is unknown here), only
        into.

    Returns
    -------
    (H, W) ndarray
        Sieved values, same dtype.
    """
    out = values.copy()
    if min_pixels <= 1 or not valid.any():
        return out
    comp = _components(values, valid, connectivity)
    n = int(comp.max())
    sizes = np.bincount(comp.ravel(), minlength=n + 1).astype(np.int64)
    frozen = np.zeros(n + 1, dtype=bool)
    if open_top:
        frozen[np.unique(comp[0])] = True
    if open_bottom:
        frozen[np.unique(comp[-1])] = True
    candidates = np.flatnonzero((sizes < min_pixels) & ~frozen)
    candidates = candidates[candidates > 0]
    if candidates.size == 0:
        return out
    region_value = _region_values(comp, values, n)
    neighbours = _region_neighbours(comp, n, connectivity)
    parent = np.arange(n + 1)
    size = sizes.tolist()
    value = region_value.tolist()
    frozen_list = frozen.tolist()
    heap = [(size[i], int(i)) for i in candidates]
    heapq.heapify(heap)
    while heap:
        recorded, i = heapq.heappop(heap)
        if parent[i] != i or frozen_list[i]:
            continue
        if recorded != size[i]:
            heapq.heappush(heap, (size[i], i))
            continue
        if recorded >= min_pixels:
            break
        links = neighbours[i]
        if not links:
            continue  # isolated: kept, as GDAL keeps it
        target = min(links, key=lambda j: (-links[j], value[j], j))
        _absorb(target, i, neighbours, parent, size, frozen_list)
        for k in [k for k in neighbours[target] if value[k] == value[target]]:
            _absorb(target, k, neighbours, parent, size, frozen_list)
        if size[target] < min_pixels and not frozen_list[target]:
            heapq.heappush(heap, (size[target], target))
    roots = _roots(parent)
    new_value = np.asarray(value, dtype=np.int64)[roots]
    changed = valid & (roots[comp] != comp)
    out[changed] = new_value[comp[changed]].astype(values.dtype, copy=False)
    return out


def _region_neighbours(comp: np.ndarray, n: int, connectivity: int) -> list[dict[int, int]]:
    """Per region: its neighbours and the pixel edges it shares with each."""
    pairs = [(comp[:, :-1], comp[:, 1:], 1), (comp[:-1], comp[1:], 1)]
    if connectivity == 8:
        pairs += [(comp[:-1, :-1], comp[1:, 1:], 0), (comp[:-1, 1:], comp[1:, :-1], 0)]
    neighbours: list[dict[int, int]] = [{} for _ in range(n + 1)]
    for first, second, weight in pairs:
        a, b = first.ravel(), second.ravel()
        keep = (a != b) & (a > 0) & (b > 0)
        if not keep.any():
            continue
        key = np.minimum(a[keep], b[keep]).astype(np.int64) * (n + 1) + np.maximum(a[keep], b[keep])
        found, counts = np.unique(key, return_counts=True)
        for k, c in zip(found.tolist(), (counts * weight).tolist(), strict=True):
            lo, hi = divmod(k, n + 1)
            neighbours[lo][hi] = neighbours[lo].get(hi, 0) + c
            neighbours[hi][lo] = neighbours[hi].get(lo, 0) + c
    return neighbours


def _absorb(
    target: int,
    region: int,
    neighbours: list[dict[int, int]],
    parent: np.ndarray,
    size: list[int],
    frozen: list[bool],
) -> None:
    """Merge ``region`` into ``target``: sizes, shared edges and the cut flag."""
    parent[region] = target
    size[target] += size[region]
    frozen[target] = frozen[target] or frozen[region]
    links = neighbours[region]
    neighbours[region] = {}
    mine = neighbours[target]
    mine.pop(region, None)
    for k, edges in links.items():
        if k == target:
            continue
        theirs = neighbours[k]
        theirs.pop(region, None)
        mine[k] = mine.get(k, 0) + edges
        theirs[target] = theirs.get(target, 0) + edges


def _roots(parent: np.ndarray) -> np.ndarray:
    """Return the final region of every region (follow the merges to the end)."""
    roots = parent.copy()
    while True:
        nxt = roots[roots]
        if np.array_equal(nxt, roots):
            return roots
        roots = nxt


# --------------------------------------------------------------------------- streaming


@dataclass
class Region:
    """One connected region of equal value, in pixel coordinates (x right, y down).

    Attributes
    ----------
    value : int
        Class or segment value.
    pixels : int
        Number of pixels.
    parts : list of shapely Polygon
        Pieces traced in different strips (joined by :meth:`geometry`).
    """

    value: int
    pixels: int
    parts: list[Polygon] = field(default_factory=list)

    def geometry(self, connectivity: int) -> Polygon | MultiPolygon:
        """Return the region's outline: a Polygon, or with 8-connectivity a MultiPolygon.

        With 8-connectivity, parts joined only by a corner are separate polygons of one
        MultiPolygon (GDAL traces them as one self-touching ring, which is not valid).
        """
        parts = self.parts
        if connectivity == 8:
            parts = [
                q
                for p in parts
                for q in shapely.get_parts(p if p.is_valid else shapely.make_valid(p))
                if isinstance(q, Polygon)
            ]
        if len(parts) == 1:
            geom = parts[0]
        else:
            # Parts meet along strip cuts without shared vertices there, so this needs
            # the general overlay (a coverage union would need noded edges).
            geom = shapely.union_all(parts)
        if connectivity == 8:
            return MultiPolygon(list(shapely.get_parts(geom)))
        if not isinstance(geom, Polygon):  # pragma: no cover - 4-connected regions are one piece
            geom = max(shapely.get_parts(geom), key=lambda g: g.area)
        return geom


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while x != root:
            parent[x], x = root, parent.get(x, x)
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # the older (smaller) id survives
            self.parent[max(ra, rb)] = min(ra, rb)


def _strips(height: int, rows: int) -> Iterator[tuple[int, int]]:
    for start in range(0, height, rows):
        yield start, min(start + rows, height)


def _read_strip(
    src: rasterio.DatasetReader, band: int, row0: int, row1: int
) -> tuple[np.ndarray, np.ndarray]:
    window = Window(0, row0, src.width, row1 - row0)
    data = src.read(band, window=window)
    valid = src.read_masks(band, window=window) > 0
    if data.dtype.kind == "f":
        valid &= np.isfinite(data)
        if not np.all(np.mod(data[valid], 1) == 0):
            raise EngineError(
                f"{src.name} holds non-integer values (it looks like a continuous raster, "
                f"e.g. {data[valid][np.mod(data[valid], 1) != 0][0]:g}). Vectorize works on "
                "classified or segment rasters: classify or segment it first (e.g. "
                "landseg:slic, or Raster > Reclassify)."
            )
        data = np.where(valid, data, 0).astype(np.int64)
    elif data.dtype.kind not in "iu" and data.dtype != np.bool_:
        raise EngineError(
            f"{src.name} band {band} has type {data.dtype}, not integer class values."
        )
    return data, valid


def _trace(comp: np.ndarray, connectivity: int, row0: int) -> list[tuple[int, Polygon]]:
    """Trace region outlines with GDAL, in pixel coordinates offset by ``row0`` rows.

    The GeoJSON rings GDAL returns become shapely polygons in one vectorized call
    (:func:`shapely.from_ragged_array`), much faster than one ``shape()`` per polygon.
    """
    ids: list[int] = []
    rings: list[Any] = []  # coordinate tuples, packed into arrays every ~1M (memory)
    packed: list[np.ndarray] = []
    ring_ends: list[int] = []
    polygon_ends: list[int] = []
    n_coords = 0
    for geom, k in rasterio.features.shapes(
        comp, mask=comp > 0, connectivity=connectivity, transform=Affine(1, 0, 0, 0, 1, row0)
    ):
        ids.append(int(k))
        for ring in geom["coordinates"]:
            rings.extend(ring)
            n_coords += len(ring)
            ring_ends.append(n_coords)
        polygon_ends.append(len(ring_ends))
        if len(rings) > 1_000_000:
            packed.append(np.array(rings, dtype=np.float64).reshape(-1, 2))
            rings = []
    if not ids:
        return []
    packed.append(np.array(rings, dtype=np.float64).reshape(-1, 2))
    coords = np.concatenate(packed)
    del packed, rings
    polygons = shapely.from_ragged_array(
        shapely.GeometryType.POLYGON,
        coords,
        (np.array([0, *ring_ends], np.int64), np.array([0, *polygon_ends], np.int64)),
    )
    return list(zip(ids, polygons, strict=True))


def iter_regions(
    src: rasterio.DatasetReader,
    *,
    band: int = 1,
    connectivity: int = 4,
    min_pixels: int = 0,
    strip_rows: int | None = None,
    reporter: Reporter | None = None,
) -> Iterator[Region]:
    """Yield every connected region of a raster band, strip by strip.

    Regions are yielded as soon as they no longer touch the current cut line, in pixel
    coordinates of the whole raster (column, row). Peak memory is one strip (plus the
    sieve's halo) and the regions open on the cut.

    Parameters
    ----------
    src : rasterio dataset
        Open raster.
    band : int
        1-based band holding class or segment values (integers, or floats with integer
        values).
    connectivity : {4, 8}
        Pixel connectivity of the regions.
    min_pixels : int
        Sieve threshold (see :func:`sieve`); 0 or 1 keeps every region.
    strip_rows : int, optional
        Rows per strip; by default about :data:`STRIP_PIXELS` pixels per strip.
    reporter : Reporter, optional
        Receives progress 0-90.

    Yields
    ------
    Region
    """
    if connectivity not in (4, 8):
        raise EngineError(f"Connectivity must be 4 or 8, not {connectivity}.")
    height, width = src.height, src.width
    rows = strip_rows or max(64, STRIP_PIXELS // max(width, 1))
    sieved = None
    if min_pixels > 1 and height * width <= SIEVE_WHOLE_PIXELS:
        # Sieve the whole raster at once: merges may chain across any strip cut.
        whole, whole_valid = _read_strip(src, band, 0, height)
        sieved = sieve(whole, whole_valid, min_pixels, connectivity=connectivity), whole_valid
        del whole
    halo = 2 * min_pixels + 2 if min_pixels > 1 and sieved is None else 0
    prev_ids = np.zeros(width, dtype=np.int64)  # region id per column of the last row
    prev_vals = np.zeros(width, dtype=np.int64)
    regions: dict[int, Region] = {}
    next_id = 1
    for row0, row1 in _strips(height, rows):
        if sieved is not None:
            data, valid = sieved[0][row0:row1], sieved[1][row0:row1]
        elif halo:
            top, bottom = max(0, row0 - halo), min(height, row1 + halo)
            data, valid = _read_strip(src, band, top, bottom)
            data = sieve(
                data,
                valid,
                min_pixels,
                connectivity=connectivity,
                open_top=top > 0,
                open_bottom=bottom < height,
            )[row0 - top : row1 - top]
            valid = valid[row0 - top : row1 - top]
        else:
            data, valid = _read_strip(src, band, row0, row1)
        comp = _components(data, valid, connectivity)
        n = int(comp.max())
        counts = np.bincount(comp.ravel(), minlength=n + 1)
        comp_value = _region_values(comp, data, n)
        base = next_id - 1
        next_id += n
        for k, polygon in _trace(comp, connectivity, row0):
            gid = base + k
            region = regions.get(gid)
            if region is None:
                region = regions[gid] = Region(int(comp_value[k]), int(counts[k]))
            region.parts.append(polygon)
        del data
        # Join the regions across the cut above this strip.
        top_ids = np.where(comp[0] > 0, comp[0].astype(np.int64) + base, 0)
        top_vals = comp_value[comp[0]]
        pairs = [(prev_ids, top_ids, prev_vals, top_vals)]
        if connectivity == 8:
            pairs += [
                (prev_ids[:-1], top_ids[1:], prev_vals[:-1], top_vals[1:]),
                (prev_ids[1:], top_ids[:-1], prev_vals[1:], top_vals[:-1]),
            ]
        links: set[tuple[int, int]] = set()
        for a, b, va, vb in pairs:
            hit = (a > 0) & (b > 0) & (va == vb)
            if hit.any():
                links.update(map(tuple, np.unique(np.stack([a[hit], b[hit]], 1), axis=0).tolist()))
        union = _UnionFind()
        for first, second in links:
            union.union(first, second)
        for gid in list(union.parent):
            root = union.find(gid)
            if root != gid:
                region = regions.pop(gid)
                target = regions[root]
                target.pixels += region.pixels
                target.parts.extend(region.parts)
        # Regions on the bottom row stay open; the others are complete.
        if row1 < height:
            bottom = comp[-1].astype(np.int64)
            bottom_ids = np.where(bottom > 0, bottom + base, 0)
            if union.parent:
                lookup = {gid: union.find(gid) for gid in np.unique(bottom_ids[bottom_ids > 0])}
                bottom_ids = np.array([lookup.get(int(g), 0) for g in bottom_ids], np.int64)
            prev_ids = bottom_ids
            prev_vals = comp_value[comp[-1]]
            still_open = set(np.unique(prev_ids[prev_ids > 0]).tolist())
        else:
            still_open = set()
        for gid in [g for g in regions if g not in still_open]:
            yield regions.pop(gid)
        if reporter is not None:
            reporter.progress(90.0 * row1 / height)
