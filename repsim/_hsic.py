"""HSIC estimators of one pair of kernels, shared by every CKA code path.

Notation (Gretton et al. 2005; Song et al. 2012): ``K = X X^T`` and ``L = Y Y^T`` are the
``(n, n)`` Gram matrices of ``n`` samples, ``H = I - 11^T / n`` is the centring matrix and
``K~`` is ``K`` with its diagonal set to zero.

* biased HSIC:   ``HSIC_0 = tr(K H L H) / (n - 1)^2``; for linear kernels
  ``tr(K H L H) = ||Yc^T Xc||_F^2`` with column-centred ``Xc``, ``Yc``
  (:func:`cross_sq_norm`, :func:`gram_sq_norm`).
* unbiased HSIC (Song et al. 2012)::

      HSIC_1 = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3))

  For linear kernels every term has an ``O(n d^2)`` feature-space form, so no ``(n, n)`` Gram is
  built: ``tr(K~L~) = ||X^T Y||_F^2 - sum_i |x_i|^2 |y_i|^2``, ``K~ 1 = X (X^T 1) - diag(K)``,
  ``1^T K~ 1 = sum(K~ 1)``.

Every kernel enters the unbiased estimator only through three *kernel statistics*: ``tr(K L)``
for each pair, and per kernel ``diag(K)`` and ``K~ 1`` (:func:`kernel_stats_features`,
:func:`kernel_stats_gram`). :func:`hsic_unbiased_from_stats` combines them, with broadcasting, so
that one layer's statistics are computed once and reused for every pair.

Related modules: :mod:`repsim._packed_gram` stores the Grams of many layers at once and
:mod:`repsim._hsic_terms` picks the cheaper form and computes every pair of two layer lists.

All functions are pure, keep the device and dtype of their inputs, and do no input checking
(the public measures validate with :mod:`repsim._validate` first).

>>> x, y = torch.randn(100, 8, dtype=torch.float64), torch.randn(100, 5, dtype=torch.float64)
>>> xc, yc = center_features(x), center_features(y)
>>> hsic_0 = cross_sq_norm(xc, yc) / 99**2                       # biased linear HSIC
"""
from __future__ import annotations

import torch

from . import _blas

__all__ = [
    "PANEL",
    "MAX_ELEMENTS",
    "center_features",
    "row_sq_norms",
    "foldable_mean",
    "center_gram",
    "gram_sq_norm",
    "cross_sq_norm",
    "hsic_unbiased_gram",
    "kernel_stats_features",
    "kernel_stats_gram",
    "hsic_unbiased_from_stats",
    "hsic_unbiased_pairs",
]

# Width of the column panels of :func:`gram_sq_norm` and the default row panels of
# :mod:`repsim._packed_gram` (GEMMs narrower than this lose efficiency, wider ones waste more
# of the symmetry).
PANEL = 128
# Largest number of elements of one intermediate product before work is split into pieces.
MAX_ELEMENTS = 1 << 26
# Largest share of ||X||_F^2 the column means may hold for implicit centring (foldable_mean).
_MEAN_ENERGY = 0.9


def center_features(x: torch.Tensor) -> torch.Tensor:
    """Subtract the column means: ``Xc = H X``, so that ``Xc Xc^T = H K H``.

    x : (n_samples, n_features) tensor. Returns a new tensor of the same shape.
    """
    return x - x.mean(0, keepdim=True)


def row_sq_norms(x: torch.Tensor) -> torch.Tensor:
    """Squared row norms ``|x_i|^2`` of an (n, d) tensor: an (n,) tensor, one pass over ``x``."""
    return torch.linalg.vector_norm(x, dim=1).square_()


def center_gram(k: torch.Tensor) -> torch.Tensor:
    """Double-centre a symmetric Gram matrix: ``H K H``.

    k : (n, n) tensor. Returns a new ``(n, n)`` tensor with zero row and column means.
    """
    row = k.mean(0, keepdim=True)  # (1, n); k symmetric, so also the column means
    return k - row - row.T + row.mean()


