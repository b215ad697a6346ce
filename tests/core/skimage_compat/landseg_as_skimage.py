"""LandSeg's superpixels behind scikit-image's signatures, for scikit-image's own tests.

A thin adapter: it moves the channel axis first (LandSeg takes ``(bands, rows, columns)``),
converts integer images to float the way scikit-image does where the method is
scale-sensitive (``img_as_float`` for QuickShift and Felzenszwalb; SLIC rescales to
[0, 1] itself), renames ``rng`` to ``seed`` and shifts LandSeg's labels (1..N, 0 outside
the mask) to scikit-image's (``start_label``.., ``start_label - 1`` outside the mask).
It computes nothing else.

Features that LandSeg does not have make the calling test skip, with the reason:
CIELAB conversion (LandSeg segments any band count, not RGB), SLIC-zero, anisotropic
``spacing`` and per-axis ``sigma`` (raster pixels are square), 3-D volumes and
``return_tree``.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage import img_as_float

from core import superpixels

LAB = "CIELAB conversion does not apply: LandSeg segments any number of bands, not RGB"


def _bands_first(image: np.ndarray, channel_axis: int | None) -> np.ndarray:
    image = np.asarray(image)
    image = image[np.newaxis] if channel_axis is None else np.moveaxis(image, channel_axis, 0)
    if image.ndim != 3:
        pytest.skip("3-D volumes do not apply: LandSeg segments 2-D rasters")
    return image


def _ids(labels: np.ndarray, start_label: int) -> np.ndarray:
    """LandSeg's 1..N (0 = masked) as scikit-image's start_label.. (start_label - 1 = masked)."""
    return labels.astype(np.intp) + (start_label - 1)


def slic(
    image,
    n_segments=100,
    compactness=10.0,
    max_num_iter=10,
    sigma=0,
    spacing=None,
    convert2lab=None,
    enforce_connectivity=True,
    min_size_factor=0.5,
    max_size_factor=3,
    slic_zero=False,
    start_label=1,
    mask=None,
    *,
    channel_axis=-1,
):
    """scikit-image's ``slic`` signature over :func:`core.superpixels.slic`."""
    if slic_zero:
        pytest.skip("SLIC-zero (adaptive compactness) does not apply: LandSeg has no slic_zero")
    if spacing is not None:
        pytest.skip("spacing does not apply: raster pixels are square")
    if not np.isscalar(sigma):
        pytest.skip("a sigma per axis does not apply: LandSeg smooths both axes alike")
    image = np.asarray(image)
    if channel_axis is not None and image.ndim == 2:
        pytest.skip("channel_axis checks are scikit-image's API: LandSeg takes (C, H, W)")
    if channel_axis is not None and convert2lab is not False and image.shape[channel_axis] == 3:
        pytest.skip(LAB)
    if convert2lab:
        pytest.skip(LAB)
    if start_label not in (0, 1):
        raise ValueError("start_label should be 0 or 1.")
    labels = superpixels.slic(
        _bands_first(image, channel_axis),
        n_segments=int(n_segments),
        compactness=compactness,
        max_num_iter=max_num_iter,
        sigma=float(sigma),
        enforce_connectivity=enforce_connectivity,
        min_size_factor=min_size_factor,
        max_size_factor=max_size_factor,
        mask=None if mask is None else np.asarray(mask, dtype=bool),
    )
    return _ids(labels, start_label)


def quickshift(
    image,
    ratio=1.0,
    kernel_size=5,
    max_dist=10,
    return_tree=False,
    sigma=0,
    convert2lab=True,
    rng=42,
    *,
    channel_axis=-1,
):
    """scikit-image's ``quickshift`` signature over :func:`core.superpixels.quickshift`."""
    if return_tree:
        pytest.skip("return_tree does not apply: LandSeg returns labels only")
    if convert2lab:
        pytest.skip(LAB)
    image = img_as_float(np.atleast_3d(image))
    labels = superpixels.quickshift(
        _bands_first(image, channel_axis),
        ratio=ratio,
        kernel_size=kernel_size,
        max_dist=max_dist,
        sigma=sigma,
        seed=rng,
    )
    return _ids(labels, 0)


def felzenszwalb(image, scale=1, sigma=0.8, min_size=20, *, channel_axis=-1):
    """scikit-image's ``felzenszwalb`` signature over :func:`core.superpixels.felzenszwalb`."""
    image = img_as_float(np.asarray(image))
    if image.ndim == 2:
        channel_axis = None
    labels = superpixels.felzenszwalb(
        _bands_first(image, channel_axis), scale=scale, sigma=sigma, min_size=min_size
    )
    return _ids(labels, 0)
