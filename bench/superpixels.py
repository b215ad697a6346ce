"""Benchmark LandSeg's superpixels against scikit-image, on real imagery, in one process.

Both implementations get the same array and the same parameters. Timings are medians of
``--repeats`` runs; LandSeg's exclude the numba compile (one untimed first call, whose
time is reported as ``first_call_s``: a cache load once the kernels are cached, a full
compile otherwise; ``--cold-compile`` measures the compile in a fresh numba cache).
scikit-image runs up to ``--repeats`` times, stopping early after ``--sk-budget`` seconds.

Quality against a reference label map (pixels with reference 0 are ignored):

* boundary recall (BR): the fraction of reference boundary pixels that have a segment
  boundary pixel within 2 px (Chebyshev distance; a pixel is a boundary pixel when one
  of its 4-neighbours has another label), as in the SLIC paper;
* under-segmentation error (USE), the corrected form of Neubert & Protzel (2012):
  ``USE = 1/N * sum_G sum_{S: S & G nonempty} min(|S & G|, |S - G|)`` over reference
  segments G (4-connected regions of one reference class) and superpixels S, N the
  number of labelled pixels. Lower is better.

Data (from ../shared/data): ``nc``, the North Carolina Landsat 7 scene (5 bands, nodata
masked, reference ``strata.tif``); ``dubai``, Dubai aerial tile 7 image 1 (RGB,
reference: its mask colours); ``4096``, that image and mask mirrored to 4096 x 4096.
Bands are stretched 2-98 percentile per band over valid pixels, to 0-100 for SLIC and
QuickShift and to 0-1 for Felzenszwalb (the scales LandSeg's pipeline uses).

Run: ``python bench/superpixels.py [--sizes nc dubai 4096] [--methods slic felzenszwalb
quickshift] [--repeats 3] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import normalize, superpixels  # noqa: E402

DUBAI_COLOURS = {  # mask colour -> class (see ../shared/data/README.md); others ignored
    (0x3C, 0x10, 0x98): 1,
    (0x84, 0x29, 0xF6): 2,
    (0x6E, 0xC1, 0xE4): 3,
    (0xFE, 0xDD, 0x3A): 4,
    (0xE2, 0xA9, 0x29): 5,
}


def find_data() -> Path:
    base = ROOT.parent / "shared" / "data"
    if not (base / "nc-landsat7").is_dir():
        sys.exit(f"No data: {base} is absent (the benchmark needs ../shared/data).")
    return base


def load_nc(base: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stretched (0-1) 5-band image, valid mask, reference labels (0 = ignore)."""
    import rasterio

    with rasterio.open(base / "nc-landsat7" / "landsat_multiband.tif") as src:
        image = src.read().astype(np.float32)
        valid = np.all(src.read_masks() > 0, axis=0)
    with rasterio.open(base / "nc-landsat7" / "strata.tif") as src:
        reference = src.read(1)
    reference = np.where(valid & (reference > 0), reference, 0).astype(np.int32)
    return normalize.stretch(image, valid).astype(np.float32), valid, reference


