"""The installed plugin through qgis_process.bin, and a graphical-modeler model run headless.

The plugin is installed with ``make deploy`` into a throw-away QGIS configuration folder
(QGIS_CUSTOM_CONFIG_PATH), so the user's own profile is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rasters import parcels, read, write_tif

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from build_models import write_model  # noqa: E402


@pytest.fixture(scope="module")
def qgis_config(tmp_path_factory) -> Path:
    config = tmp_path_factory.mktemp("qgis-config")
    subprocess.run(
        ["make", "-s", "deploy", f"QGIS_CONFIG={config}"], cwd=ROOT, check=True, capture_output=True
    )
    return config


def qgis_process(
    config: Path, *args: str, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "QGIS_CUSTOM_CONFIG_PATH": str(config), "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        ["qgis_process.bin", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"qgis_process {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_deploy_installs_and_enables_the_plugin(qgis_config):
    folder = qgis_config / "profiles" / "default" / "python" / "plugins" / "landseg"
    assert (folder / "metadata.txt").exists() and not (folder / "tests").exists()
    listing = qgis_process(qgis_config, "plugins").stdout
    assert "* landseg" in listing
    # deploying again (an upgrade) is harmless
    subprocess.run(
        ["make", "-s", "deploy", f"QGIS_CONFIG={qgis_config}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    assert "* landseg" in qgis_process(qgis_config, "plugins").stdout


def test_list_shows_the_algorithms_under_landseg(qgis_config):
    listing = qgis_process(qgis_config, "list").stdout
    section = listing.split("LandSeg", 1)[1]
    for alg in ("landseg:slic", "landseg:quickshift", "landseg:felzenszwalb"):
        assert alg in section
    # hidden from the modeler only: qgis_process list drops algorithms with hiding flags
    assert "landseg:setupengine" in section


def test_help_documents_the_parameters(qgis_config):
    text = qgis_process(qgis_config, "help", "landseg:slic").stdout
    for key in ("INPUT", "N_SEGMENTS", "COMPACTNESS", "OUTPUT_POLYGONS", "SEED"):
        assert key in text


def test_run_slic_json(qgis_config, tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((64, 64), 4))
    out = tmp_path / "out.tif"
    proc = qgis_process(
        qgis_config,
        "--json",
        "run",
        "landseg:slic",
        "--",
        f"INPUT={src}",
        f"OUTPUT={out}",
        "N_SEGMENTS=30",
    )
    result = json.loads(proc.stdout)
    assert result["results"]["OUTPUT"] == str(out)
    assert 10 <= result["results"]["N_SEGMENTS"] <= 60
    labels, facts = read(out)
    assert labels.max() == result["results"]["N_SEGMENTS"] and facts["nodata"] == 0
    assert out.with_suffix(".qml").exists()


def test_run_reports_engine_errors_verbatim(qgis_config, tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((32, 32), 2))
    proc = qgis_process(
        qgis_config,
        "run",
        "landseg:slic",
        "--",
        f"INPUT={src}",
        "BANDS=5",
        f"OUTPUT={tmp_path / 'out.tif'}",
        check=False,
    )
    assert proc.returncode != 0
    assert "Band 5 does not exist" in proc.stdout + proc.stderr
    assert not (tmp_path / "out.tif").exists()


def _slic_unique_values_model(path: Path) -> Path:
    """Build a .model3 with the modeler's API: landseg:slic -> native unique values report."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
    )

    model = QgsProcessingModelAlgorithm("SLIC then unique values", "LandSeg tests")
    model.addModelParameter(
        QgsProcessingParameterRasterLayer("image", "Image"), QgsProcessingModelParameter("image")
    )
    model.addModelParameter(
        QgsProcessingParameterNumber("segments", "Segments", defaultValue=50),
        QgsProcessingModelParameter("segments"),
    )
    slic = QgsProcessingModelChildAlgorithm("landseg:slic")
    slic.setChildId("slic")
    slic.addParameterSources(
        "INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("image")]
    )
    slic.addParameterSources(
        "N_SEGMENTS", [QgsProcessingModelChildParameterSource.fromModelParameter("segments")]
    )
    model.addChildAlgorithm(slic)
    report = QgsProcessingModelChildAlgorithm("native:rasterlayeruniquevaluesreport")
    report.setChildId("report")
    report.addParameterSources(
        "INPUT", [QgsProcessingModelChildParameterSource.fromChildOutput("slic", "OUTPUT")]
    )
    report.addParameterSources("BAND", [QgsProcessingModelChildParameterSource.fromStaticValue(1)])
    table = QgsProcessingModelOutput("table", "Unique values")
    table.setChildId("report")
    table.setChildOutputName("OUTPUT_TABLE")
    report.setModelOutputs({"table": table})
    model.addChildAlgorithm(report)
    assert write_model(model, path)  # as `make models`: report:table on every version
    return path


