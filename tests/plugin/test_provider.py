"""The provider, its algorithms and the plugin metadata, inside real QGIS."""

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException

ROOT = Path(__file__).resolve().parents[2]
SUPERPIXELS = {"slic", "quickshift", "felzenszwalb"}


def test_provider_lists_every_algorithm(provider):
    assert provider.id() == "landseg"
    assert provider.name() == "LandSeg"
    ids = {alg.id() for alg in provider.algorithms()}
    assert ids >= {
        "landseg:slic",
        "landseg:quickshift",
        "landseg:felzenszwalb",
        "landseg:setupengine",
    }


def test_superpixel_algorithms_are_documented_and_grouped(provider):
    for name in SUPERPIXELS:
        alg = provider.algorithm(name)
        assert alg.group() == "Superpixels" and alg.groupId() == "superpixels"
        assert len(alg.shortHelpString()) > 200
        assert Path(alg.svgIconPath()).exists()
        assert alg.helpUrl().endswith(f"#{name}")


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        (
            "slic",
            [
                "N_SEGMENTS",
                "COMPACTNESS",
                "SIGMA",
                "MAX_NUM_ITER",
                "ENFORCE_CONNECTIVITY",
                "MIN_SIZE_FACTOR",
            ],
        ),
        ("quickshift", ["KERNEL_SIZE", "MAX_DIST", "RATIO", "SIGMA"]),
        ("felzenszwalb", ["SCALE", "SIGMA", "MIN_SIZE"]),
    ],
)
def test_parameters_use_scikit_image_names(provider, name, keys):
    from landseg.qgis_plugin.algorithms.base import ADVANCED

    alg = provider.algorithm(name)
    names = [p.name() for p in alg.parameterDefinitions()]
    for key in [
        "INPUT",
        "BANDS",
        *keys,
        "NORMALIZATION",
        "NODATA_ZERO",
        "SEED",
        "OUTPUT",
        "OUTPUT_POLYGONS",
        "OUTPUT_MEAN",
    ]:
        assert key in names
    advanced = {p.name() for p in alg.parameterDefinitions() if p.flags() & ADVANCED}
    assert {"SEED", "PERCENTILE_LOW", "PERCENTILE_HIGH"} <= advanced
    assert "INPUT" not in advanced
    assert "N_SEGMENTS" in {o.name() for o in alg.outputDefinitions()}


def test_engine_missing_says_how_to_set_it_up(run, monkeypatch, tmp_path):
    from rasters import parcels, write_tif

    monkeypatch.setenv("LANDSEG_ENGINE_PYTHON", str(tmp_path / "no-such-python"))
    src = write_tif(tmp_path / "in.tif", parcels((40, 40), 3))
    with pytest.raises(QgsProcessingException, match=r"not set up.*landseg:setupengine"):
        run("landseg:slic", {"INPUT": str(src), "OUTPUT": str(tmp_path / "out.tif")})
    assert not (tmp_path / "out.tif").exists()


def test_metadata_is_complete_for_the_plugin_repository():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    general = parser["general"]
    for key in (
        "name",
        "qgisMinimumVersion",
        "description",
        "about",
        "version",
        "author",
        "email",
        "repository",
        "tracker",
        "homepage",
        "tags",
        "icon",
        "hasProcessingProvider",
        "changelog",
    ):
        assert general.get(key, "").strip(), key
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    assert (ROOT / general["icon"]).exists()


def test_package_ships_the_plugin_and_nothing_else(tmp_path):
    target = tmp_path / "landseg.zip"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "package.py"), "--output", str(target)],
        check=True,
        capture_output=True,
    )
    names = zipfile.ZipFile(target).namelist()
    assert {n.split("/")[0] for n in names} == {"landseg"}
    for needed in (
        "landseg/metadata.txt",
        "landseg/__init__.py",
        "landseg/LICENSE",
        "landseg/core/cli.py",
        "landseg/qgis_plugin/provider.py",
        "landseg/requirements/engine.txt",
        "landseg/resources/icons/landseg.svg",
    ):
        assert needed in names
    for name in names:
        assert not name.startswith(
            (
                "landseg/tests/",
                "landseg/bench/",
                "landseg/scripts/",
                "landseg/Makefile",
                "landseg/.",
            )
        ), name
        assert "__pycache__" not in name


def test_package_passes_the_plugin_repository_checks(tmp_path):
    target = tmp_path / "landseg.zip"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "package.py"), "--output", str(target)],
        check=True,
        capture_output=True,
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_package.py"), str(target)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout


def test_package_check_refuses_what_the_repository_refuses(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from check_package import check_zip

    metadata = (ROOT / "metadata.txt").read_text(encoding="utf-8")
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr(
            "landseg/metadata.txt",
            metadata.replace("category=Raster", "category=Analysis")
            .replace("tracker=https://", "tracker=")
            .replace("description=", "description=100% "),
        )
        archive.writestr("landseg/__init__.py", "")
        archive.writestr("landseg/core/__pycache__/x.cpython-311.pyc", b"")
        archive.writestr("landseg/lib/tool.so", b"\x7fELF....")
    problems = "\n".join(check_zip(bad))
    for expected in ("LICENSE", ".pyc", "__pycache__", "binaries", "cannot be parsed"):
        assert expected in problems, expected
    fixed = metadata.replace("category=Raster", "category=Analysis").replace(
        "tracker=https://", "tracker="
    )
    from check_package import check_metadata

    names = ["landseg/resources/icons/landseg.svg"]
    problems = "\n".join(check_metadata(fixed, names, "landseg"))
    assert "category" in problems and "tracker" in problems
    assert check_metadata(metadata, names, "landseg") == []
