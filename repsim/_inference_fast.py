"""Fast null distributions and weighted resamples for :mod:`repsim._inference`.

Permuting the rows of ``y`` by ``P`` leaves everything of each side alone but the cross term,
so each layer is prepared once and a batch of permutations costs only that term:

* linear CKA: ``tr(K P L P^T) = ||Xc^T P Yc||_F^2`` (centring commutes with ``P``), either as
  one GEMM of ``Xc^T`` with the permuted copies of ``Yc`` side by side (feature form),
  or by gathering ``L[p][:, p]`` from the ``(n, n)`` Gram (Gram form, ``n^2`` per permutation,
  chosen when ``d_x d_y`` is large against ``n``). The debiased estimator adds ``diag(L)[p]``
  and ``(L~ 1)[p]`` to the same trace (:func:`repsim._hsic.hsic_unbiased_from_stats`).
* RBF CKA: the centred Grams once (the median bandwidth does not depend on the row order),
  then the Gram form.
* CCA family and Procrustes: each side whitened once, ``Q = Xc M / sqrt(n - 1)`` with the
  measure's own whitening ``M`` (Cholesky, eigen fallback, SVCCA's kept directions, ridge);
  the canonical correlations of ``(x, P y)`` are the singular values of ``Qx^T P Qy``, a batch
  of small matrices from one GEMM and one batched SVD. Procrustes is the same with
  ``Q = Xc / ||Xc||_F`` and the nuclear norm.

For the bootstrap, :func:`weighted_function` evaluates CKA on a resample given as the
multiplicities ``c`` of the original samples, never pairing a sample with its own copy.
Biased: ``sum_ij W_ij Kc_ij Lc_ij`` with ``W = c c^T - diag(c^2 - c)`` and ``Kc`` centred on
the resample. Debiased: the weighted U-statistic over distinct samples. With ``K~``, ``L~``
the Grams with zero diagonals, ``M = K~ o L~`` (Hadamard), ``a = K~ c``, ``b = L~ c`` and
``p_k = sum c^k``::

    HSIC_c = S1 / N1 + T2 / N4 - 2 T3 / N3
    S1 = c^T M c                      N1 = p1^2 - p2
    T3 = sum c a b - c^T M c^2        N3 = p1^3 - 3 p1 p2 + 2 p3
    T2 = (c^T a)(c^T b) - 4 sum c^2 a b + 2 (c^2)^T M c^2
                                      N4 = p1^4 - 6 p1^2 p2 + 8 p1 p3 + 3 p2^2 - 6 p4

(sums of ``K_ij L_ij``, ``K_ij L_iq``, ``K_ij L_qr`` over distinct original indices weighted
by ``c_i c_j ...``, and the total weights); ``c = 1`` gives Song et al.'s ``HSIC_1``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from . import _blas, _hsic
from ._cca_core import centred_gram, check_epsilon, svd_whitening, whitening
from ._cka import rbf_gram
from ._procrustes import _centring as _procrustes_centring

__all__ = ["null_function", "weighted_function"]

# Elements of one gathered intermediate before a batch is split.
_MAX_ELEMENTS = 1 << 24
# The Gram form gathers n^2 entries per permutation; the feature form does n d_x d_y
# multiply-adds. A gathered entry cost about 3 sqrt(n) multiply-adds on CPU (65 at n = 500,
# 150 at n = 2000: the (n, n) Gram falls out of cache), so the Gram form is taken when
# 3 n^1.5 < d_x d_y.
_GATHER_COST = 3.0
# Largest n for which (n, n) Grams are kept for the Gram form of linear CKA.
_MAX_GRAM_N = 4096

_CCA = ("mean_cca", "cca", "svcca", "pwcca")


def null_function(
    name: str, kw: Mapping[str, Any], xs: Mapping[str, torch.Tensor], ys: Mapping[str, torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``f(perms) -> (b, A, B)`` null values for a ``(b, n)`` batch of permutations, or None.

    ``xs``, ``ys`` are validated layers; ``kw`` the measure's options (already checked).
    """
    if name in ("linear_cka", "debiased_cka"):
        debiased = bool(kw.get("debiased", False))
        px = [_linear_side(t, debiased) for t in xs.values()]
        py = [_linear_side(t, debiased) for t in ys.values()]
        return lambda perms: _grid(px, py, perms, _cka_null)
    if name == "rbf_cka":
        debiased, threshold = bool(kw.get("debiased", False)), kw.get("threshold", 1.0)
        px = [_rbf_side(t, k, threshold, debiased) for k, t in xs.items()]
        py = [_rbf_side(t, k, threshold, debiased) for k, t in ys.items()]
        return lambda perms: _grid(px, py, perms, _cka_null)
    if name in _CCA:
        px = [_cca_side(t, name, kw, "x") for t in xs.values()]
        py = [_cca_side(t, name, kw, "y") for t in ys.values()]
        pair = _pwcca_null if name == "pwcca" else _cca_null
        return lambda perms: _grid(px, py, perms, pair)
    if name == "procrustes":
        angular = bool(kw.get("angular", False))
        px = [_procrustes_side(t, "x") for t in xs.values()]
        py = [_procrustes_side(t, "y") for t in ys.values()]
        return lambda perms: _grid(px, py, perms,
                                   lambda a, b, p: _procrustes_null(a, b, p, angular))
    return None


