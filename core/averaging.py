"""Weight averaging for U-Net training: an exponential moving average (EMA) of the weights.

With ``weight_averaging="ema"``, :func:`core.training.train_network` keeps, next to the
network it optimises, a copy whose parameters *and* BatchNorm buffers follow an
exponential moving average of the trained ones, updated after every optimisation step
(Polyak & Juditsky, 1992; the "EMA of weights" of Tan & Le, 2019, *EfficientNet*, and of
most recent segmentation training recipes). Validation, early stopping and the model file
use the averaged copy: it is one network of the same architecture, so prediction does not
change. The averaging is torch's own :class:`torch.optim.swa_utils.AveragedModel` with
:func:`torch.optim.swa_utils.get_ema_multi_avg_fn` and ``use_buffers=True`` (so no
BatchNorm re-estimation pass is needed).

The decay per step is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (the
``num_updates`` rule of TensorFlow's ``ExponentialMovingAverage``): without it, on a small
data set of a few steps per epoch the random initial weights would keep a large share of
the average for most of training (``0.99 ** 100`` is 0.37), while on a large one the
average soon reaches the full ``decay``, a window of about ``1 / (1 - decay)`` steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .params import EMA_DECAY, WEIGHT_AVERAGING_MODES

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["check_weight_averaging", "weight_average"]


def check_weight_averaging(mode: str, *, decay: float = EMA_DECAY) -> None:
    """Refuse an unknown averaging mode or a decay outside (0, 1).

    Raises
    ------
    ValueError
        Naming the value and the choices.
    """
    if mode not in WEIGHT_AVERAGING_MODES:
        raise ValueError(
            f"Unknown weight averaging {mode!r}; use one of {', '.join(WEIGHT_AVERAGING_MODES)} "
            "(WEIGHT_AVERAGING, --weight-averaging)."
        )
    if not 0.0 < decay < 1.0:
        raise ValueError(
            f"The weight-averaging decay must be between 0 and 1 (e.g. {EMA_DECAY}), not {decay}."
        )


def weight_average(
    network: torch.nn.Module, mode: str, *, decay: float = EMA_DECAY
) -> torch.optim.swa_utils.AveragedModel | None:
    """Return the averaged copy of ``network`` to update after each step (None for "none").

    Parameters
    ----------
    network : torch.nn.Module
        The network being trained (copied; its weights are the average's start).
    mode : {"none", "ema"}
        Averaging mode (:data:`core.params.WEIGHT_AVERAGING_MODES`).
    decay : float
        Largest decay per step, in (0, 1); the first steps use ``(1 + n) / (10 + n)``.

    Returns
    -------
    torch.optim.swa_utils.AveragedModel or None
        Call ``update_parameters(network)`` after each optimiser step; its ``module`` is
        the averaged network (parameters and buffers).
    """
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    check_weight_averaging(mode, decay=decay)
    if mode == "none":
        return None

    def ema(averaged: Any, current: Any, n_averaged: Any) -> None:
        n = float(n_averaged)
        get_ema_multi_avg_fn(min(decay, (1.0 + n) / (10.0 + n)))(averaged, current, n_averaged)

    return AveragedModel(network, multi_avg_fn=ema, use_buffers=True)