def foldable_mean(x: torch.Tensor, *, sq_rows: torch.Tensor | None = None) -> torch.Tensor | None:
    """Column means of ``x`` if centring may be folded into the products, else ``None``.

    Products of the centred ``Xc = X - 1 m^T`` can be had from those of ``X`` with rank-one
    corrections (``Xc^T Y = X^T Y - n m m_y^T``), which saves writing a centred copy. The
    rounding error of that grows with ``|m|^2 / var``, so it is only allowed when the column
    means carry at most 90% of ``||X||_F^2`` (then the loss is under 4 bits) and ``d <= n``;
    otherwise, and for data with (near) zero variance, the caller centres explicitly.

    x : (n, d) tensor; ``sq_rows`` : its (n,) squared row norms, if already computed (saves a
    pass over ``x``). Returns a (d,) tensor or ``None``.
    """
    n, d = x.shape
    if d > n:
        return None
    mean = x.sum(0) / n
    # ||X||_F^2 = ||Xc||_F^2 + n |m|^2, from the squared row norms when the caller has them
    energy = torch.linalg.vector_norm(x) ** 2 if sq_rows is None else sq_rows.sum()
    return mean if bool(n * mean.dot(mean) <= _MEAN_ENERGY * energy) and bool(energy > 0) else None


def gram_sq_norm(x: torch.Tensor, *, mean: torch.Tensor | None = None) -> torch.Tensor:
    """``||Xc^T Xc||_F^2 = ||Xc Xc^T||_F^2 = tr(K K)`` for a linear kernel, using symmetry.

    The product is formed on the smaller side of ``x`` and only one triangle is computed: BLAS
    ``syrk`` on CPU (:mod:`repsim._blas`), elsewhere the upper block triangle in panels of
    columns, which costs about ``(1 + 128/d) / 2`` of a full product.

    x : (n_samples, n_features) tensor. ``mean`` : (n_features,) tensor or None: if given, ``x``
    is centred implicitly (``Xc = x - mean``, see :func:`foldable_mean`; needs ``d <= n``),
    else ``Xc = x``. Returns a 0-dim tensor.
    """
    if mean is not None and x.shape[1] > x.shape[0]:
        raise ValueError(
            f"gram_sq_norm: implicit centring needs d <= n, got shape {tuple(x.shape)}"
        )
    n = x.shape[0]
    a = x if x.shape[1] <= x.shape[0] else x.T  # (m, p) with p <= m: the p x p product
    p = a.shape[1]
    if p <= 2 * PANEL or _blas.uses_syrk(a):
        full = _blas.gram_t(a)  # BLAS syrk on CPU: one triangle
        if mean is not None:
            full -= n * torch.outer(mean, mean)
        return full.square().sum()
    total = a.new_zeros(())
    for start in range(0, p, PANEL):
        block = a[:, start:start + PANEL].T @ a[:, start:]  # (b, p - start): upper panel
        if mean is not None:
            block -= n * torch.outer(mean[start:start + PANEL], mean[start:])
        diag = block[:, :PANEL].square().sum()
        total = total + 2.0 * block.square().sum() - diag
    return total


