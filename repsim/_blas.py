"""Symmetric products ``A^T A`` and ``A A^T`` at half the flops of a GEMM on CPU.

``torch.mm`` has no symmetric rank-k update: ``a.T @ a`` runs a full GEMM. numpy's matmul
recognises ``A.T @ A`` (and ``A @ A.T``) on one buffer and calls BLAS ``syrk``, which computes one
triangle and mirrors it. On this project's CPU benchmarks that costs 0.46-0.51 of an
``x.T @ y`` at n = 10000, d = 500-512, against 0.75 for a panelled torch product.

Threads. numpy's BLAS has its own thread pool, whose idle workers spin for a while after each
call, as torch's OpenMP workers do; alternating calls of the two pools on the same cores made
both slower (two ``syrk`` at n = 10000 took 2.0-2.5 GEMM-times with 2 threads instead of 1.0).
So numpy's pool is held at one thread during these calls, and with ``torch.get_num_threads()``
threads a large product is split into that many row (or column) blocks whose ``syrk`` run
side by side in a small Python thread pool (numpy releases the GIL): ``A^T A = sum_i A_i^T A_i``.
The products thus follow ``torch.set_num_threads`` like the rest of the library.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

__all__ = ["cross_t", "gram", "gram_t", "uses_syrk"]

_CONTROLLER: Any = None  # threadpoolctl.ThreadpoolController, made on first use
_POOLS: dict[int, ThreadPoolExecutor] = {}

# Products with fewer entries in ``a`` run in one piece on one thread: splitting them costs
# more in hand-over than it saves, and torch's threaded GEMM is then the better choice.
_MIN_THREADED_ENTRIES = 1 << 20


def uses_syrk(a: torch.Tensor) -> bool:
    """Whether :func:`gram_t` / :func:`gram` take the numpy ``syrk`` path for ``a``.

    For real float CPU tensors without autograd, when torch runs one thread or ``a`` has at
    least ``2**20`` entries (enough to split over the threads).
    """
    return a.device.type == "cpu" and a.dtype in (torch.float32, torch.float64) \
        and not a.requires_grad \
        and (torch.get_num_threads() == 1 or a.numel() >= _MIN_THREADED_ENTRIES)


def gram_t(a: torch.Tensor) -> torch.Tensor:
    """``A^T A`` for an ``(n, d)`` tensor: a ``(d, d)`` tensor of the dtype and device of ``a``.

    On CPU (float32/float64, see :func:`uses_syrk`) through numpy's ``syrk`` on row blocks, one
    per torch thread (``a.numpy()`` shares memory, so nothing is copied). Other devices and
    dtypes use ``torch.mm``.
    """
    if not uses_syrk(a):
        return a.mT @ a
    an = a.resolve_conj().resolve_neg().numpy()
    blocks = _split(an, axis=0)
    return torch.from_numpy(_sum(_run(lambda b: b.T @ b, blocks)))


def cross_t(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``A^T B`` for ``(n, d_a)`` and ``(n, d_b)`` tensors: a ``(d_a, d_b)`` tensor.

    float64 on the CPU path of :func:`uses_syrk`: a numpy GEMM on row blocks in the same thread
    pool as :func:`gram_t`, so that a measure's three products stay in one pool (2 threads,
    n = 10000, d = 500: CCA and CKA 0.06-0.28 GEMM-times faster than with ``torch.mm`` for this
    product). float32 and elsewhere: ``torch.mm`` (MKL's ``sgemm`` was faster than the split one).
    """
    if not (a.dtype == b.dtype == torch.float64 and uses_syrk(a) and uses_syrk(b)):
        return a.mT @ b
    an, bn = (t.resolve_conj().resolve_neg().numpy() for t in (a, b))
    size = max(an.size, bn.size)  # both split into the same row blocks
    pairs = list(zip(_split(an, axis=0, size=size), _split(bn, axis=0, size=size)))
    return torch.from_numpy(_sum(_run(lambda p: p[0].T @ p[1], pairs)))


def gram(a: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """``A A^T`` for an ``(n, d)`` tensor: an ``(n, n)`` tensor (written into ``out`` if given).

    Same paths as :func:`gram_t` (on CPU: column blocks, ``A A^T = sum_i A_i A_i^T``); ``out``
    must be a contiguous ``(n, n)`` tensor of ``a``'s dtype and device.
    """
    if not uses_syrk(a):
        return torch.mm(a, a.mT, out=out) if out is not None else a @ a.mT
    an = a.resolve_conj().resolve_neg().numpy()
    blocks = _split(an, axis=1)
    if len(blocks) == 1 and out is not None:
        with _blas_threads(1):
            np.matmul(an, an.T, out=out.numpy())
        return out
    total = _sum(_run(lambda b: b @ b.T, blocks))
    if out is None:
        return torch.from_numpy(total)
    out.copy_(torch.from_numpy(total))
    return out


def _split(an: np.ndarray, *, axis: int, size: int | None = None) -> list[np.ndarray]:
    """``torch.get_num_threads()`` blocks of ``an`` along ``axis`` (views), or ``[an]``.

    ``size``: the entry count that decides whether to split (default ``an.size``).
    """
    threads = torch.get_num_threads()
    size = an.size if size is None else size
    if threads == 1 or size < _MIN_THREADED_ENTRIES or an.shape[axis] < 2 * threads:
        return [an]
    return np.array_split(an, threads, axis=axis)


def _run(fn: Any, blocks: list[np.ndarray]) -> list[np.ndarray]:
    """``fn`` on every block, side by side, with numpy's BLAS held at one thread."""
    with _blas_threads(1):
        if len(blocks) == 1:
            return [fn(blocks[0])]
        pool = _POOLS.get(len(blocks))
        if pool is None:
            pool = _POOLS[len(blocks)] = ThreadPoolExecutor(len(blocks), "repsim-syrk")
        return list(pool.map(fn, blocks))


def _sum(parts: list[np.ndarray]) -> np.ndarray:
    total = parts[0]
    for p in parts[1:]:
        total += p
    return total


def _blas_threads(n: int) -> Any:
    """Context manager limiting numpy's BLAS pool to ``n`` threads."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=n, user_api="blas")
