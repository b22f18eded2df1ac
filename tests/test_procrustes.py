"""Tests for repsim._procrustes.procrustes_distance."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from torch.testing import assert_close

from repsim._procrustes import procrustes_distance

DT = torch.float64


def _randn(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, dtype=DT, generator=torch.Generator().manual_seed(seed))


def _ref_distance(x: np.ndarray, y: np.ndarray) -> float:
    """min_R ||X R - Y||_F over orthogonal R via scipy, after centring, unit Frobenius norm and
    zero-padding the narrower input to the common width."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
    d = max(x.shape[1], y.shape[1])
    x = np.pad(x, ((0, 0), (0, d - x.shape[1])))
    y = np.pad(y, ((0, 0), (0, d - y.shape[1])))
    r, _ = orthogonal_procrustes(x, y)
    return float(np.linalg.norm(x @ r - y))


def test_zero_under_similarity_transform() -> None:
    x = _randn(200, 6, 0)
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=DT, generator=g))
    v = torch.randn(1, 6, dtype=DT, generator=g)
    # Values near 0 carry the sqrt(eps) ~ 1e-8 rounding floor of sqrt(2 - 2 * nuclear).
    for c in (3.0, -0.2):
        assert float(procrustes_distance(x, c * x @ q + v)) < 1e-6
        assert float(procrustes_distance(x, c * x @ q + v, angular=True)) < 1e-6
    # Wider y: Q (6, 9) with orthonormal rows embeds x isometrically.
    q_wide, _ = torch.linalg.qr(torch.randn(9, 6, dtype=DT, generator=g))
    assert float(procrustes_distance(x, 2 * x @ q_wide.T - 1)) < 1e-6


def test_positive_under_non_orthogonal_map() -> None:
    x = _randn(200, 6, 2)
    stretch = torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 4.0], dtype=DT))
    assert float(procrustes_distance(x, x @ stretch)) > 0.1


def test_symmetry() -> None:
    x, y = _randn(150, 5, 3), _randn(150, 8, 4)
    for angular in (False, True):
        assert_close(
            procrustes_distance(x, y, angular=angular),
            procrustes_distance(y, x, angular=angular),
            atol=1e-12,
            rtol=0,
        )


def test_matches_scipy_orthogonal_procrustes() -> None:
    base = _randn(120, 7, 5)
    for seed, dy in [(6, 7), (7, 4), (8, 10)]:
        y = base[:, :dy] if dy <= 7 else torch.cat([base, _randn(120, dy - 7, seed)], 1)
        y = y + 0.7 * _randn(120, dy, seed + 10) + 2.0
        ref = _ref_distance(base.numpy(), y.numpy())
        assert abs(float(procrustes_distance(base, y)) - ref) < 1e-10


def test_angular_relation_and_closed_form() -> None:
    # X = u, Y = cos(t) u + sin(t) w for centred unit vectors u ⟂ w: ||X^T Y||_* = cos(t).
    rng = np.random.default_rng(9)
    a = rng.standard_normal((100, 2))
    q, _ = np.linalg.qr(a - a.mean(0))
    u, w = q[:, :1], q[:, 1:]
    t = 0.3
    x, y = torch.from_numpy(u), torch.from_numpy(math.cos(t) * u + math.sin(t) * w)
    assert abs(float(procrustes_distance(x, y, angular=True)) - t) < 1e-12
    assert abs(float(procrustes_distance(x, y)) - math.sqrt(2 - 2 * math.cos(t))) < 1e-12
    # In general: euclidean^2 = 2 - 2 cos(angular).
    x, y = _randn(80, 5, 10), _randn(80, 3, 11)
    e = float(procrustes_distance(x, y))
    ang = float(procrustes_distance(x, y, angular=True))
    assert abs(e**2 - (2 - 2 * math.cos(ang))) < 1e-12


@pytest.mark.parametrize("angular", [False, True])
def test_triangle_inequality(angular: bool) -> None:
    def dist(p: np.ndarray, q: np.ndarray) -> float:
        return float(procrustes_distance(torch.from_numpy(p), torch.from_numpy(q), angular=angular))

    for seed in range(12):
        rng = np.random.default_rng(seed)
        base = rng.standard_normal((60, 8))
        delta = 0.3 * rng.standard_normal((60, 8))
        triples = [
            # Nearly collinear (p, midpoint, end): tight, and violated by squared distances.
            (base, base + 0.5 * delta, base + delta),
            # Mixed widths (the narrower ones are implicitly zero-padded).
            (base[:, :3] + delta[:, :3], base[:, :5], base + delta[::-1]),
        ]
        for p, m, q in triples:
            assert dist(p, q) <= dist(p, m) + dist(m, q) + 1e-12
            assert dist(p, m) <= dist(p, q) + dist(q, m) + 1e-12


def test_large_offset_and_output_type() -> None:
    x, y = _randn(100, 4, 12), _randn(100, 6, 13)
    ref = procrustes_distance(x, y)
    assert ref.ndim == 0 and ref.dtype == DT and ref.device == x.device
    assert_close(procrustes_distance(x + 1e6, y - 1e5), ref, atol=1e-9, rtol=0)
    assert_close(procrustes_distance(x + 2.0, y), ref, atol=1e-12, rtol=0)
    assert_close(procrustes_distance(x.numpy(), y.numpy()), ref, atol=0, rtol=0)
    out32 = procrustes_distance(x.float(), y.float(), dtype=torch.float32)
    assert out32.dtype == DT and abs(float(out32) - float(ref)) < 1e-5


def test_bad_input_raises() -> None:
    x = _randn(40, 3, 14)
    with pytest.raises(ValueError, match="same number of samples"):
        procrustes_distance(x, _randn(41, 3, 15))
    with pytest.raises(ValueError, match="2-D"):
        procrustes_distance(x.reshape(40, 3, 1), x)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        procrustes_distance(x, bad)
    with pytest.raises(ValueError, match="zero variance"):
        procrustes_distance(torch.full((40, 3), 2.0, dtype=DT), x)
    with pytest.raises(ValueError, match="at least 2 samples"):
        procrustes_distance(x[:1], x[:1])
