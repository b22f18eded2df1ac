"""The symmetric products of repsim._blas against torch's plain products."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from repsim import _blas


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("shape", [(300, 40), (2100, 520)])  # one block; split over 2 threads
def test_gram_products_equal_torch(shape, dtype, tol, two_threads):
    a = torch.from_numpy(np.random.default_rng(1).standard_normal(shape)).to(dtype)
    big = a.numel() >= _blas._MIN_THREADED_ENTRIES
    assert _blas.uses_syrk(a) == big  # small products stay with torch when threaded
    assert len(_blas._split(a.numpy(), axis=0)) == (2 if big else 1)
    torch.testing.assert_close(_blas.gram_t(a), a.T @ a, rtol=tol, atol=tol * shape[0])
    want = a @ a.T
    torch.testing.assert_close(_blas.gram(a), want, rtol=tol, atol=tol * shape[1])
    out = torch.empty(shape[0], shape[0], dtype=dtype)
    assert _blas.gram(a, out=out) is out
    torch.testing.assert_close(out, want, rtol=tol, atol=tol * shape[1])
    if big:  # syrk mirrors one triangle: exactly symmetric
        assert torch.equal(_blas.gram_t(a), _blas.gram_t(a).T)


def test_single_thread_and_fallbacks():
    a = torch.randn(50, 7, dtype=torch.float64)
    assert torch.get_num_threads() == 1 and _blas.uses_syrk(a)  # conftest: one thread
    torch.testing.assert_close(_blas.gram_t(a), a.T @ a, rtol=1e-12, atol=1e-12)
    for other in (a.to(torch.bfloat16), a.clone().requires_grad_()):
        assert not _blas.uses_syrk(other)
    g = a.clone().requires_grad_()
    _blas.gram_t(g).sum().backward()  # torch path keeps autograd
    torch.testing.assert_close(g.grad, 2 * a @ torch.ones(7, 7, dtype=torch.float64),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("threads", [1, 2])
def test_cross_product_equals_torch(dtype, threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rng = np.random.default_rng(3)
        a = torch.from_numpy(rng.standard_normal((2100, 500))).to(dtype)  # split when threaded
        b = torch.from_numpy(rng.standard_normal((2100, 30))).to(dtype)
        tol = 1e-12 if dtype == torch.float64 else 1e-4
        for x, y in ((a, b), (b, a), (a, a)):
            torch.testing.assert_close(_blas.cross_t(x, y), x.T @ y, rtol=tol, atol=tol * 50)
    finally:
        torch.set_num_threads(before)
