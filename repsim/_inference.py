"""Is a similarity more than chance, and how sure is it: permutation tests and bootstrap intervals.

>>> import torch, repsim
>>> g = torch.Generator().manual_seed(0)
>>> x = torch.randn(200, 32, dtype=torch.float64, generator=g)
>>> y = torch.randn(200, 32, dtype=torch.float64, generator=g)      # independent of x
>>> res = repsim.permutation_test(x, y, measure="mean_cca", n_permutations=200, generator=g)
>>> round(float(res.value), 2), res.null.shape, bool(res.p_value > 0.05)
(0.34, torch.Size([200]), True)
>>> ci = repsim.bootstrap_ci(x, x + y, n_boot=200, generator=g)        # linear CKA
>>> bool(ci.low < ci.value < ci.high)
True

Both accept two activation matrices or two ``{layer: activations}`` dicts (then every result
is per layer pair, ``(len(acts_a), len(acts_b))``). The permutations and resamples come from
``generator`` only, so one seed gives the same null values on every path.

Null distributions are computed without re-running the measure where the measure allows it
(:mod:`repsim._inference_fast`); every other measure, and every callable, is called once per
permutation on ``(x, y[perm])``.
"""
from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch

from . import _inference_fast as _fast
from ._cca import mean_cca
from ._cca_weighted import pwcca, svcca
from ._cka import linear_cka, rbf_cka
from ._draws import as_generator, draws
from ._matrix import _check_common, _layers
from ._procrustes import procrustes_distance
from ._validate import as_pair

__all__ = ["PermutationResult", "BootstrapResult", "permutation_test", "bootstrap_ci"]


class PermutationResult(NamedTuple):
    """Result of :func:`permutation_test`.

    Attributes
    ----------
    value : 0-dim tensor, or (A, B) tensor for dicts
        The measure on ``(x, y)``.
    p_value : tensor of the shape of ``value``
        ``(1 + #{null at least as extreme as value}) / (1 + n_permutations)``, in
        ``(0, 1]``: "at least as extreme" is ``null >= value`` for similarities and
        ``null <= value`` for the distance ``"procrustes"``.
    null : (n_permutations,) tensor, or (n_permutations, A, B) for dicts
        The measure on ``(x, y[perm])`` for each permutation ``perm`` of the rows.
    """

    value: torch.Tensor
    p_value: torch.Tensor
    null: torch.Tensor


class BootstrapResult(NamedTuple):
    """Result of :func:`bootstrap_ci`.

    Attributes
    ----------
    value : 0-dim tensor, or (A, B) tensor for dicts
        The measure on ``(x, y)``.
    low, high : tensors of the shape of ``value``
        The percentile interval: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of
        ``samples`` (linear interpolation, as ``numpy.quantile``).
    samples : (n_boot,) tensor, or (n_boot, A, B) for dicts
        The measure on each resample.
    """

    value: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    samples: torch.Tensor


class _Measure(NamedTuple):
    fn: Callable[..., Any]
    options: frozenset
    similarity: bool  # False: a distance (smaller = more alike)


_DTYPE = frozenset({"dtype"})
_MEASURES = {
    "linear_cka": _Measure(linear_cka, _DTYPE | {"debiased"}, True),
    "debiased_cka": _Measure(linear_cka, _DTYPE | {"debiased"}, True),
    "rbf_cka": _Measure(rbf_cka, _DTYPE | {"threshold", "debiased"}, True),
    "mean_cca": _Measure(mean_cca, _DTYPE | {"epsilon"}, True),
    "cca": _Measure(mean_cca, _DTYPE | {"epsilon"}, True),
    "svcca": _Measure(svcca, _DTYPE | {"keep", "epsilon"}, True),
    "pwcca": _Measure(pwcca, _DTYPE | {"epsilon"}, True),
    "procrustes": _Measure(procrustes_distance, _DTYPE | {"angular"}, False),
}


