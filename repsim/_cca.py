"""Canonical correlation analysis: :func:`cca` and its mean, :func:`mean_cca`.

>>> import torch
>>> from repsim._cca import cca, mean_cca
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(1000, 20, dtype=torch.float64, generator=g)
>>> y = torch.cat([x[:, :10], torch.randn(1000, 20, dtype=torch.float64, generator=g)], 1)
>>> res = cca(x, y)
>>> res.rho.shape, res.x_weights.shape, res.y_weights.shape
(torch.Size([20]), torch.Size([20, 20]), torch.Size([30, 20]))
>>> [round(float(r), 3) for r in res.rho[9:12]]   # 10 shared directions, then noise
[1.0, 0.215, 0.186]
>>> round(float(mean_cca(x, x @ torch.randn(20, 20, dtype=torch.float64, generator=g) + 3)), 10)
1.0

The covariances, whitening and ill-posed-input handling (warnings, ``epsilon``) are
:mod:`repsim._cca_core`; SVCCA and PWCCA are :mod:`repsim._cca_weighted`.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch

from ._cca_core import as_float64, canonical, canonical_cov, check_epsilon

__all__ = ["CCAResult", "cca", "mean_cca", "mean_cca_cov"]


class CCAResult(NamedTuple):
    """Result of :func:`cca`.

    Attributes
    ----------
    rho : (k,) tensor
        Canonical correlations in descending order, in ``[0, 1]``; ``k = min(rank x, rank y)``.
    x_weights : (n_features_x, k) tensor
        ``(x - x.mean(0)) @ x_weights`` are the canonical variates of ``x``: unit variance
        (``n - 1`` normalisation), mutually uncorrelated.
    y_weights : (n_features_y, k) tensor
        Same for ``y``; ``corr(variate_x[:, i], variate_y[:, i]) = rho[i]``.
    """

    rho: torch.Tensor
    x_weights: torch.Tensor
    y_weights: torch.Tensor


def cca(x: Any, y: Any, *, epsilon: float = 0.0, dtype: torch.dtype = torch.float64) -> CCAResult:
    """Canonical correlation analysis of two sets of activations.

    Parameters
    ----------
    x : (n_samples, n_features_x) tensor or array
    y : (n_samples, n_features_y) tensor or array
    epsilon : float
        Ridge added to both covariances (``Sxx + epsilon * I``); 0 (default) is plain CCA.
    dtype : torch.dtype
        Computation dtype (default float64).

    Returns
    -------
    CCAResult
        ``rho`` (k,), ``x_weights`` (n_features_x, k), ``y_weights`` (n_features_y, k) in the
        computation dtype, on the input's device; ``k = min(rank x, rank y)`` (``min(d_x, d_y)``
        with ``epsilon > 0``). ``(x - x.mean(0)) @ x_weights`` are unit-variance, mutually
        uncorrelated canonical variates with ``corr(variate_x[:, i], variate_y[:, i]) = rho[i]``.

    Warns
    -----
    UserWarning
        If a side has ``n <= d``, a rank-deficient covariance, or ``rank x + rank y > n - 1``.

    Raises
    ------
    ValueError
        Different numbers of samples, non-2-D input, NaN/Inf, fewer than 2 samples, a constant
        input, or a negative ``epsilon``.

    Examples
    --------
    >>> import torch
    >>> from repsim._cca import cca
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(500, 8, dtype=torch.float64, generator=g)
    >>> res = cca(x, 2 * x @ torch.randn(8, 8, dtype=torch.float64, generator=g) + 1)
    >>> bool(torch.allclose(res.rho, torch.ones(8, dtype=torch.float64)))
    True
    """
    out = canonical(x, y, epsilon=epsilon, dtype=dtype, weights=True, what="cca")
    return CCAResult(out.rho, out.x_weights, out.y_weights)


def mean_cca(
    x: Any, y: Any, *, epsilon: float = 0.0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Mean canonical correlation, the "CCA similarity" of Raghu et al. (2017).

    Parameters
    ----------
    x : (n_samples, n_features_x) tensor or array
    y : (n_samples, n_features_y) tensor or array
    epsilon, dtype
        As in :func:`cca`.

    Returns
    -------
    0-dim float64 tensor in ``[0, 1]`` on the input's device: ``cca(x, y).rho.mean()``
    (computed from the singular values alone, without the weights).
    """
    out = canonical(x, y, epsilon=epsilon, dtype=dtype, weights=False, what="mean_cca")
    return as_float64(out.rho.mean())


def mean_cca_cov(
    sxx: torch.Tensor, syy: torch.Tensor, sxy: torch.Tensor, n: int, *, epsilon: float = 0.0
) -> torch.Tensor:
    """:func:`mean_cca` from the covariances of ``n`` samples (``n - 1`` normalisation).

    sxx : (d_x, d_x), syy : (d_y, d_y), sxy : (d_x, d_y) tensors. Returns a 0-dim float64 tensor.
    """
    eps = check_epsilon(epsilon)
    out = canonical_cov(sxx, syy, sxy, n, epsilon=eps, weights=False, what="mean_cca")
    return as_float64(out.rho.mean())
