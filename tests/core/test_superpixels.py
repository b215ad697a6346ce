"""LandSeg's own superpixels (core.superpixels): labels, masks, band counts, parity with
scikit-image, connectivity, determinism and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from rasters import parcels
from scipy import ndimage
from skimage import segmentation as sk

from core import superpixels
from core._connectivity_kernels import connected_relabel
from core._felzenszwalb_kernels import fh_edges, fh_labels, fh_sort
from core._gaussian_kernels import gaussian, gaussian_weights
from core.normalize import stretch

METHODS = ["slic", "quickshift", "felzenszwalb"]
FOUR = ndimage.generate_binary_structure(2, 1)
EIGHT = ndimage.generate_binary_structure(2, 2)


def quadrants(bands: int = 3, seed: int = 0) -> np.ndarray:
    """scikit-image's SLIC test image: four coloured quadrants (20 x 21) plus noise."""
    rng = np.random.default_rng(seed)
    image = np.zeros((bands, 20, 21), np.float32)
    image[0, :10, :10] = 1
    image[1 % bands, 10:, :10] = 1
    image[2 % bands, 10:, 10:] = 1
    image[:, :10, 10:] = 0.5 if bands > 1 else 0.25
    return image + rng.normal(0, 0.01, image.shape).astype(np.float32)


def run(method: str, image: np.ndarray, **kwargs) -> np.ndarray:
    """Call a method with parameters suited to the quadrants (QuickShift sees 0-100)."""
    params = {
        "slic": {"n_segments": 4},
        "quickshift": {"kernel_size": 2, "max_dist": 20},
        "felzenszwalb": {"scale": 1000, "min_size": 20},
    }[method]
    scale = 100 if method == "quickshift" else 1
    return getattr(superpixels, method)(image * scale, **{**params, **kwargs})


def assert_consecutive(labels: np.ndarray, mask: np.ndarray | None = None) -> None:
    assert labels.dtype == np.int32
    valid = np.ones(labels.shape, bool) if mask is None else mask
    assert (labels[~valid] == 0).all() and (labels[valid] > 0).all()
    ids = np.unique(labels[valid])
    assert ids[0] == 1 and ids[-1] == len(ids)


def components_per_label(labels: np.ndarray, structure: np.ndarray) -> set[int]:
    """Number of connected pieces of each label."""
    counts = set()
    for i, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is not None:
            counts.add(ndimage.label(labels[region] == i, structure)[1])
    return counts


def test_slic_finds_the_four_quadrants():
    labels = superpixels.slic(quadrants(), n_segments=4)
    assert labels.shape == (20, 21) and labels.dtype == np.int32
    assert labels.max() == 4
    blocks = [labels[:10, :10], labels[10:, :10], labels[:10, 11:], labels[10:, 11:]]
    assert [len(np.unique(b)) for b in blocks] == [1, 1, 1, 1]
    assert len({int(b[0, 0]) for b in blocks}) == 4
    # Column 10 is the true boundary; scikit-image (compactness 10) gives it to the left.
    assert len(np.unique(superpixels.slic(quadrants(), n_segments=4, compactness=1)[:, 10])) == 2


@pytest.mark.parametrize("method", ["quickshift", "felzenszwalb"])
def test_quadrants_give_the_same_segments_as_scikit_image(method):
    ours = run(method, quadrants())
    image = quadrants()
    if method == "quickshift":
        theirs = sk.quickshift(
            image * 100, kernel_size=2, max_dist=20, convert2lab=False, channel_axis=0
        )
    else:
        theirs = sk.felzenszwalb(image, scale=1000, min_size=20, channel_axis=0)
    # Same partition (label numbering may differ).
    pairs = np.unique(ours * 1000 + theirs)
    assert len(pairs) == ours.max() == len(np.unique(theirs))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bands", [1, 2, 3, 10])
def test_labels_are_consecutive_int32_for_any_band_count(method, bands):
    labels = run(method, quadrants(bands))
    assert labels.shape == (20, 21)
    assert_consecutive(labels)
    assert labels.max() >= 2


@pytest.mark.parametrize("method", METHODS)
def test_one_pixel_image_is_one_segment(method):
    labels = run(method, np.ones((1, 1, 1), np.float32))
    assert labels.dtype == np.int32 and labels.tolist() == [[1]]


