"""MAML (Finn et al. 2017) and its first-order variant: every parameter adapts in the inner loop.

>>> loss, acc = MAML().task_loss(model, params, task, steps=5, lr=0.1, ways=5)
>>> loss.backward()            # second-order meta-gradient into every parameter
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from meta.algos._functional import meta_loss
from meta.algos.base import Algorithm
from meta.data import Task
from meta.inner import all_params

__all__ = ["MAML", "FirstOrderMAML"]


class MAML(Algorithm):
    """Second-order MAML: the query loss after adapting all weights, differentiated through the
    inner loop (the batch-norm offsets are meta-learned but adapt only with ``adapt_norm``)."""

    name = "maml"
    trainable = staticmethod(all_params)
    meta_learned = True

    def task_loss(self, model: nn.Module, params: Mapping[str, torch.Tensor], task: Task, *,
                  steps: int, lr: float, ways: int, reduction: str = "sum",
                  adapt_norm: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`meta.algos._functional.meta_loss` with this algorithm's inner loop."""
        return meta_loss(model, params, task, trainable=self.inner_trainable(adapt_norm=adapt_norm),
                         first_order=self.first_order, steps=steps, lr=lr, reduction=reduction)


class FirstOrderMAML(MAML):
    """First-order MAML: as :class:`MAML` with the inner gradients treated as constants."""

    name = "fomaml"
    first_order = True
