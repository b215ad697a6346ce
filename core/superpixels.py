"""Superpixels: SLIC, QuickShift and Felzenszwalb on (C, H, W) rasters with nodata masks.

LandSeg's own implementations, compiled with numba (``core/_*_kernels.py``). The
functions take band-first float images of any band count and return segment ids 1..N
(int32) over the valid pixels, 0 outside the mask. Parameters have scikit-image's names
and meaning on the same array (``channel_axis=0``, ``convert2lab=False``); no colour
conversion or rescaling happens here beyond what scikit-image itself does (SLIC's
rescale to [0, 1], Felzenszwalb's ``scale / 255``). Masked-out pixels influence nothing:
they are no graph node, sample, neighbour or centre member.

The numba kernels compile on first use and are cached on disk (numba's ``__pycache__``
beside this package, or ``NUMBA_CACHE_DIR``); they use numba's default thread count (all
cores; ``NUMBA_NUM_THREADS`` or :func:`numba.set_num_threads` changes it).

References
----------
.. [1] R. Achanta, A. Shaji, K. Smith, A. Lucchi, P. Fua and S. Süsstrunk, "SLIC
       Superpixels Compared to State-of-the-Art Superpixel Methods", IEEE TPAMI 34(11),
       pp. 2274-2282, 2012. :DOI:`10.1109/TPAMI.2012.120`
.. [2] A. Vedaldi and S. Soatto, "Quick Shift and Kernel Methods for Mode Seeking",
       ECCV 2008, LNCS 5305, pp. 705-718. :DOI:`10.1007/978-3-540-88693-8_52`
.. [3] P. F. Felzenszwalb and D. P. Huttenlocher, "Efficient Graph-Based Image
       Segmentation", IJCV 59(2), pp. 167-181, 2004.
       :DOI:`10.1023/B:VISI.0000022288.57776.9a`
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._connectivity_kernels import connected_relabel, relabel_consecutive
from ._felzenszwalb_kernels import fh_edges, fh_labels, fh_sort
from ._gaussian_kernels import gaussian, gaussian_weights
from ._quickshift_kernels import qs_density, qs_labels, qs_parents
from ._slic_kernels import slic_assign_full, slic_blocks, slic_kmeans

__all__ = ["felzenszwalb", "quickshift", "slic", "slic_steps"]

_NO_MASK = np.ones((1, 1), dtype=bool)


def _prepare(
    image: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, bool, int]:
    """Validate shapes; return float32 C-contiguous image, mask, has_mask, valid count."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(
            f"image must be a (bands, rows, columns) array; got shape {image.shape}. "
            "Add a band axis to a single-band image: image[np.newaxis]."
        )
    if min(image.shape) < 1:
        raise ValueError(f"image of shape {image.shape} is empty; it needs at least 1 px.")
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
        raise ValueError(f"image must be numeric, not {image.dtype}.")
    image = np.ascontiguousarray(image, dtype=np.float32)
    height, width = image.shape[1:]
    if mask is None:
        return image, _NO_MASK, False, height * width
    mask = np.asarray(mask)
    if mask.shape != (height, width):
        raise ValueError(
            f"mask shape {mask.shape} does not match the image's rows x columns "
            f"{(height, width)}; give one bool per pixel (True = valid)."
        )
    mask = np.ascontiguousarray(mask, dtype=bool)
    n_valid = int(np.count_nonzero(mask))
    if n_valid == 0:
        raise ValueError("No valid pixel: the mask is False everywhere, nothing to segment.")
    if n_valid == height * width:
        return image, _NO_MASK, False, n_valid
    return image, mask, True, n_valid


def _check_finite(image: np.ndarray, mask: np.ndarray, has_mask: bool) -> None:
    # A finite sum over every pixel (masked ones too) means no NaN or inf anywhere: one
    # pass, without gathering the valid pixels (the common case, and every block's).
    if math.isfinite(float(image.sum(dtype=np.float64))):
        return
    values = image[:, mask] if has_mask else image
    if not np.isfinite(values).all():
        raise ValueError(
            "image has NaN or infinite values in valid pixels; exclude them with "
            "mask=False (for example mask = np.isfinite(image).all(axis=0))."
        )


def _smooth(image: np.ndarray, mask: np.ndarray, has_mask: bool, sigma: float) -> np.ndarray:
    """Gaussian pre-smoothing per band (reflect at the border, 4 sigma).

    Bit for bit SciPy's ``ndimage.gaussian_filter`` per band, computed over all bands and
    rows in numba's threads (:mod:`core._gaussian_kernels`). With a mask this is a
    normalized convolution: masked pixels get no weight, so their values cannot leak into
    valid pixels.
    """
    weights = gaussian_weights(sigma)
    if not has_mask:
        return gaussian(image, weights)
    weight = gaussian(mask.astype(np.float32)[np.newaxis], weights)[0]
    weight = np.where(mask, np.maximum(weight, np.float32(1e-12)), np.float32(1))
    smooth = gaussian(np.where(mask, image, np.float32(0)), weights)
    return np.where(mask, smooth / weight, np.float32(0))


