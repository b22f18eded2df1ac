"""Generalized shape metrics (Williams et al. 2021) and distances across many networks.

>>> import torch
>>> from repsim._shape import shape_distance
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(500, 10, dtype=torch.float64, generator=g)
>>> q, _ = torch.linalg.qr(torch.randn(10, 10, dtype=torch.float64, generator=g))
>>> float(shape_distance(x, 2 * x @ q + 1)) < 1e-6          # rotation, scale, shift
True
>>> a = torch.randn(10, 10, dtype=torch.float64, generator=g)
>>> float(shape_distance(x, x @ a, alpha=0.0)) < 1e-6       # any invertible map at alpha = 0
True

Each side is centred and *partially whitened* with netrep's rule (the authors' reference code):
for the centred ``Xc`` with ``Xc^T Xc = V diag(lam) V^T`` (unnormalised, no ``1/n``),

    X_alpha = Xc Z,   Z = alpha I + (1 - alpha) (Xc^T Xc)^(-1/2)
                        = V diag(alpha + (1 - alpha) lam^(-1/2)) V^T,

so ``alpha = 1`` leaves ``Xc`` as it is (Procrustes) and ``alpha = 0`` whitens it fully (the
CCA end); ``Z`` is then rescaled to keep the total variance, ``||X_alpha||_F ~ ||Xc||_F``
(netrep's ``preserve_variance``, which counts the zero-padded width, see below). As in
netrep, eigenvalues below ``1e-7`` are raised to ``1e-7`` before the inverse square root;
directions below the rank cutoff ``max(lam) * max(n, d) * eps`` (numerically null, such as
the one removed by centring when ``n <= d``) are dropped. With ``N = ||X_alpha^T Y_alpha||_*``
(nuclear norm, the best alignment over orthogonal ``Q``):

- ``"angular"``: ``arccos(N / (||X_alpha||_F ||Y_alpha||_F))`` in ``[0, pi/2]``;
- ``"euclidean"``: ``min_Q ||X_alpha - Y_alpha Q||_F = sqrt(||X_alpha||^2 + ||Y_alpha||^2 - 2 N)``,
  in the units of the data (a sum over samples, not a mean: it grows like ``sqrt(n)``).

Inputs of different widths are compared as if the narrower one were zero-padded (netrep's
``zero_pad``); padding adds nothing to ``X_alpha`` but enters the variance-preserving rescale,
so for ``alpha < 1`` the ``"euclidean"`` score is a metric among inputs of one width only.
The ``"angular"`` score is a metric for every ``alpha`` and any widths; it is 0 for
``y = c * x @ Q + v`` (``Q`` orthogonal, ``c != 0``) at ``alpha = 1`` and for
``y = x @ A + v`` (``A`` invertible) at ``alpha = 0``. For ``0 < alpha < 1`` the whitening
mixes units (``lam`` enters both as ``1`` and as ``lam^(-1/2)``), so the value depends on the
overall scale of the activations and on ``n``, as in netrep. Values below about
``sqrt(finfo(dtype).eps)`` (1e-8 in float64) are rounding noise.
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch

from . import _blas
from ._matrix import similarity_matrix
from ._validate import as_matrix, as_pair, check_min_samples, check_variance

__all__ = [
    "shape_distance",
    "pairwise_distances",
    "SCORES",
    "PAIRWISE_MEASURES",
]

SCORES = ("angular", "euclidean")
PAIRWISE_MEASURES = ("shape", "procrustes", "linear_cka")

_EIGVAL_FLOOR = 1e-7  # netrep's eigval_tol on the eigenvalues of Xc^T Xc
_OPTIONS = {
    "shape": {"alpha", "score"},
    "procrustes": {"angular"},
    "linear_cka": {"debiased"},
}
_MAX_BATCH_ENTRIES = 1 << 24  # cross products per batched svdvals call (128 MiB in float64)


class _Side(NamedTuple):
    """One partially whitened side: ``X_alpha`` is ``p @ l`` up to a rotation on the right.

    ``n > d``: ``p`` is ``Xc`` (n, d) and ``l`` the ``(d, d)`` map ``V diag(coef)`` (``None``
    at ``alpha = 1``). ``n <= d``: ``p`` is already ``X_alpha`` in the Gram eigenbasis,
    ``U diag(sqrt(lam) coef)`` (n, n), and ``l`` is ``None``. ``sq_norm`` is ``||X_alpha||_F^2``
    and ``lam`` the floored Gram eigenvalues (for the rescale), both before the rescale.
    """

    p: torch.Tensor
    l: torch.Tensor | None
    sq_norm: torch.Tensor
    lam: torch.Tensor
    width: int


# --------------------------------------------------------------------------- checks


def _check_alpha(alpha: Any) -> float:
    ok = isinstance(alpha, numbers.Real) and not isinstance(alpha, bool)
    if not ok or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha: expected a number with 0 <= alpha <= 1, got {alpha!r}")
    return float(alpha)


def _check_choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


# --------------------------------------------------------------------------- whitening


def _coefficients(lam: torch.Tensor, alpha: float, n: int, d: int) -> torch.Tensor:
    """Per-direction factor of ``Z``: ``alpha + (1 - alpha) / sqrt(max(lam, 1e-7))``, 0 if null."""
    floored = lam.clamp(min=_EIGVAL_FLOOR)
    coef = alpha + (1.0 - alpha) * floored.rsqrt()
    cutoff = lam.amax() * max(n, d) * torch.finfo(lam.dtype).eps
    return torch.where(lam > cutoff, coef, torch.zeros_like(coef))


def _whiten(xc: torch.Tensor, alpha: float) -> _Side:
    """Partially whiten a centred ``(n, d)`` matrix (see the module docstring)."""
    n, d = xc.shape
    if alpha == 1.0 and n > d:  # no whitening: Xc itself
        sq = torch.linalg.matrix_norm(xc).square()
        return _Side(xc, None, sq, xc.new_empty(0), d)
    if n > d:  # Xc^T Xc = V diag(lam) V^T  ->  X_alpha = Xc V diag(coef)
        lam, v = torch.linalg.eigh(_blas.gram_t(xc))
        coef = _coefficients(lam, alpha, n, d)
        sq = (lam.clamp(min=0) * coef.square()).sum()
        return _Side(xc, v * coef, sq, lam.clamp(min=_EIGVAL_FLOOR), d)
    # n <= d: Xc Xc^T = U diag(lam) U^T  ->  X_alpha = U diag(sqrt(lam) coef) (rotated)
    lam, u = torch.linalg.eigh(_blas.gram(xc))
    coef = _coefficients(lam, alpha, n, d)
    sv = lam.clamp(min=0).sqrt() * coef
    return _Side(u * sv, None, sv.square().sum(), lam.clamp(min=_EIGVAL_FLOOR), d)


def _whitened_variance(lam: Any, alpha: float) -> Any:
    """Variance of one direction after ``Z``: ``(alpha sqrt(lam) + 1 - alpha)^2``, expanded."""
    return alpha**2 * lam + 2 * alpha * (1 - alpha) * lam**0.5 + (1 - alpha) ** 2


def _rescale(side: _Side, alpha: float, width: int) -> torch.Tensor:
    """netrep's ``preserve_variance`` factor for ``side`` zero-padded to ``width`` features.

    ``sqrt(sum(lam) / sum(whitened variances))`` over the ``width`` floored eigenvalues of the
    padded ``Xc^T Xc``; the ``width - len(lam)`` zero ones count as ``1e-7``.
    """
    if alpha == 1.0:
        return side.sq_norm.new_ones(())
    extra = width - side.lam.numel()
    old = side.lam.sum() + extra * _EIGVAL_FLOOR
    new = _whitened_variance(side.lam, alpha).sum()
    new = new + extra * _whitened_variance(_EIGVAL_FLOOR, alpha)
    return (old / new).sqrt()


def _factor(side: _Side) -> torch.Tensor:
    """``X_alpha`` up to a rotation on the right, as an ``(n, r)`` matrix."""
    return side.p if side.l is None else side.p @ side.l


def _score(
    nuclear: torch.Tensor,
    sq_x: torch.Tensor,
    sq_y: torch.Tensor,
    score: str,
) -> torch.Tensor:
    """Angular or Euclidean score from ``N``, ``||X_a||^2`` and ``||Y_a||^2`` (rescaled)."""
    if score == "angular":
        return torch.arccos((nuclear / (sq_x * sq_y).sqrt()).clamp(0.0, 1.0))
    return (sq_x + sq_y - 2.0 * nuclear).clamp(min=0.0).sqrt()


def _centre(a: torch.Tensor, name: str) -> torch.Tensor:
    a = a - a.mean(0)
    check_variance(a, name)
    return a


# --------------------------------------------------------------------------- public API


def shape_distance(
    x: Any,
    y: Any,
    *,
    alpha: float = 1.0,
    score: str = "angular",
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Generalized shape metric between two sets of activations (Williams et al. 2021).

    Parameters
    ----------
    x : (n_samples, n_features_x) tensor or array
    y : (n_samples, n_features_y) tensor or array
        The widths may differ (the narrower side is thought of as zero-padded).
    alpha : float
        Partial whitening, ``0 <= alpha <= 1``: 1 (default) none (Procrustes shape metric),
        0 full whitening (the CCA end: for ``n > d``, the angular distance is
        ``arccos(sum(rho) / sqrt(d_x d_y))`` of the canonical correlations ``rho``).
    score : {"angular", "euclidean"}
        ``"angular"`` (default): ``arccos(||X_a^T Y_a||_* / (||X_a||_F ||Y_a||_F))`` in
        ``[0, pi/2]``. ``"euclidean"``: ``min_Q ||X_a - Y_a Q||_F`` over orthogonal ``Q``, in
        the units of the data, as netrep's ``score_method="euclidean"``.
    dtype : torch.dtype
        Computation dtype (default float64).

    Returns
    -------
    0-dim float64 tensor on the input's device. At ``alpha = 1``,
    ``score="angular"`` equals ``procrustes_distance(x, y, angular=True)`` and
    ``score="euclidean"`` of inputs scaled to unit centred norm equals
    ``procrustes_distance(x, y)``.

    Raises
    ------
    ValueError
        Different numbers of samples, non-2-D input, NaN/Inf, fewer than 2 samples, a constant
        input, ``alpha`` outside ``[0, 1]`` or an unknown ``score``.

    Notes
    -----
    Whitening, its floor and rescale follow netrep's ``LinearMetric`` (see the module
    docstring); for ``0 < alpha < 1`` the value depends on the scale of the data and on ``n``.
    Cost: one ``x.T @ y``, two symmetric products (none at ``alpha = 1``) and ``d x d``
    eigen/SVD work.
    """
    a = _check_alpha(alpha)
    _check_choice(score, SCORES, "score")
    x, y = as_pair(x, y, dtype=dtype)
    check_min_samples(x.shape[0], 2, "shape_distance")
    sx, sy = _whiten(_centre(x, "x"), a), _whiten(_centre(y, "y"), a)
    cross = sx.p.mT @ sy.p  # then into the whitened bases: l_x^T (P_x^T P_y) l_y
    if sx.l is not None:
        cross = sx.l.mT @ cross
    if sy.l is not None:
        cross = cross @ sy.l
    nuclear = torch.linalg.svdvals(cross).sum()
    width = max(sx.width, sy.width)
    cx, cy = _rescale(sx, a, width), _rescale(sy, a, width)
    out = _score(nuclear * cx * cy, sx.sq_norm * cx**2, sy.sq_norm * cy**2, score)
    return out.to(torch.float64)


