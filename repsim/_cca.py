"""Canonical correlation analysis and its summaries: CCA, mean CCA, SVCCA and PWCCA.

>>> import torch
>>> from repsim._cca import cca, mean_cca, pwcca, svcca
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

Everything is computed from the three covariance matrices ``Sxx``, ``Syy`` and ``Sxy`` (three
products over the samples; on CPU the two symmetric ones use BLAS ``syrk`` at half the cost of
a GEMM); the rest is ``d x d`` work (Cholesky factors, triangular solves, one SVD of the
whitened cross-covariance), so the cost is close to that of two or three ``x.T @ y``.

Ill-posed input -- fewer samples than features, a rank-deficient covariance, or so many
directions that ``rank x + rank y > n - 1`` (then some canonical correlations are 1 by
construction) -- emits a :class:`UserWarning` naming what was found. With ``epsilon = 0`` the
null directions are then dropped with a ``pinv``-like relative cutoff (eigenvalues below
``max_eig * max(n, d) * finfo.eps``); with ``epsilon > 0`` the ridge ``Sxx + epsilon * I`` is
used instead. Well-posed input with ``epsilon = 0`` always takes the Cholesky path.
"""
from __future__ import annotations

import sys
import warnings
from typing import Any, Callable, NamedTuple

import torch

from . import _blas
from ._validate import as_pair, check_min_samples, check_variance

__all__ = ["CCAResult", "cca", "mean_cca", "svcca", "pwcca"]


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


class _Whitening(NamedTuple):
    """A whitening map ``M`` of one side (``M^T S M = I`` on the kept subspace).

    ``white(A)`` is ``M^T A`` for a ``(d, m)`` matrix ``A``; ``unwhite(U)`` is ``M U`` for an
    ``(r, k)`` matrix ``U``; ``rank`` is ``r``, the number of kept directions.
    """

    white: Callable[[torch.Tensor], torch.Tensor]
    unwhite: Callable[[torch.Tensor], torch.Tensor]
    rank: int


class _Canonical(NamedTuple):
    rho: torch.Tensor  # (k,)
    x_weights: torch.Tensor | None  # (d_x, k)
    y_weights: torch.Tensor | None  # (d_y, k)
    sxx: torch.Tensor  # (d_x, d_x)
    syy: torch.Tensor  # (d_y, d_y)


# --------------------------------------------------------------------------- helpers


def _warn(message: str) -> None:
    """``UserWarning`` attributed to the first caller outside this module."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def _check_keep(keep: Any) -> float:
    k = float(keep) if isinstance(keep, (int, float)) and not isinstance(keep, bool) else None
    if k is None or not 0.0 < k <= 1.0:
        raise ValueError(f"keep: expected a number with 0 < keep <= 1, got {keep!r}")
    return k


def _check_epsilon(epsilon: Any) -> float:
    try:
        eps = float(epsilon)
    except (TypeError, ValueError):
        raise ValueError(f"epsilon: expected a number >= 0, got {epsilon!r}") from None
    if not eps >= 0.0 or eps == float("inf"):  # also rejects NaN
        raise ValueError(f"epsilon: expected a finite number >= 0, got {epsilon!r}")
    return eps


# Centring is folded into the Gram matrices, S = (A^T A - n mu mu^T) / (n - 1), which saves
# writing a centred copy of each input (that copy costs about a quarter of a GEMM). The
# subtraction multiplies the rounding error of a column by (sum of squares) / (centred sum of
# squares) = 1 + mu^2 / var; above this factor the input is centred explicitly instead.
_MAX_AMPLIFICATION = 16.0


def _centred_gram(
    a: torch.Tensor, name: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Centred Gram matrix ``(A - mu)^T (A - mu)`` of one side.

    Returns
    -------
    gram : (d, d) tensor
    a : (n, d) tensor
        The input, or its centred copy when the shortcut was not precise enough.
    mean : (d,) tensor or None
        The column means still to be subtracted from ``a``; None when ``a`` was centred.
    """
    n = a.shape[0]
    mean = a.mean(0)
    gram = _blas.gram_t(a)
    raw = gram.diagonal().clone()  # sums of squares
    gram.addr_(mean, mean, alpha=-n)
    if bool((gram.diagonal() * _MAX_AMPLIFICATION >= raw).all()) and bool((raw > 0).all()):
        return gram, a, mean
    a = a - mean
    check_variance(a, name)
    return _blas.gram_t(a), a, None