def weighted_function(
    name: str, kw: Mapping[str, Any], xs: Mapping[str, torch.Tensor], ys: Mapping[str, torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``f(counts) -> (b, A, B)`` CKA of resamples given as the multiplicities ``counts``
    (b, n) of the original samples (copies of one sample never paired), or None where the
    resamples are evaluated as they are (CCA family, Procrustes)."""
    debiased = bool(kw.get("debiased", False))
    if name in ("linear_cka", "debiased_cka"):
        n = next(iter(xs.values())).shape[0]
        widest = max(t.shape[1] for t in (*xs.values(), *ys.values()))
        if widest > n:  # wide layers: (n, n) Grams instead of (d_x, d_y) products per resample
            gx = {k: _blas.gram(t) for k, t in xs.items()}
            gy = {k: _blas.gram(t) for k, t in ys.items()}
            return lambda c: _weighted_grid(gx, gy, c, _weighted_gram_side, debiased)
        return lambda c: _weighted_grid(xs, ys, c, _weighted_linear_side, debiased)
    if name == "rbf_cka":
        threshold = kw.get("threshold", 1.0)
        gx = {k: rbf_gram(t, threshold=threshold, name=k) for k, t in xs.items()}
        gy = {k: rbf_gram(t, threshold=threshold, name=k) for k, t in ys.items()}
        return lambda c: _weighted_grid(gx, gy, c, _weighted_gram_side, debiased)
    return None


# --------------------------------------------------------------------------- permutations


def _grid(px: list, py: list, perms: torch.Tensor, pair: Callable) -> torch.Tensor:
    """Null values of every layer pair for one batch: (b, A, B)."""
    return torch.stack([torch.stack([pair(a, b, perms) for b in py], -1) for a in px], -2)


def _perm_cross(a: torch.Tensor, b: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """``a^T P b`` for every permutation: (batch, d_a, d_b), with ``(P b)[k] = b[perm[k]]``.

    The permuted copies of ``b`` are gathered row by row side by side, ``[P_1 b, P_2 b, ...]``
    as one ``(n, batch * d_b)`` matrix, so the batch is a single GEMM with ``a^T``.
    """
    n, da = a.shape
    db = b.shape[1]
    step = max(1, _MAX_ELEMENTS // (db * n + db * da))
    out = []
    for s in range(0, perms.shape[0], step):
        p = perms[s:s + step]
        side = b.index_select(0, p.T.reshape(-1)).reshape(n, -1)  # (n, batch * d_b)
        out.append((a.T @ side).reshape(da, p.shape[0], db).transpose(0, 1))
    return torch.cat(out)


def _perm_gram_trace(k: torch.Tensor, l: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """``tr(K P L P^T) = sum_ij K_ij L[p_i, p_j]`` for every permutation: (batch,).

    Rows are gathered first (contiguous copies), then the columns within each row.
    """
    flat = k.reshape(-1)
    return torch.stack([torch.dot(l.index_select(0, p).index_select(1, p).reshape(-1), flat)
                        for p in perms])


class _Side:
    """Everything of one layer that a permutation of the rows does not change."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def _linear_side(t: torch.Tensor, debiased: bool) -> _Side:
    c = _hsic.center_features(t)  # Xc
    side = _Side(c=c, gram=None, n=t.shape[0], d=t.shape[1], debiased=debiased)
    trace = _hsic.gram_sq_norm(c)  # tr(K K)
    if debiased:
        side.diag, side.k1 = _hsic.kernel_stats_features(c)
        side.self = _hsic.hsic_unbiased_from_stats(trace, side.diag, side.diag, side.k1, side.k1)
    else:
        side.self = trace
    return side


def _rbf_side(t: torch.Tensor, name: str, threshold: float, debiased: bool) -> _Side:
    kc = _hsic.center_gram(rbf_gram(t, threshold=threshold, name=name))  # HKH
    side = _Side(c=None, gram=kc, n=t.shape[0], d=math.inf, debiased=debiased)
    if debiased:
        side.diag, side.k1 = _hsic.kernel_stats_gram(kc)
        side.self = _hsic.hsic_unbiased_gram(kc, kc)
    else:
        side.self = kc.square().sum()
    return side


def _gram_of(side: _Side) -> torch.Tensor:
    if side.gram is None:
        side.gram = _blas.gram(side.c)  # Xc Xc^T, kept for the other pairs of this layer
    return side.gram


def _cka_null(px: _Side, py: _Side, perms: torch.Tensor) -> torch.Tensor:
    n = px.n
    use_gram = px.c is None or py.c is None or (
        n <= _MAX_GRAM_N and _GATHER_COST * n**1.5 < px.d * py.d)
    if use_gram:
        trace = _perm_gram_trace(_gram_of(px), _gram_of(py), perms)
    else:
        trace = _perm_cross(px.c, py.c, perms).square().sum((1, 2))
    if px.debiased:
        trace = _hsic.hsic_unbiased_from_stats(trace, px.diag, py.diag[perms], px.k1, py.k1[perms])
    # the clamp as in repsim._cka: |CKA| <= 1 up to rounding
    return (trace / (px.self.sqrt() * py.self.sqrt())).clamp(-1.0, 1.0)


def _cca_side(t: torch.Tensor, name: str, kw: Mapping[str, Any], label: str) -> _Side:
    n = t.shape[0]
    eps = check_epsilon(kw.get("epsilon", 0.0))
    gram, a, mean = centred_gram(t, label)
    cov = gram / (n - 1)
    centred = a - mean if mean is not None else a
    if name == "svcca":
        white, _ = svd_whitening(cov, n=n, name=label, keep=float(kw.get("keep", 0.99)),
                                  epsilon=eps)
    else:
        white = whitening(cov, n=n, name=label, epsilon=eps, what=name)
    q = white.white(centred.mT).mT / math.sqrt(n - 1)  # (n, r): Xc M / sqrt(n - 1)
    side = _Side(q=q, d=t.shape[1])
    if name == "pwcca":  # Sxx M: the projections of the neurons on the canonical directions
        side.sm = cov @ white.unwhite(torch.eye(white.rank, dtype=t.dtype, device=t.device))
    return side


def _cca_null(px: _Side, py: _Side, perms: torch.Tensor) -> torch.Tensor:
    rho = torch.linalg.svdvals(_perm_cross(px.q, py.q, perms)).clamp(0.0, 1.0)
    return rho.mean(-1)


def _pwcca_null(px: _Side, py: _Side, perms: torch.Tensor) -> torch.Tensor:
    u, rho, vh = torch.linalg.svd(_perm_cross(px.q, py.q, perms), full_matrices=False)
    if px.d <= py.d:  # the weights come from the side with fewer neurons, as in pwcca
        alpha = (px.sm @ u).abs().sum(-2)
    else:
        alpha = (py.sm @ vh.mT).abs().sum(-2)
    alpha = alpha / alpha.sum(-1, keepdim=True)
    return (alpha * rho.clamp(0.0, 1.0)).sum(-1)


def _procrustes_side(t: torch.Tensor, label: str) -> _Side:
    a, mean, sq = _procrustes_centring(t, label)
    centred = a - mean if mean is not None else a
    return _Side(q=centred / sq.sqrt())


def _procrustes_null(px: _Side, py: _Side, perms: torch.Tensor, angular: bool) -> torch.Tensor:
    nuclear = torch.linalg.svdvals(_perm_cross(px.q, py.q, perms)).sum(-1).clamp(0.0, 1.0)
    if angular:
        return torch.arccos(nuclear)
    return (2.0 - 2.0 * nuclear).clamp(min=0.0).sqrt()


# --------------------------------------------------------------------------- bootstrap


def _weighted_grid(
    xs: Mapping[str, torch.Tensor], ys: Mapping[str, torch.Tensor], counts: torch.Tensor,
    side_fn: Callable, debiased: bool,
) -> torch.Tensor:
    """CKA of every layer pair on a batch of resamples given as multiplicities (b, n): (b, A, B)."""
    first = next(iter(xs.values()))
    n = counts.shape[-1]
    layers = (*xs.values(), *ys.values())
    if side_fn is _weighted_gram_side:  # a centred Gram per layer, and K~ o L~
        per_draw = (len(layers) + 2) * n * n
    else:  # centred features per layer, and two (d_x, d_y) products
        widest = max(t.shape[1] for t in layers)
        per_draw = n * (sum(t.shape[1] for t in layers) + 8) + 2 * widest * widest
    step = max(1, _MAX_ELEMENTS // per_draw)
    return torch.cat([_weighted_batch(xs, ys, counts[s:s + step].to(first.dtype), side_fn,
                                      debiased) for s in range(0, counts.shape[0], step)])


def _weighted_batch(xs, ys, c, side_fn, debiased):
    distinct = int((c > 0).sum(-1).amin())
    if distinct < (4 if debiased else 2):
        raise ValueError(
            f"{'debiased ' if debiased else ''}CKA of a resample needs at least "
            f"{4 if debiased else 2} distinct samples, got {distinct} (too few samples)")
    hsic = _weighted_hsic if debiased else _weighted_hsic_biased
    sx = [side_fn(t, c) for t in xs.values()]
    sy = [side_fn(t, c) for t in ys.values()]
    selfs = [[hsic(s, s, c) for s in side] for side in (sx, sy)]
    for values, side in zip(selfs, ("x", "y")):
        if not all(bool((v > 0).all()) for v in values):
            raise ValueError(
                "CKA is undefined on a resample: expected a positive HSIC of each "
                f"{side} layer with itself, got <= 0 (too few samples for the bootstrap)")
    return torch.stack([
        torch.stack([(hsic(a, b, c) / (ha * hb).sqrt()).clamp(-1.0, 1.0)
                     for b, hb in zip(sy, selfs[1])], -1)
        for a, ha in zip(sx, selfs[0])], -2)


def _weighted_linear_side(t: torch.Tensor, c: torch.Tensor) -> _Side:
    """Per resample (rows of ``c``, (b, n)): the features centred on the resample's mean
    (b, n, d), ``diag(K)`` and ``a = K~ c`` (b, n)."""
    w = c / c.sum(-1, keepdim=True)
    xw = t - (w @ t)[:, None, :]
    diag = xw.square().sum(-1)
    a = (xw @ (xw.mT @ c[..., None]))[..., 0] - diag * c
    return _Side(x=xw, diag=diag, a=a, gram=None)


def _weighted_gram_side(k: torch.Tensor, c: torch.Tensor) -> _Side:
    """Per resample: ``H K H`` over the resample's rows (b, n, n) with its diagonal split off."""
    w = c / c.sum(-1, keepdim=True)
    u = w @ k  # (b, n): K w (K symmetric)
    kw = k - u[:, :, None] - u[:, None, :] + (w * u).sum(-1)[:, None, None]
    diag = torch.diagonal(kw, dim1=-2, dim2=-1).clone()
    kt = kw - torch.diag_embed(diag)  # K~
    return _Side(x=None, diag=diag, a=(kt @ c[..., None])[..., 0], gram=kt)


def _quad(m: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``u^T M v`` per resample: m (b, n, n), u, v (b, n) -> (b,)."""
    return (u[:, None, :] @ m @ v[:, :, None])[:, 0, 0]


def _weighted_hsic_biased(px: _Side, py: _Side, c: torch.Tensor) -> torch.Tensor:
    """``sum_ij W_ij Kc_ij Lc_ij`` with ``W = c c^T - diag(c^2 - c)``: the resample's
    ``tr(K H L H)`` without the pairs of two different copies of one sample. (b,)"""
    dd = px.diag * py.diag
    if px.gram is not None:
        return _quad(px.gram * py.gram, c, c) + (c * dd).sum(-1)  # c^T (K~ o L~) c + diag
    cross = (px.x.mT @ (c[..., None] * py.x)).square().sum((-2, -1))  # c^T (K o L) c
    return cross - ((c * c - c) * dd).sum(-1)


def _weighted_hsic(px: _Side, py: _Side, c: torch.Tensor) -> torch.Tensor:
    """``HSIC_c`` of the module docstring for two prepared sides. (b,)"""
    c2 = c * c
    if px.gram is not None:
        m = px.gram * py.gram  # K~ o L~
        s1, r, q = _quad(m, c, c), _quad(m, c, c2), _quad(m, c2, c2)
    else:  # c^T (K o L) c = ||Xc^T diag(c) Yc||_F^2, minus the diagonal i = j
        f1 = px.x.mT @ (c[..., None] * py.x)
        f2 = px.x.mT @ (c2[..., None] * py.x)
        dd = px.diag * py.diag
        s1 = f1.square().sum((-2, -1)) - (c2 * dd).sum(-1)
        r = (f1 * f2).sum((-2, -1)) - (c2 * c * dd).sum(-1)
        q = f2.square().sum((-2, -1)) - (c2 * c2 * dd).sum(-1)
    p1, p2, p3, p4 = (c.pow(k).sum(-1) for k in (1, 2, 3, 4))
    n1 = p1 * p1 - p2
    n3 = p1**3 - 3 * p1 * p2 + 2 * p3
    n4 = p1**4 - 6 * p1 * p1 * p2 + 8 * p1 * p3 + 3 * p2 * p2 - 6 * p4
    ab = px.a * py.a
    t3 = (c * ab).sum(-1) - r
    t2 = (c * px.a).sum(-1) * (c * py.a).sum(-1) - 4 * (c2 * ab).sum(-1) + 2 * q
    return s1 / n1 + t2 / n4 - 2 * t3 / n3
