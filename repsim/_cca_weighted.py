"""The weighted summaries of CCA: SVCCA (Raghu et al. 2017) and PWCCA (Morcos et al. 2018).

>>> import torch
>>> from repsim._cca_weighted import pwcca, svcca
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(500, 16, dtype=torch.float64, generator=g)
>>> q = torch.linalg.qr(torch.randn(16, 16, dtype=torch.float64, generator=g))[0]
>>> round(float(svcca(x, 2 * x @ q + 1)), 10), round(float(pwcca(x, 2 * x @ q + 1)), 10)
(1.0, 1.0)

Both run on the covariances of :mod:`repsim._cca_core` (three products over the samples);
the ``*_cov`` forms take those covariances directly (used by :mod:`repsim._linear_stats`).
"""
from __future__ import annotations

from typing import Any

import torch

from ._cca_core import (CanonicalSolution, as_float64, canonical, canonical_cov,
                        check_epsilon, check_keep, covariances, solve, svd_whitening)
from ._validate import as_pair

__all__ = ["svcca", "svcca_cov", "pwcca", "pwcca_cov"]


def svcca(
    x: Any,
    y: Any,
    *,
    keep: float = 0.99,
    epsilon: float = 0.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """SVCCA (Raghu et al. 2017): mean CCA of the top singular directions of each side.

    On each side, keep the fewest top singular directions of the centred data whose squared
    singular values sum to at least ``keep`` of the total, project onto them, and return the
    mean canonical correlation of the projections. The singular directions come from the
    ``d x d`` covariance eigendecomposition, and the projected covariances are diagonal, so
    the whole computation stays in covariance space (three products over the samples).

    Parameters
    ----------
    x : (n_samples, n_features_x) tensor or array
    y : (n_samples, n_features_y) tensor or array
    keep : float
        Fraction of the variance to keep on each side, ``0 < keep <= 1`` (default 0.99).
        ``keep = 1`` gives :func:`mean_cca`.
    epsilon, dtype
        As in :func:`cca` (``epsilon`` is added to the kept variances).

    Returns
    -------
    0-dim float64 tensor in ``[0, 1]`` on the input's device.
    """
    k = check_keep(keep)
    eps = check_epsilon(epsilon)
    sxx, syy, sxy, n = covariances(x, y, dtype, "svcca")
    return svcca_cov(sxx, syy, sxy, n, keep=k, epsilon=eps)


def svcca_cov(
    sxx: torch.Tensor,
    syy: torch.Tensor,
    sxy: torch.Tensor,
    n: int,
    *,
    keep: float = 0.99,
    epsilon: float = 0.0,
) -> torch.Tensor:
    """:func:`svcca` from the covariances of ``n`` samples (shapes as in :func:`mean_cca_cov`)."""
    k = check_keep(keep)
    eps = check_epsilon(epsilon)
    wx, _ = svd_whitening(sxx, n=n, name="x", keep=k, epsilon=eps)
    wy, _ = svd_whitening(syy, n=n, name="y", keep=k, epsilon=eps)
    rho, _, _ = solve(sxy, wx, wy, n=n, epsilon=eps, weights=False, what="svcca")
    return as_float64(rho.mean())


def pwcca(
    x: Any,
    y: Any,
    *,
    epsilon: float = 0.0,
    weights: str = "centered",
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Projection-weighted CCA (Morcos et al. 2018).

    ``sum_i alpha_i rho_i`` with ``alpha_i`` proportional to ``sum_j |<h_i, z_j>|``, where
    ``h_i`` are the canonical variates and ``z_j`` the centred neuron columns of the side with
    fewer neurons (``x`` when ``d_x <= d_y``), and ``sum_i alpha_i = 1``. The inner products are
    ``(n - 1) * (Sxx @ x_weights)``, so no ``n``-sized work is added to :func:`cca`.

    Not symmetric in general: with equal widths the weights come from ``x``; with different
    widths they come from the narrower side whichever argument it is.

    Parameters
    ----------
    x : (n_samples, n_features_x) tensor or array
    y : (n_samples, n_features_y) tensor or array
    epsilon, dtype
        As in :func:`cca`.
    weights : {"centered", "svcca_code"}
        How ``alpha`` is computed. ``"centered"`` (default): the paper's formula above, on
        centred data -- CCA itself is defined on centred data, so the weights, like every
        other quantity here, do not change when the activations are shifted.
        ``"svcca_code"``: the rule of google/svcca's ``compute_pwcca``, from which most
        published PWCCA numbers come. With ``u`` the left singular vectors of
        ``Sxx^(-1/2) Sxy Syy^(-1/2)`` (``u = Sxx^(1/2) @ x_weights``; no ``Sxx^(-1/2)`` is
        applied), the directions ``(x - mu) @ u + mu`` -- the means added back, ``mu_i`` to
        direction ``i`` -- are orthonormalised by QR in the order of ``rho`` and projected
        onto the *uncentred* neurons: ``alpha_i ~ sum_j |<q_i, x_j>|``. These directions
        depend on the arbitrary sign of each singular vector; here each column of ``u`` has
        its largest-magnitude entry positive (scikit-learn's ``svd_flip`` rule), so the value
        is reproducible. Other signs moved it by up to 0.025 on random ReLU layers, where the
        two options differed by 0.027-0.047 (``"svcca_code"`` higher). When ``y`` is the
        narrower side its analogue is used (the released code indexes ``x`` there and
        fails). On ill-posed input (rank-deficient, ``n <= d``) the original's ``pinv``
        keeps null directions that are dropped here.

    Returns
    -------
    0-dim float64 tensor in ``[0, 1]`` on the input's device.

    Raises
    ------
    ValueError
        As :func:`cca`, and for an unknown ``weights``.
    """
    if weights not in ("centered", "svcca_code"):
        raise ValueError(f"weights: expected 'centered' or 'svcca_code', got {weights!r}")
    out = canonical(x, y, epsilon=epsilon, dtype=dtype, weights=True, what="pwcca")
    if weights == "centered":
        return _projection_weighted(out)
    return _svcca_code_weighted(out, *as_pair(x, y, dtype=dtype))
def pwcca_cov(
    sxx: torch.Tensor, syy: torch.Tensor, sxy: torch.Tensor, n: int, *, epsilon: float = 0.0
) -> torch.Tensor:
    """:func:`pwcca` from the covariances of ``n`` samples (shapes as in :func:`mean_cca_cov`)."""
    eps = check_epsilon(epsilon)
    out = canonical_cov(sxx, syy, sxy, n, epsilon=eps, weights=True, what="pwcca")
    return _projection_weighted(out)


def _projection_weighted(out: CanonicalSolution) -> torch.Tensor:
    """PWCCA's weighted mean of ``rho``, weights from the side with fewer neurons."""
    if out.sxx.shape[0] <= out.syy.shape[0]:
        cov, w = out.sxx, out.x_weights
    else:
        cov, w = out.syy, out.y_weights
    alpha = (cov @ w).abs().sum(0)  # (k,): sum_j |<h_i, z_j>| / (n - 1)
    alpha = alpha / alpha.sum()
    return as_float64((alpha * out.rho).sum())


def _svcca_code_weighted(out: CanonicalSolution, x: torch.Tensor,
                         y: torch.Tensor) -> torch.Tensor:
    """PWCCA with google/svcca's ``compute_pwcca`` weights (see :func:`pwcca`)."""
    if out.sxx.shape[0] <= out.syy.shape[0]:
        acts, cov, w = x, out.sxx, out.x_weights
    else:
        acts, cov, w = y, out.syy, out.y_weights
    evals, evecs = torch.linalg.eigh(cov)
    u = (evecs * evals.clamp(min=0).sqrt()) @ evecs.mT @ w  # (d, k): Sxx^(1/2) W, orthonormal
    peak = u.abs().argmax(0)
    u = u * torch.sign(u[peak, torch.arange(u.shape[1], device=u.device)])  # svd_flip signs
    mean = acts.mean(0)
    dirns = (acts - mean) @ u + mean[: u.shape[1]]  # (n, k): direction i gets mu_i back
    q, _ = torch.linalg.qr(dirns)  # (n, k) orthonormal, in the order of rho
    alpha = (q.mT @ acts).abs().sum(1)  # (k,): projections on the uncentred neurons
    return as_float64((alpha / alpha.sum() * out.rho).sum())
