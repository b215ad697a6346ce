"""Benchmarks of unsupervised deep segmentation (ISB, DFC, W-Net; ``core/unsupervised.py``).

Modes (``--mode``, several allowed):

``speed``
    Seconds per training iteration on a 256 x 256 crop of the NC Landsat scene (5
    bands), default networks (ISB/DFC: 100 channels, 2 blocks; W-Net: K 20, hidden 8),
    in fp32 and bf16 autocast (when the device has bf16), with and without the
    channels-last memory format. The first iteration is a warm-up and not timed.
``nc``
    Quality on the North Carolina Landsat 7 scene (489 x 443, 5 bands, whole image) against
    the 1996 land-cover map ``strata.tif`` (7 classes): adjusted Rand index of ISB, DFC
    and W-Net with default settings, and of two classical baselines with the same number
    of clusters K as each method found (and with K = 7, the reference's classes), the
    reference line each method must beat (``beats_kmeans``): k-means on the
    stretched pixel values, and k-means on the mean colours of SLIC superpixels (LandSeg's
    SLIC, 2000 segments, compactness 1). All scores on pixels valid in both rasters.
``dubai``
    The same on Dubai aerial RGB tiles (../shared/data/dubai-aerial; 6 mask colours, the
    "Unlabeled" and black pixels ignored), on the central 256 x 256 crop of the first
    image of tiles 1-8 (``--dubai-tiles``), or on the whole image with ``--dubai-size 0``
    (544 x 509 to 2061 x 1817 pixels: the methods' dataset mode, as a user's run on that
    image); a crop holding one class is skipped (its ARI is 0 or 1 whatever the
    clustering).

``--seeds`` runs each deep method once per seed and adds a ``mean`` row per method and
scene (mean ARI, mean k-means line with the same K).

Run: ``python bench/unsupervised.py --mode speed nc dubai --threads 2 [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.protocol import Reporter  # noqa: E402

DUBAI_COLOURS = {
    (0x3C, 0x10, 0x98): 1,  # Building
    (0x84, 0x29, 0xF6): 2,  # Land (unpaved area)
    (0x6E, 0xC1, 0xE4): 3,  # Road
    (0xFE, 0xDD, 0x3A): 4,  # Vegetation
    (0xE2, 0xA9, 0x29): 5,  # Water
}


def _data_dir(name: str) -> Path | None:
    for base in (ROOT.parent / "shared" / "data", ROOT / "data"):
        if (base / name).is_dir():
            return base / name
    return None


def _quiet() -> Reporter:
    return Reporter("json", out=open("/dev/null", "w"))


def speed(threads: int, size: int = 256, iterations: int = 4) -> list[dict[str, Any]]:
    """Seconds per training iteration, per method, precision and memory format."""
    import rasterio
    import torch

    from core.device import cpu_supports_bf16, select_device
    from core.unsupervised import _superpixels, train_kanezaki, train_wnet

    torch.set_num_threads(threads)
    nc = _data_dir("nc-landsat7")
    if nc is None:
        raise SystemExit("NC data absent: run `make data`.")
    with rasterio.open(nc / "landsat_multiband.tif") as ds:
        raw = ds.read(window=((120, 120 + size), (120, 120 + size))).astype(np.float32)
    low, high = np.percentile(raw, [2, 98], axis=(1, 2))
    image = ((raw - low[:, None, None]) / (high - low)[:, None, None])[None].astype(np.float32)
    valid = np.ones((1, size, size), bool)
    dev, _ = select_device("auto")
    precisions = ["fp32"]
    if dev.type == "cuda" or cpu_supports_bf16():
        precisions.append("bf16")
    segments = _superpixels(image, valid, {"segment_size": 15.0, "compactness": 1.0}, _quiet())
    rows = []
    for method in ("isb", "dfc", "wnet"):
        for precision in precisions:
            for channels_last in (True, False):
                common = dict(
                    max_iter=iterations + 1,
                    min_clusters=1,
                    device=str(dev),
                    precision=precision,
                    channels_last=channels_last,
                    reporter=_quiet(),
                )
                started = time.perf_counter()
                if method == "wnet":
                    _, history = train_wnet(image, valid, **common)
                else:
                    _, history = train_kanezaki(
                        image, valid, method=method, segments=segments, **common
                    )
                total = time.perf_counter() - started
                per = float(np.mean(history.iteration_seconds[1:]))  # first: warm-up
                rows.append(
                    {
                        "method": method,
                        "device": str(dev),
                        "precision": precision,
                        "channels_last": channels_last,
                        "size": size,
                        "s_per_iteration": round(per, 3),
                        "wall_s": round(total, 2),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return rows


def _ari(labels: np.ndarray, reference: np.ndarray, valid: np.ndarray) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(reference[valid], labels[valid]))


def _baselines(
    image: np.ndarray, valid: np.ndarray, ks: list[int], seed: int = 0
) -> dict[str, dict[int, np.ndarray]]:
    """Pixel k-means and SLIC-mean-colour k-means labels for each K."""
    from sklearn.cluster import KMeans

    from core.superpixels import slic

    low, high = np.percentile(image[:, valid], [2, 98], axis=1)
    scaled = np.clip((image - low[:, None, None]) / (high - low)[:, None, None], 0, 1)
    pixels = scaled[:, valid].T
    segments = slic(scaled.astype(np.float32), mask=valid, n_segments=2000, compactness=1.0)
    seg = segments[valid].astype(np.int64)
    n_seg = int(seg.max()) + 1
    counts = np.bincount(seg, minlength=n_seg)
    present = counts > 0
    means = np.stack(
        [np.bincount(seg, weights=pixels[:, b], minlength=n_seg) for b in range(len(image))], 1
    )
    means = means[present] / counts[present, None]
    index = np.full(n_seg, -1)
    index[present] = np.arange(int(present.sum()))
    out: dict[str, dict[int, np.ndarray]] = {"kmeans": {}, "slic_kmeans": {}}
    for k in ks:
        km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(pixels)
        labels = np.zeros(valid.shape, np.int64)
        labels[valid] = km.labels_ + 1
        out["kmeans"][k] = labels
        km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(
            means, sample_weight=counts[present]
        )
        labels = np.zeros(valid.shape, np.int64)
        labels[valid] = km.labels_[index[seg]] + 1
        out["slic_kmeans"][k] = labels
    return out


def _score_scene(
    name: str,
    src: Path,
    reference: np.ndarray,
    ref_valid: np.ndarray,
    threads: int,
    methods: tuple[str, ...] = ("dfc", "isb", "wnet"),
    params: dict[str, dict[str, Any]] | None = None,
    seeds: tuple[int, ...] = (42,),
) -> list[dict[str, Any]]:
    """ISB, DFC, W-Net (defaults, or ``params[method]``) and the two baselines on one scene.

    The baselines run with every K a method found (and the reference's class count), so
    each method has a k-means reference line with its own K on the same stretched bands;
    ``beats_kmeans`` says whether the method's ARI is above it. With several ``seeds``
    each method runs once per seed, and a ``mean`` row per method gives the mean ARI and
    the mean of its k-means lines (``beats_kmeans`` on the means).
    """
    import rasterio

    from core import io
    from core.commands.unsupervised import run_unsupervised

    with io.open_raster(src) as ds:
        image, valid = io.read_bands(ds, list(range(1, ds.count + 1)))
    valid &= ref_valid
    rows = []
    found: set[int] = set()
    with tempfile.TemporaryDirectory() as folder:
        for method in methods:
            for seed in seeds:
                started = time.perf_counter()
                result = run_unsupervised(
                    method,
                    src=str(src),
                    dst=f"{folder}/{method}-{seed}.tif",
                    params=(params or {}).get(method),
                    seed=seed,
                    threads=threads,
                    reporter=_quiet(),
                )
                with rasterio.open(result["OUTPUT"]) as ds:
                    labels = ds.read(1)
                found.add(int(result["N_CLUSTERS"]))
                rows.append(
                    {
                        "scene": name,
                        "method": method,
                        "seed": seed,
                        "K": int(result["N_CLUSTERS"]),
                        "iterations": result["ITERATIONS"],
                        "ARI": round(_ari(labels, reference, valid & (labels > 0)), 4),
                        "seconds": round(time.perf_counter() - started, 1),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    deep = list(rows)
    n_classes = len(np.unique(reference[valid]))
    ks = sorted({*found, n_classes})
    started = time.perf_counter()
    baselines = _baselines(image, valid, ks)
    seconds = round(time.perf_counter() - started, 1)
    for method, by_k in baselines.items():
        for k, labels in by_k.items():
            rows.append(
                {
                    "scene": name,
                    "method": method,
                    "K": k,
                    "ARI": round(_ari(labels, reference, valid), 4),
                    "seconds": seconds,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    for row in deep:
        kmeans = next(r["ARI"] for r in rows if r["method"] == "kmeans" and r["K"] == row["K"])
        row["kmeans_same_K"] = kmeans
        row["beats_kmeans"] = row["ARI"] > kmeans
        print(json.dumps(row), flush=True)
    if len(seeds) > 1:
        for method in methods:
            runs = [r for r in deep if r["method"] == method]
            ari = round(float(np.mean([r["ARI"] for r in runs])), 4)
            kmeans = round(float(np.mean([r["kmeans_same_K"] for r in runs])), 4)
            rows.append(
                {
                    "scene": name,
                    "method": method,
                    "seed": "mean",
                    "K": [r["K"] for r in runs],
                    "ARI": ari,
                    "kmeans_same_K": kmeans,
                    "beats_kmeans": ari > kmeans,
                    "seeds_beating_kmeans": sum(r["beats_kmeans"] for r in runs),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def nc(
    threads: int,
    methods: tuple[str, ...] = ("dfc", "isb", "wnet"),
    params: dict[str, dict[str, Any]] | None = None,
    seeds: tuple[int, ...] = (42,),
) -> list[dict[str, Any]]:
    import rasterio

    folder = _data_dir("nc-landsat7")
    if folder is None:
        raise SystemExit("NC data absent: run `make data`.")
    with rasterio.open(folder / "strata.tif") as ds:
        reference = ds.read(1)
        ref_valid = ds.read_masks(1) > 0
    reference = np.where(ref_valid, reference, 0).astype(np.int64)
    return _score_scene(
        "nc",
        folder / "landsat_multiband.tif",
        reference,
        ref_valid,
        threads,
        methods,
        params,
        seeds,
    )


def dubai(
    threads: int,
    size: int = 256,
    tiles: tuple[int, ...] = tuple(range(1, 9)),
    methods: tuple[str, ...] = ("dfc", "isb", "wnet"),
    params: dict[str, dict[str, Any]] | None = None,
    seeds: tuple[int, ...] = (42,),
) -> list[dict[str, Any]]:
    import rasterio
    from PIL import Image
    from rasterio.errors import NotGeoreferencedWarning

    folder = _data_dir("dubai-aerial")
    if folder is None:
        print("Dubai data absent (../shared/data/dubai-aerial); skipped.")
        return []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for tile in tiles:
            image = np.asarray(
                Image.open(folder / f"tile{tile}" / "images" / "image_part_001.jpg").convert("RGB")
            )
            mask = np.asarray(
                Image.open(folder / f"tile{tile}" / "masks" / "image_part_001.png").convert("RGB")
            )
            if size:  # the central crop; 0 keeps the whole image
                r0 = (image.shape[0] - size) // 2
                c0 = (image.shape[1] - size) // 2
                image = image[r0 : r0 + size, c0 : c0 + size]
                mask = mask[r0 : r0 + size, c0 : c0 + size]
            image = image.transpose(2, 0, 1)
            reference = np.zeros(mask.shape[:2], np.int64)
            for colour, value in DUBAI_COLOURS.items():
                reference[np.all(mask == colour, axis=2)] = value
            if len(np.unique(reference[reference > 0])) < 2:  # ARI is 0 or 1 whatever the labels
                print(f"tile{tile}: the crop holds one class; skipped.")
                continue
            path = Path(tmp) / f"tile{tile}.tif"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                height, width = image.shape[1:]
                profile = {"driver": "GTiff", "width": width, "height": height, "count": 3}
                with rasterio.open(path, "w", dtype="uint8", **profile) as ds:
                    ds.write(image)
            rows += _score_scene(
                f"dubai-tile{tile}",
                path,
                reference,
                reference > 0,
                threads,
                methods,
                params,
                seeds,
            )
    return rows


def kmeans_reference(src: Path, reference: Path, k: int, seed: int = 0) -> dict[str, Any]:
    """ARI of k-means with ``k`` clusters on ``src``'s stretched bands against ``reference``.

    The reference line an unsupervised method with ``k`` clusters must beat (the demo's
    results use it); the same features and scoring as the ``nc`` mode.
    """
    import rasterio
    from sklearn.cluster import KMeans

    from core import io

    with io.open_raster(src) as ds:
        image, valid = io.read_bands(ds, list(range(1, ds.count + 1)))
    with rasterio.open(reference) as ds:
        ref = ds.read(1).astype(np.int64)
        valid &= ds.read_masks(1) > 0
    valid &= ref > 0
    low, high = np.percentile(image[:, valid], [2, 98], axis=1)
    scaled = np.clip((image - low[:, None, None]) / (high - low)[:, None, None], 0, 1)
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(scaled[:, valid].T)
    labels = np.zeros(valid.shape, np.int64)
    labels[valid] = km.labels_ + 1
    return {"method": "kmeans", "K": k, "ARI": round(_ari(labels, ref, valid), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", nargs="+", default=["speed", "nc"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--dubai-tiles",
        type=int,
        nargs="+",
        default=list(range(1, 9)),
        help="Dubai tiles to score (default 1-8; crops with one class are skipped).",
    )
    parser.add_argument(
        "--dubai-size",
        type=int,
        default=256,
        help="Side of the central crop of each Dubai image; 0 scores the whole image.",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[42],
        help="Seeds of the deep methods; with several, a mean row per method and scene.",
    )
    parser.add_argument(
        "--methods", nargs="+", default=["dfc", "isb", "wnet"], help="Deep methods to run."
    )
    parser.add_argument(
        "--params", default="{}", help='JSON of parameters per method, e.g. {"wnet": {...}}.'
    )
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "unsupervised.json"))
    parser.add_argument(
        "--kmeans",
        nargs=3,
        metavar=("RASTER", "REFERENCE", "K"),
        help="Only print the ARI of k-means with K clusters (the demo's reference line).",
    )
    args = parser.parse_args()
    if args.kmeans:
        src, ref, k = args.kmeans
        print(json.dumps(kmeans_reference(Path(src), Path(ref), int(k))))
        return
    import torch

    results: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "threads": args.threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    for mode in args.mode:
        if mode == "dubai":
            results[mode] = dubai(
                args.threads,
                size=args.dubai_size,
                tiles=tuple(args.dubai_tiles),
                methods=tuple(args.methods),
                params=json.loads(args.params),
                seeds=tuple(args.seeds),
            )
        elif mode == "nc":
            results[mode] = nc(
                args.threads, tuple(args.methods), json.loads(args.params), tuple(args.seeds)
            )
        else:
            results[mode] = speed(args.threads)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():  # keep the modes not run this time
        previous = json.loads(path.read_text())
        previous.update(results)
        results = previous
    path.write_text(json.dumps(results, indent=2))
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
