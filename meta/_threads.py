"""The torch thread count of a block of work (training and evaluation set it explicitly: torch's
default of every core collapses when other processes share them).

>>> with torch_threads(1):
...     train(cfg, "runs/a")          # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["torch_threads"]


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, then restore the caller's count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
