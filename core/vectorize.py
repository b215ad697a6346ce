"""Turn label rasters into polygons, in memory or strip by strip for rasters of any size.

Two entry points:

- :func:`segment_polygons` and :func:`write_polygons`: one (multi)polygon per label of an
  in-memory label array (the superpixel pipeline's ``--polygons`` output).
- :func:`write_regions`, the science of the ``vectorize`` command
  (:mod:`core.commands.vectorize`): a classified or segment raster becomes one polygon per
  connected region (:func:`core.regions.iter_regions`, strip by strip), with the class
  value, class name, pixel count and area, written in batches.

Options: 4- or 8-connectivity, a sieve that merges regions smaller than a minimum size
into the neighbour they share the longest border with (:func:`core.regions.sieve`), and a
topology-preserving simplification of shared arcs (GEOS coverage simplification,
:func:`shapely.coverage_simplify`; Visvalingam & Whyatt 1993), so neighbouring polygons
keep sharing their simplified borders without gaps or overlaps.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.features
import shapely
from affine import Affine
from shapely.geometry import MultiPolygon, Polygon, shape

from . import io
from .classes import ClassInfo
from .protocol import EngineError, Reporter
from .regions import Region, iter_regions

__all__ = [
    "atomic_vector",
    "map_transform",
    "segment_polygons",
    "write_polygons",
    "write_regions",
]

#: Regions simplified and written together.
BATCH_REGIONS = 50_000
#: At most this many distinct values make a raster "classes" even without a class table.
MAX_UNNAMED_CLASSES = 64
#: Tables larger than this are not returned to QGIS (segment rasters).
MAX_RETURNED_CLASSES = 1024
#: Layer name inside GeoPackages.
LAYER = "polygons"


# --------------------------------------------------------------------------- in memory


def segment_polygons(
    labels: np.ndarray, *, transform: Affine, connectivity: int = 4
) -> tuple[np.ndarray, list[Polygon | MultiPolygon]]:
    """Polygonize a label raster into one (multi)polygon per label.

    Parameters
    ----------
    labels : (H, W) int32 ndarray
        Labels; 0 means no label and gives no polygon.
    transform : affine.Affine
        Pixel-to-map transform of the raster.
    connectivity : {4, 8}
        Pixel connectivity of the regions traced.

    Returns
    -------
    ids : (M,) int64 ndarray
        Sorted labels that have a polygon.
    geometries : list of shapely geometries
        One Polygon or, when a label has several separate parts, MultiPolygon per id.
    """
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, not {connectivity}.")
    parts: dict[int, list[Polygon]] = {}
    for geom, value in rasterio.features.shapes(
        labels, mask=labels != 0, transform=transform, connectivity=connectivity
    ):
        parts.setdefault(int(value), []).append(shape(geom))
    ids = np.array(sorted(parts), dtype=np.int64)
    geometries: list[Polygon | MultiPolygon] = [
        polys[0] if len(polys) == 1 else MultiPolygon(polys)
        for polys in (parts[int(i)] for i in ids)
    ]
    return ids, geometries


def write_polygons(
    path: str | os.PathLike[str],
    geometries: Sequence[Polygon | MultiPolygon],
    attributes: dict[str, np.ndarray],
    *,
    crs_wkt: str | None,
    layer: str,
) -> None:
    """Write polygons and their attributes to a vector file (GeoPackage by default).

    The format follows the file extension (any OGR driver pyogrio knows).
    """
    import geopandas as gpd  # deferred: heavy import, only needed here

    frame = gpd.GeoDataFrame(attributes, geometry=list(geometries), crs=crs_wkt)
    options: dict[str, Any] = {"layer": layer} if str(path).lower().endswith(".gpkg") else {}
    frame.to_file(path, engine="pyogrio", **options)


# --------------------------------------------------------------------------- output


class _VectorWriter:
    """Append batches of polygons to an OGR file.

    GeoPackages are written directly; other formats go through a temporary GeoPackage
    converted at the end, in batches when the driver can append.
    """

    FIELDS = ("value", "class_name", "pixels", "area")

    def __init__(self, path: Path, *, crs_wkt: str | None, geometry_type: str) -> None:
        self.path = path
        self.crs = crs_wkt
        self.geometry_type = geometry_type
        self.native = path.suffix.lower() == ".gpkg"
        self.stage = (
            path
            if self.native
            else path.with_name(f"{path.stem}-stage-{uuid.uuid4().hex[:6]}.gpkg")
        )
        self.count = 0

    def write(self, geoms: Sequence[Any] | np.ndarray, attrs: dict[str, np.ndarray]) -> None:
        from pyogrio.raw import write

        if not len(geoms):
            return
        write(
            str(self.stage),
            geometry=shapely.to_wkb(np.asarray(geoms, dtype=object)),
            field_data=[attrs[f] for f in self.FIELDS],
            fields=list(self.FIELDS),
            layer=LAYER,
            driver="GPKG",
            geometry_type=self.geometry_type,
            crs=self.crs,
            append=self.count > 0,
        )
        self.count += len(geoms)

    def close(self) -> None:
        if self.native or self.count == 0:
            return
        from pyogrio import detect_write_driver
        from pyogrio.raw import read

        try:
            driver = detect_write_driver(str(self.path))
        except ValueError as err:
            raise EngineError(
                f"{self.path}: {err} Give a vector file extension such as .gpkg, .shp, "
                ".geojson or .fgb."
            ) from None
        try:
            step = BATCH_REGIONS
            for start in range(0, self.count, step):
                meta, _, geometry, field_data = read(
                    str(self.stage), layer=LAYER, skip_features=start, max_features=step
                )
                try:
                    self._write(driver, meta, geometry, field_data, append=start > 0)
                except Exception:
                    if start == 0:
                        raise
                    # this driver cannot append: write everything at once
                    _remove_vector(self.path)
                    meta, _, geometry, field_data = read(str(self.stage), layer=LAYER)
                    self._write(driver, meta, geometry, field_data, append=False)
                    break
        finally:
            _remove_vector(self.stage)

    def _write(
        self, driver: str, meta: dict, geometry: Any, field_data: Any, *, append: bool
    ) -> None:
        from pyogrio.raw import write

        write(
            str(self.path),
            geometry=geometry,
            field_data=field_data,
            fields=list(meta["fields"]),
            driver=driver,
            geometry_type=self.geometry_type,
            crs=self.crs,
            append=append,
            **({"layer": LAYER} if driver in ("GPKG", "SQLite", "OpenFileGDB") else {}),
        )


def _vector_files(path: Path) -> list[Path]:
    """List a vector output and its sidecar files (Shapefile .dbf/.shx/.prj/.cpg, GPKG -wal...)."""
    if not path.parent.is_dir():
        return []
    stem = path.stem
    return [
        p
        for p in path.parent.iterdir()
        if p == path
        or (p.name.startswith(stem + ".") and p.suffix.lower() in _SIDECARS)
        or p.name in (path.name + "-wal", path.name + "-shm", path.name + "-journal")
    ]


_SIDECARS = {".dbf", ".shx", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".qmd"}


def _remove_vector(path: Path) -> None:
    for p in _vector_files(path):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


@contextlib.contextmanager
def atomic_vector(path: str, *, overwrite: bool) -> Iterator[Path]:
    """:func:`core.io.atomic_output` for vector files with sidecars (Shapefile)."""
    final = io.check_output_path(path, overwrite=overwrite)
    tmp = io.partial_name(final)
    try:
        yield tmp
        backup = None
        if io.in_output_group() and _vector_files(final):
            backup = io.partial_name(final, "backup")
            _move_vector(final, backup)
        elif overwrite:
            _remove_vector(final)
        _move_vector(tmp, final)

        def undo() -> None:
            _remove_vector(final)
            if backup is not None:
                _move_vector(backup, final)

        def finish() -> None:
            if backup is not None:
                _remove_vector(backup)

        io.register_output(undo, finish)
    finally:
        _remove_vector(tmp)


def _move_vector(src: Path, dst: Path) -> None:
    """Rename a vector file and its sidecars (``a.shp``, ``a.dbf`` -> ``b.shp``, ``b.dbf``)."""
    for part in _vector_files(src):
        os.replace(part, dst.with_name(dst.stem + part.name[len(src.stem) :]))


def map_transform(src: rasterio.DatasetReader) -> Affine:
    """Return the pixel-to-map transform.

    Rasters without georeferencing get QGIS's view of them (x = column, y = -row), so
    the polygons overlay the raster in QGIS.
    """
    if src.crs is None and src.transform == Affine.identity():
        return Affine(1, 0, 0, 0, -1, 0)
    return src.transform


def _to_map(geoms: list[Any], transform: Affine) -> np.ndarray:
    a, b, c, d, e, f = tuple(transform)[:6]
    matrix = np.array([[a, d], [b, e]])
    offset = np.array([c, f])
    return shapely.transform(np.asarray(geoms, dtype=object), lambda xy: xy @ matrix + offset)


def _simplify(geoms: np.ndarray, tolerance: float, *, whole: bool) -> np.ndarray:
    """Coverage simplification (shared arcs simplified once, no gaps or overlaps).

    The polygons are first noded (a vertex at every pixel corner along each edge: GDAL's
    outlines of neighbours do not share vertices), which GEOS's coverage simplifier
    needs. When the batch is not the whole raster, its outer boundary (which it shares
    with polygons of other batches) is kept as it is.
    """
    simplified = shapely.coverage_simplify(geoms, tolerance, simplify_boundary=whole)
    empty = shapely.is_empty(simplified)
    simplified[empty] = geoms[empty]
    return simplified


def write_regions(
    raster: rasterio.DatasetReader,
    path: Path,
    *,
    band: int,
    connectivity: int,
    min_pixels: int,
    simplify: float,
    table: dict[int, ClassInfo],
    crs_wkt: str | None,
    strip_rows: int | None = None,
    reporter: Reporter,
) -> tuple[int, set[int]]:
    """Write one polygon per region of ``raster``'s ``band`` (:func:`iter_regions`) to ``path``.

    Regions are written in batches of :data:`BATCH_REGIONS` with their value, class name
    (from ``table``), pixel count and area; ``simplify`` > 0 simplifies them.

    Returns
    -------
    n_polygons : int
        Polygons written (0: the file is left unfinished; the caller raises).
    values : set of int
        Values seen, up to :data:`MAX_RETURNED_CLASSES` + 1 of them.
    """
    transform = map_transform(raster)
    geometry_type = "MultiPolygon" if connectivity == 8 else "Polygon"
    values_seen: set[int] = set()
    n_polygons = 0
    writer = _VectorWriter(path, crs_wkt=crs_wkt, geometry_type=geometry_type)
    batch: list[Region] = []
    flushed = False

    def flush(last: bool) -> None:
        nonlocal n_polygons, flushed
        if not batch:
            return
        geoms = [r.geometry(connectivity) for r in batch]
        if simplify:
            geoms = list(shapely.segmentize(np.asarray(geoms, dtype=object), 1.0))
        mapped = _to_map(geoms, transform)
        if simplify:
            mapped = _simplify(mapped, simplify, whole=last and not flushed)
        values = np.array([r.value for r in batch], dtype=np.int64)
        writer.write(
            mapped,
            {
                "value": values,
                "class_name": np.array(
                    [table[v].name if v in table else "" for v in values.tolist()],
                    dtype=object,
                ),
                "pixels": np.array([r.pixels for r in batch], dtype=np.int64),
                "area": shapely.area(mapped).astype(np.float64),
            },
        )
        n_polygons += len(batch)
        batch.clear()
        flushed = True

    for region in iter_regions(
        raster,
        band=band,
        connectivity=connectivity,
        min_pixels=min_pixels,
        strip_rows=strip_rows,
        reporter=reporter,
    ):
        batch.append(region)
        if len(values_seen) <= MAX_RETURNED_CLASSES:
            values_seen.add(region.value)
        if len(batch) >= BATCH_REGIONS:
            flush(last=False)
    flush(last=True)
    if n_polygons:
        writer.close()
    return n_polygons, values_seen
