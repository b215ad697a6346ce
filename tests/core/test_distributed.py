"""The engine on a Dask cluster (core.distributed): equal results, batches, faults.

A LocalCluster of 2 worker processes (one thread each) runs U-Net prediction cut into
blocks, block-by-block SLIC and the accuracy's window counts; the outputs must equal the
single-process outputs pixel for pixel (and number for number). A worker process is killed
mid-run and the result must not change.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from rasters import parcels, write_tif

from core.batch import write_vrt
from core.classes import ClassInfo, classes_to_json
from core.commands.accuracy import run_accuracy
from core.commands.superpixels import run_superpixels
from core.commands.unet import run_predictunet
from core.distributed import parse_scheduler
from core.modelfile import save_model
from core.networks import build_unet
from core.protocol import EngineError, Reporter
from core.superpixel_blocks import BlockPlan, block_dependencies
from core.tiling import plan_region_blocks

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]
TILE, OVERLAP = 32, 8  # several hundred windows cost seconds


class Quiet(Reporter):
    """Reporter that records messages instead of printing them."""

    def __init__(self) -> None:
        super().__init__("text")
        self.messages: list[str] = []

    def progress(self, percent: float) -> None:
        pass

    def _log(self, level: str, message: str) -> None:
        self.messages.append(message)


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes with one thread each, shared by the tests of this module."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A random-weights U-Net model file with 32 px tiles (3 bands, 3 classes)."""
    torch.manual_seed(0)
    network = build_unet(encoder="resnet18", in_channels=3, classes=3)
    classes = [ClassInfo(1, "forest", "#1b7837"), ClassInfo(2, "water", "#2166ac"),
               ClassInfo(3, "urban", "#d6604d")]  # fmt: skip
    metadata = {
        "architecture": "unet",
        "architecture_args": {"encoder": "resnet18", "in_channels": 3, "classes": 3},
        "bands": {"count": 3, "indices": [1, 2, 3], "names": ["b1", "b2", "b3"]},
        "normalization": {"method": "standardize", "offsets": [100.0] * 3, "scales": [60.0] * 3},
        "nodata_zero": False,
        "tile_size": TILE,
        "overlap": OVERLAP,
        "classes": classes_to_json(classes),
    }
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, network.state_dict(), metadata)
    return path


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """600 x 520 px, 3 bands, a nodata corner: 25 x 22 = 550 windows of 32 px."""
    image = parcels((600, 520), 3, seed=3)
    image[:, :40, :60] = -9999
    return write_tif(tmp_path_factory.mktemp("scene") / "scene.tif", image, nodata=-9999)


@pytest.fixture(scope="module")
def single(scene, model, tmp_path_factory) -> tuple[np.ndarray, np.ndarray, dict]:
    """The single-process prediction (labels, confidence, result)."""
    folder = tmp_path_factory.mktemp("single")
    result = run_predictunet(
        src=str(scene),
        model=str(model),
        dst=str(folder / "labels.tif"),
        dst_confidence=str(folder / "conf.tif"),
        threads=2,
        reporter=Quiet(),
    )
    assert result["TILES"] == 550
    return _read(folder / "labels.tif"), _read(folder / "conf.tif"), result


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".landseg" in p.name)


def test_parse_scheduler():
    assert parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler("tcp://10.0.0.5:8786") == ("tcp://10.0.0.5:8786", 0)
    assert parse_scheduler("node1:8786") == ("tcp://node1:8786", 0)
    for bad in ("", "local:0", "local:x"):
        with pytest.raises(EngineError):
            parse_scheduler(bad)


def test_blocks_are_whole_output_tiles():
    blocks = plan_region_blocks(600, 1000, 300)  # rounded down to 256
    assert [(b.col_off, b.row_off, b.width, b.height) for b in blocks[:4]] == [
        (0, 0, 256, 256), (256, 0, 256, 256), (512, 0, 256, 256), (768, 0, 232, 256)
    ]  # fmt: skip
    assert sum(b.width * b.height for b in blocks) == 600 * 1000


