"""Pure HSIC math shared by :mod:`repsim._cka`, :mod:`repsim._minibatch` and :mod:`repsim._matrix`.

Notation (Gretton et al. 2005; Song et al. 2012): ``K = X X^T`` and ``L = Y Y^T`` are the
``(n, n)`` Gram matrices of ``n`` samples, ``H = I - 11^T / n`` is the centring matrix and
``K~`` is ``K`` with its diagonal set to zero.

* biased HSIC:   ``HSIC_0 = tr(K H L H) / (n - 1)^2``; for linear kernels
  ``tr(K H L H) = ||Yc^T Xc||_F^2`` with column-centred ``Xc``, ``Yc``.
* unbiased HSIC (Song et al. 2012)::

      HSIC_1 = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3))

  For linear kernels every term has an ``O(n d^2)`` feature-space form, so no ``(n, n)`` Gram is
  built: ``tr(K~L~) = ||X^T Y||_F^2 - sum_i |x_i|^2 |y_i|^2``, ``K~ 1 = X (X^T 1) - diag(K)``,
  ``1^T K~ 1 = sum(K~ 1)``.

Every kernel enters the unbiased estimator only through three *kernel statistics*: ``tr(K L)``
for each pair, and per kernel ``diag(K)`` and ``K~ 1`` (:func:`kernel_stats_features`,
:func:`kernel_stats_gram`). :func:`hsic_unbiased_from_stats` combines them, with broadcasting, so
that one layer's statistics are computed once and reused for every pair.

All functions are pure, keep the device and dtype of their inputs, and do no input checking
(the public measures validate with :mod:`repsim._validate` first).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from . import _blas

__all__ = [
    "center_features",
    "row_sq_norms",
    "foldable_mean",
    "center_gram",
    "gram_sq_norm",
    "cross_sq_norm",
    "hsic_biased_features",
    "hsic_biased_gram",
    "hsic_unbiased_features",
    "hsic_unbiased_gram",
    "kernel_stats_features",
    "kernel_stats_gram",
    "hsic_unbiased_from_stats",
    "hsic_unbiased_pairs",
    "packed_gram",
    "packed_grams",
    "packed_size",
    "gram_panel",
    "choose_form",
    "traces",
    "linear_terms",
    "unbiased_terms",
]

Form = Literal["features", "gram"]

# Width of the panels used by :func:`gram_sq_norm` and :func:`packed_gram` (GEMMs narrower
# than this lose efficiency, wider ones waste more of the symmetry).
_PANEL = 128
# Largest number of elements of one intermediate product before work is split into pieces.
_MAX_ELEMENTS = 1 << 26
_SQRT_HALF = 0.5**0.5
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
    if p <= 2 * _PANEL or _blas.uses_syrk(a):
        full = _blas.gram_t(a)  # BLAS syrk on CPU: one triangle
        if mean is not None:
            full -= n * torch.outer(mean, mean)
        return full.square().sum()
    total = a.new_zeros(())
    for start in range(0, p, _PANEL):
        block = a[:, start:start + _PANEL].T @ a[:, start:]  # (b, p - start): upper panel
        if mean is not None:
            block -= n * torch.outer(mean[start:start + _PANEL], mean[start:])
        diag = block[:, :_PANEL].square().sum()
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
    step = max(1, _MAX_ELEMENTS // y.shape[1])
    total = x.new_zeros(())
    for i in range(0, x.shape[1], step):
        block = _blas.cross_t(x[:, i:i + step], y)
        if mean_x is not None:
            block -= n * torch.outer(mean_x[i:i + step], mean_y)
        total = total + block.square().sum()
    return total


def hsic_biased_features(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Biased linear HSIC in feature space, ``||Yc^T Xc||_F^2 / (n - 1)^2``.

    x : (n, d_x) tensor, y : (n, d_y) tensor. Returns a 0-dim tensor.
    """
    n = x.shape[0]
    xc, yc = center_features(x), center_features(y)
    return cross_sq_norm(yc, xc) / (n - 1) ** 2


