"""Every pair of two lists of layers: the cheaper form (cost model) and the HSIC terms.

:func:`choose_form` compares the cost of the feature form (products of the activations) with
that of the Gram form (:mod:`repsim._packed_gram`); :func:`traces`, :func:`linear_terms` and
:func:`unbiased_terms` then give ``tr(K_a L_b)`` for all pairs and ``tr(K_a K_a)`` per layer,
with the kernel statistics of :mod:`repsim._hsic` where the unbiased estimator needs them.
Used by :func:`repsim.linear_cka`, :func:`repsim.similarity_matrix` and
:class:`repsim.MinibatchCKA`.

>>> xs = [torch.randn(200, d, dtype=torch.float64) for d in (4, 30)]
>>> form = choose_form(200, [4, 30], [4, 30])
>>> hxy, hxx, hyy = unbiased_terms(xs, xs, form=form)   # (2, 2), (2,), (2,)
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from . import _hsic
from ._hsic import center_features, cross_sq_norm, gram_sq_norm, hsic_unbiased_from_stats
from ._hsic import hsic_unbiased_pairs, kernel_stats_features
from ._packed_gram import gram_panel, packed_grams

__all__ = ["Form", "choose_form", "traces", "linear_terms", "unbiased_terms"]

Form = Literal["features", "gram"]


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
    fits = (a + b) * packed <= 4 * _hsic.MAX_ELEMENTS
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
        if x.shape[1] * ycat.shape[1] <= _hsic.MAX_ELEMENTS:
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
    stats_a = _stacked_stats(xc)
    stats_b = stats_a if ys is xs else _stacked_stats(yc)
    return cross, self_a, self_b, stats_a, stats_b


def _stacked_stats(centred: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """``(diag, K~1)`` of each (n, d) layer (:func:`kernel_stats_features`), stacked to (L, n)."""
    return tuple(torch.stack(s) for s in zip(*map(kernel_stats_features, centred)))


def _gram_terms(
    xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], *, centre: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple, tuple]:
    """:func:`linear_terms` in Gram form: one :func:`packed_grams` call over all layers.

    Returns cross (A, B), self_a (A,), self_b (B,) and the ``(diag, K~1)`` statistics,
    (A, n) and (B, n) tensors.
    """
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
