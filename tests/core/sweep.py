"""The reliability sweep's shared pieces: one small scene and every engine command on it.

Each ``test_reliability_*`` module runs every command (or every command with the output
at stake) with one thing wrong and checks the promise of docs/reliability.md: a clear
error naming the file (exit status 2, never "Internal error"), and no output and no
partial file left behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasters import parcels, write_tif

from core.cli import main

ROOT = Path(__file__).resolve().parents[2]

#: Every engine command that reads a raster and writes outputs.
COMMANDS = (
    "slic",
    "quickshift",
    "felzenszwalb",
    "isb",
    "dfc",
    "wnet",
    "accuracy",
    "vectorize",
    "trainunet",
    "predictunet",
)

#: Commands with two outputs or more (two outputs on one path, all-or-none).
MULTI_OUTPUT = tuple(c for c in COMMANDS if c != "vectorize")

_FAST = {
    "isb": ["--max-iter", "2", "--threads", "1"],
    "dfc": ["--max-iter", "2", "--threads", "1"],
    "wnet": ["--max-iter", "2", "--threads", "1"],
    "trainunet": ["--epochs", "1", "--tile-size", "32", "--batch-size", "4", "--threads", "1"],
    "predictunet": ["--threads", "1"],
}


@dataclass(frozen=True)
class Scene:
    """A 3-band image, its partial labels (0 = unlabelled), a class raster and a model."""

    image: Path
    labels: Path
    classes: Path
    model: Path | None = None


def make_scene(folder: Path, *, model: Path | None = None) -> Scene:
    """Write the sweep's inputs into ``folder`` (64 x 64 px, three classes in stripes)."""
    folder.mkdir(parents=True, exist_ok=True)
    size = 64
    classes = (np.arange(size) * 3 // size + 1)[None, :].repeat(size, 0).astype(np.uint8)
    image = parcels((size, size), 3) + classes[None].astype(np.float32) * 40
    labels = np.where(np.random.default_rng(1).random(classes.shape) < 0.3, classes, 0)
    return Scene(
        image=write_tif(folder / "image.tif", image),
        labels=write_tif(folder / "labels.tif", labels[None].astype(np.uint8)),
        classes=write_tif(folder / "classes.tif", classes[None], nodata=0),
        model=model,
    )


def train_model(folder: Path) -> Path:
    """Train the sweep's model once (1 epoch; for predictunet)."""
    scene = make_scene(folder)
    out = folder / "model.safetensors"
    rc, events = run(command("trainunet", scene, primary=out)[0])
    assert rc == 0, events
    return out


def outputs_of(name: str, folder: Path) -> tuple[Path, Path | None]:
    """Default primary and second output of a command in ``folder``."""
    primary = {
        "accuracy": "metrics.json",
        "vectorize": "polygons.gpkg",
        "trainunet": "model.safetensors",
    }.get(name, "out.tif")
    second = {
        "accuracy": "matrix.csv",
        "vectorize": None,
        "trainunet": "report.html",
        "isb": "clusters.safetensors",
        "dfc": "clusters.safetensors",
        "wnet": "clusters.safetensors",
        "predictunet": "confidence.tif",
    }.get(name, "mean.tif")
    return folder / primary, folder / second if second else None


def command(
    name: str,
    scene: Scene,
    *,
    src: Path | str | None = None,
    primary: Path | str | None = None,
    second: Path | str | None = None,
    folder: Path | None = None,
    extra: tuple[str, ...] = (),
) -> tuple[list[str], list[Path]]:
    """Engine arguments of one command on the scene, and the outputs it was asked for.

    ``src`` replaces the main input raster (the image, or the class raster for accuracy
    and vectorize); ``primary`` and ``second`` replace the outputs (default: files in
    ``folder``, or beside the image).
    """
    default_primary, default_second = outputs_of(name, folder or scene.image.parent)
    out = Path(primary) if primary is not None else default_primary
    two = Path(second) if second is not None else default_second
    image = str(src) if src is not None else str(scene.image)
    if name in ("slic", "quickshift", "felzenszwalb"):
        args = [name, image, str(out), "--mean", str(two)]
    elif name in ("isb", "dfc", "wnet"):
        args = [name, image, str(out), "--model", str(two)]
    elif name == "accuracy":
        pred = str(src) if src is not None else str(scene.classes)
        args = [name, pred, "--reference", str(scene.classes), "--json", str(out)]
        args += ["--csv", str(two)]
    elif name == "vectorize":
        args = [name, str(src) if src is not None else str(scene.classes), str(out)]
    elif name == "trainunet":
        args = [name, str(out), "--input", image, "--labels", str(scene.labels)]
        args += ["--ignore-value", "0", "--report", str(two)]
    elif name == "predictunet":
        assert scene.model is not None, "predictunet needs the sweep's model"
        args = [name, image, str(scene.model), str(out), "--confidence", str(two)]
    else:  # pragma: no cover
        raise ValueError(name)
    args += _FAST.get(name, [])
    args += list(extra)
    return args, [p for p in (out, two) if p is not None]


def run(args: list[str]) -> tuple[int, list[dict]]:
    """Run an engine command in this process; return its exit status and JSON events."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["--progress", "json", *args])
    events = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    if rc != 0 and not any(e.get("event") == "error" for e in events):  # pragma: no cover
        events.append({"event": "stderr", "message": err.getvalue()})
    return rc, events


def error_of(events: list[dict]) -> str:
    """The message of the run's error event ('' if none)."""
    return next((str(e["message"]) for e in events if e.get("event") == "error"), "")


def leftovers(folder: Path) -> list[str]:
    """LandSeg's temporary files left in a folder (partial outputs, set-aside copies)."""
    return sorted(p.name for p in folder.iterdir() if ".landseg-" in p.name)


def engine(
    args: list[str], *, env: dict[str, str] | None = None, **kwargs
) -> subprocess.Popen[str]:
    """Start ``python -m core --progress json ...`` as its own process."""
    return subprocess.Popen(
        [sys.executable, "-m", "core", "--progress", "json", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
