"""The math shared by every algorithm: forward passes on a parameter dict, the MAML / ANIL
objective, the NIL rule and test-time prediction.

MAML, first-order MAML and ANIL are one code path, :func:`meta_loss`, that differs only in the
``trainable`` predicate and the ``first_order`` flag. When only the head adapts (ANIL, random
features) the body is run once per task and the head adapts on the cached penultimate features;
``meta_loss(..., fast=False)`` runs the general path instead and gives the same numbers.

>>> loss, acc = meta_loss(model, params, task, trainable=head_only, first_order=False,
...                       steps=5, lr=0.1)          # ANIL
>>> loss.backward()                                 # meta-gradient into every parameter
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from meta.inner import Trainable, adapt, all_params, head_only, inner_loss

__all__ = [
    "HEADS",
    "accuracy",
    "body_features",
    "head_logits",
    "adapt_head",
    "query_logits",
    "meta_loss",
    "nil_logits",
    "fresh_head",
    "predict",
]

_HEAD_NAMES = ("head.weight", "head.bias")

#: Test-time heads: "maml" adapts a linear head on the support set, "nil" uses the NIL rule.
HEADS = ("maml", "nil")


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose arg-max equals ``y``; 0-dim float tensor, no gradient.

    logits : (n, ways) tensor
    y : (n,) int64 tensor
    """
    return (logits.detach().argmax(1) == y).to(torch.float64).mean()


def body_features(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Penultimate features under ``params``: ``(batch, C, H, W)`` -> ``(batch, feature_dim)``."""
    return functional_call(model, dict(params), (x,), {"features_only": True})


def head_logits(params: Mapping[str, torch.Tensor], features: torch.Tensor) -> torch.Tensor:
    """The linear head on features: ``(batch, feature_dim)`` -> ``(batch, ways)``."""
    return F.linear(features, params["head.weight"], params["head.bias"])


def adapt_head(
    params: Mapping[str, torch.Tensor],
    features: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float,
    first_order: bool = False,
    reduction: str = "sum",
) -> dict[str, torch.Tensor]:
    """The inner loop of :func:`meta.inner.adapt` restricted to the head, on cached features.

    params : {name: tensor}, must hold ``head.weight`` (ways, feature_dim) and ``head.bias``
    features : (n_support, feature_dim) tensor
    y : (n_support,) int64 tensor
    Returns a new dict; only ``head.weight`` and ``head.bias`` differ from ``params``.
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps: expected a non-negative int, got {steps!r}")
    params = dict(params)
    names = _HEAD_NAMES
    with torch.enable_grad():
        for n in names:
            if not params[n].requires_grad:
                params[n] = params[n].detach().requires_grad_()
        for _ in range(steps):
            loss = inner_loss(head_logits(params, features), y, reduction=reduction)
            grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=not first_order)
            params = {**params, **{n: params[n] - lr * g for n, g in zip(names, grads)}}
    return params


def _adapts_head_alone(trainable: Trainable, params: Mapping[str, torch.Tensor]) -> bool:
    """True when ``trainable`` selects exactly ``head.weight`` and ``head.bias`` of ``params``."""
    return trainable is head_only or {n for n in params if trainable(n)} == set(_HEAD_NAMES)


def query_logits(model, params, task, *, trainable: Trainable, first_order: bool, steps: int,
                 lr: float, fast: bool, reduction: str) -> torch.Tensor:
    """Query logits ``(ways*query, ways)`` after adapting ``trainable`` on the support set.

    The one code path of training (:func:`meta_loss`) and evaluation (:func:`predict`); with
    ``fast``, when only the head adapts (:func:`head_only`, or every conv block frozen) the
    body runs once and the head adapts on its features.
    """
    if fast and _adapts_head_alone(trainable, params):
        support = body_features(model, params, task.support_x)         # (ways*shots, d), once
        query = body_features(model, params, task.query_x)             # (ways*query, d)
        head = adapt_head(params, support, task.support_y, steps=steps, lr=lr, first_order=first_order,
                          reduction=reduction)
        return head_logits(head, query)
    fast_params = adapt(model, params, task.support_x, task.support_y, steps=steps, lr=lr,
                        trainable=trainable, first_order=first_order, reduction=reduction)
    return functional_call(model, fast_params, (task.query_x,))


