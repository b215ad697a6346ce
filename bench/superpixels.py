"""Benchmark LandSeg's superpixels against scikit-image, on real imagery, in one run.

Measures throughput (Mpx/s, median of ``--repeats`` runs after one warm-up call that
compiles or loads the numba kernels) and quality against reference label maps:

* boundary recall (BR): fraction of reference boundary pixels within 2 px of a segment
  boundary (Martin et al. 2004, the tolerance used in the SLIC paper);
* under-segmentation error (USE), the corrected form of Neubert & Protzel (2012):
  ``USE = 1/N * sum_G sum_{S overlapping G} min(|S & G|, |S - G|)``.

Data: the North Carolina Landsat 7 scene (5 bands, reference ``strata.tif``), a Dubai
aerial image (RGB, reference: its mask), and a 4096 x 4096 mosaic made by mirroring
Dubai tile-7 imagery (and its mask). Every method sees the same stretched array.

Run: ``python bench/superpixels.py [--repeats 3] [--sizes nc dubai 4096] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import normalize, superpixels  # noqa: E402

DUBAI_COLOURS = {  # mask colour -> class (see ../shared/data/README.md)
    (0x3C, 0x10, 0x98): 1,
    (0x84, 0x29, 0xF6): 2,
    (0x6E, 0xC1, 0xE4): 3,
    (0xFE, 0xDD, 0x3A): 4,
    (0xE2, 0xA9, 0x29): 5,
}


def find_data() -> Path:
    for base in (ROOT.parent / "shared" / "data", ROOT / "data"):
        if (base / "nc-landsat7").is_dir():
            return base
    sys.exit("No data: run `make data` (NC) or work beside ../shared/data.")


def load_nc(base: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import rasterio

    with rasterio.open(base / "nc-landsat7" / "landsat_multiband.tif") as src:
        image = src.read().astype(np.float32)
        valid = np.all(src.read_masks() > 0, axis=0)
    with rasterio.open(base / "nc-landsat7" / "strata.tif") as src:
        reference = src.read(1)
    reference = np.where(valid & (reference > 0), reference, 0).astype(np.int32)
    return normalize.stretch(image, valid), valid, reference


def load_dubai(base: Path, tile: int, part: int = 1) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    folder = base / "dubai-aerial" / f"tile{tile}"
    rgb = np.asarray(Image.open(folder / "images" / f"image_part_00{part}.jpg").convert("RGB"))
    mask = np.asarray(Image.open(folder / "masks" / f"image_part_00{part}.png").convert("RGB"))
    reference = np.zeros(mask.shape[:2], dtype=np.int32)
    for colour, value in DUBAI_COLOURS.items():
        reference[np.all(mask == colour, axis=-1)] = value
    image = np.moveaxis(rgb, -1, 0).astype(np.float32)
    return normalize.stretch(image, np.ones(image.shape[1:], bool)), reference


def mirror_to(array: np.ndarray, size: int) -> np.ndarray:
    """Tile an image by mirroring until it covers size x size (last two axes)."""
    height, width = array.shape[-2:]
    reps_y, reps_x = -(-size // height), -(-size // width)
    rows = [array if i % 2 == 0 else np.flip(array, axis=-2) for i in range(reps_y)]
    column = np.concatenate(rows, axis=-2)
    cols = [column if j % 2 == 0 else np.flip(column, axis=-1) for j in range(reps_x)]
    return np.ascontiguousarray(np.concatenate(cols, axis=-1)[..., :size, :size])


def boundary_recall(labels: np.ndarray, reference: np.ndarray, tolerance: int = 2) -> float:
    from scipy import ndimage
    from skimage.segmentation import find_boundaries

    ref_edges = find_boundaries(reference, mode="inner") & (reference > 0)
    seg_edges = ndimage.binary_dilation(find_boundaries(labels, mode="inner"), iterations=tolerance)
    return float((ref_edges & seg_edges).sum() / max(ref_edges.sum(), 1))


def undersegmentation_error(labels: np.ndarray, reference: np.ndarray) -> float:
    keep = reference > 0
    seg, ref = labels[keep].astype(np.int64), reference[keep].astype(np.int64)
    joint = np.unique(seg * (ref.max() + 1) + ref, return_counts=True)
    seg_of, counts = joint[0] // (ref.max() + 1), joint[1]
    seg_size = np.bincount(seg)
    outside = seg_size[seg_of] - counts
    return float(np.minimum(counts, outside).sum() / keep.sum())


def timed(
    function: Callable[[], np.ndarray], repeats: int, warm: bool
) -> tuple[float, float, np.ndarray]:
    first = time.perf_counter()
    result = function() if warm else None
    first = time.perf_counter() - first
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), first, result


def run_case(
    name: str,
    image01: np.ndarray,
    mask: np.ndarray | None,
    reference: np.ndarray,
    repeats: int,
    methods: list[str],
) -> list[dict]:
    from skimage import segmentation as sk

    pixels = image01.shape[1] * image01.shape[2]
    n_segments = max(pixels // 1000, 100)  # ~1000 px per segment
    image100 = image01 * 100
    channels_last100 = np.ascontiguousarray(np.moveaxis(image100, 0, -1), dtype=np.float64)
    cases = {
        "slic": (
            lambda: superpixels.slic(image01, n_segments=n_segments, compactness=1.0, mask=mask),
            lambda: sk.slic(
                image01,
                n_segments=n_segments,
                compactness=1.0,
                max_num_iter=10,
                enforce_connectivity=True,
                channel_axis=0,
                convert2lab=False,
                start_label=1,
                mask=mask,
            ),
            f"n_segments={n_segments}, compactness=1, max_num_iter=10, connectivity",
        ),
        "felzenszwalb": (
            lambda: superpixels.felzenszwalb(image01, scale=100, sigma=0.8, min_size=20, mask=mask),
            lambda: sk.felzenszwalb(image01, scale=100, sigma=0.8, min_size=20, channel_axis=0),
            "scale=100, sigma=0.8, min_size=20",
        ),
        "quickshift": (
            lambda: superpixels.quickshift(
                image100, kernel_size=3, max_dist=6, ratio=0.5, mask=mask
            ),
            lambda: sk.quickshift(
                channels_last100,
                kernel_size=3,
                max_dist=6,
                ratio=0.5,
                convert2lab=False,
                channel_axis=-1,
                rng=42,
            ),
            "kernel_size=3, max_dist=6, ratio=0.5",
        ),
    }
    rows = []
    for method in methods:
        ours, theirs, params = cases[method]
        ours_s, first_s, ours_labels = timed(ours, repeats, warm=True)
        sk_s, _, sk_labels = timed(theirs, max(1, repeats if pixels < 5e6 else 1), warm=False)
        if mask is not None:
            sk_labels = np.where(mask, sk_labels, 0)
        row = {
            "case": name,
            "method": method,
            "pixels": pixels,
            "bands": image01.shape[0],
            "params": params,
            "ours_s": round(ours_s, 4),
            "first_call_s": round(first_s, 2),
            "skimage_s": round(sk_s, 3),
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
            f"{name:10s} {method:12s} ours {row['ours_mpx_s']:8.2f} Mpx/s  skimage "
            f"{row['skimage_mpx_s']:7.3f} Mpx/s  x{row['speedup']:5.1f}  segments "
            f"{row['ours_segments']}/{row['skimage_segments']}  BR {row['ours_br']}/"
            f"{row['skimage_br']}  USE {row['ours_use']}/{row['skimage_use']}",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--sizes", nargs="+", default=["nc", "dubai", "4096"], choices=["nc", "dubai", "4096"]
    )
    parser.add_argument("--methods", nargs="+", default=["slic", "felzenszwalb", "quickshift"])
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results" / "superpixels.json"
    )
    args = parser.parse_args()
    base = find_data()
    rows: list[dict] = []
    if "nc" in args.sizes:
        image, valid, reference = load_nc(base)
        rows += run_case("nc", image, valid, reference, args.repeats, args.methods)
    if "dubai" in args.sizes and (base / "dubai-aerial").is_dir():
        image, reference = load_dubai(base, 7)
        rows += run_case("dubai-t7", image, None, reference, args.repeats, args.methods)
    if "4096" in args.sizes and (base / "dubai-aerial").is_dir():
        image, reference = load_dubai(base, 7)
        big, big_ref = mirror_to(image, 4096), mirror_to(reference, 4096)
        methods = [m for m in args.methods if m != "quickshift"]  # skimage: minutes
        rows += run_case("4096", big, None, big_ref, args.repeats, methods)
    import numba
    import skimage

    meta = {
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "skimage": skimage.__version__,
        "threads": numba.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
