"""Benchmarks of the supervised U-Net (``trainunet`` / ``predictunet``).

Modes (``--mode``, several allowed):

``nc``
    North Carolina Landsat 7 (../shared/data or data/nc-landsat7): train on the 2,872
    sparse labelled pixels (``landsat96_labelled_pixels.tif``; every other pixel
    ignored), predict the whole scene with ``predictunet`` and score against
    ``strata.tif`` on the valid pixels not used for training (``core.accuracy``). The
    reference numbers (../shared/data/README.md): RandomForest OA 0.52, majority 0.49.
``speed``
    CPU (or GPU) seconds per training epoch of 400 crops of 256x256 x 10 bands
    (synthetic values; the time does not depend on them), batch 8, resnet18 and resnet34.
``defaults``
    The "six 400x400 10-band scenes, defaults only" case: six 400x400 crops of the NC
    scene stacked to 10 bands (5 Landsat bands, SWIR2, NDVI, NDWI, NDBI, brightness),
    labels from ``strata.tif`` kept in random 32x32 blocks covering about 25 % of each
    scene (the rest ignored), trained with every default (``--threads`` only; extra
    ``trainunet`` options as JSON with ``--defaults-options``).
    Reports wall time, epochs run and OA on the unlabelled pixels.
``dubai``
    Dubai aerial RGB (../shared/data/dubai-aerial, no georeferencing): train on the 54
    images of tiles 1-6 (mask colours mapped to 5 classes; Unlabeled and black ignored),
    predict the 18 images of tiles 7-8 with ``predictunet``, and report OA, macro-F1 and
    mIoU of the held-out tiles (one confusion matrix over all of them).

Run: ``python bench/unet.py --mode nc speed defaults dubai --threads 2 [--json PATH]``
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


def _nc_dir() -> Path:
    for base in (ROOT.parent / "shared" / "data", ROOT / "data"):
        if (base / "nc-landsat7" / "landsat_multiband.tif").exists():
            return base / "nc-landsat7"
    raise SystemExit("NC data absent: run `make data`.")


def _write(path: Path, array: np.ndarray, like: Any, nodata: float | None = None) -> Path:
    import rasterio

    profile = {
        "driver": "GTiff",
        "width": array.shape[-1],
        "height": array.shape[-2],
        "count": array.shape[0],
        "dtype": array.dtype.name,
        "crs": like["crs"],
        "transform": like["transform"],
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array)
    return path


def _forward_scene(model: Path, image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Class values of a whole (small) scene in one forward pass; 0 at nodata."""
    import torch

    from core.modelfile import load_model
    from core.networks import build_network

    state, meta = load_model(model)
    network = build_network(meta)
    network.load_state_dict(state)
    network.eval()
    offsets = np.array(meta["normalization"]["offsets"], np.float32)[:, None, None]
    scales = np.array(meta["normalization"]["scales"], np.float32)[:, None, None]
    values = np.array([c["value"] for c in meta["classes"]])
    x = (image - offsets) / scales
    x[:, ~valid] = 0
    count, height, width = x.shape
    padded = np.zeros((count, -(-height // 32) * 32, -(-width // 32) * 32), np.float32)
    padded[:, :height, :width] = x
    with torch.inference_mode():
        index = network(torch.from_numpy(padded)[None])[0].argmax(0).numpy()[:height, :width]
    return np.where(valid, values[index], 0)


def bench_nc(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Sparse NC labels -> whole-scene prediction -> accuracy against strata.tif."""
    import rasterio

    from core.commands.accuracy import run_accuracy
    from core.commands.unet import run_predictunet, run_trainunet

    nc = _nc_dir()
    names = (
        "1:developed:#d7191c,2:agriculture:#fdae61,3:herbaceous:#ffffbf,4:shrubland:#a6d96a,"
        "5:forest:#1a9641,6:water:#2b83ba,7:sediment:#bababa"
    )
    start = time.perf_counter()
    train = run_trainunet(
        inputs=[str(nc / "landsat_multiband.tif")],
        labels=[str(nc / "landsat96_labelled_pixels.tif")],
        classes=names,
        threads=args.threads,
        seed=args.seed,
        dst_model=str(work / "nc.safetensors"),
        dst_report=str(work / "nc-training.html"),
        reporter=Reporter("text"),
        **json.loads(args.nc_options),
    )
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    run_predictunet(
        src=str(nc / "landsat_multiband.tif"),
        model=str(work / "nc.safetensors"),
        dst=str(work / "nc-classes.tif"),
        threads=args.threads,
        reporter=Reporter("text"),
    )
    predict_s = time.perf_counter() - start
    # Reference: strata without the training pixels.
    with rasterio.open(nc / "strata.tif") as src:
        strata = src.read(1)
        like = {"crs": src.crs, "transform": src.transform}
    with rasterio.open(nc / "landsat96_labelled_pixels.tif") as src:
        labelled = src.read(1)
    held_out = np.where((labelled >= 1) & (labelled <= 7), 0, strata).astype(np.float32)
    held_out[~np.isin(held_out, np.arange(1, 8))] = 0
    reference = _write(work / "strata-held-out.tif", held_out[None], like, nodata=0)
    accuracy = run_accuracy(
        prediction=str(work / "nc-classes.tif"),
        reference=str(reference),
        ignore_values=[0],
        reporter=Reporter("text"),
    )
    return {
        "train_s": round(train_s, 1),
        "predict_s": round(predict_s, 1),
        "epochs_run": train["EPOCHS_RUN"],
        "best_epoch": train["BEST_EPOCH"],
        "val_miou": train["VAL_MIOU"],
        "oa": accuracy["OVERALL_ACCURACY"],
        "macro_f1": accuracy["MACRO_F1"],
        "miou": accuracy["MEAN_IOU"],
        "kappa": accuracy["KAPPA"],
        "n_pixels": accuracy.get("N_PIXELS"),
        "prediction": "predictunet (tiled engine)",
        "options": json.loads(args.nc_options),
    }


def bench_speed(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Seconds per epoch of 400 crops of 256x256 x 10 bands."""
    import torch

    from core.networks import build_unet
    from core.training import Scene, train_network

    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    scenes = []
    for _ in range(4):  # 4 scenes of 1024x1024 hold 64 grid tiles; 400 crops drawn per epoch
        image = rng.normal(size=(10, 1024, 1024)).astype(np.float32)
        targets = rng.integers(0, 6, size=(1024, 1024)).astype(np.int64)
        scenes.append(Scene(image, targets, np.ones((1024, 1024), bool)))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = {"device": device}
    for encoder in args.encoders:
        torch.manual_seed(0)
        network = build_unet(encoder=encoder, in_channels=10, classes=6)
        result = train_network(
            network,
            scenes,
            n_classes=6,
            tile_size=256,
            epochs=1,
            batch_size=8,
            min_samples_per_epoch=400,
            device=device,
            reporter=Reporter("text"),
        )
        out[encoder] = round(result.history[0]["seconds"], 1)
    return out


def _ten_bands(nc: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    import rasterio

    with rasterio.open(nc / "landsat_multiband.tif") as src:
        five = src.read(out_dtype="float32")
        valid = np.all(src.read_masks() > 0, axis=0)
        like = {"crs": src.crs, "transform": src.transform}
    with rasterio.open(nc / "lsat7_2000_70.tif") as src:
        swir2 = src.read(1, out_dtype="float32")
        valid &= src.read_masks(1) > 0
    _blue, green, red, nir, swir1 = five
    eps = 1e-6
    ndvi = (nir - red) / (nir + red + eps)
    ndwi = (green - nir) / (green + nir + eps)
    ndbi = (swir1 - nir) / (swir1 + nir + eps)
    bright = five.mean(axis=0)
    stack = np.concatenate([five, swir2[None], np.stack([ndvi, ndwi, ndbi, bright])]).astype(
        np.float32
    )
    stack[:, ~valid] = -9999
    return stack, valid, like


def bench_defaults(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Six 400x400 10-band scenes, partial labels, defaults only."""
    import rasterio
    from rasterio.transform import Affine

    from core.commands.unet import run_trainunet

    nc = _nc_dir()
    stack, valid, like = _ten_bands(nc)
    with rasterio.open(nc / "strata.tif") as src:
        strata = src.read(1)
    height, width = strata.shape
    rng = np.random.default_rng(args.seed)
    offsets = [(0, 0), (0, width - 400), (height - 400, 0), (height - 400, width - 400)]
    offsets += [
        ((height - 400) // 2, (width - 400) // 2),
        ((height - 400) // 3, (width - 400) // 4),
    ]
    inputs, labels, held = [], [], []
    for k, (row, col) in enumerate(offsets):
        image = stack[:, row : row + 400, col : col + 400]
        ref = strata[row : row + 400, col : col + 400].copy()
        ref[~np.isin(ref, np.arange(1, 8)) | ~valid[row : row + 400, col : col + 400]] = 0
        keep = np.kron(rng.random((13, 13)) < 0.25, np.ones((32, 32), bool))[:400, :400]
        lab = np.where(keep, ref, 0).astype(np.uint8)
        transform = like["transform"] * Affine.translation(col, row)
        meta = {"crs": like["crs"], "transform": transform}
        inputs.append(str(_write(work / f"s{k}.tif", np.ascontiguousarray(image), meta, -9999)))
        labels.append(str(_write(work / f"l{k}.tif", lab[None], meta)))
        held.append((ref, keep))
    start = time.perf_counter()
    train = run_trainunet(
        inputs=inputs,
        labels=labels,
        ignore_value=0,
        threads=args.threads,
        dst_model=str(work / "six.safetensors"),
        reporter=Reporter("text"),
        **json.loads(args.defaults_options),
    )
    seconds = time.perf_counter() - start
    # OA on the unlabelled pixels of the six scenes (whole-scene forward pass).
    correct = total = 0
    for path, (ref, keep) in zip(inputs, held, strict=True):
        with rasterio.open(path) as src:
            image = src.read(out_dtype="float32")
            ok = np.all(src.read_masks() > 0, axis=0)
        pred = _forward_scene(work / "six.safetensors", image, ok)
        scored = (ref > 0) & ~keep & ok
        correct += int((pred[scored] == ref[scored]).sum())
        total += int(scored.sum())
    return {
        "train_s": round(seconds, 1),
        "epochs_run": train["EPOCHS_RUN"],
        "best_epoch": train["BEST_EPOCH"],
        "val_miou": train["VAL_MIOU"],
        "oa_unlabelled": correct / max(total, 1),
        "options": json.loads(args.defaults_options),
    }


DUBAI_CLASSES = (
    "1:building:#3C1098,2:land:#8429F6,3:road:#6EC1E4,4:vegetation:#FEDD3A,5:water:#E2A929"
)


def _dubai_labels(mask_png: Path, dst: Path) -> Path:
    """Mask colours (../shared/data/README.md) -> class values 1-5, 0 ignored."""
    import rasterio
    from PIL import Image

    rgb = np.asarray(Image.open(mask_png).convert("RGB")).astype(np.int32)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    labels = np.zeros(code.shape, np.uint8)
    for part in DUBAI_CLASSES.split(","):
        value, _, colour = part.split(":")
        labels[code == int(colour[1:], 16)] = int(value)
    profile = {"driver": "GTiff", "width": labels.shape[1], "height": labels.shape[0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(dst, "w", count=1, dtype="uint8", nodata=0, **profile) as out:
            out.write(labels[None])
    return dst


def bench_dubai(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Train on Dubai tiles 1-6, score the held-out tiles 7-8."""
    import rasterio

    from core.commands.unet import run_predictunet, run_trainunet
    from core.contingency import ConfusionAccumulator
    from core.metrics import assess_accuracy

    base = ROOT.parent / "shared" / "data" / "dubai-aerial"
    if not base.exists():
        raise SystemExit(f"Dubai data absent: {base}")

    def pairs(tiles: range) -> list[tuple[Path, Path]]:
        out = []
        for tile in tiles:
            images = sorted((base / f"tile{tile}" / "images").glob("*.jpg"))
            for image in images[: args.dubai_images]:
                mask = base / f"tile{tile}" / "masks" / (image.stem + ".png")
                out.append((image, _dubai_labels(mask, work / f"t{tile}_{image.stem}.tif")))
        return out

    train_pairs, test_pairs = pairs(range(1, 7)), pairs(range(7, 9))
    start = time.perf_counter()
    train = run_trainunet(
        inputs=[str(image) for image, _ in train_pairs],
        labels=[str(label) for _, label in train_pairs],
        ignore_value=0,
        classes=DUBAI_CLASSES,
        threads=args.threads,
        seed=args.seed,
        dst_model=str(work / "dubai.safetensors"),
        dst_report=str(work / "dubai-training.html"),
        reporter=Reporter("text"),
        **json.loads(args.dubai_options),
    )
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    confusion = ConfusionAccumulator()
    for index, (image, label) in enumerate(test_pairs):
        dst = work / f"pred_{index}.tif"
        run_predictunet(
            src=str(image),
            model=str(work / "dubai.safetensors"),
            dst=str(dst),
            threads=args.threads,
            reporter=Reporter("text"),
        )
        with rasterio.open(dst) as pred, rasterio.open(label) as ref:
            p, r = pred.read(1), ref.read(1)
        keep = r > 0
        confusion.update(p[keep], r[keep])
    predict_s = time.perf_counter() - start
    result = assess_accuracy(confusion)
    return {
        "train_images": len(train_pairs),
        "test_images": len(test_pairs),
        "train_s": round(train_s, 1),
        "predict_s": round(predict_s, 1),
        "epochs_run": train["EPOCHS_RUN"],
        "best_epoch": train["BEST_EPOCH"],
        "val_miou": train["VAL_MIOU"],
        "oa": result.overall_accuracy,
        "macro_f1": result.macro["f1"],
        "miou": result.mean_iou,
        "kappa": result.kappa,
        "per_class_iou": {
            str(v): round(float(x), 3) for v, x in zip(result.classes, result.iou, strict=True)
        },
        "options": json.loads(args.dubai_options),
        "images_per_tile": args.dubai_images,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    modes = ("nc", "speed", "defaults", "dubai")
    parser.add_argument("--mode", nargs="+", default=["nc"], choices=modes)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--encoders", nargs="+", default=["resnet18", "resnet34"])
    parser.add_argument("--nc-options", default="{}", help="JSON of extra trainunet options.")
    parser.add_argument(
        "--defaults-options", default="{}", help="JSON of trainunet options (defaults mode)."
    )
    parser.add_argument("--dubai-options", default="{}", help="JSON of extra trainunet options.")
    parser.add_argument(
        "--dubai-images", type=int, default=9, help="Images per Dubai tile (9: all of them)."
    )
    parser.add_argument("--json", help="Write the results here.")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import torch

    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": args.threads,
            "cpu": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        }
    }
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.mode:
            results[mode] = {
                "nc": bench_nc,
                "speed": bench_speed,
                "defaults": bench_defaults,
                "dubai": bench_dubai,
            }[mode](args, Path(tmp))
            print(json.dumps({mode: results[mode]}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
