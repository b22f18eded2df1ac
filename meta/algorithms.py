"""Per-task objectives of the training regimes (paper Sec. 5.2) and test-time prediction.

The functions here look the regime up in :data:`meta.algos.REGISTRY`; the math lives in
:mod:`meta.algos` (one module per regime, shared pieces in ``meta.algos._functional``).
MAML, first-order MAML and ANIL are one code path, :func:`meta_loss`, that differs only in the
``trainable`` predicate and the ``first_order`` flag (see :data:`META_ALGORITHMS`).

>>> loss, acc = meta_loss(model, params, task, trainable=head_only, first_order=False,
...                       steps=5, lr=0.1)          # ANIL
>>> loss.backward()                                 # meta-gradient into every parameter
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import nn

from meta.algos import REGISTRY, get_algorithm
from meta.algos._functional import (
    HEADS,
    accuracy,
    adapt_head,
    body_features,
    fresh_head,
    head_logits,
    meta_loss,
    nil_logits,
    predict,
)
from meta.algos.multiclass import multiclass_loss
from meta.algos.multitask import multitask_loss
from meta.algos.nil import nil_loss
from meta.data import Task
from meta.inner import Trainable

__all__ = [
    "ALGORITHMS",
    "META_ALGORITHMS",
    "HEADS",
    "MetaSpec",
    "accuracy",
    "body_features",
    "head_logits",
    "adapt_head",
    "meta_loss",
    "nil_logits",
    "nil_loss",
    "multitask_loss",
    "multiclass_loss",
    "task_loss",
    "inner_trainable",
    "fresh_head",
    "eval_setup",
    "predict",
]

#: Every algorithm name, in registry order.
ALGORITHMS = tuple(REGISTRY)


class MetaSpec(NamedTuple):
    """How a meta-learning algorithm adapts: which parameters, and whether first-order."""

    trainable: Trainable
    first_order: bool


#: The regimes trained through an inner loop: name -> (trainable, first_order).
META_ALGORITHMS = {name: MetaSpec(type(a).trainable, a.first_order)
                   for name, a in REGISTRY.items() if a.meta_learned}


def inner_trainable(algorithm: str, *, adapt_norm: bool = False,
                    freeze: tuple[int, ...] = ()) -> Trainable:
    """What adapts in the inner loop of a model trained with ``algorithm``.

    MAML / first-order MAML: every parameter, ANIL and the other regimes: the head; a non-empty
    ``freeze`` (blocks 1..4): everything but those blocks. Unless ``adapt_norm``, the batch-norm
    offsets never adapt (the MAML reference code).
    """
    return get_algorithm(algorithm).inner_trainable(adapt_norm=adapt_norm, freeze=freeze)


def task_loss(model: nn.Module, params: Mapping[str, torch.Tensor], task: Task, *, algorithm: str,
              steps: int, lr: float, ways: int, reduction: str = "sum", adapt_norm: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-task training objective of ``algorithm`` (every episodic regime).

    ``reduction`` and ``adapt_norm`` set the inner loop's loss units and whether the batch-norm
    offsets adapt (:func:`inner_trainable`).
    Returns ``(loss, accuracy)``: 0-dim loss with graph, 0-dim float64 query accuracy.
    """
    episodic = [name for name, a in REGISTRY.items() if a.episodic]
    if algorithm not in episodic:
        raise ValueError(f"algorithm: expected one of {sorted(episodic)}, got {algorithm!r}")
    return get_algorithm(algorithm).task_loss(model, params, task, steps=steps, lr=lr, ways=ways,
                                              reduction=reduction, adapt_norm=adapt_norm)


def eval_setup(
    algorithm: str,
    params: Mapping[str, torch.Tensor],
    ways: int,
    *,
    freeze: tuple[int, ...] = (),
    adapt_norm: bool = False,
) -> tuple[dict[str, torch.Tensor], Trainable]:
    """Parameters and adaptable set for testing a model trained with ``algorithm``.

    MAML / first-order MAML adapt everything; the other regimes reuse the body and adapt the
    head only. Multiclass pretraining and NIL training get a new zero-initialised head of
    ``ways`` outputs (as does any model whose head has another width). A non-empty ``freeze``
    (blocks 1..4) overrides the default: everything but those blocks adapts. The batch-norm
    offsets adapt only with ``adapt_norm`` (:func:`inner_trainable`).
    """
    return get_algorithm(algorithm).eval_setup(params, ways, freeze=freeze, adapt_norm=adapt_norm)
