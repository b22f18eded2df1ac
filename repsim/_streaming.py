"""Exact streaming of the linear similarity measures: :class:`StreamingSimilarity`.

>>> import torch
>>> from repsim._streaming import StreamingSimilarity
>>> from repsim._cka import linear_cka
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(1000, 16, dtype=torch.float64, generator=g)
>>> y = x.tanh() + 0.1 * torch.randn(1000, 16, dtype=torch.float64, generator=g)
>>> metric = StreamingSimilarity(("linear_cka", "mean_cca"))
>>> for idx in torch.arange(1000).split(300):      # any batching gives the same values
...     metric.update({"conv": x[idx]}, {"head": y[idx]})
>>> metric.compute()["linear_cka"].shape           # (len(layers_a), len(layers_b))
torch.Size([1, 1])
>>> abs(float(metric.compute()["linear_cka"][0, 0] - linear_cka(x, y))) < 1e-12
True

The class keeps the sufficient statistics of :mod:`repsim._linear_stats` (sums over samples
of ``x``, ``x x^T``, ``x y^T`` and, for the debiased CKA, of a few products with the squared
row norms) and adds them up batch by batch, accumulator by accumulator and rank by rank.
Memory is ``O(d^2)`` per layer and ``O(d_a d_b)`` per pair, independent of ``n``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch

from . import _cca_core
from . import _linear_stats as _ls
from ._validate import as_matrix

__all__ = ["StreamingSimilarity"]

MEASURES = ("linear_cka", "linear_cka_debiased", "mean_cca", "svcca", "pwcca", "procrustes")
# Widest layer whose (d, d) float64 statistics are kept: 8192^2 * 8 bytes = 512 MiB.
MAX_FEATURES = 8192
_F64 = torch.float64


class StreamingSimilarity:
    """Exact linear similarity measures over batches, from accumulated sufficient statistics.

    Unlike :class:`repsim.MinibatchCKA` (a minibatch estimator whose value depends on the
    batch size), ``compute()`` equals the full-data functions for any split of the samples
    into batches, processes (``merge``, ``all_reduce``) and batch sizes (from 1). The state
    takes ``O(d^2)`` memory per layer and ``O(d_a d_b)`` per pair, independent of ``n``.

    Parameters
    ----------
    measures : str or sequence of str
        Any of ``"linear_cka"`` (:func:`repsim.linear_cka`), ``"linear_cka_debiased"``
        (``linear_cka(debiased=True)``), ``"mean_cca"``, ``"svcca"``, ``"pwcca"`` and
        ``"procrustes"`` (:func:`repsim.procrustes_distance`). Default ``("linear_cka",)``.
    keep : float
        SVCCA's kept fraction of the variance (default 0.99).
    epsilon : float
        Ridge for the CCA family (default 0).
    angular : bool
        Angular Procrustes distance instead of the Euclidean one.
    max_features : int
        Widest layer accepted (default 8192: 512 MiB of ``(d, d)`` float64 statistics).
    dtype : torch.dtype
        Computation dtype of each batch (default float64); the sums are always float64.
    device : torch.device, str or None
        Where the sums live; ``None``: the device of the first batch.

    Attributes
    ----------
    layers_a, layers_b : list of str or None
        Layer names of the dict form (``None`` for the single-pair form or before ``update``).
    n_samples_, n_batches_ : int
        Samples and batches seen.

    Notes
    -----
    Agreement with the full-data functions is to rounding (about ``1e-15``-``1e-13`` in
    float64). Where a function is itself ill-conditioned -- CCA and PWCCA with
    ``rank x + rank y > n - 1``, whose canonical directions are then not unique -- the two
    agree only as well as the function agrees with itself on the same samples in another
    order. ``"pwcca"`` is :func:`repsim.pwcca` with its default (centred) weights; its
    ``weights="svcca_code"`` rule needs the samples themselves and is not streamed.

    Examples
    --------
    >>> import torch
    >>> from repsim._streaming import StreamingSimilarity
    >>> metric = StreamingSimilarity(["linear_cka", "procrustes"])
    >>> x = torch.randn(64, 8, dtype=torch.float64)
    >>> metric.update(x[:10], 2 * x[:10] + 1)
    >>> metric.update(x[10:], 2 * x[10:] + 1)
    >>> {k: round(float(v), 6) for k, v in metric.compute().items()}
    {'linear_cka': 1.0, 'procrustes': 0.0}
    """

    def __init__(
        self,
        measures: str | Sequence[str] = ("linear_cka",),
        *,
        keep: float = 0.99,
        epsilon: float = 0.0,
        angular: bool = False,
        max_features: int = MAX_FEATURES,
        dtype: torch.dtype = torch.float64,
        device: Any = None,
    ) -> None:
        self.measures = _check_measures(measures)
        self.keep = _cca_core.check_keep(keep)
        self.epsilon = _cca_core.check_epsilon(epsilon)
        self.angular = bool(angular)
        if not isinstance(max_features, int) or isinstance(max_features, bool) or max_features < 1:
            raise ValueError(f"max_features: expected a positive integer, got {max_features!r}")
        self.max_features = max_features
        self.dtype = dtype
        self.device = device
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget every batch seen (the options are kept)."""
        self.layers_a: list[str] | None = None
        self.layers_b: list[str] | None = None
        self._single: bool | None = None
        self._stats: _ls.Stats | None = None
        self.n_batches_ = 0
        self.n_samples_ = 0

    @property
    def _extras(self) -> bool:
        return "linear_cka_debiased" in self.measures

    def update(self, x: Any, y: Any) -> None:
        """Add one batch.

        Parameters
        ----------
        x : (batch, d_x) tensor/array, or dict ``{layer_a: (batch, d_a)}``
        y : (batch, d_y) tensor/array, or dict ``{layer_b: (batch, d_b)}``
            Both matrices (one pair) or both dicts (every pair ``len(x) x len(y)``), with the
            same layers and widths at every call; every activation of a batch has the same
            ``batch >= 1`` rows. 4-D conv activations must be flattened first
            (:func:`repsim.flatten_conv`).
        """
        single, names_a, names_b, xs = self._parse(x, y)
        self._check_layout(single, names_a, names_b, [t.shape[1] for t in xs])
        first = self._stats is None
        # every layer is shifted by the mean of its first batch
        shift = [t.mean(0) for t in xs] if first else self._stats.shift
        la = len(names_a) if names_a is not None else 1
        check = None if first else [not v > 0 for v in self._stats.varies.tolist()]
        batch = _ls.batch_stats(xs, la, shift, extras=self._extras, check=check)
        device = self.device if self.device is not None else xs[0].device
        batch = _ls.to_device(batch, device if first else self._stats.n.device)
        if first:
            self._single, self.layers_a, self.layers_b = single, names_a, names_b
            self._stats = batch
        else:  # a shift rounded to a lower computation dtype is put back exactly
            if any(bool((p != q).any()) for p, q in zip(batch.shift, self._stats.shift)):
                batch = _ls.reshift(batch, self._stats.shift)
            self._stats = _ls.add(self._stats, batch)
        self.n_batches_ += 1
        self.n_samples_ += xs[0].shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        """Every measure over all the samples seen.

        Returns
        -------
        dict of measure -> (len(layers_a), len(layers_b)) float64 tensor
            (a 0-dim tensor per measure for the single-pair form), on the device of the sums.

        Raises
        ------
        ValueError
            Before any ``update``, with too few samples (2; 4 for the debiased CKA), for a
            layer whose samples are all identical, or where a measure is undefined.
        """
        st = self._stats
        if st is None:
            raise ValueError("compute: expected at least one update() before compute(), got none")
        need = 4 if self._extras else 2
        if self.n_samples_ < need:
            raise ValueError(
                f"compute: expected at least {need} samples for {list(self.measures)}, "
                f"got n = {self.n_samples_}"
            )
        flat = [name for name, v in zip(self._labels(), st.varies.tolist()) if not v > 0]
        if flat:
            raise ValueError(
                f"compute: expected varying activations, got zero variance (every sample "
                f"identical) in {flat}"
            )
        options = {"keep": self.keep, "epsilon": self.epsilon, "angular": self.angular}
        out = {m: _ls.measure_matrix(st, m, options) for m in self.measures}
        return {m: v[0, 0] for m, v in out.items()} if self._single else out

    def merge(self, other: StreamingSimilarity) -> StreamingSimilarity:
        """Add the samples of ``other`` (same layers and measures); returns ``self``."""
        if not isinstance(other, StreamingSimilarity):
            raise ValueError(f"merge: expected a StreamingSimilarity, got {type(other).__name__}")
        if other._stats is None:
            return self
        if self._extras and not other._extras:
            raise ValueError(
                "merge: expected an accumulator with the debiased-CKA statistics "
                f"(measures {list(self.measures)}), got measures {list(other.measures)}"
            )
        theirs = other._stats
        if self._stats is None:
            self._single = other._single
            self.layers_a, self.layers_b = other.layers_a, other.layers_b
            device = self.device if self.device is not None else theirs.n.device
            self._stats = _ls.strip_extras(_ls.to_device(theirs, device), self._extras)
        else:
            self._check_layout(other._single, other.layers_a, other.layers_b,
                               [len(s) for s in theirs.s])
            theirs = _ls.strip_extras(_ls.to_device(theirs, self._stats.n.device), self._extras)
            theirs = _ls.reshift(theirs, self._stats.shift)
            self._stats = _ls.add(self._stats, theirs)
        self.n_batches_ += other.n_batches_
        self.n_samples_ += other.n_samples_
        return self

    def all_reduce(self, group: Any = None) -> StreamingSimilarity:
        """Sum the statistics over the ranks of ``group`` (``torch.distributed``).

        Every rank must have seen at least one batch of the same layers. Rank 0's shift is
        broadcast, every rank re-expresses its sums about it, and one ``all_reduce`` of the
        sums follows; afterwards every rank holds the
        statistics of all the data, so ``compute()`` equals the full-data value. The sums must
        be on a device the backend supports (CPU for gloo, CUDA for nccl). Returns ``self``.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("all_reduce: torch.distributed is not initialised")
        st = self._stats
        if st is None:
            raise ValueError("all_reduce: expected at least one update() on every rank, got none")
        widths = [len(c) for c in st.shift]
        first = torch.cat([*st.shift, *st.ref])  # rank 0's shift and first sample
        dist.broadcast(first, src=dist.get_global_rank(group, 0) if group is not None else 0,
                       group=group)
        shift, ref = first.split(sum(widths))
        shift, ref = list(shift.split(widths)), list(ref.split(widths))
        st = _ls.reshift(st, shift)
        differ = torch.stack([(p != q).any() for p, q in zip(st.ref, ref)]).to(_F64)
        batches = torch.tensor(float(self.n_batches_), dtype=_F64, device=st.n.device)
        parts = [*_ls.summed(st), st.varies + differ, batches]
        flat = torch.cat([p.reshape(-1) for p in parts])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
        values = [v.reshape(p.shape) for v, p in zip(flat.split([p.numel() for p in parts]), parts)]
        self._stats = replace(_ls.with_summed(st, values[:-2]), ref=ref, varies=values[-2])
        self.n_samples_, self.n_batches_ = int(values[0]), int(values[-1])
        return self

    # ---------------------------------------------------------------- helpers
    def _labels(self) -> list[str]:
        if self._single:
            return ["x", "y"]
        return [f"x[{k!r}]" for k in self.layers_a] + [f"y[{k!r}]" for k in self.layers_b]

    def _parse(self, x: Any, y: Any) -> tuple[bool, Any, Any, list[torch.Tensor]]:
        single = not isinstance(x, Mapping)
        if single != (not isinstance(y, Mapping)):
            raise ValueError(
                "update: expected x and y both matrices or both {layer: activations} dicts, "
                f"got {type(x).__name__} and {type(y).__name__}"
            )
        if single:
            names_a = names_b = None
            xs = [as_matrix(t, name=k, dtype=self.dtype) for t, k in ((x, "x"), (y, "y"))]
            labels = ["x", "y"]
        else:
            names_a, names_b = _names(x, "x"), _names(y, "y")
            xs = [as_matrix(x[k], name=f"x[{k!r}]", dtype=self.dtype) for k in names_a]
            xs += [as_matrix(y[k], name=f"y[{k!r}]", dtype=self.dtype) for k in names_b]
            labels = [f"x[{k!r}]" for k in names_a] + [f"y[{k!r}]" for k in names_b]
        rows = {label: t.shape[0] for label, t in zip(labels, xs)}
        if len(set(rows.values())) > 1:
            raise ValueError(f"update: expected the same number of samples (rows) in every "
                             f"activation of a batch, got {rows}")
        devices = {str(t.device) for t in xs}
        if len(devices) > 1:
            raise ValueError(
                f"update: expected every activation on one device, got {sorted(devices)}"
            )
        for label, t in zip(labels, xs):
            _check_width(label, t.shape[1], self.max_features)
        return single, names_a, names_b, xs

    def _check_layout(self, single: bool | None, names_a: Any, names_b: Any,
                      widths: list[int]) -> None:
        if self._stats is None:
            return
        before = [len(s) for s in self._stats.s]
        if single != self._single or names_a != self.layers_a or names_b != self.layers_b:
            def show(s: bool | None, a: Any, b: Any) -> str:
                return "a single (x, y) pair" if s else f"layers {a} x {b}"
            raise ValueError(
                f"expected {show(self._single, self.layers_a, self.layers_b)} as before, "
                f"got {show(single, names_a, names_b)}"
            )
        if widths != before:
            raise ValueError(f"expected the layer widths {before} as before, got {widths}")

def _check_measures(measures: Any) -> tuple[str, ...]:
    names = (measures,) if isinstance(measures, str) else measures
    try:
        names = tuple(names)
    except TypeError:
        raise ValueError(f"measures: expected a measure name or a sequence of them, got "
                         f"{measures!r}") from None
    unknown = [m for m in names if m not in MEASURES]
    if unknown or not names:
        raise ValueError(f"measures: expected one or more of {list(MEASURES)}, got {list(names)}")
    return tuple(dict.fromkeys(names))


def _check_width(label: str, width: int, limit: int) -> None:
    if width > limit:
        gib = width * width * 8 / 2**30
        raise ValueError(
            f"update: {label} has {width} features, above max_features = {limit}: exact "
            f"streaming keeps ({width}, {width}) float64 statistics per layer ({gib:.1f} GiB). "
            "Use repsim.MinibatchCKA (memory independent of the width), a narrower view "
            "(repsim.flatten_conv(..., mode='pool' or 'channels')), or a larger max_features."
        )


def _names(d: Mapping, side: str) -> list[str]:
    if len(d) == 0:
        raise ValueError(
            f"update: expected a non-empty {{layer: activations}} dict for {side}, got {{}}"
        )
    return list(d)
