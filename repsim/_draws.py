"""Seeded index draws of the inference functions: permutations and bootstrap resamples.

Every draw comes from the one ``torch.Generator`` the caller passes, one ``randperm`` or
``randint`` call per draw, so the same seed gives the same draws on every code path of
:func:`repsim.permutation_test` and :func:`repsim.bootstrap_ci`.

>>> gen = as_generator(0)
>>> [chunk.shape for chunk in draws(10, 3, gen, torch.device("cpu"), replace=False)]
[torch.Size([3, 10])]
"""
from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["MAX_INDEX_ENTRIES", "as_generator", "draws"]

# Largest number of index entries drawn at once (permutations or resamples of n rows each).
MAX_INDEX_ENTRIES = 1 << 22


def as_generator(generator: Any) -> torch.Generator | None:
    """``generator`` as a ``torch.Generator`` (an int is a seed), or None for the global RNG."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(int(generator))
    raise ValueError("generator: expected a torch.Generator, an int seed or None, "
                     f"got {type(generator).__name__}")


def draws(
    n: int, count: int, gen: torch.Generator | None, device: torch.device, *, replace: bool
) -> Iterator[torch.Tensor]:
    """``count`` permutations (or resamples with replacement) of ``range(n)``, in (b, n) chunks.

    The sequence depends on ``gen`` alone (one ``randperm`` or ``randint`` call per draw), so
    every consumer of the same generator sees the same draws whatever the chunk size.
    """
    where = gen.device if gen is not None else torch.device("cpu")
    step = max(1, min(count, MAX_INDEX_ENTRIES // n))
    for start in range(0, count, step):
        b = min(step, count - start)
        if replace:
            rows = [torch.randint(n, (n,), generator=gen, device=where) for _ in range(b)]
        else:
            rows = [torch.randperm(n, generator=gen, device=where) for _ in range(b)]
        yield torch.stack(rows).to(device)
