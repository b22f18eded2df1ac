"""Representation analyses of Raghu et al. (2020): what the inner loop changes, layer by layer.

Every function returns plain data -- ``{layer: float}`` dicts over ``conv1..conv4, head`` -- so
that results can be written to JSON and plotted without torch.

>>> model = Conv4.omniglot(5)
>>> params = dict(model.named_parameters())
>>> tasks = TaskSampler.fixed(Glyphs("test"), 5, 1, 15, 10, seed=0)
>>> sim = pre_post_similarity(model, params, tasks, trainable=all_params, steps=5, lr=0.1)
>>> sim["cca"]["conv1"], sim["cka"]["head"]          # doctest: +SKIP
(0.99..., 0.4...)

Conventions (the paper's, App. B): activations are recorded on the same images before and after
adaptation (batch norm uses batch statistics, so the batch must be identical); CCA on a conv
layer treats every spatial position as a datapoint (``flatten_conv(mode="channels")``, rows
``N*H*W``, features = channels); CKA uses one row per image (``mode="full"``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.func import functional_call

import repsim
from meta.inner import Trainable, adapt, all_params
from meta.models import BODY_NAMES, LAYER_NAMES

__all__ = [
    "LAYERS",
    "MEASURES",
    "COMPARISONS",
    "AdaptSpec",
    "layer_activations",
    "layer_similarity",
    "pre_post_similarity",
    "weight_change",
    "pre_post_analysis",
    "PrePost",
    "cross_run_similarity",
    "body_mean",
]

LAYERS = LAYER_NAMES              # the layers analysed: conv1..conv4, head (meta.models)
#: Similarity measures: mean CCA on spatial positions, linear CKA on whole images.
MEASURES = ("cca", "cka")
# comparison -> (side of run a, side of run b); 0 = before adaptation, 1 = after
_PAIRS = {"pre_pre": ("a0", "b0"), "pre_post": ("a0", "b1"), "post_pre": ("a1", "b0"),
          "post_post": ("a1", "b1"), "a_pre_post": ("a0", "a1"), "b_pre_post": ("b0", "b1")}
COMPARISONS = tuple(_PAIRS)


class AdaptSpec(NamedTuple):
    """How a run adapts to a task: which parameters, how many steps, which learning rate, and
    the inner-loss units (:func:`meta.inner.inner_loss`)."""

    trainable: Trainable = all_params
    steps: int = 5
    lr: float = 0.1
    reduction: str = "sum"


class PrePost(NamedTuple):
    """Result of :func:`pre_post_analysis`.

    similarity : {measure: {layer: float}}, before vs after adaptation
    change : {layer: float}, Euclidean weight change
    chance : {measure: {layer: float}}, the same measure between the "before" representation
        and the "after" one with its images shuffled (the chance level of ``similarity`` at these
        sizes); empty unless asked for
    """

    similarity: dict
    change: dict
    chance: dict


# --------------------------------------------------------------------------- helpers
def _check_layers(layers: Sequence[str]) -> tuple[str, ...]:
    layers = tuple(layers)
    bad = [k for k in layers if k not in LAYERS]
    if not layers or bad:
        raise ValueError(f"layers: expected a non-empty subset of {list(LAYERS)}, got {list(layers)}")
    return layers


def _check_measures(measures: Sequence[str]) -> tuple[str, ...]:
    measures = tuple(measures)
    bad = [m for m in measures if m not in MEASURES]
    if not measures or bad:
        raise ValueError(f"measures: expected a non-empty subset of {list(MEASURES)}, got {list(measures)}")
    return measures


def _check_tasks(tasks: Sequence) -> list:
    tasks = list(tasks)
    if not tasks:
        raise ValueError("tasks: expected at least one Task, got none")
    return tasks


def _images(task, on: str) -> torch.Tensor:
    if on == "query":
        return task.query_x                                        # (ways*query, C, H, W)
    if on == "all":
        return torch.cat([task.support_x, task.query_x])           # (ways*(shots+query), C, H, W)
    raise ValueError(f"on: expected 'query' or 'all', got {on!r}")


def _gram_equivalent(x: torch.Tensor) -> torch.Tensor:
    """An ``(n, n)`` matrix with the same Gram matrix ``x x^T`` as ``x`` ``(n, d)``, d > n.

    Linear CKA depends on ``x`` only through ``x x^T`` (and centring commutes with a right
    rotation), so ``x Q`` with ``Q`` an orthonormal basis of the row space gives the same value
    with ``n`` instead of ``d`` columns: ``x^T = Q R`` -> ``x Q = R^T``.
    """
    n, d = x.shape
    if d <= n:
        return x
    _, r = torch.linalg.qr(x.T.to(torch.float64), mode="reduced")  # (d, n), (n, n)
    return r.T


def _drop_constant(x: torch.Tensor) -> torch.Tensor:
    """Drop features that never vary (dead ReLU channels): they carry no information, and
    would otherwise make the covariance singular (a ridge would then count them as a
    correlation of 0 even between identical inputs)."""
    x = x.to(torch.float64)
    var = x.var(dim=0)
    keep = var > 1e-12 * float(var.max()) if float(var.max()) > 0 else var > 0
    return x[:, keep] if bool(keep.any()) else x


def _similarity(measure: str, a: torch.Tensor, b: torch.Tensor, *, epsilon: float) -> float:
    """One similarity of two layer activations ``(N, ...)`` under the paper's conventions."""
    if measure not in MEASURES:
        raise ValueError(f"measure: expected one of {list(MEASURES)}, got {measure!r}")
    if measure == "cca":
        x = _drop_constant(repsim.flatten_conv(a, mode="channels"))  # (N*H*W, C) for conv layers
        y = _drop_constant(repsim.flatten_conv(b, mode="channels"))
        return float(repsim.mean_cca(x, y, epsilon=epsilon))
    x = _gram_equivalent(repsim.flatten_conv(a, mode="full").to(torch.float64))  # (N, C*H*W)
    y = _gram_equivalent(repsim.flatten_conv(b, mode="full").to(torch.float64))
    return float(repsim.linear_cka(x, y))