def permutation_test(
    x: Any,
    y: Any,
    *,
    measure: str | Callable[..., Any] = "linear_cka",
    n_permutations: int = 1000,
    generator: torch.Generator | int | None = None,
    **measure_kw: Any,
) -> PermutationResult:
    """Permutation test of "x and y are unrelated": the measure against its null distribution.

    The rows of ``y`` are permuted (breaking the pairing of samples while keeping each side's
    own structure) ``n_permutations`` times, and the measure is recomputed each time.

    Parameters
    ----------
    x : (n_samples, n_features_x) tensor or array, or dict ``{layer: activations}``
    y : (n_samples, n_features_y) tensor or array, or dict ``{layer: activations}``
        Both matrices or both dicts; all layers with the same ``n_samples``. For dicts one
        permutation per draw is applied to every layer of ``y``, so the null values of
        different layer pairs within a draw are dependent (each pair's own null is exact).
    measure : str or callable
        ``"linear_cka"`` (option ``debiased``), ``"debiased_cka"``, ``"rbf_cka"`` (``threshold``,
        ``debiased``), ``"mean_cca"`` (alias ``"cca"``; ``epsilon``), ``"svcca"`` (``keep``,
        ``epsilon``), ``"pwcca"`` (``epsilon``), ``"procrustes"`` (``angular``; a distance),
        all with ``dtype``; or a callable ``f(x, y, **measure_kw) -> 0-dim tensor``, taken as a
        similarity (to test a distance ``d``, pass ``lambda x, y: -d(x, y)``); it receives
        validated float64 tensors (or of ``dtype`` if that option is given).
    n_permutations : int
        Number of permutations (>= 1). The smallest attainable p-value is
        ``1 / (1 + n_permutations)``.
    generator : torch.Generator, int or None
        Source of the permutations (an int seeds a new CPU generator; None: torch's global
        generator).
    **measure_kw
        Options of the measure.

    Returns
    -------
    PermutationResult
        ``value``, ``p_value`` (0-dim or ``(A, B)`` float64 tensors on the input's device) and
        ``null`` (``(n_permutations,)`` or ``(n_permutations, A, B)``). Null values within
        ``64 * eps`` (relative, of the computation dtype) of ``value`` count as ties, which
        count as extreme.

    Raises
    ------
    ValueError
        ``n_permutations < 1``, an unknown measure or option, or bad activations (as the
        measure raises them: different ``n_samples``, NaN, ...).

    Notes
    -----
    Warnings of the measure (e.g. ill-posed CCA) are emitted once, by the call on the
    unpermuted data: permuting rows changes neither side's rank or spectrum. Fast paths
    (:mod:`repsim._inference_fast`) give the plain calls' values up to rounding.
    """
    count = _check_count(n_permutations, "n_permutations")
    measure_fn, name, similarity = _resolve(measure, measure_kw)
    xs, ys, single = _inputs(x, y, measure_kw)
    n = next(iter(xs.values())).shape[0]
    value = _pairs(measure_fn, xs, ys)
    gen = as_generator(generator)
    chunks = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the call on (x, y) above has warned already
        fast = _fast.null_function(name, measure_kw, xs, ys) if name is not None else None
        for perms in draws(n, count, gen, value.device, replace=False):
            if fast is not None:
                chunks.append(fast(perms))  # (b, A, B)
            else:
                chunks.append(torch.stack([
                    _pairs(measure_fn, xs, {k: t[p] for k, t in ys.items()}) for p in perms]))
    null = torch.cat(chunks).to(device=value.device, dtype=torch.float64)
    tol = 64 * torch.finfo(_dtype(measure_kw)).eps * value.abs().clamp(min=1.0)
    extreme = null >= value - tol if similarity else null <= value + tol
    p_value = (1.0 + extreme.sum(0, dtype=torch.float64)) / (1.0 + count)
    if single:
        return PermutationResult(value[0, 0], p_value[0, 0], null[:, 0, 0])
    return PermutationResult(value, p_value, null)


