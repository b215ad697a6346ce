"""Training-time augmentation of image/label tile batches (torch, same ops on both)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["augment_batch"]


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