def test_unet_on_dask_equals_single_process(cluster, scene, model, single, tmp_path):
    labels, conf, result = single
    report = Quiet()
    out = run_predictunet(
        src=str(scene),
        model=str(model),
        dst=str(tmp_path / "labels.tif"),
        dst_confidence=str(tmp_path / "conf.tif"),
        dask_scheduler=cluster.scheduler_address,
        block_size=256,  # 3 x 3 blocks
        reporter=report,
    )
    assert np.array_equal(_read(tmp_path / "labels.tif"), labels)
    assert np.array_equal(_read(tmp_path / "conf.tif"), conf)
    assert out["COUNTS"] == result["COUNTS"]
    assert out["TILES"] > 550  # tiles on block borders are computed by both blocks
    with rasterio.open(tmp_path / "labels.tif") as ds, rasterio.open(result["OUTPUT"]) as ref:
        assert ds.profile == ref.profile and ds.colormap(1)[2] == ref.colormap(1)[2]
        assert ds.tags(1) == ref.tags(1)
    assert (tmp_path / "labels.tif.qml").exists() or (tmp_path / "labels.qml").exists()
    assert _leftovers(tmp_path) == []
    assert any("Model sent to the workers once" in m for m in report.messages)
    with distributed.Client(cluster) as client:  # each worker built the network once
        built = client.run(_networks_built)
    assert built and all(n == 1 for n in built.values())


def _networks_built() -> int:
    from core import distributed as d

    return len(d._MODELS)


def test_batch_of_rasters_with_mosaic(cluster, scene, model, single, tmp_path):
    """A folder of rasters -> one output each plus a VRT; equal to single-process runs."""
    labels = single[0]
    with rasterio.open(scene) as src:
        image, profile = src.read(), src.profile
    folder = tmp_path / "in"
    folder.mkdir()
    halves = {"west": (slice(None), slice(0, 256)), "east": (slice(None), slice(256, None))}
    for name, (rows, cols) in halves.items():
        transform = profile["transform"] @ rasterio.Affine.translation(cols.start or 0, 0)
        write_tif(folder / f"{name}.tif", image[:, rows, cols], nodata=-9999, transform=transform)
    result = run_predictunet(
        src=str(folder),
        model=str(model),
        dst=str(tmp_path / "out"),
        dst_mosaic=str(tmp_path / "out" / "mosaic.vrt"),
        dask_scheduler=cluster.scheduler_address,
        block_size=256,
        reporter=Quiet(),
    )
    assert [Path(p).name for p in result["OUTPUTS"]] == ["east.tif", "west.tif"]
    for name in halves:
        alone = run_predictunet(
            src=str(folder / f"{name}.tif"),
            model=str(model),
            dst=str(tmp_path / f"{name}-single.tif"),
            threads=2,
            reporter=Quiet(),
        )
        assert np.array_equal(_read(tmp_path / "out" / f"{name}.tif"), _read(alone["OUTPUT"]))
    with rasterio.open(tmp_path / "out" / "mosaic.vrt") as vrt:
        mosaic = vrt.read(1)
        assert vrt.shape == labels.shape and vrt.colormap(1)[1][:3] == (0x1B, 0x78, 0x37)
    assert np.array_equal(mosaic[:, :256], _read(tmp_path / "out" / "west.tif"))
    assert np.array_equal(mosaic[:, 256:], _read(tmp_path / "out" / "east.tif"))


def test_a_failed_run_leaves_no_output(cluster, scene, model, tmp_path):
    """A block fails on a worker (a missing VRT source): no output, no block files."""
    west = tmp_path / "west.tif"
    with rasterio.open(scene) as src:
        write_tif(west, src.read()[:, :, :256], nodata=-9999, transform=src.transform)
        east_transform = src.transform @ rasterio.Affine.translation(256, 0)
        write_tif(tmp_path / "east.tif", src.read()[:, :, 256:], nodata=-9999,
                  transform=east_transform)  # fmt: skip
    write_vrt([str(west), str(tmp_path / "east.tif")], tmp_path / "both.vrt", nodata=-9999)
    (tmp_path / "east.tif").unlink()
    with pytest.raises(EngineError, match=r"failed on a Dask worker.*Read failed"):
        run_predictunet(
            src=str(tmp_path / "both.vrt"),
            model=str(model),
            dst=str(tmp_path / "labels.tif"),
            dask_scheduler=cluster.scheduler_address,
            block_size=256,
            reporter=Quiet(),
        )
    assert not (tmp_path / "labels.tif").exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("method", ["slic", "quickshift"])
