"""ANIL (Raghu et al. 2020): only the head adapts in the inner loop; the body is meta-learned.

>>> loss, acc = ANIL().task_loss(model, params, task, steps=5, lr=0.1, ways=5)
"""
from __future__ import annotations

from meta.algos.maml import MAML
from meta.inner import head_only

__all__ = ["ANIL"]


class ANIL(MAML):
    """MAML's objective with :func:`meta.inner.head_only` adapting (cached-features fast path)."""

    name = "anil"
    trainable = staticmethod(head_only)
