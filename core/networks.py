"""Every network LandSeg trains and applies, and the one registry that rebuilds them.

- :func:`build_unet`: the supervised U-Net, a segmentation_models_pytorch encoder with
  random weights (no download at run time; :func:`load_encoder_weights` reads local ones).
- :class:`KanezakiNet`: the network of ISB [1]_ and DFC [2]_; :class:`WNet`: W-Net [3]_.
  Both are fully convolutional and map a ``(B, C, H, W)`` float tensor to ``(B, K, H, W)``
  cluster scores.

:func:`build_network` is the one place that turns a model file's metadata (see
:mod:`core.modelfile`) into a ``torch.nn.Module``; it dispatches once, on
``metadata["architecture"]``, through :data:`BUILDERS`. Trained weights come from the
model file.

References
----------
.. [1] A. Kanezaki, "Unsupervised image segmentation by backpropagation", IEEE ICASSP,
   1543-1547, 2018.
.. [2] W. Kim, A. Kanezaki and M. Tanaka, "Unsupervised learning of image segmentation
   based on differentiable feature clustering", IEEE Trans. Image Processing 29,
   8055-8068, 2020.
.. [3] X. Xia and B. Kulis, "W-Net: a deep model for fully unsupervised image
   segmentation", arXiv:1711.08506, 2017.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .params import ENCODERS
from .protocol import EngineError

__all__ = [
    "BUILDERS",
    "ENCODERS",
    "KanezakiNet",
    "WNet",
    "build_kanezaki",
    "build_network",
    "build_network_checked",
    "build_unet",
    "build_wnet",
    "load_encoder_weights",
]


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


def _kanezaki_from_metadata(metadata: Mapping[str, Any]) -> torch.nn.Module:
    args = metadata.get("architecture_args") or {}
    try:
        return build_kanezaki(
            in_channels=int(args["in_channels"]),
            n_channels=int(args["n_channels"]),
            n_conv=int(args["n_conv"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise _garbled(metadata, err) from None


def _wnet_from_metadata(metadata: Mapping[str, Any]) -> torch.nn.Module:
    args = metadata.get("architecture_args") or {}
    try:
        return build_wnet(
            in_channels=int(args["in_channels"]),
            n_clusters=int(args["n_clusters"]),
            hidden=int(args["hidden"]),
            dropout=float(args.get("dropout", 0.0)),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise _garbled(metadata, err) from None


def _garbled(metadata: Mapping[str, Any], err: Exception) -> EngineError:
    return EngineError(
        f"The model's description lacks or garbles the {metadata.get('architecture')} argument "
        f"{err}; the file is damaged or was not written by LandSeg."
    )


#: Builders by architecture name (the ``architecture`` of a model file's metadata).
BUILDERS: dict[str, Callable[[Mapping[str, Any]], torch.nn.Module]] = {
    "unet": _unet_from_metadata,
    "isb": _kanezaki_from_metadata,
    "dfc": _kanezaki_from_metadata,
    "wnet": _wnet_from_metadata,
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


def build_network_checked(metadata: dict[str, Any], state: dict[str, Any], model: str) -> Any:
    """Build a model file's network and load its weights (a clear error if they differ)."""
    network = build_network(metadata)
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise EngineError(
            f"{model}: the weights do not fit the described network ({str(err)[:200]}). The "
            "file is damaged; train the model again."
        ) from None
    return network


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
    encoder = network.encoder
    assert isinstance(encoder, nn.Module)
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


