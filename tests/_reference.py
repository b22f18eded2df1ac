"""References shared by the tests: independent float64 numpy formulas (explicit n x n
matrices), and single-pair forms of the HSIC estimators that the library computes in batches."""
from __future__ import annotations

import numpy as np
import torch

from repsim._hsic import center_features, center_gram, cross_sq_norm, hsic_unbiased_from_stats
from repsim._hsic import kernel_stats_features
from repsim._packed_gram import gram_panel, packed_panels, packed_size

__all__ = ["np_hsic_song", "hsic_biased_features", "hsic_biased_gram", "hsic_unbiased_features",
           "packed_gram"]


def np_hsic_song(k: np.ndarray, l: np.ndarray) -> float:
    """Song et al. (2012), eq. (5), transcribed with explicit matrices."""
    n = k.shape[0]
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    one = np.ones(n)
    value = (np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
             - 2.0 / (n - 2) * (one @ kt @ lt @ one))
    return float(value / (n * (n - 3)))


# Single-pair forms of the library's estimators, checked against its batched code paths.


def hsic_biased_features(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Biased linear HSIC in feature space, ``||Yc^T Xc||_F^2 / (n - 1)^2``.

    x : (n, d_x) tensor, y : (n, d_y) tensor. Returns a 0-dim tensor.
    """
    n = x.shape[0]
    xc, yc = center_features(x), center_features(y)
    return cross_sq_norm(yc, xc) / (n - 1) ** 2


def hsic_biased_gram(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Biased HSIC from Gram matrices, ``tr(K H L H) / (n - 1)^2 = <HKH, HLH>_F / (n - 1)^2``.

    k, l : (n, n) symmetric tensors. Returns a 0-dim tensor.
    """
    n = k.shape[0]
    return (center_gram(k) * center_gram(l)).sum() / (n - 1) ** 2


def hsic_unbiased_features(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased linear HSIC (Song et al. 2012) in ``O(n d_x d_y)``, no ``(n, n)`` Gram.

    x : (n, d_x) tensor, y : (n, d_y) tensor (centring not required), n >= 4.
    Returns a 0-dim tensor (may be negative).
    """
    trace = cross_sq_norm(x, y)  # tr(K L) = ||X^T Y||_F^2
    diag_k, k1 = kernel_stats_features(x)
    diag_l, l1 = kernel_stats_features(y)
    return hsic_unbiased_from_stats(trace, diag_k, diag_l, k1, l1)


def packed_gram(
    x: torch.Tensor, *, panel: int | None = None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """The linear Gram ``K = X X^T`` packed so that ``2 <packed(X), packed(Y)> = <K, L>_F``.

    Only the upper block triangle of ``K`` is computed, in row panels of ``panel`` samples;
    the diagonal blocks (which hold each off-diagonal entry twice) are scaled by ``1/sqrt(2)``,
    so the strictly upper blocks stand for their mirror images. Costs about
    ``(1 + panel/n) / 2`` of the full ``X X^T``.

    Parameters
    ----------
    x : (n, d) tensor
    panel : int, optional
        Rows per panel (default :func:`gram_panel`).
    out : 1-D tensor of :func:`packed_size` entries, optional
        Written in place (e.g. a row of a preallocated stack).

    Returns
    -------
    1-D tensor of ``packed_size(n, panel)`` entries.
    """
    n = x.shape[0]
    panel = panel or gram_panel(n)
    if out is None:
        out = x.new_empty(packed_size(n, panel))
    packed_panels(x[None], out[None], slice(0, 1), panel)
    return out
