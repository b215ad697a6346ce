"""GPU benchmark of LandSeg's deep-learning paths, in one go (run by ``bench/gpu.sh``).

Measures, on synthetic rasters written here (no download, fixed seeds):

- U-Net resnet34 inference, model only: 256 px tiles per second, bf16 autocast and
  channels-last (the engine's configuration), and plain fp32 for reference;
- U-Net inference end to end from a GeoTIFF: ``python -m core predictunet`` on a
  4096 x 4096 4-band raster (precision ``auto``: bf16 on GPUs that support it), as the
  engine reports it (tiles/s) and as the user feels it (process wall seconds);
- U-Net training images per second: ``python -m core trainunet`` (resnet34, 256 px
  crops, batch 16), from the engine's per-epoch times of the last epoch;
- DFC and ISB seconds per iteration at 1024 x 1024 (``--mode image``): the difference
  between a long and a short run, so start-up and the first iteration cancel out (the
  dry run does one short run).

Writes ``gpu.json`` and ``gpu.md`` (the lines for docs/benchmarks.md) in ``--out``.
``--dry-run`` runs the same steps on the CPU at tiny sizes, to check the script.

Only the engine's command line (``python -m core ...``) and ``core.networks.build_unet``
are used, so the benchmark survives reorganisations of the engine's modules.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Sizes of the full run and of the CPU dry run.
SIZES = {
    "full": {
        "predict_px": 4096,
        "train_px": 2048,
        "tile": 256,
        "batch": 32,
        "train_batch": 16,
        "epochs": 2,
        "model_batches": 30,
        "unsup_px": 1024,
        "iters": (10, 40),
        "encoder": "resnet34",
    },
    "dry": {
        "predict_px": 96,
        "train_px": 64,
        "tile": 32,
        "batch": 2,
        "train_batch": 2,
        "epochs": 1,
        "model_batches": 2,
        "unsup_px": 32,
        "iters": (2,),
        "encoder": "resnet18",
    },
}
BANDS = 4
CLASSES = 6


def log(message: str) -> None:
    print(f"[gpu bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def write_rasters(folder: Path, size: dict[str, Any]) -> dict[str, Path]:
    """Blocky 4-band 'fields' with noise, and class labels 1..6 that follow them."""
    import rasterio
    from rasterio.transform import from_origin

    def field(px: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        cell = 32
        n = -(-px // cell)
        classes = rng.integers(1, CLASSES + 1, size=(n, n))
        means = rng.uniform(20, 200, size=(CLASSES + 1, BANDS))
        grid = np.repeat(np.repeat(classes, cell, 0), cell, 1)[:px, :px]
        image = np.moveaxis(means[grid], -1, 0)
        image += rng.normal(0, 8, size=image.shape)
        return image.astype(np.float32), grid.astype(np.uint8)[None]

    def write(path: Path, array: np.ndarray) -> Path:
        profile = {
            "driver": "GTiff",
            "width": array.shape[2],
            "height": array.shape[1],
            "count": array.shape[0],
            "dtype": array.dtype.name,
            "crs": "EPSG:32119",
            "transform": from_origin(630000, 228000, 1, 1),
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
        }
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(array)
        return path

    folder.mkdir(parents=True, exist_ok=True)
    image, _ = field(size["predict_px"], 1)
    paths = {"predict": write(folder / "predict.tif", image)}
    image, labels = field(size["train_px"], 2)
    paths["train"] = write(folder / "train.tif", image)
    paths["labels"] = write(folder / "labels.tif", labels)
    image, _ = field(size["unsup_px"], 3)
    paths["unsup"] = write(folder / "unsup.tif", image[:3])
    return paths


def engine(python: str, args: list[str], device: str) -> tuple[float, list[str]]:
    """Run ``python -m core --progress json ARGS``; return wall seconds and log messages."""
    command = [python, "-m", "core", "--progress", "json", *args]
    if device:
        command += ["--device", device]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    messages, error = [], None
    for line in done.stdout.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "log":
            messages.append(event["message"])
        elif event.get("event") == "error":
            error = event["message"]
    if done.returncode != 0 or error:
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}): {error or done.stderr[-2000:]}"
        )
    return seconds, messages


def found(pattern: str, messages: list[str]) -> list[re.Match]:
    """Matches of a pattern in the engine's log messages (at least one)."""
    matches = [m for m in (re.search(pattern, t) for t in messages) if m]
    if not matches:
        raise RuntimeError(f"No log message matches {pattern!r}: {messages}")
    return matches


