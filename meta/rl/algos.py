"""The RL algorithm family, looked up by name as the supervised regimes are (:mod:`meta.algos`).

>>> get_rl_algorithm("anil").trainable("layers.0.weight")
False
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from meta.rl.policy import Trainable, all_params, head_only

__all__ = ["RLAlgorithm", "RL_REGISTRY", "get_rl_algorithm"]


class RLAlgorithm(NamedTuple):
    """MAML-RL and its variants differ only in what adapts and whether the inner gradients are
    treated as constants in the TRPO objective."""

    name: str
    trainable: Trainable          # inner-loop predicate on the policy's parameter names
    first_order: bool


#: name -> RL algorithm (read-only).
RL_REGISTRY: Mapping[str, RLAlgorithm] = MappingProxyType({a.name: a for a in (
    RLAlgorithm("maml", all_params, False),
    RLAlgorithm("fomaml", all_params, True),
    RLAlgorithm("anil", head_only, False),
)})


def get_rl_algorithm(name: str) -> RLAlgorithm:
    """The RL algorithm registered as ``name``; ``ValueError`` listing the names otherwise."""
    try:
        return RL_REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"algorithm: expected one of {list(RL_REGISTRY)}, got {name!r}") from None
