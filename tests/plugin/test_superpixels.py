"""landseg:slic, landseg:quickshift and landseg:felzenszwalb through processing.run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsRasterLayer,
    QgsVectorLayer,
)
from rasters import parcels, read, write_tif


def _same_crs(wkt_a: str, wkt_b: str) -> bool:
    return QgsCoordinateReferenceSystem.fromWkt(wkt_a) == QgsCoordinateReferenceSystem.fromWkt(
        wkt_b
    )


@pytest.fixture(scope="module")
def nc_scene(nc_dir) -> Path:
    return nc_dir / "landsat_multiband.tif"


def test_slic_on_the_nc_scene_keeps_grid_crs_and_nodata(run, nc_scene, tmp_path):
    out = tmp_path / "slic.tif"
    result = run("landseg:slic", {"INPUT": str(nc_scene), "N_SEGMENTS": 400, "OUTPUT": str(out)})
    assert result["OUTPUT"] == str(out)
    labels, facts = read(out)
    source, source_facts = read(nc_scene)
    assert facts["size"] == source_facts["size"] == (489, 443)
    assert facts["transform"] == source_facts["transform"]
    assert _same_crs(facts["wkt"], source_facts["wkt"])
    assert facts["dtype"] == "Int32" and facts["nodata"] == 0
    assert facts["compression"] == "DEFLATE" and facts["block"] == [256, 256]
    n = int(result["N_SEGMENTS"])
    assert labels.max() == n and len(np.unique(labels[labels > 0])) == n
    assert 200 <= n <= 600, n
    # The scene's nodata frame belongs to no segment; every valid pixel has one.
    nodata = source == source_facts["nodata"]
    assert nodata.any()
    assert (labels[nodata] == 0).all() and (labels[~nodata] > 0).all()
    # The style comes with the file.
    assert out.with_suffix(".qml").exists()
    layer = QgsRasterLayer(str(out), "slic")
    assert layer.renderer().type() == "paletted"


def test_quickshift_same_seed_same_result(run, nc_scene, tmp_path):
    params = {"INPUT": str(nc_scene), "KERNEL_SIZE": 3, "MAX_DIST": 8, "SEED": 7}
    first = run("landseg:quickshift", {**params, "OUTPUT": str(tmp_path / "a.tif")})
    second = run("landseg:quickshift", {**params, "OUTPUT": str(tmp_path / "b.tif")})
    a, _ = read(first["OUTPUT"])
    b, _ = read(second["OUTPUT"])
    np.testing.assert_array_equal(a, b)
    assert first["N_SEGMENTS"] == second["N_SEGMENTS"] > 10


def test_felzenszwalb_with_polygons_and_means(run, nc_scene, tmp_path):
    result = run(
        "landseg:felzenszwalb",
        {
            "INPUT": str(nc_scene),
            "SCALE": 200,
            "MIN_SIZE": 40,
            "BANDS": [3, 2, 1],
            "OUTPUT": str(tmp_path / "f.tif"),
            "OUTPUT_POLYGONS": str(tmp_path / "f.gpkg"),
            "OUTPUT_MEAN": str(tmp_path / "f_mean.tif"),
        },
    )
    n = int(result["N_SEGMENTS"])
    polygons = QgsVectorLayer(result["OUTPUT_POLYGONS"], "polygons", "ogr")
    assert polygons.isValid() and polygons.featureCount() == n
    assert [f.name() for f in polygons.fields()][-6:] == [
        "id",
        "pixels",
        "area",
        "mean_b3",
        "mean_b2",
        "mean_b1",
    ]
    assert polygons.crs().authid() in ("EPSG:32119", "")  # same CRS as the input
    feature = next(polygons.getFeatures())
    assert feature["area"] == pytest.approx(feature["pixels"] * 28.5 * 28.5)
    means, facts = read(result["OUTPUT_MEAN"])
    assert facts["count"] == 3 and facts["dtype"] == "Float32"
    labels, _ = read(result["OUTPUT"])
    one = labels == feature["id"]
    assert np.allclose(means[one], feature["mean_b3"], rtol=1e-5)


def test_polygons_to_a_memory_layer(run, tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((60, 60), 3))
    result = run(
        "landseg:slic",
        {
            "INPUT": str(src),
            "N_SEGMENTS": 25,
            "OUTPUT": str(tmp_path / "s.tif"),
            "OUTPUT_POLYGONS": "memory:",
        },
    )
    layer = result["OUTPUT_POLYGONS"]
    layer = layer if isinstance(layer, QgsVectorLayer) else QgsVectorLayer(layer)
    assert layer.featureCount() == result["N_SEGMENTS"]


@pytest.mark.parametrize(
    ("bands", "dtype", "nodata", "scale"),
    [
        (2, "float32", -1.0, 1.0),  # 2-channel microscopy (BSE + CL), float, nodata
        (3, "uint8", None, 250.0),  # RGB
        (10, "uint16", 0.0, 9000.0),
    ],  # Sentinel-2-like reflectance
)
@pytest.mark.parametrize("method", ["slic", "quickshift", "felzenszwalb"])
def test_band_counts_and_dtypes(run, tmp_path, method, bands, dtype, nodata, scale):
    image = parcels((72, 84), bands, scale=scale)
    image = np.clip(image, scale / 1000, scale).astype(dtype)
    if nodata is not None:
        image[:, :6, :] = nodata
    src = write_tif(tmp_path / "in.tif", image, nodata=nodata)
    params = {"slic": {"N_SEGMENTS": 40}, "quickshift": {"KERNEL_SIZE": 3}, "felzenszwalb": {}}[
        method
    ]
    result = run(
        f"landseg:{method}", {"INPUT": str(src), **params, "OUTPUT": str(tmp_path / "out.tif")}
    )
    labels, facts = read(result["OUTPUT"])
    assert labels.shape == (72, 84) and facts["nodata"] == 0
    if nodata is not None:
        assert (labels[:6] == 0).all()
    assert (labels[6:] > 0).all()
    assert result["N_SEGMENTS"] >= 2


def test_plain_image_without_georeferencing(run, tmp_path, dubai_dir):
    image = sorted((dubai_dir / "tile1" / "images").glob("*.jpg"))[0]
    result = run(
        "landseg:slic",
        {"INPUT": str(image), "N_SEGMENTS": 200, "OUTPUT": str(tmp_path / "plain.tif")},
    )
    labels, facts = read(result["OUTPUT"])
    assert facts["wkt"] == ""
    assert facts["transform"] == (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert labels.min() >= 1


def test_synthetic_image_without_crs(run, tmp_path):
    src = write_tif(tmp_path / "plain.tif", parcels((50, 70), 3), epsg=None)
    result = run("landseg:felzenszwalb", {"INPUT": str(src), "OUTPUT": str(tmp_path / "o.tif")})
    _, facts = read(result["OUTPUT"])
    assert facts["wkt"] == ""


def test_one_pixel_raster_is_one_segment(run, tmp_path):
    src = write_tif(tmp_path / "one.tif", np.ones((3, 1, 1), np.float32))
    result = run("landseg:slic", {"INPUT": str(src), "OUTPUT": str(tmp_path / "one_out.tif")})
    labels, _ = read(result["OUTPUT"])
    assert result["N_SEGMENTS"] == 1 and labels.tolist() == [[1]]


# --- bad inputs: a clear error, and no output file left behind -------------------------


def _no_outputs(folder: Path, *names: str) -> None:
    left = [p.name for p in folder.iterdir() if p.name.startswith((".", *names))]
    assert left == [], left


def test_missing_input_file(run, tmp_path):
    with pytest.raises(QgsProcessingException, match="INPUT"):
        run(
            "landseg:slic",
            {"INPUT": str(tmp_path / "missing.tif"), "OUTPUT": str(tmp_path / "out.tif")},
        )
    _no_outputs(tmp_path, "out")


def test_text_file_given_as_raster(run, tmp_path):
    text = tmp_path / "notes.tif"
    text.write_text("not a raster\n")
    with pytest.raises(QgsProcessingException, match="INPUT"):
        run("landseg:slic", {"INPUT": str(text), "OUTPUT": str(tmp_path / "out.tif")})
    _no_outputs(tmp_path, "out")


def test_band_out_of_range(run, tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((30, 30), 3))
    with pytest.raises(QgsProcessingException, match=r"Band 7 does not exist.*3 bands"):
        run(
            "landseg:slic",
            {"INPUT": str(src), "BANDS": [1, 7], "OUTPUT": str(tmp_path / "out.tif")},
        )
    _no_outputs(tmp_path, "out")


def test_segment_count_below_one(run, tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((30, 30), 3))
    with pytest.raises(QgsProcessingException, match="N_SEGMENTS"):
        run(
            "landseg:slic",
            {"INPUT": str(src), "N_SEGMENTS": 0, "OUTPUT": str(tmp_path / "out.tif")},
        )
    _no_outputs(tmp_path, "out")


def test_all_nodata_raster(run, tmp_path):
    src = write_tif(tmp_path / "in.tif", np.full((2, 20, 20), -5, np.float32), nodata=-5)
    with pytest.raises(QgsProcessingException, match=r"no valid pixel.*nodata"):
        run("landseg:felzenszwalb", {"INPUT": str(src), "OUTPUT": str(tmp_path / "out.tif")})
    _no_outputs(tmp_path, "out")


def test_unwritable_output_path(run, tmp_path):
    src = write_tif(tmp_path / "in.tif", parcels((30, 30), 3))
    blocker = tmp_path / "plainfile"
    blocker.write_text("a file where a folder would be")
    target = blocker / "out.tif"  # not writable for anyone, root included
    with pytest.raises(QgsProcessingException, match=r"Cannot write|does not exist"):
        run("landseg:slic", {"INPUT": str(src), "OUTPUT": str(target)})
    assert blocker.read_text() == "a file where a folder would be"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "plainfile"]


def test_cancel_stops_the_engine_and_leaves_nothing(provider, tmp_path, nc_scene):
    import processing

    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: feedback.cancel() if value >= 5 else None)
    out = tmp_path / "cancelled.tif"
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run(
            "landseg:quickshift",
            {"INPUT": str(nc_scene), "KERNEL_SIZE": 6, "OUTPUT": str(out)},
            feedback=feedback,
            context=QgsProcessingContext(),
        )
    _no_outputs(tmp_path, "cancelled")