def meta_loss(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    task,
    *,
    trainable: Trainable,
    first_order: bool,
    steps: int,
    lr: float,
    fast: bool = True,
    reduction: str = "sum",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Outer objective of one task: query cross-entropy after adapting on the support set.

    Parameters
    ----------
    model : nn.Module
    params : {name: tensor}
        The meta-parameters; the loss is differentiable with respect to those requiring grad.
    task : Task
        ``support_x (ways*shots, C, H, W)``, ``support_y``, ``query_x (ways*query, C, H, W)``,
        ``query_y``.
    trainable, first_order
        What adapts and whether the inner gradients are detached: (all_params, False) MAML,
        (all_params, True) first-order MAML, (head_only, False) ANIL.
    steps, lr : inner-loop steps and learning rate.
    fast : bool
        When only the head adapts, run the body once and adapt the head on cached features.
    reduction : "sum" or "mean"
        Inner-loss units (:func:`meta.inner.inner_loss`); the query loss is always the mean.

    Returns
    -------
    loss : 0-dim tensor (with graph)
    accuracy : 0-dim float64 tensor (query accuracy, detached)
    """
    logits = query_logits(model, params, task, trainable=trainable, first_order=first_order,
                          steps=steps, lr=lr, fast=fast, reduction=reduction)
    return F.cross_entropy(logits, task.query_y), accuracy(logits, task.query_y)


def nil_logits(
    support_features: torch.Tensor,
    support_y: torch.Tensor,
    query_features: torch.Tensor,
    ways: int,
) -> torch.Tensor:
    """The NIL / Matching Networks rule, as log-probabilities.

    ``p(c | q) = sum_j softmax_j(cos(q, s_j)) * [y_j == c]`` — the support labels weighted by the
    softmax over the support set of the cosine similarity between the query's and each support
    example's penultimate features (no temperature).

    Parameters
    ----------
    support_features : (n_support, d) tensor
    support_y : (n_support,) int64 tensor with values in ``0..ways-1``
    query_features : (n_query, d) tensor
    ways : int

    Returns
    -------
    (n_query, ways) tensor
        ``log p(c | q)``; each row's exponentials sum to 1, so it can be used directly as
        logits (``F.cross_entropy`` gives ``-log p(y | q)``, the NIL-training loss) and its
        arg-max is the NIL prediction. A class absent from the support set gets ``-inf``.
    """
    if support_features.dim() != 2 or query_features.dim() != 2:
        raise ValueError(
            "features: expected 2-D (n, d) tensors, got support "
            f"{tuple(support_features.shape)} and query {tuple(query_features.shape)}"
        )
    if support_features.shape[1] != query_features.shape[1]:
        raise ValueError(
            f"features: expected the same width d, got {support_features.shape[1]} (support) "
            f"and {query_features.shape[1]} (query)"
        )
    if support_y.shape != (support_features.shape[0],):
        raise ValueError(
            f"support_y: expected shape ({support_features.shape[0]},), got {tuple(support_y.shape)}"
        )
    cos = F.normalize(query_features, dim=1) @ F.normalize(support_features, dim=1).T  # (nq, ns)
    onehot = F.one_hot(support_y, ways).to(cos.dtype)                                  # (ns, ways)
    return torch.log(torch.softmax(cos, dim=1) @ onehot)


def fresh_head(params: Mapping[str, torch.Tensor], ways: int) -> dict[str, torch.Tensor]:
    """Replace the head by a zero-initialised one of ``ways`` outputs (multiclass evaluation)."""
    weight = params["head.weight"]
    return {**params,
            "head.weight": weight.new_zeros(ways, weight.shape[1]),
            "head.bias": weight.new_zeros(ways)}


def predict(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    task,
    *,
    head: str = "maml",
    trainable: Trainable = all_params,
    steps: int,
    lr: float,
    reduction: str = "sum",
) -> torch.Tensor:
    """Query logits of one test task, ``(ways*query, ways)``, without gradients.

    head : "maml" or "nil"
        ``"maml"``: adapt the ``trainable`` parameters on the support set (first-order, since
        nothing is differentiated afterwards), then classify the query; head-only adaptation uses
        the cached-features fast path. ``"nil"``: no adaptation; :func:`nil_logits` on the body's
        features (``trainable``, ``steps`` and ``lr`` are ignored).
    """
    with torch.no_grad():
        if head == "nil":
            ways = int(task.support_y.max()) + 1
            return nil_logits(body_features(model, params, task.support_x), task.support_y,
                              body_features(model, params, task.query_x), ways)
        if head not in HEADS:
            raise ValueError(f"head: expected one of {list(HEADS)}, got {head!r}")
        params = {n: p.detach() for n, p in params.items()}
        return query_logits(model, params, task, trainable=trainable, first_order=True,
                            steps=steps, lr=lr, fast=True, reduction=reduction).detach()