@pytest.mark.parametrize("method", METHODS)
def test_thin_images_work(method):
    image = parcels((1, 37), 2, cell=8) / 200
    assert_consecutive(run(method, image))
    assert_consecutive(run(method, np.ascontiguousarray(image.transpose(0, 2, 1))))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sigma", [0.0, 1.0])
def test_mask_gives_zero_and_masked_values_do_not_matter(method, sigma):
    image = quadrants()
    mask = np.ones((20, 21), bool)
    mask[:, :3] = False
    mask[12:15, 8:13] = False
    labels = run(method, image, mask=mask, sigma=sigma)
    assert_consecutive(labels, mask)
    junk = image.copy()
    junk[:, ~mask] = np.random.default_rng(3).uniform(-50, 50, (3, (~mask).sum()))
    np.testing.assert_array_equal(run(method, junk, mask=mask, sigma=sigma), labels)
    junk[:, ~mask] = np.nan  # NaN is fine where masked
    np.testing.assert_array_equal(run(method, junk, mask=mask, sigma=sigma), labels)


def test_slic_without_connectivity_is_consecutive():
    image = parcels((64, 80), 3) / 200
    labels = superpixels.slic(image, n_segments=20, enforce_connectivity=False, compactness=1)
    assert_consecutive(labels)


def test_slic_segment_count_is_near_n_segments_and_scikit_image():
    image = parcels((256, 240), 4, seed=2) / 200
    for n_segments, compactness in ((60, 10.0), (300, 1.0), (1000, 0.3)):
        ours = superpixels.slic(image, n_segments=n_segments, compactness=compactness)
        theirs = sk.slic(
            image,
            n_segments=n_segments,
            compactness=compactness,
            channel_axis=0,
            convert2lab=False,
            start_label=1,
        )
        assert 0.5 * n_segments <= ours.max() <= 1.5 * n_segments
        assert 0.7 <= ours.max() / theirs.max() <= 1.3
        assert components_per_label(ours, FOUR) == {1}


def test_slic_splits_oversized_pieces_and_keeps_them_connected():
    labels = np.zeros((40, 50), np.int32)
    labels[:, 25:] = 1
    labels[5:9, 5:9] = 2  # small piece: merged into its neighbour
    out = connected_relabel(labels, 20, 300, 2)
    assert_consecutive(out)
    sizes = np.bincount(out.ravel())[1:]
    assert sizes.max() <= 300 + 16  # the 4x4 piece may join a capped piece
    assert components_per_label(out, FOUR) == {1}
    assert (out[5:9, 5:9] == out[4, 4]).all()


def test_slic_grid_covers_the_valid_region_only():
    """A masked margin holds no grid cell: 4 quadrants inside a 2 px border give 4 segments."""
    image = quadrants(3)
    mask = np.zeros((20, 21), bool)
    mask[2:-2, 2:-2] = True
    for connect in (False, True):
        labels = superpixels.slic(
            image, n_segments=4, compactness=1, mask=mask, enforce_connectivity=connect
        )
        assert_consecutive(labels, mask)
        assert labels.max() == 4
        for i, part in enumerate(
            (
                (slice(2, 10), slice(2, 10)),
                (slice(2, 10), slice(10, -2)),
                (slice(10, -2), slice(2, 10)),
                (slice(10, -2), slice(10, -2)),
            )
        ):
            assert (labels[part] == i + 1).all()


def test_slic_merges_small_cut_pieces_back():
    """A piece cut from an oversized segment that is below min_size joins its segment."""
    labels = np.array([[0, 0, 0, 1, 1, 1], [1, 0, 0, 1, 1, 0], [0, 0, 0, 1, 1, 0]], np.int32)
    out = connected_relabel(labels, 4, 7, 2)
    np.testing.assert_array_equal(out, np.repeat([[1, 1, 1, 2, 2, 2]], 3, axis=0))
    # Large pieces stay cut, each connected, ids consecutive.
    big = np.zeros((30, 30), np.int32)
    out = connected_relabel(big, 50, 200, 2)
    assert_consecutive(out)
    sizes = np.bincount(out.ravel())[1:]
    assert len(sizes) == 5 and sizes.min() >= 50 and sizes.max() <= 200 + 50
    assert components_per_label(out, FOUR) == {1}


def test_felzenszwalb_scale_zero_only_merges_small_segments():
    image = np.array([[[0, 0.3], [0.7, 1]]])
    labels = superpixels.felzenszwalb(image, scale=0, sigma=0, min_size=2)
    np.testing.assert_array_equal(labels, [[1, 1], [2, 2]])
    alone = superpixels.felzenszwalb(image, scale=0, sigma=0, min_size=0)
    np.testing.assert_array_equal(alone, [[1, 2], [3, 4]])


