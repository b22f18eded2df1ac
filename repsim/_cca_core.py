"""The CCA engine: covariances, whitening and the canonical solve, shared by every CCA measure.

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

The measures are in :mod:`repsim._cca` (``cca``, ``mean_cca``) and :mod:`repsim._cca_weighted`
(``svcca``, ``pwcca``); :mod:`repsim._inference_fast` and :mod:`repsim._streaming` reuse the
whitening and the argument checks.

>>> sxx, syy, sxy, n = covariances(x, y, torch.float64, "cca")       # doctest: +SKIP
>>> out = canonical_cov(sxx, syy, sxy, n, epsilon=0.0, weights=False, what="cca")  # doctest: +SKIP
>>> out.rho                                                           # doctest: +SKIP
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import Any, Callable, NamedTuple

import torch

from . import _blas
from ._validate import as_pair, check_min_samples, check_variance

__all__ = [
    "Whitening",
    "CanonicalSolution",
    "warn_caller",
    "check_keep",
    "check_epsilon",
    "centred_gram",
    "covariances",
    "rank_cutoff",
    "cholesky_whitening",
    "eigen_whitening",
    "whitening",
    "keep_count",
    "svd_whitening",
    "warn_trivial",
    "solve",
    "canonical",
    "canonical_cov",
    "as_float64",
]

_HERE = os.path.dirname(__file__)


class Whitening(NamedTuple):
    """A whitening map ``M`` of one side (``M^T S M = I`` on the kept subspace).

    ``white(A)`` is ``M^T A`` for a ``(d, m)`` matrix ``A``; ``unwhite(U)`` is ``M U`` for an
    ``(r, k)`` matrix ``U``; ``rank`` is ``r``, the number of kept directions.
    """

    white: Callable[[torch.Tensor], torch.Tensor]
    unwhite: Callable[[torch.Tensor], torch.Tensor]
    rank: int


class CanonicalSolution(NamedTuple):
    """Canonical correlations (weights when asked for) and the covariances they came from."""

    rho: torch.Tensor  # (k,)
    x_weights: torch.Tensor | None  # (d_x, k)
    y_weights: torch.Tensor | None  # (d_y, k)
    sxx: torch.Tensor  # (d_x, d_x)
    syy: torch.Tensor  # (d_y, d_y)


def _in_cca_modules(filename: str) -> bool:
    """Whether ``filename`` is one of the CCA modules (``repsim/_cca*.py``)."""
    return (os.path.dirname(filename) == _HERE
            and os.path.basename(filename).startswith("_cca"))


def warn_caller(message: str) -> None:
    """``UserWarning`` attributed to the first caller outside the CCA modules."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and _in_cca_modules(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def check_keep(keep: Any) -> float:
    """SVCCA's ``keep`` as a float in ``(0, 1]``, else ``ValueError``."""
    k = float(keep) if isinstance(keep, (int, float)) and not isinstance(keep, bool) else None
    if k is None or not 0.0 < k <= 1.0:
        raise ValueError(f"keep: expected a number with 0 < keep <= 1, got {keep!r}")
    return k


def check_epsilon(epsilon: Any) -> float:
    """The ridge ``epsilon`` as a finite float ``>= 0``, else ``ValueError``."""
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