def _covariances(
    x: Any, y: Any, dtype: torch.dtype, what: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Validate the inputs; return Sxx, Syy, Sxy (``n - 1`` normalisation) and ``n``.

    Three products over the samples (two Gram matrices, see :func:`_gram`, and one GEMM) --
    the only O(n d^2) work of the CCA family.
    """
    x, y = as_pair(x, y, dtype=dtype)
    n = x.shape[0]
    check_min_samples(n, 2, what)
    sxx, x, x_mean = _centred_gram(x, "x")
    syy, y, y_mean = _centred_gram(y, "y")
    sxy = _blas.cross_t(x, y)  # the exact centred cross product if either side is centred ...
    if x_mean is not None and y_mean is not None:  # ... else subtract n mu_x mu_y^T
        sxy.addr_(x_mean, y_mean, alpha=-n)
    scale = 1.0 / (n - 1)
    return sxx.mul_(scale), syy.mul_(scale), sxy.mul_(scale), n


def _cutoff(max_eig: torch.Tensor, n: int, d: int) -> torch.Tensor:
    """``pinv``-style relative rank cutoff for eigenvalues of a ``(d, d)`` covariance."""
    return max_eig * max(n, d) * torch.finfo(max_eig.dtype).eps


def _cholesky_whitening(chol: torch.Tensor) -> _Whitening:
    """Whitening by ``M = L^{-T}`` for ``S = L L^T`` (two triangular solves, no inverse)."""

    def white(a: torch.Tensor) -> torch.Tensor:  # L^{-1} A
        return torch.linalg.solve_triangular(chol, a, upper=False)

    def unwhite(u: torch.Tensor) -> torch.Tensor:  # L^{-T} U
        return torch.linalg.solve_triangular(chol.mT, u, upper=True)

    return _Whitening(white, unwhite, chol.shape[0])


def _eigen_whitening(evecs: torch.Tensor, evals: torch.Tensor) -> _Whitening:
    """Whitening by ``M = V diag(evals)^{-1/2}`` on the given eigenvectors ``V`` (d, r)."""
    m = evecs * evals.rsqrt()  # (d, r)
    return _Whitening(lambda a: m.mT @ a, lambda u: m @ u, m.shape[1])


def _whitening(
    cov: torch.Tensor,
    *,
    n: int,
    name: str,
    epsilon: float,
    what: str = "cca",
    force_eigen: bool = False,
) -> _Whitening:
    """Whitening of one side, with the ill-posed checks and the fallback.

    Well-posed (``n > d``, Cholesky succeeds, no pivot below the rank cutoff) and
    ``epsilon == 0``: Cholesky. ``epsilon > 0``: Cholesky of ``cov + epsilon * I``. Otherwise
    the eigendecomposition, dropping eigenvalues below the ``pinv``-style cutoff.
    ``force_eigen`` takes the eigen path without a warning (used by the tests).
    """
    d = cov.shape[0]
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    problems = []
    if n <= d:
        problems.append(f"n = {n} samples <= {d} features")
    chol, info = torch.linalg.cholesky_ex(cov)
    if int(info) != 0:
        problems.append("its covariance is not positive definite (Cholesky failed)")
    else:
        # Cholesky pivots L_ii^2 are residual variances of each feature given the previous
        # ones; one below the cutoff means a (near) linear dependence, so lambda_min is too.
        pivots = chol.diagonal().square()
        if bool(pivots.amin() <= _cutoff(cov.diagonal().amax(), n, d)):
            problems.append("its covariance is rank-deficient")

    if epsilon > 0:
        reg_chol, reg_info = torch.linalg.cholesky_ex(cov + epsilon * eye)
        if int(reg_info) == 0:
            if problems:
                _warn(
                    f"{what}: {name} is ill-posed ({'; '.join(problems)}); "
                    f"regularising its covariance with epsilon = {epsilon:g}"
                )
            return _cholesky_whitening(reg_chol)
        problems.append(f"Cholesky failed even with epsilon = {epsilon:g}")

    if not problems and not force_eigen:
        return _cholesky_whitening(chol)

    evals, evecs = torch.linalg.eigh(cov + epsilon * eye)  # ascending
    keep = evals > _cutoff(evals[-1], n, d)
    rank = int(keep.sum())
    if problems:
        _warn(
            f"{what}: {name} is ill-posed ({'; '.join(problems)}): its covariance has rank "
            f"{rank} of {d}; dropping {d - rank} null direction(s) (relative eigenvalue cutoff "
            "max_eig * max(n, d) * eps)."
            + ("" if epsilon > 0 else " Pass epsilon > 0 to regularise instead.")
        )
    return _eigen_whitening(evecs[:, keep], evals[keep])


def _warn_trivial(rank_x: int, rank_y: int, n: int, epsilon: float, what: str) -> None:
    """Warn when ``rank x + rank y > n - 1``: that many correlations are 1 by construction."""
    excess = rank_x + rank_y - (n - 1)
    if epsilon == 0 and excess > 0:
        _warn(
            f"{what}: rank x + rank y = {rank_x} + {rank_y} exceeds n - 1 = {n - 1} (the dimension "
            f"of the centred sample space), so at least {min(excess, rank_x, rank_y)} canonical "
            "correlation(s) are 1 by construction and carry no information. Use more samples, "
            "fewer dimensions (svcca) or epsilon > 0."
        )


def _solve(
    sxy: torch.Tensor,
    wx: _Whitening,
    wy: _Whitening,
    *,
    n: int,
    epsilon: float,
    weights: bool,
    what: str,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Canonical correlations (and weights) from the whitened cross-covariance."""
    _warn_trivial(wx.rank, wy.rank, n, epsilon, what)
    t = wx.white(wy.white(sxy.mT).mT)  # (r_x, r_y): M_x^T Sxy M_y
    if not weights:
        return torch.linalg.svdvals(t).clamp_(0.0, 1.0), None, None
    u, s, vh = torch.linalg.svd(t, full_matrices=False)  # t = U diag(rho) V^T
    return s.clamp_(0.0, 1.0), wx.unwhite(u), wy.unwhite(vh.mT)


def _canonical(
    x: Any,
    y: Any,
    *,
    epsilon: Any,
    dtype: torch.dtype,
    weights: bool,
    what: str,
    force_eigen: bool = False,
) -> _Canonical:
    eps = _check_epsilon(epsilon)
    sxx, syy, sxy, n = _covariances(x, y, dtype, what)
    return _canonical_cov(sxx, syy, sxy, n, epsilon=eps, weights=weights, what=what,
                          force_eigen=force_eigen)


def _canonical_cov(
    sxx: torch.Tensor,
    syy: torch.Tensor,
    sxy: torch.Tensor,
    n: int,
    *,
    epsilon: float,
    weights: bool,
    what: str,
    force_eigen: bool = False,
) -> _Canonical:
    """CCA from the covariances ``Sxx, Syy, Sxy`` (``n - 1`` normalisation) of ``n`` samples."""
    wx = _whitening(sxx, n=n, name="x", epsilon=epsilon, what=what, force_eigen=force_eigen)
    wy = _whitening(syy, n=n, name="y", epsilon=epsilon, what=what, force_eigen=force_eigen)
    rho, x_w, y_w = _solve(sxy, wx, wy, n=n, epsilon=epsilon, weights=weights, what=what)
    return _Canonical(rho, x_w, y_w, sxx, syy)


def mean_cca_cov(
    sxx: torch.Tensor, syy: torch.Tensor, sxy: torch.Tensor, n: int, *, epsilon: float = 0.0
) -> torch.Tensor:
    """:func:`mean_cca` from the covariances of ``n`` samples (``n - 1`` normalisation).

    sxx : (d_x, d_x), syy : (d_y, d_y), sxy : (d_x, d_y) tensors. Returns a 0-dim float64 tensor.
    """
    eps = _check_epsilon(epsilon)
    out = _canonical_cov(sxx, syy, sxy, n, epsilon=eps, weights=False, what="mean_cca")
    return _scalar(out.rho.mean())


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
    k = _check_keep(keep)
    eps = _check_epsilon(epsilon)
    wx, _ = _svd_whitening(sxx, n=n, name="x", keep=k, epsilon=eps)
    wy, _ = _svd_whitening(syy, n=n, name="y", keep=k, epsilon=eps)
    rho, _, _ = _solve(sxy, wx, wy, n=n, epsilon=eps, weights=False, what="svcca")
    return _scalar(rho.mean())


def pwcca_cov(
    sxx: torch.Tensor, syy: torch.Tensor, sxy: torch.Tensor, n: int, *, epsilon: float = 0.0
) -> torch.Tensor:
    """:func:`pwcca` from the covariances of ``n`` samples (shapes as in :func:`mean_cca_cov`)."""
    eps = _check_epsilon(epsilon)
    out = _canonical_cov(sxx, syy, sxy, n, epsilon=eps, weights=True, what="pwcca")
    return _projection_weighted(out)


def _projection_weighted(out: _Canonical) -> torch.Tensor:
    """PWCCA's weighted mean of ``rho``, weights from the side with fewer neurons."""
    if out.sxx.shape[0] <= out.syy.shape[0]:
        cov, w = out.sxx, out.x_weights
    else:
        cov, w = out.syy, out.y_weights
    alpha = (cov @ w).abs().sum(0)  # (k,): sum_j |<h_i, z_j>| / (n - 1)
    alpha = alpha / alpha.sum()
    return _scalar((alpha * out.rho).sum())


def _scalar(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float64)


# --------------------------------------------------------------------------- public API


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
    out = _canonical(x, y, epsilon=epsilon, dtype=dtype, weights=True, what="cca")
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
    out = _canonical(x, y, epsilon=epsilon, dtype=dtype, weights=False, what="mean_cca")
    return _scalar(out.rho.mean())


def _keep_count(evals_desc: torch.Tensor, keep: float) -> int:
    """Fewest leading eigenvalues whose sum reaches ``keep`` of the total."""
    csum = torch.cumsum(evals_desc.clamp(min=0), 0)
    reached = csum >= keep * csum[-1]
    return int(torch.argmax(reached.to(torch.int8))) + 1  # first True; the last one always is


def _svd_whitening(
    cov: torch.Tensor, *, n: int, name: str, keep: float, epsilon: float
) -> tuple[_Whitening, int]:
    """Whitening of the top singular directions of one centred side (SVCCA's SVD step).

    The right singular vectors of the centred data and its squared singular values are the
    eigenvectors and ``(n - 1)`` times the eigenvalues of its covariance, so the ``n x d``
    SVD is never formed; projecting onto ``V_k`` gives covariance ``diag(evals_k)``.
    """
    d = cov.shape[0]
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(0), evecs.flip(1)  # descending
    k = _keep_count(evals, keep)
    evals, evecs = evals[:k], evecs[:, :k]
    if epsilon > 0:
        return _eigen_whitening(evecs, evals + epsilon), k
    good = evals > _cutoff(evals[0], n, d)
    rank = int(good.sum())
    if rank < k:
        _warn(
            f"svcca: {k} directions of {name} explain keep = {keep:g} of its variance, but only "
            f"{rank} are above the rank cutoff (n = {n}, d = {d}); dropping {k - rank} null "
            "direction(s). Lower keep or pass epsilon > 0."
        )
    return _eigen_whitening(evecs[:, good], evals[good]), k


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
    k = _check_keep(keep)
    eps = _check_epsilon(epsilon)
    sxx, syy, sxy, n = _covariances(x, y, dtype, "svcca")
    return svcca_cov(sxx, syy, sxy, n, keep=k, epsilon=eps)


def _svcca_code_weighted(out: _Canonical, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
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
    return _scalar((alpha / alpha.sum() * out.rho).sum())


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
    out = _canonical(x, y, epsilon=epsilon, dtype=dtype, weights=True, what="pwcca")
    if weights == "centered":
        return _projection_weighted(out)
    return _svcca_code_weighted(out, *as_pair(x, y, dtype=dtype))