def hsic_biased_gram(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Biased HSIC from Gram matrices, ``tr(K H L H) / (n - 1)^2 = <HKH, HLH>_F / (n - 1)^2``.

    k, l : (n, n) symmetric tensors. Returns a 0-dim tensor.
    """
    n = k.shape[0]
    return (center_gram(k) * center_gram(l)).sum() / (n - 1) ** 2


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


def hsic_unbiased_features(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased linear HSIC (Song et al. 2012) in ``O(n d_x d_y)``, no ``(n, n)`` Gram.

    x : (n, d_x) tensor, y : (n, d_y) tensor (centring not required), n >= 4.
    Returns a 0-dim tensor (may be negative).
    """
    trace = cross_sq_norm(x, y)  # tr(K L) = ||X^T Y||_F^2
    diag_k, k1 = kernel_stats_features(x)
    diag_l, l1 = kernel_stats_features(y)
    return hsic_unbiased_from_stats(trace, diag_k, diag_l, k1, l1)


def packed_gram(
    x: torch.Tensor, *, panel: int | None = None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """The linear Gram ``K = X X^T`` packed so that ``2 <packed(X), packed(Y)> = <K, L>_F``.

    Only the upper block triangle of ``K`` is computed, in row panels of ``panel`` samples;
    the diagonal blocks (which hold each off-diagonal entry twice) are scaled by ``1/sqrt(2)``,
    so the strictly upper blocks stand for their mirror images. Costs about
    ``(1 + panel/n) / 2`` of the full ``X X^T``.

    Parameters
    ----------
    x : (n, d) tensor
    panel : int, optional
        Rows per panel (default :func:`gram_panel`).
    out : 1-D tensor of :func:`packed_size` entries, optional
        Written in place (e.g. a row of a preallocated stack).

    Returns
    -------
    1-D tensor of ``packed_size(n, panel)`` entries.
    """
    n = x.shape[0]
    panel = panel or gram_panel(n)
    if out is None:
        out = x.new_empty(packed_size(n, panel))
    _packed_panels(x[None], out[None], slice(0, 1), panel)
    return out


def packed_size(n: int, panel: int | None = None) -> int:
    """Number of entries of :func:`packed_gram` for ``n`` samples (default panel: :func:`gram_panel`)."""
    panel = panel or gram_panel(n)
    return sum((min(s + panel, n) - s) * (n - s) for s in range(0, n, panel))


def gram_panel(n: int) -> int:
    """Rows per panel of a packed Gram of ``n`` samples.

    Narrow panels waste less of the symmetry (the cost is ``(1 + panel/n) / 2`` of ``X X^T``)
    but make thinner products; 64 rows suit the minibatch sizes (``n <= 512``), 128 larger ``n``.
    """
    return 64 if n <= 512 else _PANEL


def packed_grams(
    xs: Sequence[torch.Tensor], *, centre: bool = True, panel: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Packed Grams and kernel statistics of several layers at once.

    Two layouts satisfy ``2 <packed[a], packed[b]> = tr(K_a K_b)``:

    * on CPU (float32/float64, :func:`repsim._blas.uses_syrk`): the full Gram ``K / sqrt(2)``
      flattened (``n^2`` entries), each ``K`` from one BLAS ``syrk`` (half the flops of
      ``X X^T``);
    * elsewhere: :func:`packed_gram`'s upper block triangle (``packed_size(n, panel)`` entries).
      Layers of equal width are stacked into one ``(G, n, d)`` buffer and each panel is one
      batched product (``bmm``).

    Parameters
    ----------
    xs : sequence of L tensors (n, d_l)
        Same ``n``, dtype and device.
    centre : bool
        Use the column-centred ``Xc`` (``K = Xc Xc^T = H X X^T H``); else ``X`` as given.
    panel : int, optional
        Rows per panel of the block-triangle layout (default :func:`gram_panel`).

    Returns
    -------
    packed : (L, m) tensor
        ``m = n^2`` (CPU layout) or ``packed_size(n, panel)``.
    diag : (L, n) tensor
        ``diag(K_l)``.
    k1 : (L, n) tensor
        ``K~_l 1 = K_l 1 - diag(K_l)`` (``-diag(K_l)`` when centred, as ``K_l 1 = 0``).
    """
    n = xs[0].shape[0]
    syrk = _blas.uses_syrk(xs[0])
    panel = panel or gram_panel(n)
    packed = xs[0].new_empty(len(xs), n * n if syrk else packed_size(n, panel))
    diag = xs[0].new_empty(len(xs), n)
    k1 = xs[0].new_empty(len(xs), n)
    if syrk:  # one layer at a time: full (n, n) Grams, scaled once at the end
        for i, x in enumerate(xs):
            xc = x - x.mean(0, keepdim=True) if centre else x.contiguous()
            _blas.gram(xc, out=packed[i].view(n, n))
            _kernel_diag(xc[None], diag, k1, i, centre)
        packed *= _SQRT_HALF
    else:  # layers of equal width stacked, one batched product per panel
        groups: dict[int, list[int]] = {}
        for i, x in enumerate(xs):
            groups.setdefault(x.shape[1], []).append(i)
        for members in groups.values():
            stack = xs[0].new_empty(len(members), n, xs[members[0]].shape[1])  # (G, n, d)
            for buf, i in zip(stack, members):
                torch.sub(xs[i], xs[i].mean(0, keepdim=True), out=buf) if centre else buf.copy_(xs[i])
            rows = _rows(members, stack.device)
            _packed_panels(stack, packed, rows, panel)
            _kernel_diag(stack, diag, k1, rows, centre)
    # centred: Xc^T 1 = 0, so K~1 = -diag(K) (up to the rounding of the centring itself)
    return packed, diag, (-diag if centre else k1 - diag)


def _kernel_diag(stack: torch.Tensor, diag: torch.Tensor, k1: torch.Tensor,
                 rows: int | slice | torch.Tensor, centre: bool) -> None:
    """Write ``diag(K)`` (and, uncentred, ``X (X^T 1)``) of the (G, n, d) ``stack`` into ``rows``."""
    diag[rows] = torch.linalg.vector_norm(stack, dim=2).square_()
    if not centre:  # one matrix-vector product per layer (a batched one is ~10x slower on CPU)
        k1[rows] = torch.stack([torch.mv(buf, buf.sum(0)) for buf in stack])


def _rows(members: list[int], device: torch.device) -> slice | torch.Tensor:
    """Index of ``members``: a slice when consecutive (a view, no index kernel), else a tensor."""
    if members == list(range(members[0], members[-1] + 1)):
        return slice(members[0], members[-1] + 1)
    return torch.tensor(members, device=device)


def _packed_panels(
    stack: torch.Tensor, packed: torch.Tensor, rows: slice | torch.Tensor, panel: int
) -> None:
    """Write the block-triangle packed Grams of ``stack`` (G, n, d) into ``packed[rows]``."""
    n = stack.shape[1]
    offset = 0
    for start in range(0, n, panel):
        stop = min(start + panel, n)
        block = torch.bmm(stack[:, start:stop], stack[:, start:].transpose(1, 2))
        block[:, :, : stop - start] *= _SQRT_HALF  # (G, p, n - start): upper rows of K
        size = block.shape[1] * block.shape[2]
        packed[rows, offset:offset + size] = block.reshape(stack.shape[0], size)
        offset += size


def choose_form(
    n: int, widths_a: Sequence[int], widths_b: Sequence[int], *, full: bool = False
) -> Form:
    """Pick the cheaper way to get every ``tr(K_a L_b)`` and ``tr(K_a K_a)`` (linear kernels).

    Feature form: ``n * sum(d_a) * sum(d_b)`` multiply-adds for the cross products plus about
    ``n min(n, d) d / 2`` per layer for the self terms. Gram form (:func:`packed_grams`): about
    ``n^2 d / 2`` per layer (weighted 1.5x for the lower efficiency of ``(n, n)`` products)
    plus one inner product of two packed Grams per pair of all layers, and memory for
    all ``len(a) + len(b)`` packed Grams. ``full``: the packed Grams are full ``n x n`` (the CPU
    layout of :func:`packed_grams`), else block triangles of about ``n^2 / 2`` entries.
    """
    a, b = len(widths_a), len(widths_b)
    features = n * sum(widths_a) * sum(widths_b) + sum(
        n * min(n, d) * d / 2 for d in (*widths_a, *widths_b))
    packed = n * n if full else n * (n + min(n, gram_panel(n))) / 2
    per_width = n * n / 2 if full else packed
    # The (n, n) products run at lower efficiency than the feature form's (measured ~1.3-1.5x
    # per flop at n = 2000, d = 64..1024); every pair of all a + b layers is one more product.
    gram = 1.5 * per_width * (sum(widths_a) + sum(widths_b)) + packed * (a + b) ** 2
    fits = (a + b) * packed <= 4 * _MAX_ELEMENTS
    return "gram" if gram < features and fits else "features"


def traces(
    xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], *, form: Form
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``tr(K_a L_b)`` for every pair and ``tr(K_a K_a)``, ``tr(L_b L_b)`` for every layer.

    Parameters
    ----------
    xs : sequence of A tensors (n, d_a)
    ys : sequence of B tensors (n, d_b)
    form : "features" or "gram"
        ``"features"``: ``||X_a^T Y_b||_F^2`` from one product of each ``X_a`` with
        ``[Y_1 ... Y_B]`` side by side, and :func:`gram_sq_norm` per layer. ``"gram"``: the
        packed Grams of all layers (:func:`packed_grams`), then all pairs from one product of
        the two stacks (if ``xs is ys``, one set of Grams).

    Returns
    -------
    cross : (A, B) tensor, self_a : (A,) tensor, self_b : (B,) tensor
    """
    if form == "gram":
        cross, self_a, self_b, _, _ = _gram_terms(xs, ys, centre=False)
        return cross, self_a, self_b
    widths = [y.shape[1] for y in ys]
    ycat = torch.cat(list(ys), dim=1) if len(ys) > 1 else ys[0]  # (n, sum d_b)
    cross = []
    for x in xs:
        if x.shape[1] * ycat.shape[1] <= _MAX_ELEMENTS:
            blocks = (x.T @ ycat).square().sum(0).split(widths)  # per column, then per layer
            cross.append(torch.stack([blk.sum() for blk in blocks]))
        else:
            cross.append(torch.stack([cross_sq_norm(x, y) for y in ys]))
    self_a = torch.stack([gram_sq_norm(x) for x in xs])
    self_b = torch.stack([gram_sq_norm(y) for y in ys])
    return torch.stack(cross), self_a, self_b


def linear_terms(
    xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], *, form: Form, stats: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple | None, tuple | None]:
    """Everything linear CKA needs for every pair, on column-centred data (centred here).

    Parameters
    ----------
    xs : sequence of A tensors (n, d_a), ys : sequence of B tensors (n, d_b)
        Raw (uncentred) activations; ``ys is xs`` for a self-similarity matrix.
    form : "features" or "gram" (see :func:`choose_form`)
    stats : bool
        Also return the kernel statistics. In Gram form they come with the Grams; in feature
        form ``False`` skips two passes over every layer and returns ``None`` for both.

    Returns
    -------
    cross : (A, B) tensor
        ``tr(K_a L_b)`` with ``K_a = Xc_a Xc_a^T``.
    self_a : (A,) tensor, self_b : (B,) tensor
        ``tr(K_a K_a)``, ``tr(L_b L_b)``.
    stats_a, stats_b : tuples ``(diag, K~1)`` of (A, n) and (B, n) tensors
        The kernel statistics of :func:`hsic_unbiased_from_stats`.
    """
    if form == "gram":
        return _gram_terms(xs, ys, centre=True)
    xc = [center_features(x) for x in xs]
    yc = xc if ys is xs else [center_features(y) for y in ys]
    cross, self_a, self_b = traces(xc, yc, form="features")
    if not stats:
        return cross, self_a, self_b, None, None
    stats_a = tuple(torch.stack(s) for s in zip(*map(kernel_stats_features, xc)))
    stats_b = stats_a if ys is xs else tuple(torch.stack(s) for s in zip(*map(kernel_stats_features, yc)))
    return cross, self_a, self_b, stats_a, stats_b


def _gram_terms(xs, ys, *, centre):
    """:func:`linear_terms` in Gram form: one :func:`packed_grams` call over all layers."""
    a = len(xs)
    layers = list(xs) if ys is xs else [*xs, *ys]
    packed, diag, k1 = packed_grams(layers, centre=centre)
    selfs = 2.0 * torch.linalg.vector_norm(packed, dim=1).square()
    if ys is xs:
        cross = 2.0 * (packed @ packed.T)
        return cross, selfs, selfs, (diag, k1), (diag, k1)
    cross = 2.0 * (packed[:a] @ packed[a:].T)
    return cross, selfs[:a], selfs[a:], (diag[:a], k1[:a]), (diag[a:], k1[a:])


def unbiased_terms(
    xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], *, form: Form
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unbiased linear HSIC of every pair and of every layer with itself.

    xs : sequence of A tensors (n, d_a), ys : sequence of B tensors (n, d_b) (raw activations;
    ``ys is xs`` for a self-similarity matrix). Returns ``hxy`` (A, B), ``hxx`` (A,), ``hyy`` (B,).
    In Gram form every pair of all ``A + B`` layers comes from one product of the packed Grams
    and three small ones for the kernel statistics (:func:`hsic_unbiased_pairs`).
    """
    if form == "gram":
        a = len(xs)
        layers = list(xs) if ys is xs else [*xs, *ys]
        packed, diag, k1 = packed_grams(layers, centre=True)
        every = hsic_unbiased_pairs(2.0 * (packed @ packed.T), diag, diag, k1, k1)  # (L, L)
        selfs = torch.diagonal(every)
        if ys is xs:
            return every, selfs, selfs
        return every[:a, a:], selfs[:a], selfs[a:]
    cross, self_a, self_b, (da, ka), (db, kb) = linear_terms(xs, ys, form=form)
    return (hsic_unbiased_pairs(cross, da, db, ka, kb),
            hsic_unbiased_from_stats(self_a, da, da, ka, ka),
            hsic_unbiased_from_stats(self_b, db, db, kb, kb))