def test_streamed_superpixels_on_dask_equal_single_process(cluster, tmp_path, method):
    image = parcels((400, 460), 3, seed=5)
    image[:, 300:, :50] = -9999
    src = write_tif(tmp_path / "img.tif", image, nodata=-9999)
    params = {"n_segments": 700} if method == "slic" else {"kernel_size": 2, "max_dist": 6}
    outputs = {}
    for name, scheduler in (("single", None), ("dask", cluster.scheduler_address)):
        result = run_superpixels(
            method,
            src=str(src),
            dst=str(tmp_path / f"{name}.tif"),
            params=params,
            dst_mean=str(tmp_path / f"{name}-mean.tif"),
            block_size=128,  # 4 x 4 blocks with a halo
            dask_scheduler=scheduler,
            reporter=Quiet(),
        )
        outputs[name] = result["N_SEGMENTS"]
    assert outputs["dask"] == outputs["single"] > 100
    assert np.array_equal(_read(tmp_path / "dask.tif"), _read(tmp_path / "single.tif"))
    with (
        rasterio.open(tmp_path / "dask-mean.tif") as a,
        rasterio.open(tmp_path / "single-mean.tif") as b,
    ):
        assert np.array_equal(a.read(), b.read())


def test_block_dependencies_are_the_overlapping_earlier_blocks():
    plan = BlockPlan(height=400, width=460, block_size=128, halo=40)  # 4 x 4 blocks
    deps = block_dependencies(plan)
    assert deps[0] == [] and deps[1] == [0]
    assert sorted(deps[5]) == [0, 1, 2, 4]  # row above (left, same, right) and left
    wide = block_dependencies(BlockPlan(height=400, width=460, block_size=128, halo=100))
    assert 3 in wide[5] and 7 not in wide[5]  # a halo over half a block reaches further


def test_worker_lost_mid_run_gives_the_same_result(scene, model, single, tmp_path):
    """Kill one of two worker processes while blocks run: its tasks rerun elsewhere."""
    labels = single[0]
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as local,
        distributed.Client(local) as client,
    ):
        pids = client.run(os.getpid)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                run_predictunet(
                    src=str(scene),
                    model=str(model),
                    dst=str(tmp_path / "labels.tif"),
                    dask_scheduler=local.scheduler_address,
                    block_size=256,
                    reporter=Quiet(),
                )
            except BaseException as err:  # re-raised below
                errors.append(err)

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and time.monotonic() < deadline and thread.is_alive():
            busy = client.processing()  # worker -> keys running or queued there
            for address, keys in busy.items():
                if any(str(k).startswith("landseg-predict") for k in keys):
                    victim = address
                    break
            time.sleep(0.05)
        assert victim is not None, "no block ever ran"
        os.kill(pids[victim], signal.SIGKILL)
        thread.join(timeout=300)
        assert not errors, errors
        assert victim not in client.scheduler_info()["workers"]
    assert np.array_equal(_read(tmp_path / "labels.tif"), labels)
    assert _leftovers(tmp_path) == []


def test_unreachable_scheduler_says_how_to_start_one(scene, model, tmp_path, monkeypatch):
    monkeypatch.setattr("core.distributed.CONNECT_TIMEOUT", 2.0)
    with pytest.raises(EngineError, match=r"tcp://127\.0\.0\.1:1.*dask scheduler"):
        run_predictunet(
            src=str(scene),
            model=str(model),
            dst=str(tmp_path / "labels.tif"),
            dask_scheduler="tcp://127.0.0.1:1",
            reporter=Quiet(),
        )
    assert not (tmp_path / "labels.tif").exists()


