"""Orthogonal Procrustes shape distance (Ding et al. 2021; Williams et al. 2021).

>>> import torch
>>> from repsim._procrustes import procrustes_distance
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(300, 10, dtype=torch.float64, generator=g)
>>> q, _ = torch.linalg.qr(torch.randn(10, 10, dtype=torch.float64, generator=g))
>>> float(procrustes_distance(x, 3 * x @ q + 1)) < 1e-6
True
>>> round(float(procrustes_distance(x, torch.randn(300, 10, dtype=torch.float64, generator=g))), 3)
1.307

Both inputs are centred and scaled to unit Frobenius norm (``X``, ``Y``); the narrower one is
thought of as zero-padded to the wider width. Then

    min_Q ||X - Y Q||_F^2 = ||X||_F^2 + ||Y||_F^2 - 2 ||X^T Y||_* = 2 - 2 ||X^T Y||_*

over orthogonal ``Q`` (``||.||_*`` is the nuclear norm, the sum of singular values; the
optimum is ``Q = V U^T`` for ``X^T Y = U S V^T``). The distance is ``sqrt(2 - 2 ||X^T Y||_*)``
in ``[0, sqrt(2)]``; the angular version is ``arccos(||X^T Y||_*)`` in ``[0, pi/2]``. Both are
metrics on shapes and are 0 exactly when ``y = c * x @ Q + v`` (``c != 0``, ``Q`` with
orthonormal rows or columns, ``v`` a constant row). Because of the subtraction, values below
about ``sqrt(finfo(dtype).eps)`` (1e-8 in float64) are rounding noise.
"""
from __future__ import annotations

from typing import Any

import torch

from ._validate import as_pair, check_min_samples, check_variance

__all__ = ["procrustes_distance"]


# As in repsim._cca_core, centring is folded into the products (X^T Y - n mu_x mu_y^T) unless a
# column's mean is so large against its spread that the subtraction would lose precision.
_MAX_AMPLIFICATION = 16.0


def _centring(a: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Prepare one side: ``(a, mean or None, squared Frobenius norm of the centred a)``.

    ``mean`` is None when ``a`` came back explicitly centred.
    """
    n = a.shape[0]
    mean = a.mean(0)
    raw = torch.linalg.vector_norm(a, dim=0).square()  # column sums of squares
    centred = raw - n * mean.square()
    if bool((centred * _MAX_AMPLIFICATION >= raw).all()) and bool((raw > 0).all()):
        return a, mean, centred.sum()
    a = a - mean
    check_variance(a, name)
    return a, None, torch.linalg.matrix_norm(a).square()


def procrustes_distance(
    x: Any, y: Any, *, angular: bool = False, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Orthogonal Procrustes shape distance between two sets of activations.

    Parameters
    ----------
    x : (n_samples, n_features_x) tensor or array
    y : (n_samples, n_features_y) tensor or array
        The widths may differ.
    angular : bool
        Return the angular distance ``arccos(||X^T Y||_*)`` (in ``[0, pi/2]``) instead of the
        Euclidean ``sqrt(max(0, 2 - 2 ||X^T Y||_*))`` (in ``[0, sqrt(2)]``).
    dtype : torch.dtype
        Computation dtype (default float64).

    Returns
    -------
    0-dim float64 tensor on the input's device; 0 iff ``y = c * x @ Q + v``.

    Raises
    ------
    ValueError
        Different numbers of samples, non-2-D input, NaN/Inf, fewer than 2 samples or a
        constant input.
    """
    x, y = as_pair(x, y, dtype=dtype)
    check_min_samples(x.shape[0], 2, "procrustes_distance")
    n = x.shape[0]
    x, x_mean, x_sq = _centring(x, "x")
    y, y_mean, y_sq = _centring(y, "y")
    cross = x.mT @ y  # centred X^T Y if either side is centred, else correct it below
    if x_mean is not None and y_mean is not None:
        cross.addr_(x_mean, y_mean, alpha=-n)
    # ||X^T Y||_* of the unit-norm shapes
    nuclear = (torch.linalg.svdvals(cross).sum() / (x_sq * y_sq).sqrt()).clamp(0.0, 1.0)
    if angular:
        return torch.arccos(nuclear).to(torch.float64)
    return (2.0 - 2.0 * nuclear).clamp(min=0.0).sqrt().to(torch.float64)