def _networks(acts: Any, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Validate ``{name: (n, d)}``: at least two, same ``n``, same device."""
    if not isinstance(acts, Mapping):
        raise ValueError(
            f"acts: expected a dict {{network name: (n_samples, n_features) activations}}, "
            f"got {type(acts).__name__}"
        )
    if len(acts) < 2:
        raise ValueError(f"acts: expected at least 2 networks, got {len(acts)}")
    out = {str(k): as_matrix(v, name=f"acts[{k!r}]", dtype=dtype) for k, v in acts.items()}
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    if len({s[0] for s in shapes.values()}) != 1:
        raise ValueError(
            f"acts: every network needs the same n_samples (the same inputs), got shapes {shapes}"
        )
    devices = {v.device for v in out.values()}
    if len(devices) != 1:
        raise ValueError(
            f"acts: expected every network on one device, got {sorted(map(str, devices))}"
        )
    check_min_samples(next(iter(shapes.values()))[0], 2, "pairwise_distances")
    return out


def _upper_nuclear(factors: list[torch.Tensor]) -> torch.Tensor:
    """``||F_i^T F_j||_*`` for all ``i < j`` as a ``(K, K)`` tensor (zero elsewhere).

    One GEMM per row ``i`` against the concatenated ``F_j`` (``j > i``); the blocks of one
    shape go through ``svdvals`` together, in batches of bounded size.
    """
    k = len(factors)
    out = factors[0].new_zeros(k, k)
    widths = [f.shape[1] for f in factors]
    for i in range(k - 1):
        rest = torch.cat(factors[i + 1:], dim=1)
        blocks = (factors[i].mT @ rest).split(widths[i + 1:], dim=1)
        groups: dict[tuple[int, int], list[int]] = {}
        for j, b in enumerate(blocks, start=i + 1):
            groups.setdefault(tuple(b.shape), []).append(j)
        for shape, js in groups.items():
            step = max(1, _MAX_BATCH_ENTRIES // (shape[0] * shape[1]))
            for s in range(0, len(js), step):
                part = js[s:s + step]
                stacked = torch.stack([blocks[j - i - 1] for j in part])
                out[i, part] = torch.linalg.svdvals(stacked).sum(-1)
    return out


def _shape_matrix(nets: dict[str, torch.Tensor], alpha: float, score: str) -> torch.Tensor:
    sides = [_whiten(_centre(v, k), alpha) for k, v in nets.items()]
    nuclear = _upper_nuclear([_factor(s) for s in sides])
    k = len(sides)
    out = nuclear.new_zeros(k, k)
    for i in range(k):
        for j in range(i + 1, k):
            width = max(sides[i].width, sides[j].width)
            ci, cj = _rescale(sides[i], alpha, width), _rescale(sides[j], alpha, width)
            out[i, j] = _score(nuclear[i, j] * ci * cj, sides[i].sq_norm * ci**2,
                               sides[j].sq_norm * cj**2, score)
    return out + out.mT


def pairwise_distances(
    acts: Mapping[str, Any],
    *,
    measure: str = "shape",
    dtype: torch.dtype = torch.float64,
    **kw: Any,
) -> torch.Tensor:
    """Distances between every pair of networks (seeds, checkpoints, regimes).

    Parameters
    ----------
    acts : dict ``{network name: (n_samples, n_features) tensor or array}``
        At least two networks, all on the same inputs (same ``n_samples``); widths may differ.
        Rows and columns of the result follow the dict's order.
    measure : {"shape", "procrustes", "linear_cka"}
        ``"shape"`` (default): :func:`shape_distance`, options ``alpha`` (default 1.0) and
        ``score`` (default ``"angular"``). ``"procrustes"``: :func:`procrustes_distance`,
        option ``angular`` (default False). ``"linear_cka"``: ``arccos(CKA)``, the angle
        between the centred Gram matrices (a metric on networks up to ``y = c * x @ Q + v``;
        ``1 - CKA`` is not one), option ``debiased`` (default False; the debiased estimate
        can be negative and is then not a metric).
    dtype : torch.dtype
        Computation dtype (default float64).
    **kw
        The measure's options, as above.

    Returns
    -------
    (K, K) float64 tensor on the input's device: symmetric, zero diagonal.

    Raises
    ------
    ValueError
        Fewer than 2 networks, different ``n_samples``, invalid activations, an unknown
        measure, or an option the measure does not take.

    Notes
    -----
    Each network is centred and whitened once; then one GEMM per pair (``n`` by the widths)
    and batched ``svdvals``. ``"linear_cka"`` uses :func:`similarity_matrix`.
    """
    _check_choice(measure, PAIRWISE_MEASURES, "measure")
    unknown = set(kw) - _OPTIONS[measure]
    if unknown:
        raise ValueError(
            f"pairwise_distances(measure={measure!r}): expected options among "
            f"{sorted(_OPTIONS[measure])}, got {sorted(unknown)}"
        )
    nets = _networks(acts, dtype)
    if measure == "linear_cka":
        cka = similarity_matrix(nets, nets, measure="linear_cka", dtype=dtype,
                                debiased=bool(kw.get("debiased", False)))
        out = torch.arccos(((cka + cka.mT) / 2).clamp(-1.0, 1.0))
        return out.fill_diagonal_(0.0).to(torch.float64)
    if measure == "procrustes":
        angular = kw.get("angular", False)
        if not isinstance(angular, bool):
            raise ValueError(f"angular: expected True or False, got {angular!r}")
        # Procrustes = angular shape metric at alpha = 1; the Euclidean form of unit shapes
        # is sqrt(2 - 2 cos(angle)).
        theta = _shape_matrix(nets, 1.0, "angular")
        out = theta if angular else (2.0 - 2.0 * torch.cos(theta)).clamp(min=0.0).sqrt()
        return out.fill_diagonal_(0.0).to(torch.float64)
    a = _check_alpha(kw.get("alpha", 1.0))
    score = _check_choice(kw.get("score", "angular"), SCORES, "score")
    return _shape_matrix(nets, a, score).to(torch.float64)
