"""One object per training regime, looked up by name.

>>> get_algorithm("anil").inner_trainable()("head.weight")
True
>>> list(REGISTRY)
['maml', 'fomaml', 'anil', 'multiclass', 'multitask', 'random', 'nil']

Adding an algorithm: a module here with an :class:`Algorithm` subclass, its test, and one line
in ``REGISTRY`` below.
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from meta.algos.anil import ANIL
from meta.algos.base import Algorithm, TrainingData
from meta.algos.maml import MAML, FirstOrderMAML
from meta.algos.multiclass import Multiclass
from meta.algos.multitask import Multitask
from meta.algos.nil import NIL
from meta.algos.random_features import RandomFeatures

__all__ = ["Algorithm", "TrainingData", "REGISTRY", "get_algorithm", "algorithm_names"]

#: name -> algorithm object (read-only); the order is the one listed in help texts.
REGISTRY: Mapping[str, Algorithm] = MappingProxyType({a.name: a for a in (
    MAML(),
    FirstOrderMAML(),
    ANIL(),
    Multiclass(),
    Multitask(),
    RandomFeatures(),
    NIL(),
)})


def algorithm_names() -> tuple[str, ...]:
    """Every registered name, in registry order."""
    return tuple(REGISTRY)


def get_algorithm(name: str) -> Algorithm:
    """The algorithm registered as ``name``; ``ValueError`` listing the names otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"algorithm: expected one of {list(REGISTRY)}, got {name!r}") from None
