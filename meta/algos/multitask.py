"""Multitask training (paper Sec. 5.2): no inner loop; one ``ways``-output head trained on the
task-local labels of each task's query set.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from meta.algos._functional import accuracy
from meta.algos.base import Algorithm
from meta.data import Task

__all__ = ["Multitask", "multitask_loss"]


def multitask_loss(model: nn.Module, params: Mapping[str, torch.Tensor],
                   task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """Query cross-entropy of the model as it is (no adaptation): ``(loss, accuracy)``."""
    logits = functional_call(model, dict(params), (task.query_x,))
    return F.cross_entropy(logits, task.query_y), accuracy(logits, task.query_y)


class Multitask(Algorithm):
    """Trains everything on tasks without an inner loop; tested like ANIL (head adapts)."""

    name = "multitask"

    def task_loss(self, model: nn.Module, params: Mapping[str, torch.Tensor], task: Task, *,
                  steps: int, lr: float, ways: int, reduction: str = "sum",
                  adapt_norm: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`multitask_loss` (the inner-loop arguments are unused)."""
        return multitask_loss(model, params, task)
