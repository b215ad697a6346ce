"""Superpixel functions: labels, masks, band counts, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage import segmentation as sk

from core import superpixels
from core.normalize import stretch

METHODS = ["slic", "quickshift", "felzenszwalb"]


def quadrants(bands: int = 3, seed: int = 0) -> np.ndarray:
    """scikit-image's test image: four coloured quadrants (20 x 21) with noise."""
    rng = np.random.default_rng(seed)
    image = np.zeros((bands, 20, 21), np.float32)
    image[0, :10, :10] = 1
    image[1 % bands, 10:, :10] = 1
    image[2 % bands, 10:, 10:] = 1
    image[:, :10, 10:] = 0.5 if bands > 1 else 0.25
    return image + rng.normal(0, 0.01, image.shape).astype(np.float32)


def run(method: str, image: np.ndarray, **kwargs) -> np.ndarray:
    params = {
        "slic": {"n_segments": 4, "compactness": 1.0},
        "quickshift": {"kernel_size": 2, "max_dist": 20},
        "felzenszwalb": {"scale": 1000, "min_size": 20},
    }[method]
    scale = 100 if method == "quickshift" else 1
    return getattr(superpixels, method)(image * scale, **{**params, **kwargs})


def test_slic_finds_the_four_quadrants():
    labels = superpixels.slic(quadrants(), n_segments=4, compactness=1.0)
    assert labels.dtype == np.int32 and labels.shape == (20, 21)
    assert len(np.unique(labels)) == 4
    for block in (labels[:10, :10], labels[10:, :10], labels[:10, 10:], labels[10:, 10:]):
        assert len(np.unique(block)) == 1


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bands", [1, 2, 3, 10])
def test_labels_are_consecutive_for_any_band_count(method, bands):
    labels = run(method, quadrants(bands))
    ids = np.unique(labels)
    assert ids[0] == 1 and (np.diff(ids) == 1).all()


@pytest.mark.parametrize("method", METHODS)
def test_mask_gives_zero_and_masked_values_do_not_matter(method):
    image = quadrants()
    mask = np.ones((20, 21), bool)
    mask[:, :3] = False
    labels = run(method, image, mask=mask)
    assert (labels[~mask] == 0).all() and (labels[mask] > 0).all()
    noisy = image.copy()
    noisy[:, ~mask] = np.random.default_rng(3).uniform(0, 1, (3, (~mask).sum()))
    np.testing.assert_array_equal(run(method, noisy, mask=mask), labels)


@pytest.mark.parametrize("method", METHODS)
def test_one_pixel_image_is_one_segment(method):
    assert run(method, np.ones((3, 1, 1), np.float32)).tolist() == [[1]]


def test_quickshift_same_seed_same_result():
    image = np.random.default_rng(0).uniform(0, 100, (3, 40, 40)).astype(np.float32)
    a = superpixels.quickshift(image, kernel_size=3, seed=5)
    np.testing.assert_array_equal(a, superpixels.quickshift(image, kernel_size=3, seed=5))


def test_slic_segments_are_connected_and_near_the_requested_count(nc_dir):
    import rasterio

    with rasterio.open(nc_dir / "landsat_multiband.tif") as src:
        image = src.read().astype(np.float32)
        valid = np.all(src.read_masks() > 0, axis=0)
    image = stretch(image, valid)
    labels = superpixels.slic(image, n_segments=500, mask=valid)
    n = labels.max()
    assert 350 <= n <= 650
    sizes = [ndimage.label(labels == i)[1] for i in range(1, n + 1)]
    assert set(sizes) == {1}
    reference = sk.slic(
        image,
        n_segments=500,
        compactness=1.0,
        channel_axis=0,
        convert2lab=False,
        mask=valid,
        start_label=1,
    )
    assert 0.6 <= n / reference.max() <= 1.5


def test_felzenszwalb_matches_scikit_image_without_mask():
    image = np.random.default_rng(1).uniform(0, 1, (3, 60, 50)).astype(np.float32)
    ours = superpixels.felzenszwalb(image, scale=50)
    theirs = sk.felzenszwalb(image, scale=50, channel_axis=0)
    assert ours.max() == len(np.unique(theirs))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: superpixels.slic(np.ones((5, 5))), "bands, rows, columns"),
        (lambda: superpixels.slic(np.ones((1, 5, 5)), n_segments=0), "n_segments"),
        (lambda: superpixels.slic(np.full((1, 5, 5), np.nan)), "NaN"),
        (lambda: superpixels.quickshift(np.ones((1, 5, 5)), kernel_size=0), "kernel_size"),
        (lambda: superpixels.felzenszwalb(np.ones((1, 5, 5)), min_size=-1), "min_size"),
        (lambda: superpixels.slic(np.ones((1, 5, 5)), mask=np.ones((4, 4), bool)), "mask shape"),
        (
            lambda: superpixels.slic(np.ones((1, 5, 5)), mask=np.zeros((5, 5), bool)),
            "No valid pixel",
        ),
    ],
)
def test_bad_input_is_explained(call, message):
    with pytest.raises(ValueError, match=message):
        call()