def model_only(size: dict[str, Any], device: str) -> dict[str, float]:
    """Tiles/s of the U-Net forward pass alone (bf16 channels-last, and fp32)."""
    import torch

    from core.networks import build_unet

    dev = torch.device(device)
    net = build_unet(encoder=size["encoder"], in_channels=BANDS, classes=CLASSES).eval().to(dev)
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(size["batch"], BANDS, size["tile"], size["tile"], device=dev)
    x = x.contiguous(memory_format=torch.channels_last)
    out: dict[str, float] = {}
    bf16 = dev.type == "cpu" or torch.cuda.is_bf16_supported()
    for name, dtype in (("bf16", torch.bfloat16 if bf16 else None), ("fp32", None)):
        if name == "bf16" and dtype is None:
            continue

        def step(dtype: torch.dtype | None = dtype) -> None:
            with (
                torch.inference_mode(),
                torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None),
            ):
                net(x).argmax(1)

        for _ in range(3):
            step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(size["model_batches"]):
            step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        out[f"model_only_{name}_tiles_per_s"] = size["model_batches"] * size["batch"] / seconds
    return out


def train(
    python: str, paths: dict[str, Path], out: Path, size: dict[str, Any], device: str
) -> dict[str, float]:
    """Training images/s from the engine's last epoch time."""
    _, messages = engine(
        python,
        ["trainunet", "--input", str(paths["train"]), "--labels", str(paths["labels"]),
         "--epochs", str(size["epochs"]), "--tile-size", str(size["tile"]),
         "--batch-size", str(size["train_batch"]), "--encoder", size["encoder"],
         "--patience", "0", "--seed", "0", "--overwrite", str(out / "unet.safetensors")],
        device,
    )  # fmt: skip
    crops = int(
        found(r"([\d,]+) crops of \d+x\d+ per epoch", messages)[0].group(1).replace(",", "")
    )
    last = float(found(r"^Epoch \d+/\d+: .*\(([\d.]+) s\)$", messages)[-1].group(1))
    return {
        "train_crops_per_epoch": crops,
        "train_last_epoch_s": last,
        "train_images_per_s": crops / last,
    }


def predict(python: str, paths: dict[str, Path], out: Path, device: str) -> dict[str, float]:
    """End to end from a GeoTIFF: the engine's tiles/s and the process wall time."""
    seconds, messages = engine(
        python,
        ["predictunet", str(paths["predict"]), str(out / "unet.safetensors"),
         str(out / "predicted.tif"), "--overwrite"],
        device,
    )  # fmt: skip
    match = found(r"(\d+) tiles in ([\d.]+) s", messages)[0]
    precision = next((t for t in messages if t.startswith("Device:")), "")
    return {
        "predict_tiles": int(match.group(1)),
        "predict_engine_s": float(match.group(2)),
        "predict_engine_tiles_per_s": int(match.group(1)) / max(float(match.group(2)), 1e-9),
        "predict_process_s": seconds,
        "predict_process_tiles_per_s": int(match.group(1)) / seconds,
        "predict_device_note": precision,
    }


