"""Centered kernel alignment: linear and RBF CKA, biased and debiased (Kornblith et al. 2019).

>>> import torch
>>> from repsim._cka import linear_cka
>>> x = torch.randn(500, 64, dtype=torch.float64)
>>> q, _ = torch.linalg.qr(torch.randn(64, 64, dtype=torch.float64))
>>> round(float(linear_cka(x, 3 * x @ q + 1)), 12)
1.0

``CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))``. The biased estimator uses the
centred Grams ``HKH``; ``debiased=True`` uses the unbiased HSIC of Song et al. (2012), whose
CKA is still biased but much less so for small ``n`` (it can be slightly negative).
"""
from __future__ import annotations

from typing import Any

import torch

from . import _blas, _hsic, _hsic_terms
from ._validate import as_pair, check_min_samples, check_variance

__all__ = ["linear_cka", "rbf_cka"]


def linear_cka(
    x: Any, y: Any, *, debiased: bool = False, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Linear CKA (Kornblith et al. 2019), computed in feature space.

    Parameters
    ----------
    x : (n_samples, n_features_x) tensor or array
    y : (n_samples, n_features_y) tensor or array
    debiased : bool
        Use the unbiased HSIC estimator of Song et al. (2012); needs ``n_samples >= 4``.
    dtype : torch.dtype
        Computation dtype (default float64).

    Returns
    -------
    0-dim float64 tensor on the device of ``x``: 1 iff ``y = c x Q + v`` for orthogonal ``Q``.

    Raises
    ------
    ValueError
        Bad input (see :func:`repsim._validate.as_pair`), too few samples, a zero-variance
        input, or (debiased) a non-positive unbiased self-HSIC, for which CKA is undefined.

    Notes
    -----
    The cheaper of two exact forms is used (:func:`repsim._hsic_terms.choose_form`). Feature space
    (``d`` up to about ``n``): the only ``O(n d^2)`` work is ``Xc^T Yc`` and the symmetric
    ``Xc^T Xc``, ``Yc^T Yc`` (one triangle each), no ``(n, n)`` Gram; where accurate (column
    means holding at most 90% of ``||x||_F^2``, ``d <= n``), centring is folded into those
    products as rank-one corrections instead of writing centred copies. Wide layers (e.g.
    flattened conv maps, ``d >> n``): the two centred ``(n, n)`` Grams, ``O(n^2 d)``.
    """
    x, y = as_pair(x, y, dtype=dtype)
    n = x.shape[0]
    check_min_samples(n, 4 if debiased else 2, "debiased linear CKA" if debiased else "linear CKA")
    if _hsic_terms.choose_form(n, [x.shape[1]], [y.shape[1]], full=_blas.uses_syrk(x)) == "gram":
        _check_spread(x, "x")  # wide layers (d > n, e.g. flattened conv maps): (n, n) Grams
        _check_spread(y, "y")
        if debiased:
            hxy, hxx, hyy = _hsic_terms.unbiased_terms([x], [y], form="gram")
        else:
            hxy, hxx, hyy, _, _ = _hsic_terms.linear_terms([x], [y], form="gram")
        return _ratio(hxy.reshape(()), hxx.reshape(()), hyy.reshape(()), debiased=debiased)
    # debiased: the squared row norms serve both the centring check and the kernel statistics
    sx, sy = (_hsic.row_sq_norms(t) if debiased else None for t in (x, y))
    x, mx = _centring(x, "x", sx)
    y, my = _centring(y, "y", sy)
    if (mx is None) != (my is None):  # fold both or neither
        x, y = (_hsic.center_features(x), y) if mx is not None else (x, _hsic.center_features(y))
        mx = my = None
    hxy = _hsic.cross_sq_norm(x, y, mean_x=mx, mean_y=my)  # tr(KHLH) = ||Xc^T Yc||_F^2
    hxx = _hsic.gram_sq_norm(x, mean=mx)
    hyy = _hsic.gram_sq_norm(y, mean=my)
    if debiased:
        keep = mx is not None  # raw x, y kept (implicit centring): their row norms still hold
        dx, kx1 = _hsic.kernel_stats_features(x, mean=mx, sq_rows=sx if keep else None)
        dy, ky1 = _hsic.kernel_stats_features(y, mean=my, sq_rows=sy if keep else None)
        hxy = _hsic.hsic_unbiased_from_stats(hxy, dx, dy, kx1, ky1)
        hxx = _hsic.hsic_unbiased_from_stats(hxx, dx, dx, kx1, kx1)
        hyy = _hsic.hsic_unbiased_from_stats(hyy, dy, dy, ky1, ky1)
    return _ratio(hxy, hxx, hyy, debiased=debiased)


def rbf_cka(
    x: Any,
    y: Any,
    *,
    threshold: float = 1.0,
    debiased: bool = False,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """RBF-kernel CKA with Kornblith et al.'s bandwidth convention.

    ``K_ij = exp(-|x_i - x_j|^2 / (2 sigma^2))`` with ``sigma^2 = threshold^2 * median`` of all
    ``n^2`` entries of the squared-distance matrix (its zero diagonal included), exactly as in
    the reference code of Kornblith et al. (2019).

    Parameters
    ----------
    x : (n_samples, n_features_x) tensor or array
    y : (n_samples, n_features_y) tensor or array
    threshold : float
        Bandwidth as a fraction of the median distance (> 0).
    debiased : bool
        Use the unbiased HSIC estimator (Song et al. 2012); needs ``n_samples >= 4``.
    dtype : torch.dtype
        Computation dtype (default float64).

    Returns
    -------
    0-dim float64 tensor on the device of ``x``. Builds two ``(n, n)`` Grams.
    """
    x, y = as_pair(x, y, dtype=dtype)
    n = x.shape[0]
    check_min_samples(n, 4 if debiased else 2, "debiased RBF CKA" if debiased else "RBF CKA")
    _check_spread(x, "x")
    _check_spread(y, "y")
    k = rbf_gram(x, threshold=threshold, name="x")
    l = rbf_gram(y, threshold=threshold, name="y")
    kc, lc = _hsic.center_gram(k), _hsic.center_gram(l)
    if debiased:
        hxy = _hsic.hsic_unbiased_gram(kc, lc)
        hxx = _hsic.hsic_unbiased_gram(kc, kc)
        hyy = _hsic.hsic_unbiased_gram(lc, lc)
    else:
        hxy, hxx, hyy = (kc * lc).sum(), kc.square().sum(), lc.square().sum()
    return _ratio(hxy, hxx, hyy, debiased=debiased)


def rbf_gram(x: torch.Tensor, *, threshold: float = 1.0, name: str = "x") -> torch.Tensor:
    """RBF Gram matrix with ``sigma^2 = threshold^2 * median(squared distances)``.

    x : (n, d) validated tensor. Returns an ``(n, n)`` tensor.

    Raises
    ------
    ValueError
        If ``threshold`` is not a positive finite number, or the median squared distance is 0
        (more than half of all pairs coincide), which leaves the bandwidth undefined.
    """
    if not (isinstance(threshold, (int, float)) and 0 < threshold < float("inf")):
        raise ValueError(f"threshold: expected a positive finite number, got {threshold!r}")
    dot = x @ x.T
    sq_norms = torch.diagonal(dot)
    sq_dist = -2 * dot + sq_norms[:, None] + sq_norms[None, :]  # reference order of operations
    median = _median_all(sq_dist)
    if not bool(median > 0):
        raise ValueError(
            f"{name}: expected a positive median squared distance for the RBF bandwidth, "
            f"got {float(median):.3g} (most samples are identical)"
        )
    return torch.exp(-sq_dist / (2 * threshold**2 * median))


def _median_all(a: torch.Tensor) -> torch.Tensor:
    """Median of all entries, averaging the two middle ones for an even count (as numpy)."""
    flat = a.reshape(-1)
    m = flat.numel()
    upper = flat.kthvalue(m // 2 + 1).values
    if m % 2:
        return upper
    return (flat.kthvalue(m // 2).values + upper) / 2


def _centring(
    x: torch.Tensor, name: str, sq_rows: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(x, column means)`` for implicit centring where that is accurate, else the explicitly
    centred ``x`` and ``None`` after an exact zero-variance check."""
    mean = _hsic.foldable_mean(x, sq_rows=sq_rows)
    if mean is not None:  # the means hold <= 90% of ||x||^2: the variance is clearly positive
        return x, mean
    _check_spread(x, name)
    return _hsic.center_features(x), None


def _check_spread(x: torch.Tensor, name: str) -> None:
    """Zero-variance check that is exact (no rounding from centring) and allocation-light."""
    lo, hi = torch.aminmax(x, dim=0)
    check_variance((hi - lo)[None], name)  # all columns constant <=> every sample identical


def _ratio(
    hxy: torch.Tensor, hxx: torch.Tensor, hyy: torch.Tensor, *, debiased: bool
) -> torch.Tensor:
    """``hxy / sqrt(hxx hyy)`` as float64, refusing an undefined ratio."""
    for value, name in ((hxx, "x"), (hyy, "y")):
        if not bool(value > 0):
            what = "unbiased HSIC" if debiased else "HSIC"
            hint = " (too few samples for the debiased estimator; use more or debiased=False)" \
                if debiased else ""
            raise ValueError(
                f"CKA is undefined: expected a positive {what} of {name} with itself, "
                f"got {float(value):.3g}{hint}"
            )
    # |CKA| <= 1 by Cauchy-Schwarz (both estimators are inner products of centred kernels);
    # clamping only removes rounding beyond that bound.
    return (hxy / (hxx.sqrt() * hyy.sqrt())).clamp(-1.0, 1.0).to(torch.float64)
