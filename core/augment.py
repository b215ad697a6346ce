"""Training-time augmentation of image/label tile batches (torch, same ops on both)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["acquisition_jitter", "augment_batch"]


def augment_batch(
    images: torch.Tensor,
    targets: torch.Tensor,
    generator: torch.Generator,
    *,
    geometric: bool = True,
    gain: float = 0.05,
    offset: float = 0.05,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly flip, rotate and radiometrically jitter a batch.

    Each tile gets one of the 8 symmetries of the square (flips and 90-degree
    rotations, applied identically to image and labels) and, per band, a gain drawn
    from N(1, ``gain``) and an offset from N(0, ``offset``) in normalised units (a mild
    brightness/contrast change; labels unchanged).

    Parameters
    ----------
    images : (N, C, H, W) float tensor
        Normalised bands; H == W (square tiles) for the rotations.
    targets : (N, H, W) int64 tensor
        Class indices (ignored pixels included).
    generator : torch.Generator
        Source of randomness (seeded by the caller, for reproducibility).
    geometric : bool
        Apply flips and rotations.
    gain, offset : float
        Standard deviations of the radiometric jitter; 0 disables it.

    Returns
    -------
    images, targets : tensors
        Augmented copies, same shapes.
    """
    import torch

    n, c = images.shape[:2]
    if geometric:
        ops = torch.randint(0, 8, (n,), generator=generator).tolist()
        out_x, out_y = [], []
        for i, op in enumerate(ops):
            x, y = images[i], targets[i]
            if op >= 4:
                x, y = x.flip(-1), y.flip(-1)
            k = op % 4
            if k:
                x, y = torch.rot90(x, k, (-2, -1)), torch.rot90(y, k, (-2, -1))
            out_x.append(x)
            out_y.append(y)
        images, targets = torch.stack(out_x), torch.stack(out_y)
    if gain > 0 or offset > 0:
        scale = 1 + gain * torch.randn((n, c, 1, 1), generator=generator)
        shift = offset * torch.randn((n, c, 1, 1), generator=generator)
        images = images * scale.to(images.device) + shift.to(images.device)
    return images.contiguous(), targets.contiguous()


def acquisition_jitter(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    gain: float = 0.15,
    offset: float = 0.3,
    brightness: float = 0.2,
    blur: float = 0.25,
    noise: float = 0.05,
) -> torch.Tensor:
    """Make each tile look as if taken on another date (labels unchanged).

    Per tile: a per-band gain drawn from U(1 - ``gain``, 1 + ``gain``) and offset from
    U(-``offset``, ``offset``) (illumination, atmosphere, calibration), one brightness
    shift U(-``brightness``, ``brightness``) common to every band (haze, sun angle),
    with probability ``blur`` a 3x3 Gaussian blur of sigma U(0.5, 1) (a softer sensor or
    resampling), and Gaussian noise of standard deviation U(0, ``noise``). Values are in
    normalised units (about one standard deviation per unit).

    Parameters
    ----------
    images : (N, C, H, W) float tensor
        Normalised bands.
    generator : torch.Generator
        Source of randomness (seeded by the caller): the same seed gives the same result.
    gain, offset, brightness, blur, noise : float
        Strengths as above; 0 disables each.

    Returns
    -------
    (N, C, H, W) float tensor
        A jittered copy.
    """
    import torch
    import torch.nn.functional as F

    n, c = images.shape[:2]
    device = images.device

    def uniform(shape: tuple[int, ...], half: float) -> torch.Tensor:
        return ((torch.rand(shape, generator=generator) * 2 - 1) * half).to(device)

    out = images * (1 + uniform((n, c, 1, 1), gain)) + uniform((n, c, 1, 1), offset)
    out = out + uniform((n, 1, 1, 1), brightness)
    if blur > 0:
        chosen = (torch.rand(n, generator=generator) < blur).tolist()
        sigmas = (0.5 + 0.5 * torch.rand(n, generator=generator)).tolist()
        taps = torch.arange(-1, 2, dtype=torch.float32)
        for i, (on, sigma) in enumerate(zip(chosen, sigmas, strict=True)):
            if not on:
                continue
            k1 = torch.exp(-(taps**2) / (2 * sigma**2))
            k1 = k1 / k1.sum()
            kernel = (k1[:, None] * k1[None, :]).to(device, out.dtype).expand(c, 1, 3, 3)
            tile = F.pad(out[i : i + 1], (1, 1, 1, 1), mode="replicate")
            out[i] = F.conv2d(tile, kernel, groups=c)[0]
    if noise > 0:
        std = torch.rand((n, 1, 1, 1), generator=generator) * noise
        out = out + (torch.randn(out.shape, generator=generator) * std).to(device)
    return out.contiguous()
