r"""Soft normalized cut loss of W-Net on a local window (fits memory for 256 x 256 tiles).

Shi & Malik's normalized cut of a K-way partition, with hard memberships replaced by the
encoder's soft ones ``p_k(i)`` (Xia & Kulis, 2017):

.. math::

    J_{soft-Ncut}(V, K) = K - \sum_{k=1}^{K}
        \frac{\sum_{i,j} w_{ij}\, p_k(i)\, p_k(j)}{\sum_{i,j} w_{ij}\, p_k(i)}

with ``w_ij = exp(-||F_i - F_j||^2 / sigma_i^2) * exp(-||X_i - X_j||^2 / sigma_x^2)`` for
pixels closer than ``radius`` and 0 beyond. Only pixel pairs within the radius have a
weight, so the affinity matrix is never formed: the sums run over the ~``pi r^2``
offsets of the window, each a shifted element-wise product. Memory is a few tensors of
the size of ``p`` (the dense formulation needs ``(HW)^2`` weights: 17 GB for one
256 x 256 tile in float32).

``F`` is the stretched band vector; ``||F_i - F_j||^2`` is the *mean* squared band
difference, so ``sigma_i`` means the same for 3 or 10 bands (LandSeg's choice: the
paper's sigma_I = 10 is on 0-255 grey values).

References
----------
.. [1] J. Shi and J. Malik, "Normalized cuts and image segmentation", IEEE TPAMI 22(8),
   888-905, 2000.
.. [2] X. Xia and B. Kulis, "W-Net: a deep model for fully unsupervised image
   segmentation", arXiv:1711.08506, 2017.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["NcutWeights", "ncut_weights", "soft_ncut_loss"]

#: Weights of one offset: (dy, dx, w) with w of shape (B, 1, H, W), 0 where j is outside.
NcutWeights = list[tuple[int, int, torch.Tensor]]


def _offsets(radius: int) -> list[tuple[int, int]]:
    """Offsets (dy, dx) != (0, 0) with dy^2 + dx^2 < radius^2, one of each +-pair."""
    out = []
    for dy in range(0, radius):
        for dx in range(-radius + 1, radius):
            if (dy, dx) <= (0, 0) or dy * dy + dx * dx >= radius * radius:
                continue
            out.append((dy, dx))
    return out


def _shift(x: torch.Tensor, dy: int, dx: int, radius: int) -> torch.Tensor:
    """``x[..., i + dy, j + dx]`` with zeros outside (x already padded by ``radius``)."""
    h = x.shape[-2] - 2 * radius
    w = x.shape[-1] - 2 * radius
    return x[..., radius + dy : radius + dy + h, radius + dx : radius + dx + w]


@torch.no_grad()
def ncut_weights(
    image: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    radius: int = 5,
    sigma_i: float = 0.05,
    sigma_x: float = 4.0,
) -> NcutWeights:
    """Affinities of every pixel with its neighbours within ``radius`` (one side).

    Parameters
    ----------
    image : (B, C, H, W) float tensor
        Pixel features (stretched bands).
    valid : (B, 1, H, W) bool tensor, optional
        Pixels that take part; others have no weight.
    radius : int
        Pixels closer than this (Euclidean, in pixels) are linked; 5 in the paper.
    sigma_i : float
        Feature scale (root-mean-square band difference).
    sigma_x : float
        Spatial scale in pixels; 4 in the paper.

    Returns
    -------
    list of (dy, dx, w)
        ``w[b, 0, i]`` links pixel ``i`` with ``i + (dy, dx)``. Only one of each pair of
        opposite offsets is kept; the weights are symmetric.
    """
    image = image.float()
    n_bands = image.shape[1]
    mask = torch.ones_like(image[:, :1]) if valid is None else valid.to(image.dtype)
    padded = F.pad(image, (radius,) * 4)
    padded_mask = F.pad(mask, (radius,) * 4)
    weights = []
    for dy, dx in _offsets(radius):
        diff = image - _shift(padded, dy, dx, radius)
        feature = diff.pow(2).sum(dim=1, keepdim=True) / n_bands
        spatial = float(torch.exp(torch.tensor(-(dy * dy + dx * dx) / sigma_x**2)))
        w = torch.exp(-feature / sigma_i**2) * spatial
        w = w * mask * _shift(padded_mask, dy, dx, radius)
        weights.append((dy, dx, w))
    return weights


def soft_ncut_loss(
    probs: torch.Tensor,
    weights: NcutWeights,
    valid: torch.Tensor | None = None,
    *,
    radius: int = 5,
) -> torch.Tensor:
    """Soft normalized cut of soft cluster memberships, averaged over the batch.

    Parameters
    ----------
    probs : (B, K, H, W) float tensor
        Soft memberships (softmax over K).
    weights : list of (dy, dx, w)
        From :func:`ncut_weights` on the same image and ``radius``.
    valid : (B, 1, H, W) bool tensor, optional
        Pixels that take part (the diagonal ``w_ii = 1`` only there).
    radius : int
        The ``radius`` the weights were built with.

    Returns
    -------
    torch.Tensor
        Scalar ``K - sum_k assoc(A_k, A_k) / assoc(A_k, V)``, in ``[0, K - 1]`` for a
        partition; lower is a better cut.
    """
    probs = probs.float()
    n_clusters = probs.shape[1]
    self_w = torch.ones_like(probs[:, :1]) if valid is None else valid.to(probs.dtype)
    p = probs * self_w
    padded = F.pad(p, (radius,) * 4)
    # q(i) = sum_j w_ij p(j) and d(i) = sum_j w_ij, over both offsets of each pair.
    # In-place accumulation: each term keeps only a view of ``padded`` for the backward
    # pass, so memory stays at a few tensors of the size of ``p`` for any radius.
    q = p.clone()
    with torch.no_grad():
        degree = self_w.clone()
        backs = []
        for dy, dx, w in weights:
            w_back = _shift(F.pad(w, (radius,) * 4), -dy, -dx, radius)  # w(i, i - (dy, dx))
            degree += w + w_back
            backs.append(w_back)
    for (dy, dx, w), w_back in zip(weights, backs, strict=True):
        q.addcmul_(w, _shift(padded, dy, dx, radius))
        q.addcmul_(w_back, _shift(padded, -dy, -dx, radius))
    assoc = (p * q).sum(dim=(2, 3))  # (B, K)
    total = (p * degree).sum(dim=(2, 3))  # (B, K)
    ratio = assoc / total.clamp_min(1e-8)
    return (n_clusters - ratio.sum(dim=1)).mean()
