"""Multiclass pretraining (paper Sec. 5.2): standard classification over all training classes,
on batches of images; tested with a new zero head whose parameters adapt (as ANIL).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from meta.algos._functional import accuracy
from meta.algos.base import Algorithm, TrainingData
from meta.data import FewShotDataset

__all__ = ["Multiclass", "multiclass_loss"]


def multiclass_loss(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor,
                    y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy over all training classes: ``(loss, accuracy)``.

    x : (batch, C, H, W) tensor
    y : (batch,) int64 tensor of global class indices
    """
    logits = functional_call(model, dict(params), (x,))
    return F.cross_entropy(logits, y), accuracy(logits, y)


class Multiclass(Algorithm):
    """One head over every training class; rotations are extra classes, not rotated tasks."""

    name = "multiclass"
    new_test_head = True
    rotations_as_classes = True

    def head_width(self, cfg: Any, train_set: FewShotDataset) -> int:
        """The number of training classes."""
        return len(train_set)

    def accumulate(self, model: nn.Module, params: Mapping[str, torch.Tensor], data: TrainingData,
                   cfg: Any) -> torch.Tensor:
        """``cfg.batch_size`` images of random classes (drawn from ``data.batches``); this rank
        takes rows ``rank::world_size`` and weights its loss by its share of the batch.
        Returns the weighted ``(loss, accuracy)``, float64 ``(2,)``."""
        n_classes, n_per = data.train_set.images.shape[:2]
        cls = torch.randint(n_classes, (cfg.batch_size,), generator=data.batches)
        idx = torch.randint(n_per, (cfg.batch_size,), generator=data.batches)
        cls, idx = cls[data.rank::data.world_size], idx[data.rank::data.world_size]
        x = (data.train_set.images[cls, idx].to(torch.float32) / 255).to(data.device)  # (b, C, H, W)
        loss, acc = multiclass_loss(model, params, x, cls.to(data.device))
        weight = len(cls) / cfg.batch_size
        (loss * weight).backward()
        return torch.stack([loss.detach().cpu().double(), acc.cpu()]) * weight
