"""Random features (paper Sec. 5.2): the body stays at its initialisation; the outer loop trains
only the head, which adapts in the inner loop as in ANIL.
"""
from __future__ import annotations

from torch import nn

from meta.algos.anil import ANIL

__all__ = ["RandomFeatures"]


class RandomFeatures(ANIL):
    """ANIL's inner loop and objective; the outer loop updates the head only."""

    name = "random"

    def outer_parameter_names(self, model: nn.Module) -> list[str]:
        """The head's parameters (the body is never updated)."""
        return [n for n, _ in model.named_parameters() if n.startswith("head.")]
