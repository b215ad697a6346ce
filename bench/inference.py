"""Benchmark of the tiled inference engine (``core.inference.predict_raster``).

Measures, in one run on this machine:

- U-Net resnet34 (segmentation-models-pytorch, random weights), 4 bands, 256 px tiles:
  tiles/s of the engine end to end (GeoTIFF in, GeoTIFF out), of the engine's model
  configuration alone (batched, channels-last, autocast), and of a plain eager fp32 loop
  over the same tiles (batch 1, contiguous, no autocast);
- this CPU's convolution roof: a large channels-last 3x3 convolution in the same dtype,
  and the U-Net's model-only throughput as a fraction of it (15.7 GFLOP per tile);
- peak RSS of the engine at 4096² and 16384² (each in a fresh process, a small network,
  because the memory of the streaming does not depend on the network's cost);
- seam consistency against overlap: labels of a raster and of the same raster shifted
  by 77 px, for a network with a 15 px receptive-field radius (the overlap default).

Usage::

    python bench/inference.py                  # everything, about 10 min on 2 cores
    python bench/inference.py --skip-rss --tiles 12
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.device import select_precision, set_threads  # noqa: E402
from core.inference import fold_batchnorm, predict_raster  # noqa: E402
from core.tiling import make_windows  # noqa: E402

UNET_GFLOP = 15.7  # per 256 x 256 x 4-band tile, forward (the figure)


def unet(bands: int = 4, classes: int = 6) -> torch.nn.Module:
    """U-Net resnet34 with random weights (no download)."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    return smp.Unet("resnet34", encoder_weights=None, in_channels=bands, classes=classes).eval()


def write_raster(path: Path, height: int, width: int, bands: int = 4) -> Path:
    """A smooth-textured uint16 raster, written strip by strip (bounded memory)."""
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": bands,
        "dtype": "uint16",
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "crs": "EPSG:32617",
        "transform": rasterio.Affine(10, 0, 500000, 0, -10, 4000000),
    }
    cols = np.arange(width, dtype=np.float32)
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, height, 1024):
            rows = np.arange(top, min(top + 1024, height), dtype=np.float32)[:, None]
            strip = np.stack(
                [
                    1000 + 500 * np.sin(rows / (37 + 11 * b)) * np.cos(cols / (53 + 7 * b))
                    for b in range(bands)
                ]
            ).astype(np.uint16)
            dst.write(strip, window=Window(0, top, width, strip.shape[1]))
    return path


def read_tiles(path: Path) -> np.ndarray:
    """Every engine window of the raster, normalised, as (N, C, 256, 256) float32."""
    with rasterio.open(path) as src:
        windows = make_windows(src.height, src.width)
        tiles = np.stack([src.read(window=w, out_dtype="float32") for w in windows])
    return (tiles - 1000.0) / 500.0


def time_plain_loop(model: torch.nn.Module, tiles: np.ndarray) -> float:
    """Tiles/s of a plain eager fp32 loop: batch 1, contiguous, no autocast."""
    with torch.inference_mode():
        model(torch.from_numpy(tiles[:1]))  # warm-up
        started = time.perf_counter()
        for tile in tiles:
            model(torch.from_numpy(tile[None])).argmax(1)
    return len(tiles) / (time.perf_counter() - started)


def time_engine_model(
    model: torch.nn.Module, tiles: np.ndarray, dtype: torch.dtype | None, batch: int
) -> float:
    """Tiles/s of the engine's model configuration alone (channels-last, autocast)."""
    net = fold_batchnorm(model.eval()).to(memory_format=torch.channels_last)

    def run(x: np.ndarray) -> None:
        t = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
        if dtype is None:
            net(t)
        else:
            with torch.autocast("cpu", dtype=dtype):
                net(t)

    with torch.inference_mode():
        run(tiles[:batch])  # warm-up
        started = time.perf_counter()
        for i in range(0, len(tiles), batch):
            run(tiles[i : i + batch])
    return len(tiles) / (time.perf_counter() - started)


