"""Character-level splits of a character set, as the MAML reference code makes them.

The reference code shuffles all 1623 Omniglot characters with a fixed seed, then takes 1100
for meta-training, 100 for validation and the remaining 423 for testing, so test characters
come from alphabets also seen in training. :func:`shuffled_split` does the same for any number
of classes (same proportions, a fixed numpy permutation); the reference's own permutation
depends on its folder listing and cannot be rebuilt.

>>> idx = shuffled_split(1623, "test")
>>> len(idx), len(shuffled_split(1623, "train")), len(shuffled_split(1623, "val"))
(423, 1100, 100)
"""
from __future__ import annotations

import numpy as np

__all__ = ["SHUFFLED_SPLITS", "ORDERED_SPLITS", "shuffled_split", "ordered_split"]

#: The reference code's split sizes over Omniglot's 1623 characters: ``(start, stop)``.
_BOUNDS = {"train": (0, 1100), "val": (1100, 1200), "test": (1200, 1623)}
_TOTAL = 1623
SHUFFLED_SPLITS = tuple(_BOUNDS)
#: The same sizes over the classes in their stored order (whole alphabets held out for test).
ORDERED_SPLITS = tuple(f"{s}-ordered" for s in _BOUNDS)


def _bounds(n_classes: int, split: str) -> tuple[int, int]:
    start, stop = _BOUNDS[split]
    if n_classes == _TOTAL:
        return start, stop
    return round(start * n_classes / _TOTAL), round(stop * n_classes / _TOTAL)


def ordered_split(n_classes: int, split: str) -> np.ndarray:
    """Class indices of ``"train-ordered"``, ``"val-ordered"`` or ``"test-ordered"``: the
    reference sizes (scaled to ``n_classes``) taken in class order. Returns an int64 array."""
    if split not in ORDERED_SPLITS:
        raise ValueError(f"split: expected one of {ORDERED_SPLITS}, got {split!r}")
    start, stop = _bounds(n_classes, split[: -len("-ordered")])
    return np.arange(start, stop, dtype=np.int64)


def shuffled_split(n_classes: int, split: str, *, seed: int = 1) -> np.ndarray:
    """Class indices of ``"train"``, ``"val"`` or ``"test"`` after a seeded shuffle of all
    ``n_classes`` classes (sizes as the reference, scaled). Returns a sorted int64 array."""
    if split not in SHUFFLED_SPLITS:
        raise ValueError(f"split: expected one of {SHUFFLED_SPLITS}, got {split!r}")
    if n_classes < 3:
        raise ValueError(f"n_classes: expected at least 3 classes to split, got {n_classes}")
    order = np.random.RandomState(seed).permutation(n_classes)
    start, stop = _bounds(n_classes, split)
    return np.sort(order[start:stop]).astype(np.int64)