def load_dubai(base: Path, tile: int = 7, part: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Stretched (0-1) RGB image and reference classes (0 = unlabelled/ignore)."""
    from PIL import Image

    folder = base / "dubai-aerial" / f"tile{tile}"
    rgb = np.asarray(Image.open(folder / "images" / f"image_part_00{part}.jpg").convert("RGB"))
    mask = np.asarray(Image.open(folder / "masks" / f"image_part_00{part}.png").convert("RGB"))
    reference = np.zeros(mask.shape[:2], dtype=np.int32)
    for colour, value in DUBAI_COLOURS.items():
        reference[np.all(mask == colour, axis=-1)] = value
    image = np.moveaxis(rgb, -1, 0).astype(np.float32)
    valid = np.ones(image.shape[1:], bool)
    return normalize.stretch(image, valid).astype(np.float32), reference


def mirror_to(array: np.ndarray, size: int) -> np.ndarray:
    """Tile by mirroring (last two axes) until size x size is covered, then crop."""
    height, width = array.shape[-2:]
    rows = [array if i % 2 == 0 else np.flip(array, -2) for i in range(-(-size // height))]
    column = np.concatenate(rows, axis=-2)
    cols = [column if j % 2 == 0 else np.flip(column, -1) for j in range(-(-size // width))]
    return np.ascontiguousarray(np.concatenate(cols, axis=-1)[..., :size, :size])


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of another label (both sides of each boundary)."""
    edge = np.zeros(labels.shape, bool)
    vertical = labels[1:] != labels[:-1]
    horizontal = labels[:, 1:] != labels[:, :-1]
    edge[1:] |= vertical
    edge[:-1] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return edge


def boundary_recall(labels: np.ndarray, reference: np.ndarray, tolerance: int = 2) -> float:
    from scipy import ndimage

    labelled = reference > 0
    ref_edges = boundaries(reference) & labelled
    # Only boundaries between two labelled classes count (not edges of ignored areas).
    ref_edges &= ~ndimage.binary_dilation(~labelled, np.ones((3, 3), bool))
    near = ndimage.binary_dilation(boundaries(labels), np.ones((2 * tolerance + 1,) * 2, bool))
    return float((ref_edges & near).sum() / max(ref_edges.sum(), 1))


def undersegmentation_error(labels: np.ndarray, reference: np.ndarray) -> float:
    from scipy import ndimage

    regions = np.zeros(reference.shape, np.int64)
    count = 0
    for value in np.unique(reference[reference > 0]):
        pieces, n = ndimage.label(reference == value)
        regions[pieces > 0] = pieces[pieces > 0] + count
        count += n
    keep = regions > 0
    seg, ref = labels[keep].astype(np.int64), regions[keep]
    joint, overlap = np.unique(seg * (count + 1) + ref, return_counts=True)
    seg_size = np.bincount(seg)
    outside = seg_size[joint // (count + 1)] - overlap
    return float(np.minimum(overlap, outside).sum() / keep.sum())


def timed(function: Callable[[], np.ndarray], repeats: int, budget: float) -> tuple[list, Any]:
    times: list[float] = []
    result = None
    while len(times) < repeats and (not times or sum(times) < budget):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return times, result


def cases(
    name: str, image01: np.ndarray, mask: np.ndarray | None, compactness: list[float]
) -> list[tuple[str, str, Callable, Callable]]:
    """(method, params, ours, scikit-image's) for one image."""
    from skimage import segmentation as sk

    pixels = image01.shape[1] * image01.shape[2]
    n_segments = max(pixels // 1000, 100)
    image100 = np.ascontiguousarray(image01 * 100, dtype=np.float32)
    out = []
    for c in compactness:
        out.append(
            (
                "slic",
                f"n_segments={n_segments}, compactness={c:g}, max_num_iter=10, connectivity",
                lambda c=c: superpixels.slic(
                    image100, n_segments=n_segments, compactness=c, max_num_iter=10, mask=mask
                ),
                lambda c=c: sk.slic(
                    image100,
                    n_segments=n_segments,
                    compactness=c,
                    max_num_iter=10,
                    enforce_connectivity=True,
                    channel_axis=0,
                    convert2lab=False,
                    start_label=1,
                    mask=mask,
                ),
            )
        )
    out.append(
        (
            "felzenszwalb",
            "scale=100, sigma=0.8, min_size=20",
            lambda: superpixels.felzenszwalb(image01, scale=100, sigma=0.8, min_size=20, mask=mask),
            lambda: sk.felzenszwalb(image01, scale=100, sigma=0.8, min_size=20, channel_axis=0),
        )
    )
    qs_params = [{"kernel_size": 3, "max_dist": 6, "ratio": 0.5}]
    if name == "nc":
        qs_params.append({"kernel_size": 5, "max_dist": 10, "ratio": 1.0})  # the defaults
    for p in qs_params:
        out.append(
            (
                "quickshift",
                ", ".join(f"{k}={v:g}" for k, v in p.items()),
                lambda p=p: superpixels.quickshift(image100, mask=mask, seed=42, **p),
                lambda p=p: sk.quickshift(image100, convert2lab=False, channel_axis=0, rng=42, **p),
            )
        )
    return out


def run_image(
    name: str,
    image01: np.ndarray,
    mask: np.ndarray | None,
    reference: np.ndarray,
    args: argparse.Namespace,
) -> list[dict]:
    pixels = image01.shape[1] * image01.shape[2]
    rows = []
    for method, params, ours, theirs in cases(name, image01, mask, args.compactness):
        if method not in args.methods or (name == "4096" and method == "quickshift"):
            continue  # scikit-image's QuickShift takes minutes at 4096^2
        started = time.perf_counter()
        ours()
        first = time.perf_counter() - started
        ours_times, ours_labels = timed(ours, args.repeats, float("inf"))
        sk_times, sk_labels = timed(theirs, args.repeats, args.sk_budget)
        if mask is not None:
            sk_labels = np.where(mask, sk_labels, 0)
        ours_s, sk_s = statistics.median(ours_times), statistics.median(sk_times)
        row = {
            "case": name,
            "method": method,
            "params": params,
            "pixels": pixels,
            "bands": int(image01.shape[0]),
            "first_call_s": round(first, 3),
            "ours_s": [round(t, 4) for t in ours_times],
            "skimage_s": [round(t, 3) for t in sk_times],
            "ours_mpx_s": round(pixels / ours_s / 1e6, 2),
            "skimage_mpx_s": round(pixels / sk_s / 1e6, 3),
            "speedup": round(sk_s / ours_s, 1),
            "ours_segments": len(np.unique(ours_labels[ours_labels > 0])),
            "skimage_segments": len(np.unique(sk_labels[sk_labels > 0])),
            "ours_br": round(boundary_recall(ours_labels, reference), 3),
            "skimage_br": round(boundary_recall(sk_labels, reference), 3),
            "ours_use": round(undersegmentation_error(ours_labels, reference), 3),
            "skimage_use": round(undersegmentation_error(sk_labels, reference), 3),
        }
        rows.append(row)
        print(
            f"| {name} | {method} | {params} | {row['ours_mpx_s']:.2f} | "
            f"{row['skimage_mpx_s']:.3f} | **{row['speedup']:.1f}x** | "
            f"{row['ours_segments']} / {row['skimage_segments']} | "
            f"{row['ours_br']:.3f} / {row['skimage_br']:.3f} | "
            f"{row['ours_use']:.3f} / {row['skimage_use']:.3f} |",
            flush=True,
        )
    return rows


COLD_SNIPPET = """
import sys, time, numpy as np
sys.path.insert(0, sys.argv[1])
from core import superpixels
image = np.random.default_rng(0).uniform(0, 100, (3, 64, 64)).astype(np.float32)
mask = np.ones((64, 64), bool); mask[:4] = False
for name in ("slic", "felzenszwalb", "quickshift"):
    started = time.perf_counter()
    getattr(superpixels, name)(image, mask=mask)
    print(name, round(time.perf_counter() - started, 2))
"""


def cold_compile() -> dict[str, float]:
    """First-call seconds of each function in a fresh process with an empty numba cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        result = {}
        for label in ("compile", "cache_load"):
            out = subprocess.run(
                [sys.executable, "-c", COLD_SNIPPET, str(ROOT)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for line in out.splitlines():
                name, seconds = line.split()
                result[f"{name}_{label}_s"] = float(seconds)
    return result


def machine() -> dict[str, Any]:
    import numba
    import scipy
    import skimage

    model = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": numba.threading_layer(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "scipy": scipy.__version__,
        "skimage": skimage.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=["nc", "dubai", "4096"],
                        choices=["nc", "dubai", "4096"], help="images to run")  # fmt: skip
    parser.add_argument("--methods", nargs="+", default=["slic", "felzenszwalb", "quickshift"],
                        choices=["slic", "felzenszwalb", "quickshift"])  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method (median)")
    parser.add_argument("--sk-budget", type=float, default=30.0,
                        help="stop repeating scikit-image after this many seconds")  # fmt: skip
    parser.add_argument("--compactness", type=float, nargs="+", default=[10.0, 1.0],
                        help="SLIC compactness values to run")  # fmt: skip
    parser.add_argument("--cold-compile", action="store_true",
                        help="also time the numba compile in a fresh cache")  # fmt: skip
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results" / "superpixels.json"
    )
    args = parser.parse_args()
    # scikit-image warns that a 5-band image is read as multichannel: that is intended.
    warnings.filterwarnings("ignore", message="Got image with third dimension")
    base = find_data()
    meta = machine()
    print(json.dumps(meta))
    print("| image | method | parameters | LandSeg Mpx/s | skimage Mpx/s | speed-up | segments "
          "(LandSeg / skimage) | BR (LandSeg / skimage) | USE (LandSeg / skimage) |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---|---|---|")
    rows: list[dict] = []
    if "nc" in args.sizes:
        image, valid, reference = load_nc(base)
        rows += run_image("nc", image, valid, reference, args)
    if {"dubai", "4096"} & set(args.sizes):
        image, reference = load_dubai(base)
        if "dubai" in args.sizes:
            rows += run_image("dubai", image, None, reference, args)
        if "4096" in args.sizes:
            big, big_ref = mirror_to(image, 4096), mirror_to(reference, 4096)
            del image
            rows += run_image("4096", big, None, big_ref, args)
    if args.cold_compile:
        meta["first_call"] = cold_compile()
        print(json.dumps(meta["first_call"]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
