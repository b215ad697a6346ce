"""Networks LandSeg trains and applies, rebuilt from a model file's description.

:func:`build_network` is the one place that turns a model's metadata (see
:mod:`core.modelfile`) into a ``torch.nn.Module``; it dispatches on
``metadata["architecture"]``. Every architecture is built with random weights (no
download at run time); trained weights come from the model file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .protocol import EngineError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["ENCODERS", "build_network", "build_unet", "load_encoder_weights"]

#: U-Net encoders offered (segmentation_models_pytorch names), cheapest first.
ENCODERS: tuple[str, ...] = (
    "resnet18",
    "resnet34",
    "resnet50",
    "efficientnet-b0",
    "efficientnet-b2",
    "mobilenet_v2",
)


def build_unet(*, encoder: str, in_channels: int, classes: int) -> torch.nn.Module:
    """Build a U-Net with a segmentation_models_pytorch encoder, randomly initialised.

    Ronneberger et al., 2015, *U-Net: Convolutional Networks for Biomedical Image
    Segmentation*, MICCAI.

    Parameters
    ----------
    encoder : str
        One of :data:`ENCODERS`.
    in_channels : int
        Number of input bands.
    classes : int
        Number of output classes (logit channels).

    Returns
    -------
    torch.nn.Module
        Maps (N, in_channels, H, W) float tensors, H and W multiples of 32, to
        (N, classes, H, W) logits.
    """
    if encoder not in ENCODERS:
        raise EngineError(f"Unknown encoder {encoder!r}; choose one of {', '.join(ENCODERS)}.")
    if in_channels < 1 or classes < 2:
        raise ValueError(
            f"A U-Net needs >= 1 input band and >= 2 classes, not {in_channels}, {classes}."
        )
    import segmentation_models_pytorch as smp

    return smp.Unet(
        encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=classes
    )


def _unet_from_metadata(metadata: Mapping[str, Any]) -> torch.nn.Module:
    args = metadata.get("architecture_args") or {}
    try:
        return build_unet(
            encoder=str(args["encoder"]),
            in_channels=int(args["in_channels"]),
            classes=int(args["classes"]),
        )
    except (KeyError, TypeError) as err:
        raise EngineError(
            f"The model's description lacks the U-Net argument {err}; the file is damaged or "
            "was not written by LandSeg."
        ) from None


def _unsupervised_from_metadata(metadata: Mapping[str, Any]) -> torch.nn.Module:
    from .nets import network_from_metadata  # ISB, DFC and W-Net (core/unsupervised.py)

    return network_from_metadata(metadata)


#: Builders by architecture name; other modules add theirs here.
BUILDERS: dict[str, Callable[[Mapping[str, Any]], torch.nn.Module]] = {
    "unet": _unet_from_metadata,
    "isb": _unsupervised_from_metadata,
    "dfc": _unsupervised_from_metadata,
    "wnet": _unsupervised_from_metadata,
}


def build_network(metadata: Mapping[str, Any]) -> torch.nn.Module:
    """Build the (untrained) network a model file describes.

    Parameters
    ----------
    metadata : mapping
        A model's description (:func:`core.modelfile.read_metadata`); uses
        ``architecture`` and ``architecture_args``.

    Returns
    -------
    torch.nn.Module
        The network with random weights; load the file's ``state_dict`` into it.
    """
    name = metadata.get("architecture")
    builder = BUILDERS.get(str(name))
    if builder is None:
        raise EngineError(
            f"This LandSeg cannot build architecture {name!r} (it knows "
            f"{', '.join(sorted(BUILDERS))}). Update the plugin or use another model file."
        )
    return builder(metadata)


def load_encoder_weights(network: torch.nn.Module, path: str | os.PathLike[str]) -> list[str]:
    """Load pretrained encoder weights from a local file into ``network.encoder``.

    Accepts a ``.safetensors`` file or a PyTorch checkpoint read with
    ``torch.load(weights_only=True)`` (which refuses pickled code). Keys may be the
    encoder's own (``conv1.weight``) or prefixed with ``encoder.``. Tensors whose shape
    differs (the first convolution when the band count differs from the pretrained
    model's, for instance) are skipped.

    Returns
    -------
    list of str
        Keys that were skipped (shape mismatch or unknown).

    Raises
    ------
    EngineError
        If the file cannot be read safely or matches none of the encoder's weights.
    """
    import torch

    file = Path(path)
    if not file.is_file():
        raise EngineError(f"Encoder weights file {file} does not exist.")
    try:
        if file.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(os.fspath(file))
        else:
            state = torch.load(os.fspath(file), map_location="cpu", weights_only=True)
    except Exception as err:
        raise EngineError(
            f"Cannot read encoder weights from {file} safely ({type(err).__name__}: {err}). "
            "Give a .safetensors file or a plain PyTorch state_dict (no pickled objects)."
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise EngineError(f"{file} holds no state_dict (a mapping of names to tensors).")
    encoder = network.encoder  # type: ignore[attr-defined]
    own = encoder.state_dict()
    matched: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    for key, tensor in state.items():
        name = key[len("encoder.") :] if key.startswith("encoder.") else key
        if name in own and isinstance(tensor, torch.Tensor) and own[name].shape == tensor.shape:
            matched[name] = tensor
        else:
            skipped.append(key)
    if not matched:
        raise EngineError(
            f"None of the weights in {file} fit the encoder; give weights of the same encoder "
            "architecture."
        )
    encoder.load_state_dict(matched, strict=False)
    return skipped