def bootstrap_ci(
    x: Any,
    y: Any,
    *,
    measure: str | Callable[..., Any] = "linear_cka",
    n_boot: int = 1000,
    level: float = 0.95,
    generator: torch.Generator | int | None = None,
    **measure_kw: Any,
) -> BootstrapResult:
    """Bootstrap percentile interval of a similarity.

    The samples (rows of ``x`` and ``y`` together, and of every layer for dicts) are drawn
    with replacement ``n_boot`` times and the measure is recomputed on each resample.

    Parameters
    ----------
    x, y : as in :func:`permutation_test`
    measure : str or callable
        As in :func:`permutation_test`.
    n_boot : int
        Number of resamples (>= 1).
    level : float
        Coverage of the interval, ``0 < level < 1``.
    generator : torch.Generator, int or None
        Source of the resamples, as in :func:`permutation_test`.
    **measure_kw
        Options of the measure.

    Returns
    -------
    BootstrapResult
        ``value``, ``low``, ``high`` (0-dim or ``(A, B)`` float64 tensors on the input's
        device) and ``samples`` (``(n_boot,)`` or ``(n_boot, A, B)``).

    Raises
    ------
    ValueError
        ``n_boot < 1``, ``level`` outside ``(0, 1)``, an unknown measure or option, or bad
        activations.

    Warns
    -----
    UserWarning
        Once, if the measure warned on some resamples, or (mean CCA, PWCCA without
        ``epsilon``) a resample has too few distinct rows for its widths (a resample holds
        only about 63% distinct rows, so it can be ill-posed where the full data are not).
        Once, if ``value`` lies outside its own interval (a biased estimator, see Notes).

    Notes
    -----
    Duplicate rows. A resample repeats about a third of the samples, and CKA would take two
    copies of one sample for a pair of perfectly matching samples: their Gram entries
    ``K_ii L_ii`` are the ones the debiased estimator leaves out, and even the biased one holds
    only ``n`` of them. Counted naively, they pull every resample up (at ``n = 200``,
    ``d = 32``, biased CKA 0.56 gave resamples around 0.61, an interval that missed the
    estimate). So for every CKA measure a resample is evaluated on its distinct samples weighted
    by their multiplicities, never pairing a sample with its own copy: the biased estimator as
    the resample's ``tr(K H L H)`` without the pairs of two copies, the debiased one as the
    weighted U-statistic over distinct samples (:mod:`repsim._inference_fast`); with all
    multiplicities 1 both are the usual estimators. The RBF bandwidth stays that of the full
    data. The CCA family and Procrustes are evaluated on the resample as it is: with fewer
    distinct rows their small-sample bias (upward for CCA, downward for the Procrustes
    distance) grows, so their intervals are shifted when ``d`` is not small against ``n``,
    and a warning is emitted when resamples become ill-posed. Percentile intervals also
    inherit any bias of the estimator itself (biased CKA of independent data is not 0); with
    few samples prefer ``debiased=True``.
    """
    count = _check_count(n_boot, "n_boot")
    lev = _check_level(level)
    measure_fn, name, _ = _resolve(measure, measure_kw)
    xs, ys, single = _inputs(x, y, measure_kw)
    n = next(iter(xs.values())).shape[0]
    value = _pairs(measure_fn, xs, ys)
    gen = as_generator(generator)
    weighted = _fast.weighted_function(name, measure_kw, xs, ys) if name is not None else None
    out, distinct, messages = [], [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for idx in draws(n, count, gen, value.device, replace=True):
            counts = torch.zeros(idx.shape, dtype=torch.long, device=idx.device)
            counts.scatter_add_(1, idx, torch.ones_like(idx))  # multiplicities (b, n)
            distinct.append((counts > 0).sum(1))
            if weighted is not None:
                out.append(weighted(counts))
                continue
            for i in idx:
                out.append(_pairs(measure_fn, {k: t[i] for k, t in xs.items()},
                                  {k: t[i] for k, t in ys.items()})[None])
                if caught:
                    messages.append(str(caught[0].message))
                    caught.clear()
    _warn_cca_rows(name, measure_kw, xs, ys, torch.cat(distinct), messages)
    if messages:
        warnings.warn(
            f"bootstrap_ci: the measure warned on {len(messages)} of {count} resamples "
            f"(resamples repeat rows, about 63% are distinct); first: {messages[0]}",
            UserWarning, stacklevel=2)
    samples = torch.cat(out).to(device=value.device, dtype=torch.float64)
    q = torch.tensor([(1.0 - lev) / 2.0, (1.0 + lev) / 2.0], dtype=torch.float64,
                     device=samples.device)
    low, high = torch.quantile(samples, q, dim=0)
    outside = int(((value < low) | (value > high)).sum())
    if outside:
        warnings.warn(
            f"bootstrap_ci: the estimate lies outside its own {lev:g} interval for {outside} of "
            f"{value.numel()} layer pair(s): the resamples are shifted against it, so the "
            "measure is biased at this sample size and so is the percentile interval "
            "(CCA-family values grow as n_features / n_samples grows; use more samples or "
            "fewer dimensions, e.g. svcca)", UserWarning, stacklevel=2)
    if single:
        return BootstrapResult(value[0, 0], low[0, 0], high[0, 0], samples[:, 0, 0])
    return BootstrapResult(value, low, high, samples)


# --------------------------------------------------------------------------- helpers


def _check_count(count: Any, name: str) -> int:
    if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {count!r}")
    return int(count)


def _check_level(level: Any) -> float:
    ok = isinstance(level, numbers.Real) and not isinstance(level, bool) and 0.0 < level < 1.0
    if not ok:
        raise ValueError(f"level: expected a number with 0 < level < 1, got {level!r}")
    return float(level)


def _warn_cca_rows(
    name: str | None, kw: Mapping[str, Any], xs: Mapping[str, torch.Tensor],
    ys: Mapping[str, torch.Tensor], distinct: torch.Tensor, messages: list[str],
) -> None:
    """CCA's own check counts rows, not distinct rows: add a message for the resamples whose
    ``m`` distinct rows leave ``d_x + d_y > m - 1`` (correlations of 1 by construction)."""
    if name not in ("mean_cca", "cca", "pwcca") or float(kw.get("epsilon", 0.0)) > 0:
        return
    widths = max(t.shape[1] for t in xs.values()) + max(t.shape[1] for t in ys.values())
    bad = int((distinct - 1 < widths).sum())
    if bad and not messages:
        messages.extend([
            f"{name}: d_x + d_y = {widths} exceeds the number of distinct rows minus one "
            f"(as low as {int(distinct.min()) - 1}), so some canonical correlations are 1 by "
            "construction"] * bad)


def _resolve(
    measure: Any, kw: dict[str, Any]
) -> tuple[Callable[[torch.Tensor, torch.Tensor], Any], str | None, bool]:
    """``(f(x, y), measure name or None for a callable, is a similarity)``; checks options."""
    if callable(measure):
        return (lambda a, b: measure(a, b, **kw)), None, True
    spec = _MEASURES.get(measure) if isinstance(measure, str) else None
    if spec is None:
        raise ValueError(
            f"measure: expected one of {sorted(_MEASURES)} or a callable f(x, y), got {measure!r}")
    unknown = sorted(set(kw) - spec.options)
    if unknown:
        raise ValueError(
            f"measure {measure!r}: expected options among {sorted(spec.options)}, got {unknown}")
    if measure == "debiased_cka":
        if kw.get("debiased", True) is False:
            raise ValueError("measure 'debiased_cka': expected debiased=True or no debiased "
                             "option, got False")
        kw["debiased"] = True
    return (lambda a, b: spec.fn(a, b, **kw)), measure, spec.similarity


def _dtype(kw: Mapping[str, Any]) -> torch.dtype:
    return kw.get("dtype", torch.float64)


def _inputs(
    x: Any, y: Any, kw: Mapping[str, Any]
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], bool]:
    """Both matrices (as one-layer dicts) or both dicts, validated; ``single`` is the former."""
    if isinstance(x, Mapping) != isinstance(y, Mapping):
        raise ValueError(
            "x and y: expected two (n_samples, n_features) matrices or two {layer: activations} "
            f"dicts, got {type(x).__name__} and {type(y).__name__}")
    if isinstance(x, Mapping):
        xs = _layers(x, "acts_a", _dtype(kw))
        ys = _layers(y, "acts_b", _dtype(kw))
        _check_common(xs, ys)
        return xs, ys, False
    xt, yt = as_pair(x, y, dtype=_dtype(kw))
    return {"x": xt}, {"y": yt}, True


def _pairs(
    fn: Callable[[torch.Tensor, torch.Tensor], Any],
    xs: Mapping[str, torch.Tensor],
    ys: Mapping[str, torch.Tensor],
) -> torch.Tensor:
    """``fn`` on every layer pair: an (A, B) float64 tensor."""
    return torch.stack([
        torch.stack([torch.as_tensor(fn(a, b)).reshape(()).to(torch.float64)
                     for b in ys.values()])
        for a in xs.values()])