def cross_sq_norm(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    mean_x: torch.Tensor | None = None,
    mean_y: torch.Tensor | None = None,
) -> torch.Tensor:
    """``||Xc^T Yc||_F^2 = tr(K L)`` for linear kernels, in column chunks if ``d_x d_y`` is large.

    x : (n, d_x) tensor, y : (n, d_y) tensor. ``mean_x``, ``mean_y``: both None (``Xc = x``) or
    both the column means, for implicit centring (see :func:`foldable_mean`).
    Returns a 0-dim tensor.
    """
    n = x.shape[0]
    step = max(1, MAX_ELEMENTS // y.shape[1])
    total = x.new_zeros(())
    for i in range(0, x.shape[1], step):
        block = _blas.cross_t(x[:, i:i + step], y)
        if mean_x is not None:
            block -= n * torch.outer(mean_x[i:i + step], mean_y)
        total = total + block.square().sum()
    return total


def hsic_unbiased_gram(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC of Song et al. (2012) from Gram matrices.

    k, l : (n, n) symmetric tensors, n >= 4. Returns a 0-dim tensor (may be negative).
    """
    n = k.shape[0]
    kt = k - torch.diag_embed(torch.diagonal(k))  # K~
    lt = l - torch.diag_embed(torch.diagonal(l))  # L~
    k1, l1 = kt.sum(1), lt.sum(1)  # K~ 1, L~ 1
    trace = (kt * lt).sum()  # tr(K~ L~), both symmetric
    value = trace + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (k1 @ l1)
    return value / (n * (n - 3))


def kernel_stats_features(
    x: torch.Tensor, *, mean: torch.Tensor | None = None, sq_rows: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-kernel statistics of the linear kernel ``K = Xc Xc^T`` without forming ``K``.

    x : (n, d) tensor. ``mean`` : (d,) tensor or None: if given, ``Xc = x - mean`` implicitly
    (see :func:`foldable_mean`), else ``Xc = x``. ``sq_rows`` : the (n,) squared row norms of
    ``x``, if already computed.

    Returns
    -------
    diag : (n,) tensor
        ``diag(K)``, the squared row norms ``|xc_i|^2``.
    k1 : (n,) tensor
        ``K~ 1 = Xc (Xc^T 1) - diag(K)`` (``-diag(K)`` with ``mean``, where ``Xc^T 1 = 0``).
    """
    if sq_rows is None:  # |x_i|^2 (einsum "ij,ij->i" is ~5x slower)
        sq_rows = row_sq_norms(x)
    if mean is None:
        return sq_rows, x @ x.sum(0) - sq_rows
    diag = sq_rows - 2.0 * torch.mv(x, mean) + mean.dot(mean)  # |x_i - m|^2
    # Xc^T 1 = x.sum(0) - n m is zero up to the rounding of the mean, so K~1 = -diag(K)
    return diag, -diag


def kernel_stats_gram(k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-kernel statistics ``diag(K)`` and ``K~ 1`` of Gram matrices.

    k : (..., n, n) tensor of symmetric Grams. Returns two (..., n) tensors.
    """
    diag = torch.diagonal(k, dim1=-2, dim2=-1)
    return diag, k.sum(-1) - diag


def hsic_unbiased_from_stats(
    trace: torch.Tensor,
    diag_k: torch.Tensor,
    diag_l: torch.Tensor,
    k1: torch.Tensor,
    l1: torch.Tensor,
) -> torch.Tensor:
    """Unbiased HSIC from kernel statistics, broadcasting over leading dimensions.

    Parameters
    ----------
    trace : (...) tensor
        ``tr(K L)`` (full matrices, diagonals included).
    diag_k, diag_l : (..., n) tensors
        ``diag(K)``, ``diag(L)``.
    k1, l1 : (..., n) tensors
        ``K~ 1``, ``L~ 1``.

    Returns
    -------
    (...) tensor: ``HSIC_1`` of Song et al. (2012). For all pairs of ``A`` and ``B`` kernels pass
    ``trace`` of shape ``(A, B)``, ``diag_k[:, None]`` of shape ``(A, 1, n)`` and ``diag_l[None]``
    of shape ``(1, B, n)`` (likewise ``k1``, ``l1``).
    """
    n = diag_k.shape[-1]
    tr_tilde = trace - (diag_k * diag_l).sum(-1)  # tr(K~ L~)
    ones_term = k1.sum(-1) * l1.sum(-1) / ((n - 1) * (n - 2))  # (1^T K~ 1)(1^T L~ 1)/(..)
    cross_term = 2.0 / (n - 2) * (k1 * l1).sum(-1)  # 2/(n-2) 1^T K~ L~ 1
    return (tr_tilde + ones_term - cross_term) / (n * (n - 3))


def hsic_unbiased_pairs(
    trace: torch.Tensor,
    diag_a: torch.Tensor,
    diag_b: torch.Tensor,
    k1_a: torch.Tensor,
    k1_b: torch.Tensor,
) -> torch.Tensor:
    """:func:`hsic_unbiased_from_stats` for every pair of A and B kernels, as matrix products.

    trace : (A, B) tensor of ``tr(K_a L_b)``; diag_a, k1_a : (A, n); diag_b, k1_b : (B, n).
    Returns the (A, B) tensor of ``HSIC_1(K_a, L_b)`` (a handful of kernels in all, instead
    of a handful per pair).
    """
    n = diag_a.shape[-1]
    value = trace - diag_a @ diag_b.T - 2.0 / (n - 2) * (k1_a @ k1_b.T)
    value += torch.outer(k1_a.sum(-1), k1_b.sum(-1)) / ((n - 1) * (n - 2))
    return value / (n * (n - 3))