def test_modeler_chain_runs_headless(qgis_config, provider, tmp_path):
    model = _slic_unique_values_model(tmp_path / "slic_unique.model3")
    image = parcels((80, 80), 3)
    image[:, :8, :] = -1
    src = write_tif(tmp_path / "in.tif", image, nodata=-1)
    table = tmp_path / "unique.csv"
    proc = qgis_process(
        qgis_config,
        "--json",
        "run",
        str(model),
        "--",
        f"image={src}",
        "segments=36",
        f"report:table={table}",
    )
    result = json.loads(proc.stdout)["results"]
    assert Path(result["report:table"]) == table
    rows = [r.replace('"', "").split(",") for r in table.read_text().strip().splitlines()[1:]]
    values = np.array([int(float(r[0])) for r in rows])
    counts = np.array([int(float(r[1])) for r in rows])
    assert values.min() == 1 and len(values) == values.max() >= 10  # ids 1..N
    assert counts.sum() == 72 * 80  # the nodata rows belong to no segment


def test_accuracy_numbers_in_the_json_answer(qgis_config, tmp_path):
    pred = write_tif(tmp_path / "p.tif", np.array([[[1, 1, 2, 2], [1, 2, 2, 2]]], np.uint8))
    ref = write_tif(tmp_path / "r.tif", np.array([[[1, 1, 2, 2], [1, 1, 2, 2]]], np.uint8))
    proc = qgis_process(
        qgis_config,
        "--json",
        "run",
        "landseg:accuracy",
        "--",
        f"PREDICTION={pred}",
        f"REFERENCE={ref}",
        f"OUTPUT_HTML={tmp_path / 'r.html'}",
    )
    results = json.loads(proc.stdout)["results"]
    assert results["OVERALL_ACCURACY"] == 7 / 8
    assert {"KAPPA", "MEAN_IOU", "MACRO_F1", "ARI"} <= set(results)
    assert (tmp_path / "r.html").exists()


def test_relative_paths_are_relative_to_the_callers_folder(qgis_config, tmp_path):
    write_tif(tmp_path / "in.tif", parcels((40, 40), 3))
    proc = qgis_process(
        qgis_config,
        "--json",
        "run",
        "landseg:slic",
        "--",
        "INPUT=in.tif",
        "OUTPUT=out.tif",
        "N_SEGMENTS=10",
        cwd=tmp_path,
    )
    assert json.loads(proc.stdout)["results"]["N_SEGMENTS"] >= 1
    assert (tmp_path / "out.tif").exists()


def test_help_shows_the_outputs_of_the_example_models(qgis_config):
    """Models are read once the provider is registered, so their outputs are known."""
    expected = {
        "landseg:SLIC superpixels to polygons": ("slic:Segments", "vectorize:Polygons"),
        "landseg:U-Net land cover workflow": ("train:Model", "accuracy:Accuracy report"),
        "landseg:DFC clusters and their accuracy": ("dfc:Clusters",),
    }
    for model, outputs in expected.items():
        text = qgis_process(qgis_config, "help", model).stdout
        section = text.split("Outputs", 1)[1]
        for output in outputs:
            assert output in section, (model, output)


def test_checks_answer_before_the_engine_starts(qgis_config, tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((16, 16), 3))
    proc = qgis_process(
        qgis_config,
        "run",
        "landseg:trainunet",
        "--",
        f"INPUTS={src}",
        f"TILE_FOLDER={tmp_path}",
        "CLASSES=1:forest:#1b7837,2:water:#21",
        f"OUTPUT_MODEL={tmp_path / 'm.safetensors'}",
        check=False,
    )
    assert proc.returncode != 0
    assert "not both" in proc.stdout + proc.stderr
    assert " -m core " not in proc.stdout  # the engine command never ran


def test_old_string_forms_still_work(qgis_config, tmp_path):
    """DEVICE, class tables and ignore lists as text, as scripts gave them before."""
    image = parcels((48, 48), 3, cell=12)
    src = write_tif(tmp_path / "in.tif", image)
    reference = write_tif(
        tmp_path / "ref.tif", (np.arange(48 * 48).reshape(1, 48, 48) % 3).astype(np.uint8)
    )
    proc = qgis_process(
        qgis_config,
        "--json",
        "run",
        "landseg:dfc",
        "--",
        f"INPUT={src}",
        "MAX_CLUSTERS=6",
        "MAX_ITER=3",
        "THREADS=1",
        "DEVICE=cpu",
        f"REFERENCE={reference}",
        "REFERENCE_CLASSES=1:forest:#1b7837,2:water:#2166ac",
        "REFERENCE_IGNORE=0,255",
        f"OUTPUT={tmp_path / 'clusters.tif'}",
        f"OUTPUT_MAPPED={tmp_path / 'mapped.tif'}",
    )
    results = json.loads(proc.stdout)["results"]
    assert Path(results["OUTPUT_MAPPED"]).exists()
    names = Path(results["OUTPUT_MAPPED"]).with_suffix(".qml").read_text()
    assert "forest" in names and "water" in names
