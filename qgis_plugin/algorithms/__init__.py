"""LandSeg Processing algorithms."""

from __future__ import annotations

from qgis.core import QgsProcessingAlgorithm


def all_algorithms() -> list[QgsProcessingAlgorithm]:
    """Return one instance of every algorithm the provider offers."""
    from .accuracy import AccuracyAlgorithm
    from .setup_engine import SetupEngineAlgorithm
    from .superpixels import FelzenszwalbAlgorithm, QuickshiftAlgorithm, SlicAlgorithm
    from .unet import PredictUnetAlgorithm, TrainUnetAlgorithm
    from .unsupervised import DfcAlgorithm, IsbAlgorithm, WnetAlgorithm
    from .vectorize import VectorizeAlgorithm

    return [
        SlicAlgorithm(),
        QuickshiftAlgorithm(),
        FelzenszwalbAlgorithm(),
        AccuracyAlgorithm(),
        TrainUnetAlgorithm(),
        PredictUnetAlgorithm(),
        IsbAlgorithm(),
        DfcAlgorithm(),
        WnetAlgorithm(),
        VectorizeAlgorithm(),
        SetupEngineAlgorithm(),
    ]