def test_felzenszwalb_count_and_connectivity_match_scikit_image():
    image = parcels((120, 130), 3, seed=4) / 200
    for scale in (10.0, 100.0, 1000.0):
        ours = superpixels.felzenszwalb(image, scale=scale, sigma=0.8, min_size=20)
        theirs = sk.felzenszwalb(image, scale=scale, sigma=0.8, min_size=20, channel_axis=0)
        n_theirs = len(np.unique(theirs))
        assert abs(int(ours.max()) - n_theirs) <= max(0.3 * n_theirs, 2)
        assert components_per_label(ours, EIGHT) == {1}


def reference_fh_labels(keys, mask, height, width, k, min_size):
    """Felzenszwalb's merge in plain Python over the same sorted keys (no tricks)."""
    parent = list(range(height * width))
    size = [1] * (height * width)
    inner = [0.0] * (height * width)

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    def ends(key):
        e = int(key) & ((1 << 40) - 1)
        p, d = e >> 2, e & 3
        return [(p, p + 1), (p, p + width), (p, p + width + 1), (p + 1, p + width)][d]

    finite = [int(key) for key in keys if (int(key) >> 40) < (0x7F800000 >> 8)]
    for key in finite:
        ra, rb = (root(i) for i in ends(key))
        cost = float(np.array([(key >> 40) << 8], np.uint32).view(np.float32)[0])
        limit = min(
            np.float32(inner[ra]) + np.float32(k) / np.float32(size[ra]),
            np.float32(inner[rb]) + np.float32(k) / np.float32(size[rb]),
        )
        if ra != rb and cost < limit:
            ra, rb = (rb, ra) if size[ra] < size[rb] else (ra, rb)
            parent[rb], size[ra], inner[ra] = ra, size[ra] + size[rb], cost
    for key in finite:
        ra, rb = (root(i) for i in ends(key))
        if ra != rb and min(size[ra], size[rb]) < min_size:
            ra, rb = (rb, ra) if size[ra] < size[rb] else (ra, rb)
            parent[rb], size[ra] = ra, size[ra] + size[rb]
    labels = np.zeros((height, width), np.int32)
    ids: dict[int, int] = {}
    for p in range(height * width):
        if mask[p // width, p % width]:
            labels.flat[p] = ids.setdefault(root(p), len(ids) + 1)
    return labels


@pytest.mark.parametrize("n_chunks", [1, 2, 5])
@pytest.mark.parametrize(("scale", "min_size", "masked"), [(30, 6, False), (300, 25, True)])
def test_felzenszwalb_merge_equals_the_plain_algorithm(n_chunks, scale, min_size, masked):
    """Huge pages, flattening, the packed min_size pass: the same labels as the plain merge."""
    image = np.ascontiguousarray(
        superpixels._smooth(
            (parcels((37, 41), 3, seed=9) / 200).astype(np.float32), None, False, 0.8
        )
    )
    mask = np.ones((37, 41), bool)
    if masked:
        mask[5:12, 3:30] = False
    keys = fh_sort(fh_edges(image, mask, masked), n_chunks)
    expected = reference_fh_labels(keys, mask, 37, 41, scale / 255, min_size)
    ours = fh_labels(
        keys.copy(), mask, masked, 37, 41, k=scale / 255, min_size=min_size, n_chunks=n_chunks
    )
    np.testing.assert_array_equal(ours, expected)
    assert 5 < ours.max() < 37 * 41 / 2


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 1, 5), (1, 3, 2), (3, 9, 7), (2, 40, 67)])
@pytest.mark.parametrize("sigma", [1e-20, 0.1, 0.8, 2.5, 6.0])
def test_gaussian_is_scipys_bit_for_bit(shape, sigma):
    """Felzenszwalb's ties depend on the last bits of the smoothed values."""
    image = (np.random.default_rng(3).random(shape) * 100).astype(np.float32)
    expected = np.stack([ndimage.gaussian_filter(band, sigma, mode="reflect") for band in image])
    np.testing.assert_array_equal(gaussian(image, gaussian_weights(sigma)), expected)