def _mean_dicts(rows: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {m: {k: sum(r[m][k] for r in rows) / len(rows) for k in rows[0][m]} for m in rows[0]}


def body_mean(per_layer: Mapping[str, float], *, layers: Iterable[str] = BODY_NAMES) -> float:
    """Mean of ``per_layer`` over ``layers`` (default the body ``conv1..conv4``)."""
    vals = [float(per_layer[k]) for k in layers if k in per_layer]
    if not vals:
        raise ValueError(f"per_layer: expected some of {list(layers)}, got {list(per_layer)}")
    return sum(vals) / len(vals)


# --------------------------------------------------------------------------- public
def layer_activations(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    *,
    layers: Sequence[str] = LAYERS,
) -> dict[str, torch.Tensor]:
    """Outputs of ``layers`` when ``model`` runs on ``x`` with ``params`` (no gradient).

    x : (N, C, H, W) tensor
    Returns ``{layer: tensor}``: conv layers ``(N, C', H', W')``, head ``(N, ways)``, detached.
    """
    layers = _check_layers(layers)
    params = {n: p.detach() for n, p in params.items()}
    with torch.no_grad(), repsim.record_activations(model, list(layers)) as acts:
        functional_call(model, params, (x,))
    return {k: acts[k] for k in layers}


def layer_similarity(
    acts_a: Mapping[str, torch.Tensor],
    acts_b: Mapping[str, torch.Tensor],
    *,
    measures: Sequence[str] = MEASURES,
    epsilon: float = 0.0,
) -> dict[str, dict[str, float]]:
    """``{measure: {layer: float}}`` for the layers present in both activation dicts.

    acts_a, acts_b : {layer: (N, ...) tensor} recorded on the same N images.
    epsilon : ridge added by CCA to each covariance (``repsim._cca``); constant features are
        dropped first, so 0 works for dead ReLU channels.
    """
    measures = _check_measures(measures)
    layers = [k for k in acts_a if k in acts_b]
    if not layers:
        raise ValueError(f"acts: expected shared layer names, got {list(acts_a)} and {list(acts_b)}")
    return {m: {k: _similarity(m, acts_a[k], acts_b[k], epsilon=epsilon) for k in layers}
            for m in measures}


def pre_post_similarity(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    tasks: Sequence,
    *,
    trainable: Trainable = all_params,
    steps: int,
    lr: float,
    reduction: str = "sum",
    measures: Sequence[str] = MEASURES,
    layers: Sequence[str] = LAYERS,
    on: str = "query",
    epsilon: float = 0.0,
) -> dict[str, dict[str, float]]:
    """Similarity of each layer's representation before vs after the inner loop (Figure 2).

    For each task: adapt ``trainable`` parameters on the support set (``steps`` steps of ``lr``),
    record every layer on the task's images (``on="query"`` or ``"all"`` = support + query) under
    the meta-initialisation and under the adapted parameters, compare. Averaged over tasks.

    Returns ``{measure: {layer: float}}``; with ``steps=0`` every value is 1.
    """
    return pre_post_analysis(model, params, tasks, trainable=trainable, steps=steps, lr=lr,
                             reduction=reduction, measures=measures, layers=layers, on=on,
                             epsilon=epsilon).similarity


def weight_change(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    tasks: Sequence,
    *,
    trainable: Trainable = all_params,
    steps: int,
    lr: float,
    reduction: str = "sum",
    layers: Sequence[str] = LAYERS,
) -> dict[str, float]:
    """Per-layer Euclidean distance between the meta-initialisation and the adapted weights (Fig. 6).

    ``(1/N) sum_m ||theta_l - theta_l^(m)||_2`` over the N tasks, where ``theta_l`` stacks every
    parameter whose name starts with ``"{l}."`` (conv weight, batch-norm offset; head weight and
    bias). A layer that does not adapt has change exactly 0.
    """
    return pre_post_analysis(model, params, tasks, trainable=trainable, steps=steps, lr=lr,
                             reduction=reduction, measures=(), layers=layers).change


def pre_post_analysis(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    tasks: Sequence,
    *,
    trainable: Trainable = all_params,
    steps: int,
    lr: float,
    reduction: str = "sum",
    measures: Sequence[str] = MEASURES,
    layers: Sequence[str] = LAYERS,
    on: str = "query",
    epsilon: float = 0.0,
    chance: bool = False,
    seed: int = 0,
) -> PrePost:
    """:func:`pre_post_similarity` and :func:`weight_change` from one adaptation per task.

    With ``chance=True`` it also measures the chance level: the same similarity between the
    "before" activations and the "after" activations of the same images in a random order
    (a seeded permutation of the images per task, ``seed``), so a value can be read against
    what unrelated representations of this size give.

    Returns a :class:`PrePost` ``(similarity, change, chance)``; ``measures=()`` skips the
    similarities (empty dicts).
    """
    tasks, layers = _check_tasks(tasks), _check_layers(layers)
    rows, floors, totals = [], [], dict.fromkeys(layers, 0.0)
    gen = torch.Generator().manual_seed(seed)
    for task in tasks:
        fast = adapt(model, params, task.support_x, task.support_y, steps=steps, lr=lr,
                     trainable=trainable, first_order=True, reduction=reduction)
        if measures:
            x = _images(task, on)
            pre = layer_activations(model, params, x, layers=layers)
            post = layer_activations(model, fast, x, layers=layers)
            rows.append(layer_similarity(pre, post, measures=measures, epsilon=epsilon))
            if chance:
                order = torch.randperm(x.shape[0], generator=gen)
                shuffled = {k: v[order] for k, v in post.items()}
                floors.append(layer_similarity(pre, shuffled, measures=measures, epsilon=epsilon))
        for layer in layers:
            sq = sum(float((fast[n].detach().double() - p.detach().double()).square().sum())
                     for n, p in params.items() if n.startswith(layer + "."))
            totals[layer] += math.sqrt(sq)
    return PrePost(_mean_dicts(rows) if rows else {}, {k: v / len(tasks) for k, v in totals.items()},
                   _mean_dicts(floors) if floors else {})


def cross_run_similarity(
    model_a: nn.Module,
    params_a: Mapping[str, torch.Tensor],
    model_b: nn.Module,
    params_b: Mapping[str, torch.Tensor],
    tasks: Sequence,
    *,
    adapt_a: AdaptSpec | None = None,
    adapt_b: AdaptSpec | None = None,
    measures: Sequence[str] = MEASURES,
    layers: Sequence[str] = BODY_NAMES,
    comparisons: Sequence[str] = COMPARISONS,
    on: str = "query",
    epsilon: float = 0.0,
) -> dict[str, dict[str, dict[str, float]]]:
    """Similarity of two runs (two seeds, MAML vs ANIL, a regime vs MAML), per layer (Fig. 7/8/11).

    Both runs see the same images of each task. ``adapt_a`` / ``adapt_b`` say how each run
    adapts (``None``: it does not, so its "post" equals its "pre").

    Returns ``{comparison: {measure: {layer: float}}}`` averaged over tasks, with comparisons
    ``"pre_pre"`` (L1 pre, L2 pre), ``"pre_post"`` (L1 pre, L2 post), ``"post_pre"`` (L1 post,
    L2 pre), ``"post_post"`` (L1 post, L2 post), ``"a_pre_post"`` (L1 pre, L1 post) and
    ``"b_pre_post"`` (L2 pre, L2 post). ``comparisons`` restricts the work to those keys
    (e.g. ``("pre_pre",)`` adapts nothing).
    """
    tasks, layers = _check_tasks(tasks), _check_layers(layers)
    comparisons = tuple(comparisons)
    bad = [c for c in comparisons if c not in COMPARISONS]
    if not comparisons or bad:
        raise ValueError(f"comparisons: expected a non-empty subset of {list(COMPARISONS)}, "
                         f"got {list(comparisons)}")

    def post(model, params, spec, task):
        if spec is None:
            return params
        return adapt(model, params, task.support_x, task.support_y, steps=spec.steps, lr=spec.lr,
                     trainable=spec.trainable, first_order=True, reduction=spec.reduction)

    pairs = {k: _PAIRS[k] for k in comparisons}
    used = {side for pair in pairs.values() for side in pair}
    rows: dict[str, list] = {k: [] for k in pairs}
    for task in tasks:
        x = _images(task, on)
        acts = {"a0": layer_activations(model_a, params_a, x, layers=layers),
                "b0": layer_activations(model_b, params_b, x, layers=layers)}
        if "a1" in used:
            acts["a1"] = acts["a0"] if adapt_a is None else layer_activations(
                model_a, post(model_a, params_a, adapt_a, task), x, layers=layers)
        if "b1" in used:
            acts["b1"] = acts["b0"] if adapt_b is None else layer_activations(
                model_b, post(model_b, params_b, adapt_b, task), x, layers=layers)
        for key, (i, j) in pairs.items():
            rows[key].append(layer_similarity(acts[i], acts[j], measures=measures, epsilon=epsilon))
    return {key: _mean_dicts(r) for key, r in rows.items()}
