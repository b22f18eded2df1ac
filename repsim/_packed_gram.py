"""Packed Gram matrices: the linear Grams of many layers stored for all-pairs inner products.

Two layouts satisfy ``2 <packed[a], packed[b]> = tr(K_a K_b)`` (``K = X X^T``), so that the
traces of every pair of layers come from one matrix product of the stacked packed Grams:

* on CPU (float32/float64, :func:`repsim._blas.uses_syrk`): the full Gram ``K / sqrt(2)``
  flattened (``n^2`` entries), each ``K`` from one BLAS ``syrk``;
* elsewhere: the upper block triangle of ``K`` in row panels of :func:`gram_panel` samples,
  diagonal blocks scaled by ``1/sqrt(2)`` (:func:`packed_size` entries, about ``n^2 / 2``).

>>> xs = [torch.randn(50, d, dtype=torch.float64) for d in (4, 9)]
>>> packed, diag, k1 = packed_grams(xs)                 # (2, m), (2, 50), (2, 50)
>>> traces = 2.0 * packed @ packed.T                    # (2, 2): tr(K_a K_b), centred
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from . import _blas, _hsic

__all__ = ["packed_grams", "packed_size", "gram_panel", "packed_panels"]

_SQRT_HALF = 0.5**0.5


def packed_grams(
    xs: Sequence[torch.Tensor], *, centre: bool = True, panel: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Packed Grams and kernel statistics of several layers at once.

    The layout (see the module docstring):

    * on CPU (float32/float64, :func:`repsim._blas.uses_syrk`): the full Gram ``K / sqrt(2)``
      flattened (``n^2`` entries), each ``K`` from one BLAS ``syrk`` (half the flops of
      ``X X^T``);
    * elsewhere: the upper block triangle (``packed_size(n, panel)`` entries).
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
                if centre:
                    torch.sub(xs[i], xs[i].mean(0, keepdim=True), out=buf)
                else:
                    buf.copy_(xs[i])
            rows = _rows(members, stack.device)
            packed_panels(stack, packed, rows, panel)
            _kernel_diag(stack, diag, k1, rows, centre)
    # centred: Xc^T 1 = 0, so K~1 = -diag(K) (up to the rounding of the centring itself)
    return packed, diag, (-diag if centre else k1 - diag)


def packed_size(n: int, panel: int | None = None) -> int:
    """Number of entries of a block-triangle packed Gram of ``n`` samples.

    The default ``panel`` is :func:`gram_panel` ``(n)``.
    """
    panel = panel or gram_panel(n)
    return sum((min(s + panel, n) - s) * (n - s) for s in range(0, n, panel))


def gram_panel(n: int) -> int:
    """Rows per panel of a packed Gram of ``n`` samples.

    Narrow panels waste less of the symmetry (the cost is ``(1 + panel/n) / 2`` of ``X X^T``)
    but make thinner products; 64 rows suit the minibatch sizes (``n <= 512``), 128 larger ``n``.
    """
    return 64 if n <= 512 else _hsic.PANEL


def _kernel_diag(stack: torch.Tensor, diag: torch.Tensor, k1: torch.Tensor,
                 rows: int | slice | torch.Tensor, centre: bool) -> None:
    """Write ``diag(K)`` (and, uncentred, ``X (X^T 1)``) of the (G, n, d) ``stack`` into
    ``rows`` of the (L, n) ``diag`` and ``k1``."""
    diag[rows] = torch.linalg.vector_norm(stack, dim=2).square_()
    if not centre:  # one matrix-vector product per layer (a batched one is ~10x slower on CPU)
        k1[rows] = torch.stack([torch.mv(buf, buf.sum(0)) for buf in stack])


def _rows(members: list[int], device: torch.device) -> slice | torch.Tensor:
    """Index of ``members``: a slice when consecutive (a view, no index kernel), else a tensor."""
    if members == list(range(members[0], members[-1] + 1)):
        return slice(members[0], members[-1] + 1)
    return torch.tensor(members, device=device)


def packed_panels(
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