def test_masked_smoothing_is_a_normalized_convolution():
    image = (np.random.default_rng(4).random((2, 30, 35)) * 10).astype(np.float32)
    mask = np.ones((30, 35), bool)
    mask[:4] = mask[10:14, 5:20] = False
    weight = ndimage.gaussian_filter(mask.astype(np.float32), 0.8, mode="reflect")
    weight = np.where(mask, np.maximum(weight, np.float32(1e-12)), np.float32(1))
    smooth = [ndimage.gaussian_filter(np.where(mask, b, 0), 0.8, mode="reflect") for b in image]
    expected = np.stack([np.where(mask, s / weight, 0) for s in smooth])
    np.testing.assert_array_equal(superpixels._smooth(image, mask, True, 0.8), expected)


def test_quickshift_count_matches_scikit_image_and_seed_is_deterministic():
    image = parcels((48, 56), 3, seed=5) / 2
    ours = superpixels.quickshift(image, kernel_size=3, max_dist=6, ratio=0.5, seed=7)
    theirs = sk.quickshift(
        image, kernel_size=3, max_dist=6, ratio=0.5, convert2lab=False, channel_axis=0, rng=7
    )
    n_theirs = len(np.unique(theirs))
    assert abs(int(ours.max()) - n_theirs) <= 0.3 * n_theirs
    again = superpixels.quickshift(image, kernel_size=3, max_dist=6, ratio=0.5, seed=7)
    np.testing.assert_array_equal(ours, again)
    other = superpixels.quickshift(image, kernel_size=3, max_dist=6, ratio=0.5, seed=8)
    assert_consecutive(other)  # may differ from `ours`: the noise breaks ties differently


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: superpixels.slic(np.ones((5, 5))), "bands, rows, columns"),
        (lambda: superpixels.slic(np.ones((1, 0, 5))), "empty"),
        (lambda: superpixels.slic(np.ones((1, 5, 5)), n_segments=0), "n_segments"),
        (lambda: superpixels.slic(np.ones((1, 5, 5)), compactness=0), "compactness"),
        (lambda: superpixels.slic(np.full((1, 5, 5), np.nan)), "NaN"),
        (lambda: superpixels.felzenszwalb(np.full((2, 5, 5), np.inf)), "infinite"),
        (lambda: superpixels.quickshift(np.full((1, 5, 5), np.nan)), "mask=False"),
        (lambda: superpixels.quickshift(np.ones((1, 5, 5)), kernel_size=0), "kernel_size"),
        (lambda: superpixels.quickshift(np.ones((1, 5, 5)), ratio=2), "ratio"),
        (lambda: superpixels.felzenszwalb(np.ones((1, 5, 5)), min_size=-1), "min_size"),
        (lambda: superpixels.slic(np.ones((1, 5, 5)), mask=np.ones((4, 4), bool)), "mask shape"),
        (lambda: superpixels.slic(np.ones((1, 5, 5)), mask=np.zeros((5, 5), bool)), "No valid"),
    ],
)
def test_bad_input_is_explained(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("method", METHODS)
def test_one_nan_anywhere_in_a_valid_pixel_is_refused(method):
    image = parcels((40, 44), 3) / 200
    for y, x in ((0, 0), (17, 23), (39, 43), (20, 1)):
        bad = image.copy()
        bad[1, y, x] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            run(method, bad)


def test_real_nc_scene(nc_dir):
    import rasterio

    with rasterio.open(nc_dir / "landsat_multiband.tif") as src:
        raw = src.read().astype(np.float32)
        valid = np.all(src.read_masks() > 0, axis=0)
    image = stretch(raw, valid)
    labels = superpixels.slic(image * 100, n_segments=500, compactness=10, mask=valid)
    assert_consecutive(labels, valid)
    assert 250 <= labels.max() <= 750
    assert components_per_label(labels, FOUR) == {1}
    theirs = sk.slic(
        image * 100,
        n_segments=500,
        compactness=10,
        channel_axis=0,
        convert2lab=False,
        mask=valid,
        start_label=1,
    )
    assert 0.7 <= labels.max() / theirs.max() <= 1.3
    # Raw nodata values (-99999) in masked pixels change nothing.
    np.testing.assert_array_equal(
        superpixels.slic(
            np.where(valid, image * 100, -99999), n_segments=500, compactness=10, mask=valid
        ),
        labels,
    )
    felz = superpixels.felzenszwalb(image, mask=valid)
    assert_consecutive(felz, valid)
    assert components_per_label(felz, EIGHT) == {1}
    qs = superpixels.quickshift(image[:, :120, :120] * 100, kernel_size=3, max_dist=6)
    assert_consecutive(qs)