def _bounding_box(
    mask: np.ndarray, has_mask: bool, height: int, width: int
) -> tuple[int, int, int, int]:
    """Top, left, height and width of the smallest box holding every valid pixel."""
    if not has_mask:
        return 0, 0, height, width
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def _chunks() -> int:
    return max(int(numba.get_num_threads()), 1)


def slic(
    image: np.ndarray,
    *,
    n_segments: int = 1000,
    compactness: float = 1.0,
    sigma: float = 0.0,
    max_num_iter: int = 10,
    enforce_connectivity: bool = True,
    min_size_factor: float = 0.5,
    max_size_factor: float = 3.0,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Segment an image into compact superpixels with SLIC [1]_.

    k-means in the joint space of band values and position, started from a regular grid,
    with scikit-image's distance and scaling: values are rescaled to [0, 1] over the
    valid pixels (one range for all bands), and a pixel's distance to a centre is
    ``sqrt((d_values / compactness)**2 + (d_position / step)**2)`` with ``step`` the grid
    spacing. LandSeg's implementation is pixel-centric: each sample is compared only with
    the centres of the 3 x 3 grid cells around it (scikit-image: every centre within two
    steps). The k-means iterations run on one sample per ``s x s`` block (its middle
    pixel, weighted by the block's valid pixel count; ``s = step // 7`` clamped to 1-4,
    so a segment keeps >= ~49 samples), and one full-resolution pass then gives each
    pixel the label its four surrounding samples agree on, or the nearest of their
    centres near boundaries. Connectivity is enforced on horizontal runs with a
    union-find (O(pixels)). All passes but the run merge are parallel (numba).

    Parameters
    ----------
    image : (C, H, W) array_like
        Band values, any number of bands ``C``; converted to float32.
    n_segments : int
        Approximate number of segments (of the valid pixels).
    compactness : float
        Weight of position against values (positive). Higher gives squarer segments. On
        the [0, 1] rescaled values, 10 (scikit-image's default, meant for CIELAB) makes
        nearly square segments; 0.1-1 follows edges on multispectral rasters.
    sigma : float
        Width (pixels) of a Gaussian pre-smoothing; 0 for none.
    max_num_iter : int
        Maximum number of k-means iterations (stops early when no label changes).
    enforce_connectivity : bool
        Make each segment one 4-connected region: disconnected pieces become their own
        segments, pieces smaller than ``min_size_factor`` times the mean segment size
        join the segment above (or left of) their first pixel, and pieces larger than
        ``max_size_factor`` times it are cut, a cut piece smaller than the minimum joining
        back (as scikit-image does).
    min_size_factor, max_size_factor : float
        See ``enforce_connectivity``.
    mask : (H, W) bool array_like, optional
        True for valid pixels. The others get label 0 and take no part in the
        clustering. The grid covers the bounding box of the valid pixels (its step from
        their count), and centres are only seeded where a grid cell has valid pixels.

    Returns
    -------
    (H, W) int32 ndarray
        Segment ids 1..N (consecutive, in raster order of first pixel with
        ``enforce_connectivity``); 0 outside the mask.

    Raises
    ------
    ValueError
        For an image that is not (C, H, W), a mask of another shape or without any True,
        NaN or infinite values in valid pixels, or out-of-range parameters.
    """
    image, mask, has_mask, n_valid = _prepare(image, mask)
    if n_segments < 1:
        raise ValueError(f"n_segments must be at least 1, not {n_segments}.")
    if not compactness > 0:
        raise ValueError(f"compactness must be positive, not {compactness}.")
    if max_num_iter < 0:
        raise ValueError(f"max_num_iter must be 0 or more, not {max_num_iter}.")
    if sigma < 0:
        raise ValueError(f"sigma must be 0 (no smoothing) or positive, not {sigma}.")
    if min_size_factor < 0 or max_size_factor <= 0:
        raise ValueError(
            "min_size_factor must be >= 0 and max_size_factor > 0, not "
            f"{min_size_factor} and {max_size_factor}."
        )
    height, width = image.shape[1:]
    step = max(math.sqrt(n_valid / n_segments), 1.0)
    s = 1 if min(height, width) < 4 * step else int(min(max(step // 7, 1), 4))
    means, weight, low, high, finite = slic_blocks(image, mask, has_mask, s)
    if not (finite and math.isfinite(low) and math.isfinite(high)):
        _check_finite(image, mask, has_mask)  # raises with the helpful message
    if sigma > 0:
        image = _smooth(image, mask, has_mask, sigma)
        means, weight, low, high, _ = slic_blocks(image, mask, has_mask, s)
    # scikit-image: v' = (v - low) / (high - low) / compactness and
    # d = |v'|^2 + |xy|^2 / spacing^2. We keep raw values: d * scale^2.
    return slic_steps(
        image,
        mask,
        has_mask,
        step=step,
        value_range=high - low,
        compactness=compactness,
        max_num_iter=max_num_iter,
        enforce_connectivity=enforce_connectivity,
        min_size_factor=min_size_factor,
        max_size_factor=max_size_factor,
        chunks=_chunks(),
        sums=(means, weight),
        n_valid=n_valid,
        box=_bounding_box(mask, has_mask, height, width),
    )


def slic_steps(
    image: np.ndarray,
    mask: np.ndarray,
    has_mask: bool,
    *,
    step: float,
    value_range: float,
    compactness: float,
    max_num_iter: int,
    enforce_connectivity: bool,
    min_size_factor: float,
    max_size_factor: float,
    chunks: int,
    sums: tuple[np.ndarray, np.ndarray] | None = None,
    n_valid: int | None = None,
    box: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """Run the SLIC body shared by :func:`slic` and :mod:`core.superpixel_blocks`.

    Grid of centres ``step`` pixels apart, k-means with the colour distance scaled by
    ``value_range`` (1 when not positive), assignment, then connectivity enforcement.

    Parameters
    ----------
    image, mask, has_mask
        Prepared bands ``(C, H, W)`` float32 and valid pixels (``has_mask`` False: all).
    step, value_range : float
        Grid step and band value range: the whole raster's in the block-wise path.
    chunks : int
        Partial sums of the k-means update; the result depends on it.
    sums : (means, weight), optional
        Block sums of ``_slic_kernels.slic_blocks`` when already computed.
    n_valid : int, optional
        Valid pixels: the mean segment size is then ``n_valid`` over the centres that
        received samples (in memory); without it ``step**2`` (block-wise).
    box : (top, left, height, width), optional
        Where the grid of centres lies: the valid pixels' bounding box in memory
        (scikit-image spreads its seeds over the mask, so no centre starts on a masked
        margin and the count follows ``n_segments``); the whole window by default.
    """
    height, width = image.shape[1:]
    s = 1 if min(height, width) < 4 * step else int(min(max(step // 7, 1), 4))
    means, weight = sums if sums is not None else slic_blocks(image, mask, has_mask, s)[:2]
    top, left, box_height, box_width = box if box is not None else (0, 0, height, width)
    rows = max(round(box_height / step), 1)
    cols = max(round(box_width / step), 1)
    spacing = max(box_height / rows, box_width / cols)
    wsp = ((value_range if value_range > 0 else 1.0) * compactness / spacing) ** 2
    centres, _, samples = slic_kmeans(
        means, weight, s, height, width, rows, cols, wsp, int(max_num_iter), chunks,
        top, left, box_height, box_width,
    )  # fmt: skip
    labels = slic_assign_full(image, mask, has_mask, s, samples, centres, wsp)
    if not enforce_connectivity:
        return relabel_consecutive(labels, rows * cols)
    if n_valid is None:
        segment_size = step * step
    else:
        n_centres = max(int(np.count_nonzero(np.bincount(samples[samples >= 0].ravel()))), 1)
        segment_size = n_valid / n_centres
    min_size = int(min_size_factor * segment_size)
    max_size = max(int(max_size_factor * segment_size), 1)
    return connected_relabel(labels, min_size, max_size, chunks)


def quickshift(
    image: np.ndarray,
    *,
    ratio: float = 1.0,
    kernel_size: float = 5.0,
    max_dist: float = 10.0,
    sigma: float = 0.0,
    mask: np.ndarray | None = None,
    seed: int = 42,
) -> np.ndarray:
    """Segment an image with QuickShift [2]_ mode seeking.

    Each pixel's density is a Gaussian Parzen estimate over a window of
    ``2 * ceil(3 * kernel_size) + 1`` pixels in the joint space (band values times
    ``ratio``, position); each pixel then links to the nearest pixel of higher density
    in that window, and links longer than ``max_dist`` are cut. Segments are the trees.
    Same algorithm and parameters as scikit-image's ``quickshift`` (``convert2lab=False``,
    ``channel_axis=0``), in parallel with float32 arithmetic, and the parent search
    visits the window nearest-first and stops early.

    Parameters
    ----------
    image : (C, H, W) array_like
        Band values, any number of bands; the scale matters (LandSeg's pipeline
        stretches bands to 0-100).
    ratio : float
        Between 0 and 1: weight of band values against position.
    kernel_size : float
        Width (pixels) of the Gaussian density kernel; must be positive. Higher gives
        fewer segments.
    max_dist : float
        Cut-off for links (joint distance); higher gives fewer segments.
    sigma : float
        Width (pixels) of a Gaussian pre-smoothing; 0 for none.
    mask : (H, W) bool array_like, optional
        True for valid pixels. The others get label 0, add no density and are never a
        parent.
    seed : int
        Seed of the tiny Gaussian noise (sigma 1e-5) added to the densities to break
        ties, as scikit-image does: the same seed gives the same result.

    Returns
    -------
    (H, W) int32 ndarray
        Segment ids 1..N in raster order of first pixel; 0 outside the mask.

    Raises
    ------
    ValueError
        For an image that is not (C, H, W), a mask of another shape or without any True,
        NaN or infinite values in valid pixels, or out-of-range parameters.
    """
    image, mask, has_mask, _ = _prepare(image, mask)
    if not kernel_size > 0:
        raise ValueError(f"kernel_size must be positive (pixels), not {kernel_size}.")
    if not 0 <= ratio <= 1:
        raise ValueError(f"ratio must be between 0 and 1, not {ratio}.")
    if max_dist < 0:
        raise ValueError(f"max_dist must be 0 or more, not {max_dist}.")
    if sigma < 0:
        raise ValueError(f"sigma must be 0 (no smoothing) or positive, not {sigma}.")
    _check_finite(image, mask, has_mask)
    height, width = image.shape[1:]
    if sigma > 0:
        image = _smooth(image, mask, has_mask, sigma)
    if has_mask:  # masked values (even NaN) must not reach the distance sums
        image = np.where(mask, image, np.float32(0))
    if ratio != 1:
        image = image * np.float32(ratio)
    kernel_width = math.ceil(3 * kernel_size)
    density = qs_density(image, mask, has_mask, kernel_width, -0.5 / kernel_size**2)
    density += np.random.default_rng(seed).normal(scale=1e-5, size=density.shape)
    if has_mask:
        density[~mask] = -np.inf  # never a parent
    parent = qs_parents(image, density, kernel_width, float(max_dist))
    return qs_labels(parent, mask, has_mask, height, width)


def felzenszwalb(
    image: np.ndarray,
    *,
    scale: float = 100.0,
    sigma: float = 0.8,
    min_size: int = 20,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Segment an image with Felzenszwalb and Huttenlocher's graph method [3]_.

    The graph joins each pixel to its 8 neighbours, weighted by the Euclidean distance
    of the (Gaussian-smoothed) band values. Edges are visited by increasing weight and
    join two segments when the weight is below both segments' internal difference plus
    ``k / size``; then segments smaller than ``min_size`` join a neighbour. As in
    scikit-image (and the reference code), ``k = scale / 255``, so the same ``scale``
    gives segments of the same size as scikit-image's ``felzenszwalb(...,
    channel_axis=0)``. Edge weights are sorted with a parallel radix sort on 24 bits
    (relative precision 3e-5); the merging is sequential. Segments are 8-connected.

    Parameters
    ----------
    image : (C, H, W) array_like
        Band values, any number of bands, typically stretched to 0-1.
    scale : float
        Higher gives larger segments (0 or more; 0 only merges segments smaller than
        ``min_size``, as in scikit-image).
    sigma : float
        Width (pixels) of the Gaussian pre-smoothing; 0 for none.
    min_size : int
        Segments smaller than this many pixels join a neighbour (0 or more).
    mask : (H, W) bool array_like, optional
        True for valid pixels. The others get label 0 and have no edges (a normalized
        convolution keeps their values out of the smoothing too).

    Returns
    -------
    (H, W) int32 ndarray
        Segment ids 1..N in raster order of first pixel; 0 outside the mask.

    Raises
    ------
    ValueError
        For an image that is not (C, H, W), a mask of another shape or without any True,
        NaN or infinite values in valid pixels, or out-of-range parameters.
    """
    image, mask, has_mask, _ = _prepare(image, mask)
    if min_size < 0:
        raise ValueError(f"min_size must be 0 or more pixels, not {min_size}.")
    if not scale >= 0:
        raise ValueError(
            f"scale must be 0 (only merge segments smaller than min_size) or more, not {scale}."
        )
    if sigma < 0:
        raise ValueError(f"sigma must be 0 (no smoothing) or positive, not {sigma}.")
    _check_finite(image, mask, has_mask)
    height, width = image.shape[1:]
    if sigma > 0:
        image = _smooth(image, mask, has_mask, sigma)
    keys = fh_sort(fh_edges(image, mask, has_mask), _chunks())
    return fh_labels(
        keys,
        mask,
        has_mask,
        height,
        width,
        k=scale / 255.0,
        min_size=int(min_size),
        n_chunks=_chunks(),
    )