class KanezakiNet(nn.Module):
    """The feature extractor and response head of ISB [1]_ and DFC [2]_.

    ``conv3x3 -> ReLU -> BN`` (``n_conv`` times, the first from the input bands), then a
    ``1x1 conv -> BN`` head whose ``n_channels`` outputs are the response map; the cluster
    of a pixel is the argmax over channels. Same layer order as the authors' code (ReLU
    before batch normalisation; every block has its own convolution and normalisation).

    Parameters
    ----------
    in_channels : int
        Input bands C.
    n_channels : int
        Feature and response channels (``nChannel``), the largest number of clusters;
        100 in the papers.
    n_conv : int
        Number of 3x3 convolution blocks (``nConv``); 2 in the papers.

    Notes
    -----
    Maps ``(B, C, H, W)`` to ``(B, n_channels, H, W)`` responses; the receptive field is
    ``2 * n_conv + 1`` pixels.
    """

    def __init__(self, in_channels: int, *, n_channels: int = 100, n_conv: int = 2) -> None:
        super().__init__()
        if in_channels < 1 or n_channels < 2 or n_conv < 1:
            raise ValueError(
                f"KanezakiNet needs >= 1 band, >= 2 channels and >= 1 block, not "
                f"{in_channels}, {n_channels}, {n_conv}."
            )
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for index in range(n_conv):
            source = in_channels if index == 0 else n_channels
            self.convs.append(nn.Conv2d(source, n_channels, kernel_size=3, padding=1))
            self.norms.append(nn.BatchNorm2d(n_channels))
        self.head = nn.Conv2d(n_channels, n_channels, kernel_size=1)
        self.head_norm = nn.BatchNorm2d(n_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the response map ``(B, n_channels, H, W)``."""
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = norm(torch.relu(conv(x)))
        return self.head_norm(self.head(x))


class _Block(nn.Module):
    """Two ``conv -> BN -> ReLU -> dropout`` steps; separable convs as in W-Net's modules."""

    def __init__(self, source: int, target: int, *, separable: bool, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for step in range(2):
            channels = source if step == 0 else target
            if separable:
                layers += [
                    nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
                    nn.Conv2d(channels, target, 1),
                ]
            else:
                layers.append(nn.Conv2d(channels, target, 3, padding=1))
            layers += [nn.BatchNorm2d(target), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout2d(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class WNetUNet(nn.Module):
    """The U-shaped half of W-Net [3]_: 4 down and 4 up levels with skip connections.

    Channels ``h, 2h, 4h, 8h`` and ``16h`` at the bottom; max-pooling down,
    ``ConvTranspose2d`` (stride 2) up; the first and last modules use plain 3x3
    convolutions, the others depthwise-separable ones, as in the paper.

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output channels.
    hidden : int
        ``h``, channels of the first level (64 in the paper; LandSeg's default is
        smaller so that CPU training is practical).
    dropout : float
        Channel dropout after every convolution.

    Notes
    -----
    Maps ``(B, in, H, W)`` to ``(B, out, H, W)``; H and W must be multiples of 16.
    """

    LEVELS = 4

    def __init__(
        self, in_channels: int, out_channels: int, *, hidden: int = 16, dropout: float = 0.2
    ) -> None:
        super().__init__()
        widths = [hidden * 2**level for level in range(self.LEVELS + 1)]
        self.down = nn.ModuleList()
        source = in_channels
        for level, width in enumerate(widths):
            self.down.append(_Block(source, width, separable=level > 0, dropout=dropout))
            source = width
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for level in range(self.LEVELS - 1, -1, -1):
            width = widths[level]
            self.up.append(
                nn.ConvTranspose2d(
                    widths[level + 1], width, 3, stride=2, padding=1, output_padding=1
                )
            )
            self.merge.append(_Block(2 * width, width, separable=level > 0, dropout=dropout))
        self.out = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in, H, W)`` to ``(B, out, H, W)``."""
        skips = []
        for level, block in enumerate(self.down):
            if level:
                x = nn.functional.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([skips.pop(), up(x)], dim=1))
        return self.out(x)


class WNet(nn.Module):
    """W-Net [3]_: an encoder U-Net to K soft clusters and a decoder U-Net back to the image.

    ``forward`` returns the encoder's cluster scores ``(B, K, H, W)`` (what inference
    uses); :meth:`reconstruct` also runs the decoder on ``softmax(scores)``.

    Parameters
    ----------
    in_channels : int
        Input bands C.
    n_clusters : int
        K.
    hidden : int
        First-level channels of both U-Nets.
    dropout : float
        Channel dropout in both U-Nets.
    """

    def __init__(
        self, in_channels: int, *, n_clusters: int = 20, hidden: int = 16, dropout: float = 0.2
    ) -> None:
        super().__init__()
        if in_channels < 1 or n_clusters < 2:
            raise ValueError(
                f"W-Net needs >= 1 band and >= 2 clusters, not {in_channels}, {n_clusters}."
            )
        self.encoder = WNetUNet(in_channels, n_clusters, hidden=hidden, dropout=dropout)
        self.decoder = WNetUNet(n_clusters, in_channels, hidden=hidden, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the encoder's cluster scores (logits)."""
        return self.encoder(x)

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(scores, reconstruction)``; the decoder reads ``softmax(scores)``."""
        scores = self.encoder(x)
        return scores, self.decoder(torch.softmax(scores, dim=1))


def build_kanezaki(*, in_channels: int, n_channels: int = 100, n_conv: int = 2) -> KanezakiNet:
    """Build the ISB/DFC network (see :class:`KanezakiNet`)."""
    return KanezakiNet(in_channels, n_channels=n_channels, n_conv=n_conv)


def build_wnet(
    *, in_channels: int, n_clusters: int = 20, hidden: int = 16, dropout: float = 0.2
) -> WNet:
    """Build a W-Net (see :class:`WNet`)."""
    return WNet(in_channels, n_clusters=n_clusters, hidden=hidden, dropout=dropout)