def centred_gram(
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


def covariances(
    x: Any, y: Any, dtype: torch.dtype, what: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Validate the inputs; return Sxx, Syy, Sxy (``n - 1`` normalisation) and ``n``.

    Three products over the samples (two Gram matrices, see :func:`_gram`, and one GEMM) --
    the only O(n d^2) work of the CCA family.
    """
    x, y = as_pair(x, y, dtype=dtype)
    n = x.shape[0]
    check_min_samples(n, 2, what)
    sxx, x, x_mean = centred_gram(x, "x")
    syy, y, y_mean = centred_gram(y, "y")
    sxy = _blas.cross_t(x, y)  # the exact centred cross product if either side is centred ...
    if x_mean is not None and y_mean is not None:  # ... else subtract n mu_x mu_y^T
        sxy.addr_(x_mean, y_mean, alpha=-n)
    scale = 1.0 / (n - 1)
    return sxx.mul_(scale), syy.mul_(scale), sxy.mul_(scale), n


def rank_cutoff(max_eig: torch.Tensor, n: int, d: int) -> torch.Tensor:
    """``pinv``-style relative rank cutoff for eigenvalues of a ``(d, d)`` covariance."""
    return max_eig * max(n, d) * torch.finfo(max_eig.dtype).eps


def cholesky_whitening(chol: torch.Tensor) -> Whitening:
    """Whitening by ``M = L^{-T}`` for ``S = L L^T`` (two triangular solves, no inverse)."""

    def white(a: torch.Tensor) -> torch.Tensor:  # L^{-1} A
        return torch.linalg.solve_triangular(chol, a, upper=False)

    def unwhite(u: torch.Tensor) -> torch.Tensor:  # L^{-T} U
        return torch.linalg.solve_triangular(chol.mT, u, upper=True)

    return Whitening(white, unwhite, chol.shape[0])


def eigen_whitening(evecs: torch.Tensor, evals: torch.Tensor) -> Whitening:
    """Whitening by ``M = V diag(evals)^{-1/2}`` on the given eigenvectors ``V`` (d, r)."""
    m = evecs * evals.rsqrt()  # (d, r)
    return Whitening(lambda a: m.mT @ a, lambda u: m @ u, m.shape[1])


def whitening(
    cov: torch.Tensor,
    *,
    n: int,
    name: str,
    epsilon: float,
    what: str = "cca",
    force_eigen: bool = False,
) -> Whitening:
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
        if bool(pivots.amin() <= rank_cutoff(cov.diagonal().amax(), n, d)):
            problems.append("its covariance is rank-deficient")

    if epsilon > 0:
        reg_chol, reg_info = torch.linalg.cholesky_ex(cov + epsilon * eye)
        if int(reg_info) == 0:
            if problems:
                warn_caller(
                    f"{what}: {name} is ill-posed ({'; '.join(problems)}); "
                    f"regularising its covariance with epsilon = {epsilon:g}"
                )
            return cholesky_whitening(reg_chol)
        problems.append(f"Cholesky failed even with epsilon = {epsilon:g}")

    if not problems and not force_eigen:
        return cholesky_whitening(chol)

    evals, evecs = torch.linalg.eigh(cov + epsilon * eye)  # ascending
    keep = evals > rank_cutoff(evals[-1], n, d)
    rank = int(keep.sum())
    if problems:
        warn_caller(
            f"{what}: {name} is ill-posed ({'; '.join(problems)}): its covariance has rank "
            f"{rank} of {d}; dropping {d - rank} null direction(s) (relative eigenvalue cutoff "
            "max_eig * max(n, d) * eps)."
            + ("" if epsilon > 0 else " Pass epsilon > 0 to regularise instead.")
        )
    return eigen_whitening(evecs[:, keep], evals[keep])


def keep_count(evals_desc: torch.Tensor, keep: float) -> int:
    """Fewest leading eigenvalues whose sum reaches ``keep`` of the total."""
    csum = torch.cumsum(evals_desc.clamp(min=0), 0)
    reached = csum >= keep * csum[-1]
    return int(torch.argmax(reached.to(torch.int8))) + 1  # first True; the last one always is


def svd_whitening(
    cov: torch.Tensor, *, n: int, name: str, keep: float, epsilon: float
) -> tuple[Whitening, int]:
    """Whitening of the top singular directions of one centred side (SVCCA's SVD step).

    The right singular vectors of the centred data and its squared singular values are the
    eigenvectors and ``(n - 1)`` times the eigenvalues of its covariance, so the ``n x d``
    SVD is never formed; projecting onto ``V_k`` gives covariance ``diag(evals_k)``.
    """
    d = cov.shape[0]
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(0), evecs.flip(1)  # descending
    k = keep_count(evals, keep)
    evals, evecs = evals[:k], evecs[:, :k]
    if epsilon > 0:
        return eigen_whitening(evecs, evals + epsilon), k
    good = evals > rank_cutoff(evals[0], n, d)
    rank = int(good.sum())
    if rank < k:
        warn_caller(
            f"svcca: {k} directions of {name} explain keep = {keep:g} of its variance, but only "
            f"{rank} are above the rank cutoff (n = {n}, d = {d}); dropping {k - rank} null "
            "direction(s). Lower keep or pass epsilon > 0."
        )
    return eigen_whitening(evecs[:, good], evals[good]), k


def warn_trivial(rank_x: int, rank_y: int, n: int, epsilon: float, what: str) -> None:
    """Warn when ``rank x + rank y > n - 1``: that many correlations are 1 by construction."""
    excess = rank_x + rank_y - (n - 1)
    if epsilon == 0 and excess > 0:
        warn_caller(
            f"{what}: rank x + rank y = {rank_x} + {rank_y} exceeds n - 1 = {n - 1} (the dimension "
            f"of the centred sample space), so at least {min(excess, rank_x, rank_y)} canonical "
            "correlation(s) are 1 by construction and carry no information. Use more samples, "
            "fewer dimensions (svcca) or epsilon > 0."
        )


def solve(
    sxy: torch.Tensor,
    wx: Whitening,
    wy: Whitening,
    *,
    n: int,
    epsilon: float,
    weights: bool,
    what: str,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Canonical correlations (and weights) from the whitened cross-covariance."""
    warn_trivial(wx.rank, wy.rank, n, epsilon, what)
    t = wx.white(wy.white(sxy.mT).mT)  # (r_x, r_y): M_x^T Sxy M_y
    if not weights:
        return torch.linalg.svdvals(t).clamp_(0.0, 1.0), None, None
    u, s, vh = torch.linalg.svd(t, full_matrices=False)  # t = U diag(rho) V^T
    return s.clamp_(0.0, 1.0), wx.unwhite(u), wy.unwhite(vh.mT)


def canonical(
    x: Any,
    y: Any,
    *,
    epsilon: Any,
    dtype: torch.dtype,
    weights: bool,
    what: str,
    force_eigen: bool = False,
) -> CanonicalSolution:
    eps = check_epsilon(epsilon)
    sxx, syy, sxy, n = covariances(x, y, dtype, what)
    return canonical_cov(sxx, syy, sxy, n, epsilon=eps, weights=weights, what=what,
                          force_eigen=force_eigen)


def canonical_cov(
    sxx: torch.Tensor,
    syy: torch.Tensor,
    sxy: torch.Tensor,
    n: int,
    *,
    epsilon: float,
    weights: bool,
    what: str,
    force_eigen: bool = False,
) -> CanonicalSolution:
    """CCA from the covariances ``Sxx, Syy, Sxy`` (``n - 1`` normalisation) of ``n`` samples."""
    wx = whitening(sxx, n=n, name="x", epsilon=epsilon, what=what, force_eigen=force_eigen)
    wy = whitening(syy, n=n, name="y", epsilon=epsilon, what=what, force_eigen=force_eigen)
    rho, x_w, y_w = solve(sxy, wx, wy, n=n, epsilon=epsilon, weights=weights, what=what)
    return CanonicalSolution(rho, x_w, y_w, sxx, syy)


def as_float64(t: torch.Tensor) -> torch.Tensor:
    """A result of the CCA family in float64 (the measures' result dtype)."""
    return t.to(torch.float64)
