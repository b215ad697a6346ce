"""Test-time augmentation: average a network's class probabilities over the square's symmetries.

A land-cover map has no up or down: a field seen mirrored or turned by 90 degrees is the
same field. :class:`SymmetryAverage` runs the network on the 8 flips and 90-degree
rotations of each tile (4 flips for non-square input), turns each answer back and
averages the softmax probabilities. The average is steadier under small changes of the
input (a new acquisition date) than any one pass, at 8 times the compute.
"""

from __future__ import annotations

import torch

__all__ = ["SymmetryAverage", "symmetries"]


def symmetries(square: bool = True) -> list[tuple[bool, int]]:
    """(flip left-right, quarter turns) pairs: 8 for square tiles, 4 flips otherwise."""
    if square:
        return [(flip, k) for flip in (False, True) for k in range(4)]
    return [(False, 0), (True, 0), (False, 2), (True, 2)]


class SymmetryAverage(torch.nn.Module):
    """Wrap a network so that it returns log mean probabilities over the symmetries.

    The output is ``log(mean_s T_s^-1 softmax(network(T_s x)))``: its softmax is the
    averaged probability, so it drops in wherever the network's logits went (the tiled
    inference takes the softmax of what the network returns).

    Parameters
    ----------
    network : torch.nn.Module
        Maps (N, C, H, W) to (N, K, H, W) logits.
    """

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Average the probabilities of the transformed inputs (transformed back)."""
        ops = symmetries(x.shape[-1] == x.shape[-2])
        total = None
        for flip, k in ops:
            y = x.flip(-1) if flip else x
            if k:
                y = torch.rot90(y, k, (-2, -1))
            p = torch.softmax(self.network(y).float(), dim=1)
            if k:
                p = torch.rot90(p, -k, (-2, -1))
            if flip:
                p = p.flip(-1)
            total = p if total is None else total + p
        assert total is not None
        return torch.log(torch.clamp(total / len(ops), min=1e-12))
