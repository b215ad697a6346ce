"""Benchmark ``landseg vectorize`` against GDAL's ``gdal_polygonize.py`` on real rasters.

Both run as subprocesses on the same raster and write a GeoPackage, 4-connectivity,
nodata excluded (GDAL uses the band's mask by default). Times are wall-clock seconds of
the whole command (interpreter start, imports, reading, tracing, writing), the median of
``--repeats`` runs; peak RSS comes from ``/usr/bin/time``. Rates: polygons/s = polygons
written / s, Mpx/s = raster pixels / s.

Rasters (built under a temporary folder from ../shared/data):

* ``nc``: NC ``strata.tif``, the 1996 land-cover map (489 x 443, 7 classes, float32).
* ``nc-slic``: a LandSeg SLIC segmentation of the NC Landsat scene (2,000 segments, int32).
* ``nc-tiled``: ``strata.tif`` mirror-tiled 8 x 8 (3,912 x 3,544, 13.9 Mpx), georeferenced.
* ``dubai``: the nine Dubai tile-8 masks as one 3 x 3 mosaic (6,447 x 4,437, 28.6 Mpx),
  mask colours mapped to classes 1-6 (black = nodata), no georeferencing.

GDAL's command is Debian's ``/usr/bin/gdal_polygonize.py`` with the system Python and
QGIS's GDAL (``python3 /usr/bin/gdal_polygonize.py IN -f GPKG OUT``). LandSeg's is
``python -m core vectorize IN OUT`` with the engine's Python; its polygons carry
value, class name, pixel count and area (GDAL's only the value). A second LandSeg row adds
a sieve (10 px) and simplification (one pixel size).

Run: ``python bench/vectorize.py [--sizes nc nc-slic nc-tiled dubai] [--repeats 3]
[--big-repeats 1] [--json PATH]`` (rasters over 10 Mpx run ``--big-repeats`` times).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GDAL_POLYGONIZE = "/usr/bin/gdal_polygonize.py"
SYSTEM_PYTHON = "/usr/bin/python3"
DUBAI_COLOURS = {  # mask colour -> class (see ../shared/data/README.md)
    (0x3C, 0x10, 0x98): (1, "building"),
    (0x84, 0x29, 0xF6): (2, "land"),
    (0x6E, 0xC1, 0xE4): (3, "road"),
    (0xFE, 0xDD, 0x3A): (4, "vegetation"),
    (0xE2, 0xA9, 0x29): (5, "water"),
    (0x9B, 0x9B, 0x9B): (6, "unlabeled"),
}


def find_data() -> Path:
    base = ROOT.parent / "shared" / "data"
    if not (base / "nc-landsat7").is_dir():
        sys.exit(f"No data: {base} is absent (the benchmark needs ../shared/data).")
    return base


def _write(path: Path, array: np.ndarray, *, like: Path | None, nodata: float | None) -> Path:
    import rasterio
    from rasterio.transform import Affine

    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": array.shape[1],
        "height": array.shape[0],
        "count": 1,
        "dtype": array.dtype.name,
        "nodata": nodata,
        "tiled": True,
        "compress": "deflate",
    }
    if like is not None:
        with rasterio.open(like) as src:
            profile.update(crs=src.crs, transform=src.transform)
    else:
        profile["transform"] = Affine.identity()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
    return path


def build(name: str, base: Path, folder: Path) -> Path:
    import rasterio

    nc = base / "nc-landsat7"
    if name == "nc":
        return nc / "strata.tif"
    if name == "nc-slic":
        from core.commands.superpixels import run_superpixels
        from core.protocol import Reporter

        out = folder / "nc_slic.tif"
        run_superpixels(
            "slic",
            src=str(nc / "landsat_multiband.tif"),
            dst=str(out),
            params={"n_segments": 2000},
            reporter=Reporter("json", out=open(os.devnull, "w")),
        )
        return out
    if name == "nc-tiled":
        with rasterio.open(nc / "strata.tif") as src:
            strata = src.read(1)
            nodata = src.nodata
        row = np.concatenate([strata, strata[:, ::-1]] * 4, axis=1)
        tiled = np.concatenate([row, row[::-1]] * 4, axis=0)
        return _write(folder / "nc_tiled.tif", tiled, like=nc / "strata.tif", nodata=nodata)
    if name == "dubai":
        from PIL import Image

        masks = sorted((base / "dubai-aerial" / "tile8" / "masks").glob("*.png"))[:9]
        arrays = [np.asarray(Image.open(m).convert("RGB")) for m in masks]
        h = min(a.shape[0] for a in arrays)
        w = min(a.shape[1] for a in arrays)
        mosaic = np.concatenate(
            [np.concatenate([a[:h, :w] for a in arrays[r * 3 : r * 3 + 3]], 1) for r in range(3)],
            0,
        )
        rgb = mosaic.astype(np.int32)
        key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        classes = np.zeros(key.shape, np.uint8)
        for (r, g, b), (value, _) in DUBAI_COLOURS.items():
            classes[key == (r << 16 | g << 8 | b)] = value
        path = _write(folder / "dubai_tile8.tif", classes, like=None, nodata=0)
        with rasterio.open(path, "r+") as dst:
            dst.update_tags(
                LANDSEG_CLASSES=json.dumps(
                    [
                        {"value": v, "name": n, "color": "#{:02x}{:02x}{:02x}".format(*rgb)}
                        for rgb, (v, n) in DUBAI_COLOURS.items()
                    ]
                )
            )
        return path
    raise SystemExit(f"unknown size {name}")


def timed(command: list[str]) -> tuple[float, float, str, str]:
    """Run a command; return wall seconds, peak RSS (MiB), its stdout and stderr."""
    started = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "MAXRSS %M", *command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stdout}\n{proc.stderr}")
    rss = [line for line in proc.stderr.splitlines() if line.startswith("MAXRSS")][-1]
    return seconds, int(rss.split()[1]) / 1024, proc.stdout, proc.stderr


def count_features(path: Path) -> int:
    from pyogrio import read_info

    return int(read_info(path)["features"])


def bench(name: str, raster: Path, folder: Path, repeats: int) -> list[dict[str, Any]]:
    import rasterio

    with rasterio.open(raster) as src:
        pixels = src.width * src.height
        size = f"{src.width}x{src.height}"
        pixel = abs(src.transform.a) or 1.0
    variants = {
        "landseg": [],
        f"landseg sieve 10 px + simplify {pixel:g}": [
            "--min-pixels",
            "10",
            "--simplify",
            f"{pixel:g}",
        ],
    }
    rows = []
    for label, extra in variants.items():
        runs = []
        for i in range(repeats):
            out = folder / f"{name}-ls-{len(rows)}-{i}.gpkg"
            seconds, rss, stdout, stderr = timed(
                [sys.executable, "-m", "core", "vectorize", str(raster), str(out), *extra]
            )
            # the engine's own time, without interpreter start and imports
            engine = float(re.search(r" in ([0-9.]+) s;", stderr).group(1))
            runs.append((seconds, rss, json.loads(stdout)["N_POLYGONS"], engine))
        rows.append(_row(name, size, pixels, label, runs))
    runs = []
    for i in range(repeats):
        out = folder / f"{name}-gdal-{i}.gpkg"
        seconds, rss, _, _ = timed(
            [SYSTEM_PYTHON, GDAL_POLYGONIZE, "-q", str(raster), "-f", "GPKG", str(out)]
        )
        runs.append((seconds, rss, count_features(out)))
    rows.append(_row(name, size, pixels, "gdal_polygonize.py", runs))
    return rows


def _row(name: str, size: str, pixels: int, label: str, runs: list[tuple]) -> dict[str, Any]:
    seconds = statistics.median(r[0] for r in runs)
    polygons = runs[0][2]
    row = {
        "raster": name,
        "size": size,
        "tool": label,
        "polygons": polygons,
        "seconds": round(seconds, 3),
        "runs_s": [round(r[0], 3) for r in runs],
        "polygons_per_s": round(polygons / seconds),
        "mpx_per_s": round(pixels / seconds / 1e6, 2),
        "peak_rss_mib": round(max(r[1] for r in runs)),
    }
    if len(runs[0]) > 3:
        engine = statistics.median(r[3] for r in runs)
        row["engine_s"] = round(engine, 3)
        row["engine_mpx_per_s"] = round(pixels / engine / 1e6, 2)
    print(
        f"{name:9s} {size:>10s} {label:38s} {polygons:>9,d} polys {seconds:7.2f} s "
        f"{row['polygons_per_s']:>9,d} poly/s {row['mpx_per_s']:6.2f} Mpx/s "
        f"{row['peak_rss_mib']:5d} MiB"
        + (f"  (engine {row['engine_s']:.2f} s)" if "engine_s" in row else ""),
        flush=True,
    )
    return row


def versions() -> dict[str, Any]:
    import importlib.metadata as md

    gdal = subprocess.run(
        [SYSTEM_PYTHON, "-c", "from osgeo import gdal; print(gdal.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    import rasterio
    import shapely

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "rasterio": md.version("rasterio"),
        "rasterio_gdal": rasterio.__gdal_version__,
        "shapely": shapely.__version__,
        "geos": ".".join(map(str, shapely.geos_version)),
        "pyogrio": md.version("pyogrio"),
        "scikit-image": md.version("scikit-image"),
        "system_gdal (gdal_polygonize.py)": gdal,
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["nc", "nc-slic", "nc-tiled", "dubai"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--big-repeats", type=int, default=1, help="Repeats on rasters over 10 Mpx."
    )
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "vectorize.json"))
    args = parser.parse_args()
    base = find_data()
    results: dict[str, Any] = {"versions": versions(), "rows": []}
    print(json.dumps(results["versions"]))
    with tempfile.TemporaryDirectory(prefix="landseg-vec-") as tmp:
        folder = Path(tmp)
        for name in args.sizes:
            raster = build(name, base, folder)
            import rasterio

            with rasterio.open(raster) as src:
                big = src.width * src.height > 10_000_000
            results["rows"] += bench(
                name, raster, folder, args.big_repeats if big else args.repeats
            )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
