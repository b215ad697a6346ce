"""Parameters of each engine command, shared by the CLI and the QGIS plugin.

Standard library only: the QGIS plugin imports this module to build its Processing
parameters without importing numpy, numba or torch. The defaults of the method
parameters are those of the core functions' signatures; ``tests/core/test_params.py``
checks that the two agree.

Names are the core functions' keyword arguments (scikit-image's names). The Processing
parameter key is the UPPER_SNAKE form (``n_segments`` -> ``N_SEGMENTS``) and the CLI option
the dashed form (``--n-segments``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .protocol import EngineError

#: What happens to clusters no scribble touched: extra unnamed classes, or merged into
#: the most similar named class (``core.scribbles``, DFC/ISB ``--unscribbled``).
UNSCRIBBLED_RULES = ("extra", "merge")

Kind = Literal["int", "float", "bool"]


@dataclass(frozen=True)
class Param:
    """One tuning parameter of an engine command.

    Attributes
    ----------
    name : str
        Keyword argument of the core function (snake_case).
    kind : {"int", "float", "bool"}
        Value type.
    default : int, float or bool
        Default value (the core function's).
    help : str
        One-line description for ``--help`` and the Processing dialog.
    minimum, maximum : float, optional
        Inclusive bounds checked by the CLI and by QGIS.
    advanced : bool
        Shown under "Advanced parameters" in QGIS.
    """

    name: str
    kind: Kind
    default: int | float | bool
    help: str
    minimum: float | None = None
    maximum: float | None = None
    advanced: bool = False

    @property
    def key(self) -> str:
        """Processing parameter key (UPPER_SNAKE)."""
        return self.name.upper()

    @property
    def option(self) -> str:
        """Command-line option (``--dashed-name``)."""
        return "--" + self.name.replace("_", "-")


def validate(
    method: str, specs: Sequence[Param], params: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Fill in the defaults of a method's parameters and check their bounds.

    Parameters
    ----------
    method : str
        Command name, for the messages.
    specs : sequence of Param
        The method's parameters (e.g. ``SUPERPIXELS["slic"]``).
    params : mapping, optional
        Values given by name; the others take their defaults.

    Returns
    -------
    dict
        Every parameter's value by name, in the order of ``specs``.

    Raises
    ------
    EngineError
        On an unknown name or a value out of its bounds (the message names the
        Processing key and the bound).
    """
    values = {p.name: p.default for p in specs}
    unknown = set(params or {}) - set(values)
    if unknown:
        raise EngineError(
            f"{method} has no parameter {', '.join(sorted(unknown))}; "
            f"its parameters are {', '.join(values)}."
        )
    values.update(params or {})
    for p in specs:
        value = values[p.name]
        if p.minimum is not None and value < p.minimum:
            raise EngineError(f"{p.key} must be at least {p.minimum:g}, not {value}.")
        if p.maximum is not None and value > p.maximum:
            raise EngineError(f"{p.key} must be at most {p.maximum:g}, not {value}.")
    return values


#: Band stretch applied before segmenting; first is the default.
NORMALIZATIONS: tuple[str, ...] = ("percentile", "minmax", "none")
NORMALIZATION_LABELS: dict[str, str] = {
    "percentile": "Percentile stretch per band (robust; default)",
    "minmax": "Min-max stretch per band",
    "none": "None (bands used as they are)",
}
DEFAULT_PERCENTILES: tuple[float, float] = (2.0, 98.0)

SEED = Param("seed", "int", 42, "Random seed; the same seed gives the same result.", 0, None, True)

SUPERPIXELS: dict[str, tuple[Param, ...]] = {
    "slic": (
        Param("n_segments", "int", 1000, "Approximate number of segments.", 1),
        Param(
            "compactness",
            "float",
            1.0,
            "Balance of band values and position: higher gives more regular, square "
            "segments, lower follows edges more closely (values scaled to 0-1, as in "
            "scikit-image; try 0.1 to 10).",
            0.0,
        ),
        Param("sigma", "float", 0.0, "Gaussian smoothing (pixels) before segmenting.", 0.0),
        Param("max_num_iter", "int", 10, "Maximum number of k-means iterations.", 1, None, True),
        Param(
            "enforce_connectivity",
            "bool",
            True,
            "Make every segment one connected region.",
            advanced=True,
        ),
        Param(
            "min_size_factor",
            "float",
            0.5,
            "Segments smaller than this fraction of the mean segment size are merged "
            "into a neighbour (with connectivity enforcement).",
            0.0,
            None,
            True,
        ),
        Param(
            "max_size_factor",
            "float",
            3.0,
            "Largest segment allowed, as a multiple of the mean segment size.",
            1.0,
            None,
            True,
        ),
    ),
    "quickshift": (
        Param("kernel_size", "float", 5.0, "Width of the Gaussian density kernel (pixels).", 0.5),
        Param("max_dist", "float", 10.0, "Cut-off distance between linked pixels.", 0.0),
        Param(
            "ratio",
            "float",
            1.0,
            "Balance of colour and space, between 0 (space only) and 1 (colour counts fully).",
            0.0,
            1.0,
        ),
        Param("sigma", "float", 0.0, "Gaussian smoothing (pixels) before segmenting.", 0.0),
    ),
    "felzenszwalb": (
        Param("scale", "float", 100.0, "Higher means larger segments.", 0.0),
        Param("sigma", "float", 0.8, "Gaussian smoothing (pixels) before segmenting.", 0.0),
        Param("min_size", "int", 20, "Minimum segment size in pixels.", 0),
    ),
}

#: Methods whose result depends on a random seed.
SEEDED: frozenset[str] = frozenset({"quickshift"})

#: What each method works on: bands stretched to this range (scikit-image's scale for it).
STRETCH_RANGE: dict[str, float] = {"slic": 1.0, "quickshift": 100.0, "felzenszwalb": 1.0}

#: Largest raster whose superpixel polygons are built in memory, in pixels (rows x columns).
#: Segmenting itself has no size limit: rasters larger than a block are streamed.
MAX_IN_MEMORY_PIXELS = 8192 * 8192

#: Superpixels of rasters with more rows or columns than this are segmented block by block
#: (``core/blocks.py``), in windows of this many pixels plus a halo.
DEFAULT_BLOCK_SIZE = 2048

#: Unsupervised deep segmentation (``core/unsupervised.py``). Defaults follow the authors'
#: code (Kanezaki's ``demo.py``: nChannel 100, nConv 2, SGD lr 0.1 momentum 0.9, minLabels
#: 3; DFC: stepsize_con 1, stepsize_scr 0.5) except the iteration limit (1000 there):
#: ISB 60 and DFC 100, so that a 400 x 400 10-band scene takes minutes on 2 CPU cores and
#: keeps a handful to a few dozen clusters (ISB merges faster: 10 clusters at iteration 50,
#: 4 at 100); W-Net: hidden 8 (fedric95's Hunan baseline), 50 iterations, N-cut feature
#: scale 0.05 (0.1 left W-Net below k-means with the same K on NC: ARI 0.10 vs 0.14), the
#: paper's N-cut weight 1 (0 and 0.1 were measured: they win on some scenes and lose on
#: others) and, in image mode, segments under 64 px merged into their neighbours. See
#: docs/benchmarks.md, "Unsupervised deep segmentation" and "W-Net against k-means".
NCUT_WEIGHT = 1.0
MIN_SEGMENT = 64
_MAX_CLUSTERS = Param(
    "max_clusters", "int", 100, "Most clusters: the network's output channels (nChannel).", 2, 1000
)
_MIN_CLUSTERS = Param(
    "min_clusters",
    "int",
    3,
    "Stop training when the clusters fall to this many (minLabels).",
    1,
    1000,
)
_N_CONV = Param("n_conv", "int", 2, "3x3 convolution blocks (nConv).", 1, 10, True)
UNSUPERVISED: dict[str, tuple[Param, ...]] = {
    "isb": (
        _MAX_CLUSTERS,
        _MIN_CLUSTERS,
        Param("max_iter", "int", 60, "Iteration limit (maxIter).", 1, 100000),
        Param("learning_rate", "float", 0.1, "SGD learning rate (momentum 0.9).", 0.0, 10.0),
        _N_CONV,
        Param(
            "segment_size",
            "float",
            15.0,
            "Mean SLIC superpixel size in pixels for the label refinement (the paper's "
            "10000 superpixels on 481 x 321 images).",
            2.0,
            None,
            True,
        ),
        Param(
            "compactness",
            "float",
            1.0,
            "SLIC compactness on bands stretched to 0-1 (the paper's 100 on CIELAB's 0-100).",
            0.0,
            None,
            True,
        ),
    ),
    "dfc": (
        _MAX_CLUSTERS,
        _MIN_CLUSTERS,
        Param("max_iter", "int", 100, "Iteration limit (maxIter).", 1, 100000),
        Param("learning_rate", "float", 0.1, "SGD learning rate (momentum 0.9).", 0.0, 10.0),
        Param(
            "mu",
            "float",
            1.0,
            "Weight of the spatial continuity loss (stepsize_con): higher gives larger, "
            "smoother clusters.",
            0.0,
            1000.0,
        ),
        _N_CONV,
        Param(
            "scribble_weight",
            "float",
            0.5,
            "Weight of the scribble cross-entropy (stepsize_scr).",
            0.0,
            100.0,
            True,
        ),
    ),
    "wnet": (
        Param("max_clusters", "int", 20, "K: the encoder's output channels.", 2, 1000),
        Param(
            "min_clusters",
            "int",
            2,
            "Stop training when the clusters fall to this many.",
            1,
            1000,
        ),
        Param("max_iter", "int", 50, "Iterations (one N-cut and one reconstruction step).", 1),
        Param("learning_rate", "float", 0.05, "SGD learning rate (momentum 0.9).", 0.0, 10.0),
        Param(
            "hidden",
            "int",
            8,
            "Channels of the first U-Net level (64 in the paper, 8 in fedric95's Hunan baseline).",
            2,
            256,
            True,
        ),
        Param("dropout", "float", 0.2, "Channel dropout in the U-Nets.", 0.0, 0.9, True),
        Param("radius", "int", 5, "Soft N-cut window radius in pixels.", 1, 20, True),
        Param(
            "sigma_i",
            "float",
            0.05,
            "Soft N-cut feature scale (RMS band difference, bands stretched to 0-1): lower "
            "cuts more between pixels of different values, higher gives smoother clusters.",
            0.001,
            None,
            True,
        ),
        Param("sigma_x", "float", 4.0, "Soft N-cut spatial scale in pixels.", 0.1, None, True),
        Param(
            "ncut_weight",
            "float",
            NCUT_WEIGHT,
            "Weight of the soft N-cut step against the reconstruction step (1 in the "
            "paper): higher favours compact regions over colours.",
            0.0,
            100.0,
            True,
        ),
        Param(
            "min_segment",
            "int",
            MIN_SEGMENT,
            "Image mode: connected segments smaller than this many pixels join the nearest "
            "larger segment (0: argmax labels as they are).",
            0,
            None,
            True,
        ),
    ),
}
#: Settings of every unsupervised method: tiles of dataset mode.
UNSUPERVISED_COMMON: tuple[Param, ...] = (
    Param("tile_size", "int", 256, "Dataset mode: tile side in pixels.", 32, 2048, True),
    Param("n_tiles", "int", 32, "Dataset mode: tiles sampled from the raster.", 1, 10000, True),
    Param("batch_size", "int", 4, "Dataset mode: tiles per iteration.", 1, 256, True),
)

#: U-Net encoders offered (segmentation_models_pytorch names), cheapest first.
ENCODERS: tuple[str, ...] = (
    "resnet18",
    "resnet34",
    "resnet50",
    "efficientnet-b0",
    "efficientnet-b2",
    "mobilenet_v2",
)

#: Defaults of ``trainunet``'s tuning parameters, shared by the CLI, the engine and QGIS.
#: Chosen so that six 400x400 10-band scenes train in well under 15 minutes on 2 CPU
#: cores (docs/benchmarks.md, "Supervised U-Net").
TRAIN_DEFAULTS: dict[str, Any] = {
    "encoder": "resnet18",
    "epochs": 40,
    "batch_size": 8,
    "learning_rate": 1e-3,
    "patience": 8,
    "tile_size": 64,
    "validation_fraction": 0.2,
    "seed": 42,
    # Generalisation to new dates and places, measured with bench/generalisation.py
    # (docs/benchmarks.md, "Generalisation to new acquisitions"). Normalisation: training
    # statistics. On the Dubai split (train tiles 1-6, test tiles 7-8) per-image
    # standardisation scored 9.1 OA points lower (0.691 against 0.783, 3 epochs; 0.663
    # after the full 40) and even lower than training statistics on the test images
    # radiometrically shifted (0.697 against 0.712): each image's statistics follow its mix
    # of sand, water and buildings. On NC both are the same on the clean scene (one
    # training image) and training statistics lose nothing under the shift (three seeds).
    # TTA adds 1-2 points on NC. Acquisition augmentation is off: three seeds cost 9.6 OA
    # points on NC on average. Weight averaging (EMA): +1.2 OA points on the six-scene
    # case, -1.0 on NC (three seeds), +6.9 on a two-epoch Dubai subset.
    "normalization": "training",
    "harmonize": True,
    "acquisition_augment": False,
    "holdout_image": 0,
    "weight_averaging": "ema",
}

#: U-Net input normalisation modes (``core.acquisition``), first the original behaviour.
UNET_NORMALIZATIONS: tuple[str, ...] = ("training", "image", "percentile")
UNET_NORMALIZATION_LABELS: dict[str, str] = {
    "training": "Training images' statistics (one scale for all images)",
    "image": "Each image's own mean and standard deviation",
    "percentile": "Each image's own 2-98 percentile range",
}

#: U-Net weight averaging modes (``core.averaging``): none, or an exponential moving average.
WEIGHT_AVERAGING_MODES: tuple[str, ...] = ("none", "ema")
WEIGHT_AVERAGING_LABELS: dict[str, str] = {
    "none": "None (keep the trained weights)",
    "ema": "Exponential moving average of the weights (steadier)",
}
#: Largest decay of the weights' exponential moving average per optimisation step; the
#: first steps use less, ``(1 + n) / (10 + n)`` (core.averaging).
EMA_DECAY: float = 0.99

#: Help of the generalisation options, shared by the CLI and the Processing dialog.
UNET_HELP: dict[str, str] = {
    "normalization": "How each band is scaled before the network. 'training' (default) "
    "uses the training images' statistics: one radiometric scale for every image, right for "
    "calibrated reflectance (Sentinel-2 L2A, which HARMONIZE keeps on one scale, Landsat "
    "surface reflectance) and, as measured, for new places. 'image' standardises every "
    "image, at training and prediction, with its own statistics: it removes per-band "
    "brightness and contrast changes between uncalibrated acquisitions (scanned or "
    "camera images, another sensor), but an image that is mostly one cover (sand, water) "
    "is stretched differently from a mixed one; keep it only if a held-out image "
    "(HOLDOUT_IMAGE) scores better with it. 'percentile' does the same with the 2-98 "
    "percentile range (robust to clouds and glint).",
    "harmonize": "Sentinel-2 L2A harmonisation: subtract the +1000 offset that processing "
    "baseline 04.00 (from January 2022) adds, for each image whose metadata (BOA_ADD_OFFSET, "
    "PROCESSING_BASELINE) or values show it. A no-op for other rasters; turn it off only for "
    "uint16 data whose darkest pixels really are 1000-1600.",
    "acquisition_augment": "Also make training crops look like other acquisition dates: "
    "per-band gain and offset, brightness, blur and noise. Off by default: on our data it "
    "lowered accuracy as often as it raised it (docs/benchmarks.md). Try it when the "
    "training images cover few dates and the map must serve others, and keep it only if "
    "a held-out image (HOLDOUT_IMAGE) scores better with it.",
    "holdout_image": "Hold out this input image (1-based; 0: none) whole for validation, so "
    "that early stopping and the report measure generalisation to an unseen date or place "
    "instead of fit on the training images. Needs at least two inputs.",
    "weight_averaging": "Weight averaging. 'ema' keeps an exponential moving average of the "
    "network's weights and BatchNorm statistics over the optimisation steps (decay "
    f"{EMA_DECAY:g}, less in the first steps); validation, early stopping and the model file "
    "use the averaged network, still one network. It smooths out the noise of the last steps "
    "for about 5 % more training time; use it with few or sparse labels, when the validation "
    "scores jump from epoch to epoch. 'none' keeps the trained weights as they are.",
    "tta": "Test-time augmentation: average the class probabilities over the 8 flips and "
    "90-degree rotations of every tile. Steadier maps on new dates, 8 times the compute. "
    "U-Net models only (ISB/DFC/W-Net models give their clusters as trained).",
}

#: Defaults of ``predictunet``'s options.
PREDICT_DEFAULTS: dict[str, Any] = {"tta": True}

#: Tiles per forward pass of ``predictunet`` (the training batch size by default).
PREDICT_BATCH_SIZE: int = TRAIN_DEFAULTS["batch_size"]


def validate_training(
    *,
    encoder: str,
    tile_size: int,
    validation_fraction: float,
    epochs: int,
    batch_size: int,
    normalization: str,
    weight_averaging: str = TRAIN_DEFAULTS["weight_averaging"],
) -> None:
    """Refuse ``trainunet`` options out of range, before any work.

    Raises
    ------
    EngineError
        Naming the Processing key and what it takes.
    """
    if encoder not in ENCODERS:
        raise EngineError(f"Unknown encoder {encoder!r}; choose one of {', '.join(ENCODERS)}.")
    if tile_size < 32 or tile_size % 32:
        raise EngineError(f"TILE_SIZE must be a multiple of 32 (e.g. 128 or 256), not {tile_size}.")
    if not 0 <= validation_fraction < 1:
        raise EngineError("VALIDATION_FRACTION must be between 0 and 1 (e.g. 0.2).")
    if epochs < 1 or batch_size < 1:
        raise EngineError("EPOCHS and BATCH_SIZE must be at least 1.")
    if normalization not in UNET_NORMALIZATIONS:
        raise EngineError(
            f"Unknown NORMALIZATION {normalization!r}; use one of {', '.join(UNET_NORMALIZATIONS)}."
        )
    if weight_averaging not in WEIGHT_AVERAGING_MODES:
        raise EngineError(
            f"Unknown WEIGHT_AVERAGING {weight_averaging!r}; use one of "
            f"{', '.join(WEIGHT_AVERAGING_MODES)}."
        )
