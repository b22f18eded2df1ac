"""Streaming (minibatch) linear CKA of Nguyen, Raghu & Kornblith (2021).

>>> import torch
>>> from repsim._minibatch import MinibatchCKA
>>> metric = MinibatchCKA()
>>> g = torch.Generator().manual_seed(0)
>>> for _ in range(4):
...     x = torch.randn(256, 32, generator=g, dtype=torch.float64)
...     metric.update({"conv1": x, "conv2": x.tanh()}, {"head": 2 * x + 1})
>>> metric.compute().shape   # (len(layers_a), len(layers_b))
torch.Size([2, 1])

Per batch the unbiased HSIC (Song et al. 2012) of every pair and of every layer with itself is
added to running sums; ``compute()`` returns
``sum HSIC(K, L) / sqrt(sum HSIC(K, K) * sum HSIC(L, L))``.
Memory does not grow with the number of batches, and states of several processes (or of
several accumulators) add up (``merge``, ``all_reduce``), so sharded data gives the same value.
With a single batch the value equals ``linear_cka(x, y, debiased=True)``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from . import _blas, _hsic_terms
from ._validate import as_matrix, check_min_samples

__all__ = ["MinibatchCKA"]


class MinibatchCKA:
    """Accumulate minibatch CKA between one or many pairs of layers.

    Parameters
    ----------
    dtype : torch.dtype
        Computation dtype for each batch (default float64). The running sums are float64.
    device : torch.device, str or None
        Where the running sums live; ``None``: the device of the first batch. Activations are
        never moved; only the per-batch HSIC values are.

    Attributes
    ----------
    layers_a, layers_b : list of str or None
        Layer names of the dict form (``None`` for the single-pair form or before ``update``).
    hsic_xy_ : (len a, len b) tensor
        Sum over batches of the unbiased HSIC of every pair.
    hsic_xx_ : (len a,) tensor, hsic_yy_ : (len b,) tensor
        Sums of the unbiased self-HSIC of every layer.
    n_batches_, n_samples_ : int
        Batches and samples seen.
    """

    def __init__(self, *, dtype: torch.dtype = torch.float64, device: Any = None) -> None:
        self.dtype = dtype
        self.device = device
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget every batch seen (the options are kept)."""
        self.layers_a: list[str] | None = None
        self.layers_b: list[str] | None = None
        self._single: bool | None = None
        self.hsic_xy_: torch.Tensor | None = None
        self.hsic_xx_: torch.Tensor | None = None
        self.hsic_yy_: torch.Tensor | None = None
        self.n_batches_ = 0
        self.n_samples_ = 0

    def update(self, x: Any, y: Any) -> None:
        """Add one batch.

        Parameters
        ----------
        x : (batch, d_x) tensor/array, or dict ``{layer_a: (batch, d_a)}``
        y : (batch, d_y) tensor/array, or dict ``{layer_b: (batch, d_b)}``
            Both matrices (one pair) or both dicts (every pair ``len(x) x len(y)``). All
            activations of a batch must have the same ``batch >= 4`` rows; 4-D conv activations
            must be flattened first with :func:`repsim.flatten_conv`.
        """
        single = not isinstance(x, Mapping)
        if single != (not isinstance(y, Mapping)):
            raise ValueError(
                "update: expected x and y both matrices or both {layer: activations} dicts, "
                f"got {type(x).__name__} and {type(y).__name__}"
            )
        if single:
            names_a = names_b = None
            xs, ys = [_matrix(x, "x", self.dtype)], [_matrix(y, "y", self.dtype)]
        else:
            names_a, names_b = _names(x, "x"), _names(y, "y")
            xs = [_matrix(x[k], f"x[{k!r}]", self.dtype) for k in names_a]
            ys = [_matrix(y[k], f"y[{k!r}]", self.dtype) for k in names_b]
        self._check_layout(single, names_a, names_b)
        n = _common_rows(xs, ys, names_a, names_b)
        check_min_samples(n, 4, "MinibatchCKA (unbiased HSIC per batch)")

        hxy, hxx, hyy = _batch_hsic(xs, ys)
        device = self.device if self.device is not None else xs[0].device
        hxy, hxx, hyy = (h.to(device=device, dtype=torch.float64) for h in (hxy, hxx, hyy))
        if self.hsic_xy_ is None:
            self._single, self.layers_a, self.layers_b = single, names_a, names_b
            self.hsic_xy_, self.hsic_xx_, self.hsic_yy_ = hxy, hxx, hyy
        else:
            self.hsic_xy_ = self.hsic_xy_ + hxy
            self.hsic_xx_ = self.hsic_xx_ + hxx
            self.hsic_yy_ = self.hsic_yy_ + hyy
        self.n_batches_ += 1
        self.n_samples_ += n

    def compute(self) -> torch.Tensor:
        """Minibatch CKA: a 0-dim tensor (single pair) or a ``(len a, len b)`` tensor (dicts).

        Raises
        ------
        ValueError
            Before any ``update``, or when a summed self-HSIC is not positive.
        """
        if self.hsic_xy_ is None:
            raise ValueError("compute: expected at least one update() before compute(), got none")
        sides = ((self.hsic_xx_, "x", self.layers_a), (self.hsic_yy_, "y", self.layers_b))
        for sums, side, names in sides:
            bad = (sums <= 0).nonzero().flatten().tolist()
            if bad:
                which = side if names is None else f"{side} layers {[names[i] for i in bad]}"
                raise ValueError(
                    f"compute: expected a positive summed self-HSIC, got {float(sums[bad[0]]):.3g} "
                    f"for {which} (constant activations or too few samples)"
                )
        cka = self.hsic_xy_ / torch.outer(self.hsic_xx_.sqrt(), self.hsic_yy_.sqrt())
        return cka[0, 0] if self._single else cka

    def merge(self, other: MinibatchCKA) -> MinibatchCKA:
        """Add the state of ``other`` (same layers) into this accumulator; returns ``self``."""
        if not isinstance(other, MinibatchCKA):
            raise ValueError(f"merge: expected a MinibatchCKA, got {type(other).__name__}")
        if other.hsic_xy_ is None:
            return self
        if self.hsic_xy_ is None:
            self._single = other._single
            self.layers_a, self.layers_b = other.layers_a, other.layers_b
            self.hsic_xy_ = other.hsic_xy_.clone()
            self.hsic_xx_ = other.hsic_xx_.clone()
            self.hsic_yy_ = other.hsic_yy_.clone()
        else:
            self._check_layout(other._single, other.layers_a, other.layers_b)
            device = self.hsic_xy_.device
            self.hsic_xy_ = self.hsic_xy_ + other.hsic_xy_.to(device)
            self.hsic_xx_ = self.hsic_xx_ + other.hsic_xx_.to(device)
            self.hsic_yy_ = self.hsic_yy_ + other.hsic_yy_.to(device)
        self.n_batches_ += other.n_batches_
        self.n_samples_ += other.n_samples_
        return self

    def all_reduce(self, group: Any = None) -> MinibatchCKA:
        """Sum the state over the ranks of ``group`` (one ``torch.distributed.all_reduce``).

        Every rank must have seen at least one batch of the same layers. Afterwards every rank
        holds the state of all the data, so ``compute()`` equals the single-process value.
        The state must be on a device the backend supports (CPU for gloo, CUDA for nccl).
        Returns ``self``.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("all_reduce: torch.distributed is not initialised")
        if self.hsic_xy_ is None:
            raise ValueError("all_reduce: expected at least one update() on every rank, got none")
        a, b = self.hsic_xy_.shape
        counts = torch.tensor([self.n_batches_, self.n_samples_], dtype=torch.float64,
                              device=self.hsic_xy_.device)
        flat = torch.cat([self.hsic_xy_.reshape(-1), self.hsic_xx_, self.hsic_yy_, counts])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        self.hsic_xy_ = flat[: a * b].reshape(a, b)
        self.hsic_xx_ = flat[a * b: a * b + a]
        self.hsic_yy_ = flat[a * b + a: a * b + a + b]
        self.n_batches_, self.n_samples_ = (int(v) for v in flat[-2:].tolist())
        return self

    def _check_layout(self, single: bool | None, names_a: Any, names_b: Any) -> None:
        if self.hsic_xy_ is None:
            return
        if single != self._single or names_a != self.layers_a or names_b != self.layers_b:
            def show(s: bool | None, a: Any, b: Any) -> str:
                return "a single (x, y) pair" if s else f"layers {a} x {b}"
            raise ValueError(
                f"expected {show(self._single, self.layers_a, self.layers_b)} as before, "
                f"got {show(single, names_a, names_b)}"
            )


def _batch_hsic(
    xs: list[torch.Tensor], ys: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unbiased HSIC of every pair ``(A, B)`` and of every layer with itself ``(A,)``, ``(B,)``."""
    # HSIC_1 does not change under centring; centred data only make it more accurate.
    n = xs[0].shape[0]
    form = _hsic_terms.choose_form(n, [x.shape[1] for x in xs], [y.shape[1] for y in ys],
                             full=_blas.uses_syrk(xs[0]))
    hxy, hxx, hyy = _hsic_terms.unbiased_terms(xs, ys, form=form)
    return hxy, hxx, hyy


def _matrix(a: Any, name: str, dtype: torch.dtype) -> torch.Tensor:
    return as_matrix(a, name=name, dtype=dtype)


def _names(d: Mapping, side: str) -> list[str]:
    if len(d) == 0:
        raise ValueError(
            f"update: expected a non-empty {{layer: activations}} dict for {side}, got {{}}"
        )
    return list(d)


def _common_rows(
    xs: list[torch.Tensor], ys: list[torch.Tensor], names_a: Any, names_b: Any
) -> int:
    labels = (names_a or ["x"]) + (names_b or ["y"])
    rows = {label: t.shape[0] for label, t in zip(labels, [*xs, *ys])}
    if len(set(rows.values())) > 1:
        raise ValueError(f"update: expected the same batch size for every layer, got {rows}")
    devices = {str(t.device) for t in [*xs, *ys]}
    if len(devices) > 1:
        raise ValueError(f"update: expected every activation on one device, got {sorted(devices)}")
    return xs[0].shape[0]