def unsupervised(
    python: str, method: str, paths: dict[str, Path], out: Path, size: dict[str, Any], device: str
) -> dict[str, float]:
    """Seconds per iteration: (long run - short run) / (extra iterations)."""
    trained = []
    for n in size["iters"]:
        _, messages = engine(
            python,
            [method, str(paths["unsup"]), str(out / f"{method}.tif"), "--mode", "image",
             "--max-iter", str(n), "--min-clusters", "1", "--seed", "0", "--overwrite"],
            device,
        )  # fmt: skip
        match = found(r"Trained (\d+) iterations in ([\d.]+) s", messages)[0]
        trained.append((int(match.group(1)), float(match.group(2))))
    (n1, s1), (n2, s2) = trained[0], trained[-1]
    per = (s2 - s1) / (n2 - n1) if n2 > n1 and s2 > s1 else s2 / max(n2, 1)
    return {f"{method}_s_per_iter": per, f"{method}_iterations": [n for n, _ in trained]}


def machine(device: str) -> dict[str, Any]:
    import torch

    info = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
        info["bf16"] = bool(torch.cuda.is_bf16_supported())
    return info


def markdown(result: dict[str, Any]) -> str:
    m, r, s = result["machine"], result["results"], result["sizes"]
    where = f"{m.get('gpu', 'CPU (dry run)')}, torch {m['torch']}, CUDA {m['cuda']}, {m['date']}"
    rows = [
        f"GPU benchmark (`bench/gpu.sh`{' --dry-run' if result['dry_run'] else ''}): {where}.",
        "",
        "| measure | value |",
        "|---|---:|",
    ]
    t = s["tile"]
    if "model_only_bf16_tiles_per_s" in r:
        bf16 = r["model_only_bf16_tiles_per_s"]
        rows.append(
            f"| U-Net {s['encoder']} model only, bf16 channels-last, {t} px tiles, "
            f"batch {s['batch']} | {bf16:.1f} tiles/s |"
        )
    fp32 = r["model_only_fp32_tiles_per_s"]
    rows.append(f"| U-Net {s['encoder']} model only, fp32 | {fp32:.1f} tiles/s |")
    px = s["predict_px"]
    rows += [
        f"| predictunet {px}² GeoTIFF, engine ({r['predict_tiles']} tiles) | "
        f"{r['predict_engine_tiles_per_s']:.1f} tiles/s |",
        f"| predictunet {px}² GeoTIFF, whole process | {r['predict_process_s']:.1f} s "
        f"({r['predict_process_tiles_per_s']:.1f} tiles/s) |",
        f"| trainunet {s['encoder']}, {t} px crops, batch {s['train_batch']} | "
        f"{r['train_images_per_s']:.1f} images/s |",
        f"| DFC {s['unsup_px']}², image mode | {r['dfc_s_per_iter']:.3f} s/iteration |",
        f"| ISB {s['unsup_px']}², image mode | {r['isb_s_per_iter']:.3f} s/iteration |",
    ]
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes.")
    parser.add_argument("--out", default="bench-gpu-out", help="Output folder.")
    parser.add_argument("--python", default=sys.executable, help="Engine Python.")
    args = parser.parse_args()
    import torch

    size = SIZES["dry" if args.dry_run else "full"]
    if args.dry_run:
        device = "cpu"
    elif torch.cuda.is_available():
        device = "cuda"
    else:
        sys.exit("No CUDA GPU visible to torch; use --dry-run to check the script on a CPU.")
    out = Path(args.out).resolve()
    started = time.perf_counter()
    log(f"rasters in {out}")
    paths = write_rasters(out / "data", size)
    results: dict[str, Any] = {}
    log("U-Net model only")
    results.update(model_only(size, device))
    log("U-Net training (trainunet)")
    results.update(train(args.python, paths, out, size, device))
    log("U-Net end to end (predictunet)")
    results.update(predict(args.python, paths, out, device))
    for method in ("dfc", "isb"):
        log(f"{method} seconds per iteration")
        results.update(unsupervised(args.python, method, paths, out, size, device))
    result = {
        "dry_run": args.dry_run,
        "machine": machine(device),
        "sizes": size,
        "results": results,
        "seconds": time.perf_counter() - started,
    }
    (out / "gpu.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "gpu.md").write_text(markdown(result))
    print(json.dumps(result, default=str))
    print(markdown(result))
    log(f"done in {result['seconds']:.0f} s: {out / 'gpu.json'}, {out / 'gpu.md'}")


if __name__ == "__main__":
    main()
