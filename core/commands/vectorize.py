"""The ``vectorize`` command: a classified or segment raster to polygons.

:func:`run_vectorize` streams the raster in strips through :func:`core.vectorize.iter_regions`,
sieves and simplifies the regions and writes them with their class names and areas.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

from ..protocol import EngineError, Reporter

__all__ = ["add_commands", "run_vectorize"]


def add_commands(commands: Any) -> None:
    """Add ``vectorize`` to the CLI's subparsers."""
    vec = commands.add_parser(
        "vectorize",
        help="Polygons of a classified or segment raster (one per connected region).",
        description="Classified or segment raster -> polygons with value, class name, pixel "
        "count and area; optional sieve and topology-preserving simplification; read in strips "
        "(rasters larger than memory).",
    )
    vec.add_argument("input", help="Classified or segment raster.")
    vec.add_argument("output", help="Vector file (.gpkg, .shp, .geojson, .fgb, ...).")
    vec.add_argument("--band", type=int, default=1, help="Band to vectorize (default: 1).")
    vec.add_argument("--connectivity", type=int, choices=(4, 8), default=4)
    vec.add_argument("--min-pixels", type=int, default=0, help="Sieve: smallest region, pixels.")
    vec.add_argument(
        "--min-area", type=float, default=0.0, help="Sieve: smallest region, map units²."
    )
    vec.add_argument("--simplify", type=float, default=0.0, help="Tolerance in map units (0: off).")
    vec.add_argument("--strip-rows", type=int, default=None, help="Rows read at a time.")
    vec.add_argument("--overwrite", action="store_true", help="Replace an existing output.")
    vec.set_defaults(handler=_run)


def _run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    return run_vectorize(
        src=args.input,
        dst=args.output,
        band=args.band,
        connectivity=args.connectivity,
        min_pixels=args.min_pixels,
        min_area=args.min_area,
        simplify=args.simplify,
        strip_rows=args.strip_rows,
        overwrite=args.overwrite,
        reporter=reporter,
    )


def run_vectorize(
    *,
    src: str,
    dst: str,
    band: int = 1,
    connectivity: int = 4,
    min_pixels: int = 0,
    min_area: float = 0.0,
    simplify: float = 0.0,
    strip_rows: int | None = None,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Polygonize a classified or segment raster: one polygon per connected region.

    Parameters
    ----------
    src : str
        Raster whose ``band`` holds class or segment values (integer types, or floats
        holding integers). Nodata and masked pixels give no polygon.
    dst : str
        Vector file; the format follows the extension (GeoPackage ``.gpkg`` recommended,
        layer ``polygons``; ``.shp``, ``.geojson``, ``.fgb``... any OGR driver).
    band : int
        1-based band to vectorize.
    connectivity : {4, 8}
        4: regions join through edges; 8: also through corners (then each region is a
        MultiPolygon whose parts may touch at corners).
    min_pixels, min_area : int, float
        Sieve: regions smaller than this many pixels, or than this area in map units²
        (the larger of the two thresholds), are merged into the neighbour they share the
        longest border with (:func:`sieve`). 0 keeps every region.
    simplify : float
        Simplification tolerance in map units (about the square root of the largest
        triangle area removed, GEOS's coverage simplification); 0 keeps the pixel edges.
    strip_rows : int, optional
        Rows read at a time (memory); by default about 4 Mpx per strip.
    overwrite : bool
        Replace an existing output.
    reporter : Reporter, optional
        Progress and log sink.

    Returns
    -------
    dict
        ``OUTPUT``, ``N_POLYGONS``, ``N_VALUES``, ``KIND`` (``"classes"`` or
        ``"segments"``) and, for classes, ``CLASSES`` (value, name, colour of each value
        present).
    """
    from .. import io
    from ..classes import complete_classes, read_raster_classes
    from ..vectorize import (
        MAX_RETURNED_CLASSES,
        MAX_UNNAMED_CLASSES,
        atomic_vector,
        map_transform,
        write_regions,
    )

    report = reporter or Reporter("text")
    if connectivity not in (4, 8):
        raise EngineError(f"Connectivity must be 4 or 8, not {connectivity}.")
    if min_pixels < 0 or min_area < 0 or simplify < 0:
        raise EngineError("The sieve size and the simplification tolerance cannot be negative.")
    io.check_outputs((dst,), overwrite=overwrite)
    if os.path.splitext(dst)[1].lower() in (".tif", ".tiff", ".vrt", ".img", ""):
        raise EngineError(
            f"{dst}: the output is a vector file; give a vector extension such as .gpkg, "
            ".shp, .geojson or .fgb."
        )
    started = time.perf_counter()
    with io.open_raster(src) as raster:
        if band < 1 or band > raster.count:
            raise EngineError(
                f"Band {band} does not exist: the raster has {raster.count} band(s). "
                f"Choose a band between 1 and {raster.count}."
            )
        transform = map_transform(raster)
        pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
        threshold = max(int(min_pixels), math.ceil(min_area / pixel_area) if min_area else 0)
        crs_wkt = raster.crs.to_wkt() if raster.crs else None
        table = {c.value: c for c in read_raster_classes(raster, band=band, sidecars=True)}
        report.info(
            f"Input {raster.width} x {raster.height} px, band {band} ({raster.dtypes[band - 1]})"
            f", {connectivity}-connectivity"
            + (f", sieve below {threshold} px" if threshold > 1 else "")
            + (f", simplification {simplify:g} map units" if simplify else "")
            + (f", {len(table)} named classes" if table else "")
            + ("" if crs_wkt else ", no georeferencing (pixel coordinates, y up)")
            + "."
        )
        with atomic_vector(dst, overwrite=overwrite) as tmp:
            n_polygons, values_seen = write_regions(
                raster,
                tmp,
                band=band,
                connectivity=connectivity,
                min_pixels=threshold,
                simplify=simplify,
                table=table,
                crs_wkt=crs_wkt,
                strip_rows=strip_rows,
                reporter=report,
            )
            if n_polygons == 0:
                raise EngineError(
                    f"{src} gave no polygon: every pixel of band {band} is nodata (or masked)."
                    " Check the raster's nodata value and the band."
                )
            report.progress(98)
    n_values = len(values_seen)
    many = n_values > MAX_RETURNED_CLASSES
    kind = "classes" if table or n_values <= MAX_UNNAMED_CLASSES else "segments"
    elapsed = time.perf_counter() - started
    report.info(
        f"{n_polygons:,} polygons of {'over ' + str(MAX_RETURNED_CLASSES) if many else n_values}"
        f" values in {elapsed:.2f} s; styled as {kind}."
    )
    report.progress(100)
    result: dict[str, Any] = {
        "OUTPUT": dst,
        "N_POLYGONS": n_polygons,
        "N_VALUES": None if many else n_values,
        "KIND": kind,
    }
    if kind == "classes" and not many:
        known = [table[v] for v in sorted(values_seen) if v in table]
        result["CLASSES"] = [
            {"value": c.value, "name": c.name, "color": c.color}
            for c in complete_classes(values_seen, known)
            if c.value in values_seen
        ]
    return result
