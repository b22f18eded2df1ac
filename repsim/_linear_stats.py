"""Sufficient statistics of the linear similarity measures, and the measures computed from them.

Pure functions behind :class:`repsim.StreamingSimilarity` (:mod:`repsim._streaming`).

Every linear measure is a function of a few sums over the samples, so adding up per-batch sums
gives the full-data value whatever the batching. The rows are shifted by a fixed vector ``c``
per layer (``x' = x - c``; the stream uses the mean of its first batch), which changes none of
the measures but keeps the sums well conditioned. With ``a_i = |x'_i|^2`` and
``b_i = |y'_i|^2`` the sums are ``n``, ``s = X'^T 1``, ``G = X'^T X'`` per layer and
``C = X'^T Y'`` per pair; the centred products are ``G - s s^T / n`` and ``C - s_x s_y^T / n``,
which give linear CKA, CCA / SVCCA / PWCCA (covariances, :mod:`repsim._cca_core`) and Procrustes
(the nuclear norm of the centred ``C``, :mod:`repsim._procrustes`).

The unbiased HSIC (Song et al. 2012) of the linear kernels ``K = X' X'^T``, ``L = Y' Y'^T``
(invariant to the shift), with ``K~``, ``L~`` their zero-diagonal versions, needs in addition
``r = sum a_i``, ``q = sum a_i b_i``, ``X'^T b`` and ``Y'^T a`` (and ``sum a_i^2``,
``X'^T a`` for ``K`` with itself)::

    tr(K~ L~)   = ||C||_F^2 - q
    1^T K~ 1    = |s_x|^2 - r_x
    1^T K~ L~ 1 = s_x^T C s_y - s_y^T (Y'^T a) - s_x^T (X'^T b) + q

Statistics about different shifts are brought to one (:func:`reshift`, a binomial expansion
of the shifted sums) before they are added, so merged and all-reduced sums stay exact.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from . import _blas, _cca, _cca_weighted, _hsic
from ._cka import _ratio

__all__ = ["Stats", "batch_stats", "summed", "with_summed", "to_device", "add", "reshift",
           "strip_extras", "measure_matrix"]

_F64 = torch.float64


@dataclass(frozen=True)
class Stats:
    """Sufficient statistics of the layers ``A_0..A_{la-1}, B_0..`` (lists indexed by layer).

    ``shift``, ``ref`` (the first sample) and ``varies`` (per layer, > 0 once two different
    samples were seen) are not sums; every other field adds up over samples. ``c`` holds the
    ``A x B`` pairs row by row. The fields ``r`` (L,), ``q_self`` (L,), ``q_cross`` (la, lb)
    and ``m`` (per layer ``(d_l, 1 + L_other)``: its rows times its own row norms, then times
    the other side's) exist for the debiased CKA only.
    """

    la: int
    n: torch.Tensor  # 0-dim: samples
    shift: list[torch.Tensor]  # (d_l,): c
    s: list[torch.Tensor]  # (d_l,): X'^T 1
    g: list[torch.Tensor]  # (d_l, d_l): X'^T X'
    c: list[torch.Tensor]  # (d_i, d_j): X_i'^T Y_j'
    ref: list[torch.Tensor]  # (d_l,): the first sample x_1
    varies: torch.Tensor  # (L,): > 0 iff some sample differs from x_1
    r: torch.Tensor | None = None  # (L,): sum_i a_i
    q_self: torch.Tensor | None = None  # (L,): sum_i a_i^2
    q_cross: torch.Tensor | None = None  # (la, lb): sum_i a_i b_i
    m: list[torch.Tensor] | None = None  # (d_l, 1 + L_other): X'^T [a_l, a_other...]

    @property
    def lb(self) -> int:
        return len(self.s) - self.la


def _other(l: int, la: int, total: int) -> list[int]:
    """Layers of the other side of layer ``l``."""
    return list(range(la, total)) if l < la else list(range(la))


# Largest factor by which folding the shift into the raw products (X'^T X' = X^T X - c s^T - ...)
# may amplify a column's rounding error (raw over shifted sum of squares), as in repsim._cca_core.
_MAX_AMPLIFICATION = 16.0


def _shifted_gram(
    x: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(A, alpha, X'^T 1, X'^T X')`` for ``X' = x - 1 c^T`` = ``A - 1 alpha^T``.

    The shift is folded into the products of the raw ``A = x`` (``alpha = c``; no shifted
    copy) where that is accurate, else ``A`` is the explicitly shifted copy (``alpha = 0``).
    """
    raw = _blas.gram_t(x)
    s_raw = x.sum(0)
    s = s_raw - x.shape[0] * c
    g = raw - torch.outer(c, s_raw) - torch.outer(s, c)  # A^T A - alpha s_A^T - s' alpha^T
    if bool((g.diagonal() * _MAX_AMPLIFICATION >= raw.diagonal()).all()):
        return x, c, s, g
    z = x - c
    return z, torch.zeros_like(c), z.sum(0), _blas.gram_t(z)


def batch_stats(
    xs: list[torch.Tensor],
    la: int,
    shift: list[torch.Tensor],
    *,
    extras: bool,
    check: list[bool] | None = None,
) -> Stats:
    """Statistics of one batch (``xs``: A layers then B layers, computation dtype).

    ``check[l]``: whether to look for different samples in layer ``l`` (default all).
    """
    shift = [c.to(device=x.device, dtype=x.dtype) for x, c in zip(xs, shift)]
    check = [True] * len(xs) if check is None else check
    varies = torch.tensor([float(bool((x != x[:1]).any())) if ck else 0.0
                           for x, ck in zip(xs, check)], dtype=_F64)
    if extras:  # the row norms need the shifted rows anyway
        zs = [x - c for x, c in zip(xs, shift)]  # X' = X - 1 c^T
        parts = [(z, torch.zeros_like(c), z.sum(0), _blas.gram_t(z)) for z, c in zip(zs, shift)]
    else:
        parts = [_shifted_gram(x, c) for x, c in zip(xs, shift)]
    cross = []
    for i in range(la):
        for j in range(la, len(xs)):
            (a, alpha, s_i, _), (b, beta, s_j, _) = parts[i], parts[j]
            # X_i'^T X_j' = A^T B - alpha (B^T 1)^T - s_i' beta^T, with B^T 1 = s_j' + n beta
            cij = _blas.cross_t(a, b)
            if bool(alpha.any()):
                cij -= torch.outer(alpha, s_j + b.shape[0] * beta)
            if bool(beta.any()):
                cij -= torch.outer(s_i, beta)
            cross.append(cij)
    stats = Stats(
        la=la,
        n=torch.tensor(float(xs[0].shape[0]), dtype=_F64),
        shift=shift,  # as used, in the computation dtype
        s=[p[2] for p in parts],
        g=[p[3] for p in parts],
        c=cross,
        ref=[x[0].clone() for x in xs],
        varies=varies,
    )
    if not extras:
        return stats
    rows = torch.stack([_hsic.row_sq_norms(z) for z in zs], 1)  # (b, L): a_i of every layer
    m = [z.mT @ rows[:, [l, *_other(l, la, len(zs))]] for l, z in enumerate(zs)]
    return replace(stats, r=rows.sum(0), q_self=rows.square().sum(0),
                   q_cross=rows[:, :la].mT @ rows[:, la:], m=m)


def summed(st: Stats) -> list[torch.Tensor]:
    """The fields that add up over samples, in a fixed order."""
    out = [st.n, *st.s, *st.g, *st.c]
    if st.m is not None:
        out += [st.r, st.q_self, st.q_cross, *st.m]
    return out


def with_summed(st: Stats, values: list[torch.Tensor]) -> Stats:
    """``st`` with the summed fields replaced by ``values`` (the order of :func:`summed`)."""
    L, it = len(st.s), iter(values)
    n = next(it)
    s, g = [next(it) for _ in range(L)], [next(it) for _ in range(L)]
    c = [next(it) for _ in range(len(st.c))]
    if st.m is None:
        return replace(st, n=n, s=s, g=g, c=c)
    r, q_self, q_cross = next(it), next(it), next(it)
    return replace(st, n=n, s=s, g=g, c=c, r=r, q_self=q_self, q_cross=q_cross,
                   m=[next(it) for _ in range(L)])


def to_device(st: Stats, device: Any) -> Stats:
    """``st`` in float64 on ``device``."""
    def move(t: torch.Tensor) -> torch.Tensor:
        return t.to(device=device, dtype=_F64)

    st = with_summed(st, [move(t) for t in summed(st)])
    return replace(st, shift=[move(t) for t in st.shift], ref=[move(t) for t in st.ref],
                   varies=move(st.varies))


def add(a: Stats, b: Stats) -> Stats:
    """Statistics of the union of two sample sets with the same shift."""
    total = with_summed(a, [p + q for p, q in zip(summed(a), summed(b))])
    differ = torch.stack([(p != q).any() for p, q in zip(a.ref, b.ref)]).to(_F64)
    return replace(total, varies=a.varies + b.varies + differ)


def _cross(st: Stats, l: int, k: int) -> torch.Tensor:
    """``X_l'^T X_k'`` for a layer with itself or with one of the other side."""
    if l == k:
        return st.g[l]
    if l < st.la:
        return st.c[l * st.lb + k - st.la]
    return st.c[k * st.lb + l - st.la].mT


def _column(st: Stats, l: int, k: int) -> int:
    """Column of ``st.m[l]`` holding ``X_l'^T a_k``."""
    return 0 if l == k else 1 + _other(l, st.la, len(st.s)).index(k)


def reshift(st: Stats, shift: list[torch.Tensor]) -> Stats:
    """The statistics of the same samples about another shift (``x'' = x' - delta``)."""
    delta = [new - old for new, old in zip(shift, st.shift)]
    n, L = st.n, len(st.s)
    ds = [d.dot(s) for d, s in zip(delta, st.s)]  # sum_i delta . x'_i
    e = [d.dot(d) for d in delta]  # |delta|^2
    s = [sl - n * d for sl, d in zip(st.s, delta)]
    g = [gl - torch.outer(d, sl) - torch.outer(sl, d) + n * torch.outer(d, d)
         for gl, sl, d in zip(st.g, st.s, delta)]
    pairs = [(i, j) for i in range(st.la) for j in range(st.la, L)]
    c = [st.c[p] - torch.outer(delta[i], st.s[j]) - torch.outer(st.s[i], delta[j])
         + n * torch.outer(delta[i], delta[j]) for p, (i, j) in enumerate(pairs)]
    out = replace(st, shift=list(shift), s=s, g=g, c=c)
    if st.m is None:
        return out

    def m_col(l: int, k: int) -> torch.Tensor:  # X_l''^T a_k''
        return (st.m[l][:, _column(st, l, k)] - 2.0 * _cross(st, l, k) @ delta[k]
                + e[k] * st.s[l] - delta[l] * st.r[k] + 2.0 * ds[k] * delta[l]
                - n * e[k] * delta[l])

    def q(l: int, k: int, q_lk: torch.Tensor) -> torch.Tensor:  # sum_i a_l'' a_k''
        return (q_lk - 2.0 * delta[k].dot(st.m[k][:, _column(st, k, l)])
                - 2.0 * delta[l].dot(st.m[l][:, _column(st, l, k)])
                + 4.0 * delta[l].dot(_cross(st, l, k) @ delta[k])
                + e[k] * st.r[l] + e[l] * st.r[k] - 2.0 * e[k] * ds[l] - 2.0 * e[l] * ds[k]
                + n * e[l] * e[k])

    m = [torch.stack([m_col(l, k) for k in [l, *_other(l, st.la, L)]], 1) for l in range(L)]
    r = st.r - 2.0 * torch.stack(ds) + n * torch.stack(e)
    q_self = torch.stack([q(l, l, st.q_self[l]) for l in range(L)])
    q_cross = torch.stack([torch.stack([q(i, j, st.q_cross[i, j - st.la])
                                        for j in range(st.la, L)]) for i in range(st.la)])
    return replace(out, m=m, r=r, q_self=q_self, q_cross=q_cross)


# --------------------------------------------------------------------------- the measures


def _unbiased_hsic(st: Stats, l: int, k: int) -> torch.Tensor:
    """Unbiased HSIC of the linear kernels of layers ``l`` and ``k`` (Song et al. 2012)."""
    n = st.n
    cross = _cross(st, l, k)
    q_lk = st.q_self[l] if l == k else st.q_cross[min(l, k), max(l, k) - st.la]
    trace = cross.square().sum() - q_lk  # tr(K~ L~)
    ones_k = st.s[l].dot(st.s[l]) - st.r[l]  # 1^T K~ 1
    ones_l = st.s[k].dot(st.s[k]) - st.r[k]
    mixed = (st.s[l].dot(cross @ st.s[k]) - st.s[k].dot(st.m[k][:, _column(st, k, l)])
             - st.s[l].dot(st.m[l][:, _column(st, l, k)]) + q_lk)  # 1^T K~ L~ 1
    value = trace + ones_k * ones_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * mixed
    return value / (n * (n - 3))


def _centred(st: Stats) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Centred ``X^T X`` per layer and ``X^T Y`` per pair (rank-one corrections)."""
    n = st.n
    g = [gl - torch.outer(sl, sl) / n for gl, sl in zip(st.g, st.s)]
    pairs = [(i, j) for i in range(st.la) for j in range(st.la, len(st.s))]
    c = [st.c[p] - torch.outer(st.s[i], st.s[j]) / n for p, (i, j) in enumerate(pairs)]
    return g, c


def measure_matrix(st: Stats, measure: str, options: dict[str, Any]) -> torch.Tensor:
    """``(la, lb)`` values of one measure from the statistics."""
    la, lb, n = st.la, st.lb, int(st.n)
    g, c = _centred(st)
    out = torch.empty(la, lb, dtype=_F64, device=st.n.device)
    if measure == "linear_cka_debiased":
        self_h = [_unbiased_hsic(st, l, l) for l in range(la + lb)]
        for i in range(la):
            for j in range(lb):
                out[i, j] = _ratio(_unbiased_hsic(st, i, la + j), self_h[i], self_h[la + j],
                                   debiased=True)
        return out
    norms = [gl.square().sum() for gl in g] if measure == "linear_cka" else None
    traces = [gl.trace() for gl in g] if measure == "procrustes" else None
    for i in range(la):
        for j in range(lb):
            cij = c[i * lb + j]
            if measure == "linear_cka":
                value = _ratio(cij.square().sum(), norms[i], norms[la + j], debiased=False)
            elif measure == "procrustes":
                value = _procrustes(cij, traces[i], traces[la + j], options["angular"])
            else:
                value = _cca_family(measure, g[i], g[la + j], cij, n, options)
            out[i, j] = value
    return out


def _procrustes(cross: torch.Tensor, tr_x: torch.Tensor, tr_y: torch.Tensor,
                angular: bool) -> torch.Tensor:
    """Procrustes distance from the centred cross product and the traces of the centred Grams."""
    nuclear = (torch.linalg.svdvals(cross).sum() / (tr_x * tr_y).sqrt()).clamp(0.0, 1.0)
    if angular:
        return torch.arccos(nuclear)
    return (2.0 - 2.0 * nuclear).clamp(min=0.0).sqrt()


def _cca_family(measure: str, gx: torch.Tensor, gy: torch.Tensor, cxy: torch.Tensor, n: int,
                options: dict[str, Any]) -> torch.Tensor:
    scale = 1.0 / (n - 1)  # covariances, as repsim._cca_core uses them
    sxx, syy, sxy = gx * scale, gy * scale, cxy * scale
    eps = options["epsilon"]
    if measure == "mean_cca":
        return _cca.mean_cca_cov(sxx, syy, sxy, n, epsilon=eps)
    if measure == "svcca":
        return _cca_weighted.svcca_cov(sxx, syy, sxy, n, keep=options["keep"], epsilon=eps)
    return _cca_weighted.pwcca_cov(sxx, syy, sxy, n, epsilon=eps)


def strip_extras(st: Stats, extras: bool) -> Stats:
    """Drop the debiased-CKA statistics when the receiving accumulator does not keep them."""
    return st if extras or st.m is None else replace(st, r=None, q_self=None, q_cross=None, m=None)