def test_cli_with_a_scheduler_address_and_without_dask(cluster, scene, model, single, tmp_path):
    """`python -m core predictunet ... --dask-scheduler tcp://...`; plain runs never import Dask."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "core", "--progress", "json", "predictunet", str(scene),
               str(model), str(tmp_path / "cli.tif"), "--dask-scheduler",
               cluster.scheduler_address, "--dask-block-size", "256"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events[-1]["event"] == "result"
    assert np.array_equal(_read(tmp_path / "cli.tif"), single[0])

    small = write_tif(tmp_path / "small.tif", parcels((96, 80), 3))
    probe = (
        "import sys; from core.cli import main; "
        f"rc = main(['slic', {str(small)!r}, {str(tmp_path / 's.tif')!r}, '--n-segments', '40']); "
        "print(rc, any(m == 'dask' or m.startswith(('dask.', 'distributed')) for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=False)  # fmt: skip
    assert done.stdout.split()[-2:] == ["0", "False"], done.stderr[-2000:]


@pytest.fixture(scope="module")
def accuracy_inputs(tmp_path_factory) -> dict[str, Path]:
    """A 300 x 260 class raster; references on a coarser grid in another CRS, and polygons."""
    folder = tmp_path_factory.mktemp("accuracy")
    rng = np.random.default_rng(7)
    pred = (parcels((300, 260), 1, seed=1)[0] // 50).astype(np.uint8) + 1
    ref = np.where(rng.random(pred.shape) < 0.2, rng.integers(1, 5, pred.shape), pred)
    ref[:20, :30] = 0  # nodata
    transform = from_origin(630000, 228000, 30, 30)
    coarse = ref[::2, ::2].astype(np.uint8)[np.newaxis]
    import geopandas as gpd
    from shapely.geometry import box

    cells = [(x, y) for x in range(630000, 637800, 600) for y in range(219000, 228000, 600)]
    frame = gpd.GeoDataFrame(
        {"id": [1 + (i * 7) % 4 for i in range(len(cells))]},
        geometry=[box(x + 13, y + 7, x + 587, y + 571) for x, y in cells],
        crs="EPSG:3358",  # same coordinates, another CRS: reprojected by the client
    )
    frame.to_file(folder / "polygons.gpkg", driver="GPKG")
    coarse_transform = transform @ rasterio.Affine.scale(2)
    return {
        "prediction": write_tif(folder / "pred.tif", pred[np.newaxis], transform=transform),
        "reference": write_tif(
            folder / "ref.tif", coarse, crs="EPSG:3358", nodata=0, transform=coarse_transform
        ),
        "polygons": folder / "polygons.gpkg",
    }


@pytest.mark.parametrize(
    ("reference", "mode"), [("reference", "classes"), ("polygons", "clusters")]
)
def test_accuracy_on_dask_equals_single_process(
    cluster, accuracy_inputs, tmp_path, monkeypatch, reference, mode
):
    """Windows counted in 7 Dask tasks give the single process's metrics and errors raster."""
    monkeypatch.setattr("core.accuracy.WINDOW_ROWS", 16)  # 19 windows, 3 per task
    source = {"reference": str(accuracy_inputs[reference])}
    if reference == "polygons":
        source = {"reference_polygons": str(accuracy_inputs["polygons"]), "class_field": "id"}
    results, logs = {}, {}
    for name, scheduler in (("single", None), ("dask", cluster.scheduler_address)):
        report = Quiet()
        results[name] = run_accuracy(
            prediction=str(accuracy_inputs["prediction"]),
            **source,
            mode=mode,
            ignore_values=[5],
            dst_json=str(tmp_path / f"{name}.json"),
            dst_errors=str(tmp_path / f"{name}.tif"),
            dask_scheduler=scheduler,
            dask_block_rows=48,
            reporter=report,
        )
        logs[name] = report.messages
    assert any("in 7 Dask tasks" in m for m in logs["dask"])
    assert any("reprojecting" in m.lower() for m in logs["dask"])
    single = json.loads((tmp_path / "single.json").read_text())
    assert single["n_pixels"] > 40000 and 0.1 < single["overall_accuracy"] < 1
    assert (tmp_path / "dask.json").read_text() == (tmp_path / "single.json").read_text()
    assert {k: v for k, v in results["dask"].items() if not k.startswith("OUTPUT")} == {
        k: v for k, v in results["single"].items() if not k.startswith("OUTPUT")
    }
    assert np.array_equal(_read(tmp_path / "dask.tif"), _read(tmp_path / "single.tif"))


def test_accuracy_cli_takes_a_scheduler():
    from core.cli import build_parser

    args = build_parser().parse_args(
        ["accuracy", "p.tif", "--reference", "r.tif", "--dask-scheduler", "local:2"]
    )
    assert args.dask_scheduler == "local:2"