def conv_roof(dtype: torch.dtype | None, *, seconds: float = 3.0) -> float:
    """GFLOP/s of a large channels-last 3x3 convolution (256 -> 256 channels, 64 x 64 x 8)."""
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(memory_format=torch.channels_last)
    x = torch.randn(8, 256, 64, 64).contiguous(memory_format=torch.channels_last)
    flop = 2 * 256 * 256 * 9 * 64 * 64 * 8

    def run() -> None:
        if dtype is None:
            conv(x)
        else:
            with torch.autocast("cpu", dtype=dtype):
                conv(x)

    with torch.inference_mode():
        run()
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            run()
            n += 1
    return n * flop / (time.perf_counter() - started) / 1e9


def rss_child(path: str, threads: int) -> None:
    """Run the engine on ``path`` with a small network; print peak RSS (MiB) as JSON."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(4, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 6, 1)
    )
    out = Path(path).with_name(Path(path).stem + "_labels.tif")
    started = time.perf_counter()
    result = predict_raster(
        net, path, str(out), offsets=[1000] * 4, scales=[500] * 4, threads=threads
    )
    seconds = time.perf_counter() - started
    status = Path("/proc/self/status").read_text()
    peak_kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    out.unlink()
    print(
        json.dumps({"peak_rss_mib": peak_kb / 1024, "seconds": seconds, "tiles": result["TILES"]})
    )


def measure_rss(size: int, folder: Path, threads: int) -> dict:
    path = write_raster(folder / f"rss_{size}.tif", size, size)
    proc = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(path), "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    path.unlink()
    return json.loads(proc.stdout.strip().splitlines()[-1])


def shift_agreement(overlaps: list[int], folder: Path) -> dict[int, float]:
    """Label agreement between a raster and the raster shifted by 77 px, per overlap."""
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = [torch.nn.Conv2d(4, 16, 3, padding=1), torch.nn.ReLU()]
    for dilation in (2, 4, 8):  # receptive-field radius 1 + 2 + 4 + 8 = 15 px
        layers += [torch.nn.Conv2d(16, 16, 3, padding=dilation, dilation=dilation), torch.nn.ReLU()]
    layers.append(torch.nn.Conv2d(16, 6, 1))
    net = torch.nn.Sequential(*layers)
    for module in net.modules():  # no biases: labels follow the image, not a constant
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight)
            torch.nn.init.zeros_(module.bias)
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, (4, 900, 900)).astype(np.float32)
    from scipy.ndimage import gaussian_filter

    base = np.stack([gaussian_filter(b, 6) for b in base]) * 20
    shift, margin = 77, 16
    agreement = {}
    for overlap in overlaps:
        maps = []
        for name, array in (("a", base), ("b", base[:, shift:, shift:])):
            src = folder / f"shift_{name}.tif"
            with rasterio.open(
                src,
                "w",
                driver="GTiff",
                height=array.shape[1],
                width=array.shape[2],
                count=4,
                dtype="float32",
            ) as dst:
                dst.write(np.ascontiguousarray(array))
            out = folder / f"shift_{name}_{overlap}.tif"
            predict_raster(net, str(src), str(out), overlap=overlap, precision="fp32")
            with rasterio.open(out) as ds:
                maps.append(ds.read(1))
        a = maps[0][shift + margin : -margin, shift + margin : -margin]
        b = maps[1][margin:-margin, margin:-margin]
        agreement[overlap] = float(np.mean(a == b))
    return agreement


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--tiles", type=int, default=24, help="tiles in the throughput raster")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--rss-sizes", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--overlaps", type=int, nargs="*", default=[0, 8, 16, 32, 64])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "inference.json")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.threads)
        return 0

    set_threads(args.threads)
    dtype, note = select_precision("auto", torch.device("cpu"))
    results: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.processor() or platform.machine(),
        "cpu": _cpu_model(),
        "threads": args.threads,
        "torch": torch.__version__,
        "precision": note,
    }
    cols = max(1, round(np.sqrt(args.tiles * 4 / 3)))
    rows = max(1, args.tiles // cols)
    height, width = 32 + 224 * rows, 32 + 224 * cols
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        src = write_raster(folder / "scene.tif", height, width)
        tiles = read_tiles(src)
        model = unet()
        results["tiles"] = len(tiles)
        results["raster"] = f"{width} x {height} x 4 uint16"
        print(f"{len(tiles)} tiles of 256 px; precision {note}; {args.threads} threads")

        plain = time_plain_loop(model, tiles)
        print(f"plain eager fp32 loop      {plain:7.3f} tiles/s")
        model_only = time_engine_model(unet(), tiles, dtype, args.batch)
        print(f"engine model only          {model_only:7.3f} tiles/s")
        started = time.perf_counter()
        answer = predict_raster(
            unet(),
            str(src),
            str(folder / "labels.tif"),
            offsets=[1000] * 4,
            scales=[500] * 4,
            batch_size=args.batch,
            threads=args.threads,
        )
        engine_raster_s = time.perf_counter() - started
        end_to_end = len(tiles) / engine_raster_s
        print(f"engine end to end          {end_to_end:7.3f} tiles/s ({answer['PRECISION']})")
        # Per raster, as a user feels it: the plain loop needs only the raster's
        # non-overlapping 256 px tiles (model time only, no I/O: a favour to it); the engine
        # runs its overlapping windows plus reading, normalising and writing.
        plain_tiles = -(-width // 256) * -(-height // 256)
        plain_raster_s = plain_tiles / plain
        ratio = plain_raster_s / engine_raster_s
        print(
            f"per raster                 engine {engine_raster_s:.1f} s, plain loop "
            f"{plain_raster_s:.1f} s ({plain_tiles} tiles) = {ratio:.2f}x"
        )
        roof = conv_roof(dtype)
        roof32 = conv_roof(None) if dtype is not None else roof
        achieved = model_only * UNET_GFLOP
        print(
            f"conv roof                  {roof:7.1f} GFLOP/s ({note.split()[0]}); fp32 {roof32:.1f}"
        )
        print(f"U-Net model only           {achieved:7.1f} GFLOP/s = {achieved / roof:.0%} of roof")
        results.update(
            plain_tiles_per_s=plain,
            engine_model_tiles_per_s=model_only,
            engine_end_to_end_tiles_per_s=end_to_end,
            speedup_end_to_end_vs_plain=end_to_end / plain,
            engine_s_per_raster=engine_raster_s,
            plain_loop_s_per_raster=plain_raster_s,
            plain_loop_tiles_per_raster=plain_tiles,
            speedup_per_raster=ratio,
            conv_roof_gflops=roof,
            conv_roof_fp32_gflops=roof32,
            unet_model_gflops=achieved,
            fraction_of_roof=achieved / roof,
        )
        if args.overlaps:
            agreement = shift_agreement(args.overlaps, folder)
            results["shift_agreement_by_overlap"] = agreement
            for overlap, value in agreement.items():
                print(f"overlap {overlap:3d} px: shifted-raster label agreement {value:.4%}")
        if not args.skip_rss:
            rss = {size: measure_rss(size, folder, args.threads) for size in args.rss_sizes}
            results["rss"] = rss
            for size, r in rss.items():
                print(
                    f"{size:6d}²: peak RSS {r['peak_rss_mib']:7.1f} MiB, "
                    f"{r['tiles']} tiles, {r['seconds']:.0f} s"
                )
            if len(rss) >= 2:
                small, large = min(rss), max(rss)
                results["rss_ratio"] = rss[large]["peak_rss_mib"] / rss[small]["peak_rss_mib"]
                print(f"RSS ratio {large}² / {small}²: {results['rss_ratio']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
