"""How well the U-Net holds up on a new acquisition (``trainunet`` / ``predictunet``).

Modes (``--mode``, several allowed):

``nc``
    North Carolina Landsat 7 (../shared/data or data/nc-landsat7): train on the 2,872
    sparse labelled pixels (``landsat96_labelled_pixels.tif``), predict the whole scene
    twice, as it is and radiometrically shifted the way a second acquisition date differs
    (per band a gain drawn from U(0.85, 1.15) and an offset from U(-0.05, 0.05) times the
    band's value range, seeded by ``--shift-seed``), and score both against ``strata.tif``
    on the valid pixels not used for training: OA, macro-F1, mIoU and the adjusted Rand
    index. The drop is OA(clean) - OA(shifted).
``dubai``
    Dubai aerial RGB (../shared/data/dubai-aerial): train on whole tiles (1-6 by default),
    predict whole other tiles (7-8), each clean and shifted as above; ``--dubai-images``
    takes the first N images of each tile (a subset, for CPU budgets).

Each ``--run`` is a JSON object ``{"name": ..., "train": {...}, "predict": {...}}`` of extra
``run_trainunet`` / ``run_predictunet`` keyword arguments; without one, today's defaults
run. Results are appended as JSON lines to ``--jsonl`` as each run finishes.

Run: ``python bench/generalisation.py --mode nc --threads 2 --run '{"name": "tta",
"predict": {"tta": true}}'``
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

NC_CLASSES = (
    "1:developed:#d7191c,2:agriculture:#fdae61,3:herbaceous:#ffffbf,4:shrubland:#a6d96a,"
    "5:forest:#1a9641,6:water:#2b83ba,7:sediment:#bababa"
)
DUBAI_CLASSES = (
    "1:building:#3C1098,2:land:#8429F6,3:road:#6EC1E4,4:vegetation:#FEDD3A,5:water:#E2A929"
)


def _data(name: str) -> Path:
    for base in (ROOT.parent / "shared" / "data", ROOT / "data"):
        if (base / name).exists():
            return base / name
    raise SystemExit(f"{name} data absent: run `make data`.")


def shift_image(
    image: np.ndarray, valid: np.ndarray, *, seed: int, gain: float = 0.15, offset: float = 0.05
) -> tuple[np.ndarray, list[float], list[float]]:
    """A second-date version of ``image``: per-band gain U(1-g, 1+g), offset U(-o, o) x range."""
    rng = np.random.default_rng(seed)
    count = image.shape[0]
    gains = rng.uniform(1 - gain, 1 + gain, count)
    values = image[:, valid].astype(np.float64)
    spans = np.percentile(values, 98, axis=1) - np.percentile(values, 2, axis=1)
    offsets = rng.uniform(-offset, offset, count) * spans
    out = image.astype(np.float32) * gains[:, None, None].astype(np.float32)
    out += offsets[:, None, None].astype(np.float32)
    return out, [round(float(g), 4) for g in gains], [round(float(o), 3) for o in offsets]


def scores(pred: np.ndarray, ref: np.ndarray, n_classes: int) -> dict[str, float]:
    """OA, macro-F1, mIoU (classes 1..n) and ARI of two label arrays (already masked)."""
    from sklearn.metrics import adjusted_rand_score

    from core.training import confusion_scores

    confusion = np.bincount(
        (ref.astype(np.int64) - 1) * (n_classes + 1) + pred.astype(np.int64),
        minlength=n_classes * (n_classes + 1),
    ).reshape(n_classes, n_classes + 1)[:, 1:]
    out = confusion_scores(confusion)
    return {
        "oa": round(out["oa"], 4),
        "macro_f1": round(out["macro_f1"], 4),
        "miou": round(out["miou"], 4),
        "ari": round(float(adjusted_rand_score(ref, pred)), 4),
    }


def _write_like(path: Path, array: np.ndarray, src_path: Path, nodata: float | None) -> str:
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(src_path) as src:
            profile = src.profile.copy()
    profile.update(driver="GTiff", dtype=array.dtype.name, count=array.shape[0], nodata=nodata)
    profile.pop("photometric", None)
    profile.pop("compress", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(array)
    return str(path)


def _read(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as src:
            image = src.read(out_dtype="float32")
            valid = np.all(src.read_masks() > 0, axis=0)
    return image, valid


def _predict(model: str, src: str, dst: Path, args: argparse.Namespace, opts: dict) -> np.ndarray:
    from core.commands.unet import run_predictunet

    run_predictunet(
        src=src, model=model, dst=str(dst), threads=args.threads, reporter=Reporter.quiet(),
        overwrite=True,
        **opts,
    )  # fmt: skip
    labels, _ = _read(dst)
    return labels[0].astype(np.int64)


def bench_nc(args: argparse.Namespace, work: Path, run: dict[str, Any]) -> dict[str, Any]:
    import rasterio

    from core.commands.unet import run_trainunet

    nc = _data("nc-landsat7")
    image_path = nc / "landsat_multiband.tif"
    image, valid = _read(image_path)
    shifted, gains, offsets = shift_image(image, valid, seed=args.shift_seed)
    shifted[:, ~valid] = -9999
    shifted_path = _write_like(work / "nc-shifted.tif", shifted, image_path, -9999)
    model = str(work / f"nc-{run['name']}.safetensors")
    start = time.perf_counter()
    train = run_trainunet(
        inputs=[str(image_path)],
        labels=[str(nc / "landsat96_labelled_pixels.tif")],
        classes=NC_CLASSES,
        threads=args.threads,
        seed=args.seed,
        dst_model=model,
        overwrite=True,
        reporter=Reporter("text"),
        **run.get("train", {}),
    )
    train_s = time.perf_counter() - start
    with rasterio.open(nc / "strata.tif") as src:
        strata = src.read(1)
    with rasterio.open(nc / "landsat96_labelled_pixels.tif") as src:
        labelled = src.read(1)
    scored = valid & np.isin(strata, np.arange(1, 8)) & ~((labelled >= 1) & (labelled <= 7))
    out: dict[str, Any] = {
        "train_s": round(train_s, 1),
        "epochs_run": train["EPOCHS_RUN"],
        "best_epoch": train["BEST_EPOCH"],
        "val_miou": train["VAL_MIOU"],
        "shift": {"gains": gains, "offsets": offsets},
    }
    for suffix, opts in _variants(args, run):
        for key, src in (("clean", str(image_path)), ("shifted", shifted_path)):
            pred = _predict(model, src, work / f"pred-{key}.tif", args, opts)
            ok = scored & (pred > 0)
            out[key + suffix] = scores(pred[ok], strata[ok], 7)
        out["oa_drop" + suffix] = round(
            out["clean" + suffix]["oa"] - out["shifted" + suffix]["oa"], 4
        )
    return out


def _variants(args: argparse.Namespace, run: dict[str, Any]) -> list[tuple[str, dict]]:
    """Prediction settings to score one model with: as given, or without and with TTA
    (``--tta-both``; TTA is ``predictunet``'s default, so both are named explicitly)."""
    opts = run.get("predict", {})
    if args.tta_both:
        return [("", {**opts, "tta": False}), ("_tta", {**opts, "tta": True})]
    return [("", opts)]


def _dubai_labels(mask_png: Path, dst: Path) -> Path:
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


def _trained(model: str) -> dict[str, Any]:
    """The training outcome recorded in a finished model file, as ``run_trainunet`` returns it."""
    from core.modelfile import read_metadata

    training = read_metadata(model)["training"]
    return {
        "EPOCHS_RUN": training["epochs_run"],
        "BEST_EPOCH": training["best_epoch"],
        "VAL_MIOU": training["val_miou"],
        "SECONDS": training["seconds"],
    }


def bench_dubai(args: argparse.Namespace, work: Path, run: dict[str, Any]) -> dict[str, Any]:
    from core.commands.unet import run_trainunet

    base = _data("dubai-aerial")

    def pairs(tiles: list[int]) -> list[tuple[Path, Path]]:
        found = []
        for tile in tiles:
            images = sorted((base / f"tile{tile}" / "images").glob("*.jpg"))
            for image in images[: args.dubai_images]:
                mask = base / f"tile{tile}" / "masks" / (image.stem + ".png")
                label = work / f"t{tile}_{image.stem}.tif"
                if not label.exists():
                    _dubai_labels(mask, label)
                found.append((image, label))
        return found

    train_pairs, test_pairs = pairs(args.dubai_train), pairs(args.dubai_test)
    model = str(work / f"dubai-{run['name']}.safetensors")
    # With --work the training state is kept after every epoch, so an interrupted run of
    # the full split (hours on a CPU) resumes where it stopped, to the same model.
    checkpoint = str(work / f"dubai-{run['name']}-state.safetensors") if args.work else None
    resumed = checkpoint is not None and Path(checkpoint).exists()
    start = time.perf_counter()
    rescored = bool(args.work) and Path(model).exists() and not resumed
    if rescored:
        # A model that finished training in an earlier run of the same --work folder is
        # scored again rather than retrained (hours on a CPU).
        train = _trained(model)
    else:
        train = run_trainunet(
            checkpoint=checkpoint,
            inputs=[str(i) for i, _ in train_pairs],
            labels=[str(lab) for _, lab in train_pairs],
            ignore_value=0,
            classes=DUBAI_CLASSES,
            threads=args.threads,
            seed=args.seed,
            dst_model=model,
            overwrite=True,
            reporter=Reporter("text"),
            **run.get("train", {}),
        )
    train_s = train.get("SECONDS", time.perf_counter() - start)
    preds: dict[str, list[np.ndarray]] = {}
    refs = []
    for index, (image_path, label) in enumerate(test_pairs):
        image, valid = _read(image_path)
        ref, _ = _read(label)
        shifted, _, _ = shift_image(image, valid, seed=args.shift_seed + index)
        shifted_path = _write_like(work / f"shift-{index}.tif", shifted, image_path, None)
        for suffix, opts in _variants(args, run):
            for key, src in (("clean", str(image_path)), ("shifted", shifted_path)):
                dst = work / f"pred-{key}-{index}.tif"
                preds.setdefault(key + suffix, []).append(_predict(model, src, dst, args, opts))
        refs.append(ref[0].astype(np.int64))
    out: dict[str, Any] = {
        "resumed": resumed,
        "rescored": rescored,
        "train_images": len(train_pairs),
        "test_images": len(test_pairs),
        "train_s": round(train_s, 1),
        "epochs_run": train["EPOCHS_RUN"],
        "best_epoch": train["BEST_EPOCH"],
        "val_miou": train["VAL_MIOU"],
    }
    ref_all = np.concatenate([r.ravel() for r in refs])
    for key, found in preds.items():
        pred_all = np.concatenate([p.ravel() for p in found])
        ok = (ref_all > 0) & (pred_all > 0)
        out[key] = scores(pred_all[ok], ref_all[ok], 5)
    for suffix, _ in _variants(args, run):
        out["oa_drop" + suffix] = round(
            out["clean" + suffix]["oa"] - out["shifted" + suffix]["oa"], 4
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", nargs="+", default=["nc"], choices=("nc", "dubai"))
    parser.add_argument("--run", action="append", default=[], help="JSON run description.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--shift-seed", type=int, default=7)
    parser.add_argument(
        "--tta-both", action="store_true", help="Score every model without and with TTA."
    )
    parser.add_argument("--dubai-images", type=int, default=9, help="Images per tile (9: all).")
    parser.add_argument("--dubai-train", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--dubai-test", type=int, nargs="+", default=[7, 8])
    parser.add_argument(
        "--work",
        help="Keep models, labels and predictions in this folder (default: a temporary one).",
    )
    parser.add_argument("--jsonl", default=str(ROOT / "bench" / "results" / "generalisation.jsonl"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import torch

    runs = [json.loads(r) for r in args.run] or [{"name": "defaults"}]
    machine = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    Path(args.jsonl).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.work:
            Path(args.work).mkdir(parents=True, exist_ok=True)
            tmp = args.work
        for mode in args.mode:
            for run in runs:
                bench = {"nc": bench_nc, "dubai": bench_dubai}[mode]
                result = bench(args, Path(tmp), run)
                line = {"mode": mode, "run": run, "seed": args.seed, **result, "machine": machine}
                if mode == "dubai":
                    line["images_per_tile"] = args.dubai_images
                print(json.dumps(line), flush=True)
                with open(args.jsonl, "a") as stream:
                    stream.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
