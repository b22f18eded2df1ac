"""NIL training (paper Sec. 5.2): no head and no inner loop; the body is trained so that the NIL
rule (cosine similarity to the support set) classifies the query set.

>>> loss, acc = nil_loss(model, params, task, ways=5)
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from meta.algos._functional import accuracy, body_features, nil_logits
from meta.algos.base import Algorithm
from meta.data import Task

__all__ = ["NIL", "nil_loss"]


def nil_loss(model: nn.Module, params: Mapping[str, torch.Tensor], task: Task, *,
             ways: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the NIL rule on the query set (the head is unused).

    Returns ``(loss, accuracy)``: 0-dim loss with graph, 0-dim float64 query accuracy.
    """
    logits = nil_logits(body_features(model, params, task.support_x), task.support_y,
                        body_features(model, params, task.query_x), ways)
    return F.cross_entropy(logits, task.query_y), accuracy(logits, task.query_y)


class NIL(Algorithm):
    """Trains the body only; tested with the NIL head by default (a zero head otherwise)."""

    name = "nil"
    test_head = "nil"
    new_test_head = True

    def outer_parameter_names(self, model: nn.Module) -> list[str]:
        """Every parameter but the head's (NIL training has no head)."""
        return [n for n, _ in model.named_parameters() if not n.startswith("head.")]

    def task_loss(self, model: nn.Module, params: Mapping[str, torch.Tensor], task: Task, *,
                  steps: int, lr: float, ways: int, reduction: str = "sum",
                  adapt_norm: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`nil_loss` (``steps``, ``lr``, ``reduction`` and ``adapt_norm`` are unused)."""
        return nil_loss(model, params, task, ways=ways)
