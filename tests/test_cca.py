"""Tests for repsim._cca: CCA, mean CCA, SVCCA and PWCCA.

Values are checked against independent float64 numpy implementations written here (QR-based
CCA, projection weighting), against scikit-learn's CCA, and against constructions whose
canonical correlations are known exactly.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from repsim._cca import CCAResult, cca, mean_cca
from repsim._cca_core import canonical, keep_count
from repsim._cca_weighted import pwcca, svcca

DT = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, dtype=DT, generator=_gen(seed))


def _pair(n: int = 400, dx: int = 7, dy: int = 11, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """x and y that share a few directions (canonical correlations spread over (0, 1))."""
    g = _gen(seed)
    z = torch.randn(n, 4, dtype=DT, generator=g)
    x = z @ torch.randn(4, dx, dtype=DT, generator=g) + torch.randn(n, dx, dtype=DT, generator=g)
    y = z @ torch.randn(4, dy, dtype=DT, generator=g)
    y = y + 2 * torch.randn(n, dy, dtype=DT, generator=g)
    return x, y


def _centred_orthonormal(n: int, k: int, seed: int) -> np.ndarray:
    """(n, k) columns that are centred and orthonormal."""
    a = np.random.default_rng(seed).standard_normal((n, k))
    q, _ = np.linalg.qr(a - a.mean(0))
    return q


# ---------------------------------------------------------------- independent references


def _np_centre(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a - a.mean(0)


def _ref_cca(x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Björck-Golub CCA: singular values of Qx^T Qy for thin QRs of the centred data."""
    xc, yc = _np_centre(x), _np_centre(y)
    qx, _ = np.linalg.qr(xc)
    qy, _ = np.linalg.qr(yc)
    u, s, vt = np.linalg.svd(qx.T @ qy, full_matrices=False)
    return s, qx @ u, qy @ vt.T, xc, yc  # rho, unit-norm variates of x and y, centred data


def _ref_pwcca(x, y, *, weights_from: str | None = None) -> float:
    """Morcos et al. (2018) projection weighting, weights from the narrower side by default."""
    rho, hx, hy, xc, yc = _ref_cca(x, y)
    side = weights_from or ("x" if xc.shape[1] <= yc.shape[1] else "y")
    h, z = (hx, xc) if side == "x" else (hy, yc)
    alpha = np.abs(h.T @ z).sum(axis=1)  # alpha_i = sum_j |<h_i, z_j>|
    alpha /= alpha.sum()
    return float(alpha @ rho)


def _known_rho_pair(n: int, rhos: list[float], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y whose SAMPLE canonical correlations are exactly ``rhos``.

    With centred orthonormal columns z_1..z_k, e_1..e_k: x = Z A, y = [rho_i z_i +
    sqrt(1 - rho_i^2) e_i]_i B for invertible A, B. Then corr(z_i, y-variate_i) = rho_i and
    all other cross-correlations are 0.
    """
    k = len(rhos)
    q = _centred_orthonormal(n, 2 * k, seed)
    z, e = q[:, :k], q[:, k:]
    r = np.asarray(rhos)
    v = z * r + e * np.sqrt(1 - r**2)
    rng = np.random.default_rng(seed + 1)
    a = rng.standard_normal((k, k)) + 3 * np.eye(k)
    b = rng.standard_normal((k, k)) + 3 * np.eye(k)
    return torch.from_numpy(z @ a), torch.from_numpy(v @ b)


# ---------------------------------------------------------------- values


def test_identity_gives_one() -> None:
    x = _randn(300, 9, 1)
    res = cca(x, x)
    assert_close(res.rho, torch.ones(9, dtype=DT), atol=1e-10, rtol=0)
    for fn in (mean_cca, svcca, pwcca):
        assert_close(fn(x, x), torch.tensor(1.0, dtype=DT), atol=1e-10, rtol=0)


def test_known_canonical_correlations_exact() -> None:
    rhos = [0.95, 0.7, 0.4, 0.1]
    x, y = _known_rho_pair(500, rhos, seed=3)
    res = cca(x, y)
    assert_close(res.rho, torch.tensor(rhos, dtype=DT), atol=1e-12, rtol=0)
    assert_close(mean_cca(x, y), torch.tensor(np.mean(rhos), dtype=DT), atol=1e-12, rtol=0)


def test_matches_numpy_qr_reference() -> None:
    for dx, dy, seed in [(7, 11, 0), (12, 5, 1), (6, 6, 2)]:
        x, y = _pair(dx=dx, dy=dy, seed=seed)
        ref = _ref_cca(x.numpy(), y.numpy())[0]
        res = cca(x, y)
        assert res.rho.shape == (min(dx, dy),)
        np.testing.assert_allclose(res.rho.numpy(), ref, atol=1e-12, rtol=0)
        assert bool((res.rho[:-1] >= res.rho[1:]).all())  # descending


def test_first_correlation_matches_sklearn() -> None:
    from sklearn.cross_decomposition import CCA

    x, y = _known_rho_pair(400, [0.9, 0.5, 0.2], seed=5)
    x = x + 0.05 * _randn(400, 3, 6)  # generic data, canonical correlations well separated
    model = CCA(n_components=1, max_iter=10_000, tol=1e-14).fit(x.numpy(), y.numpy())
    u, v = model.transform(x.numpy(), y.numpy())
    sk_rho = abs(np.corrcoef(u[:, 0], v[:, 0])[0, 1])
    assert abs(float(cca(x, y).rho[0]) - sk_rho) < 1e-8


def test_weights_give_unit_variance_uncorrelated_variates() -> None:
    x, y = _pair(dx=8, dy=5, seed=7)
    res = cca(x, y)
    assert isinstance(res, CCAResult)
    n, k = x.shape[0], res.rho.shape[0]
    vx = (x - x.mean(0)) @ res.x_weights
    vy = (y - y.mean(0)) @ res.y_weights
    eye = torch.eye(k, dtype=DT)
    assert_close(vx.T @ vx / (n - 1), eye, atol=1e-10, rtol=0)
    assert_close(vy.T @ vy / (n - 1), eye, atol=1e-10, rtol=0)
    assert_close(vx.T @ vy / (n - 1), torch.diag(res.rho), atol=1e-10, rtol=0)
    # The variates are the reference's (unit-norm) variates up to sign and scale sqrt(n - 1).
    _, hx, hy, _, _ = _ref_cca(x.numpy(), y.numpy())
    np.testing.assert_allclose(
        np.abs(vx.numpy().T @ hx[:, :k]) / np.sqrt(n - 1), np.eye(k), atol=1e-8
    )


def test_invariant_to_invertible_maps_and_translation() -> None:
    x, y = _pair(dx=6, dy=9, seed=8)
    g = _gen(9)
    a = torch.randn(6, 6, dtype=DT, generator=g) + 2 * torch.eye(6, dtype=DT)
    b = torch.randn(9, 9, dtype=DT, generator=g) + 2 * torch.eye(9, dtype=DT)
    x2, y2 = x @ a + 5.0, -3 * y @ b - 7.0
    assert_close(cca(x2, y2).rho, cca(x, y).rho, atol=1e-10, rtol=0)
    assert_close(mean_cca(x2, y2), mean_cca(x, y), atol=1e-10, rtol=0)


def test_svcca_invariances_it_has_and_does_not_have() -> None:
    x, y = _pair(dx=10, dy=10, seed=10)
    q, _ = torch.linalg.qr(_randn(10, 10, 11))
    base = svcca(x, y, keep=0.9)
    # Orthogonal maps, isotropic scaling and translation keep the singular spectrum.
    assert_close(svcca(2.5 * x @ q + 1.0, y, keep=0.9), base, atol=1e-10, rtol=0)
    # A strongly anisotropic map changes which directions are kept.
    stretch = torch.diag(torch.logspace(0, 2, 10, dtype=DT))
    assert abs(float(svcca(x @ stretch, y, keep=0.9)) - float(base)) > 1e-2


def test_symmetry() -> None:
    x, y = _pair(dx=5, dy=8, seed=12)
    assert_close(cca(x, y).rho, cca(y, x).rho, atol=1e-12, rtol=0)
    assert_close(mean_cca(x, y), mean_cca(y, x), atol=1e-12, rtol=0)
    assert_close(svcca(x, y, keep=0.95), svcca(y, x, keep=0.95), atol=1e-12, rtol=0)


def test_large_offsets_are_centred_exactly() -> None:
    x, y = _pair(dx=6, dy=4, seed=13)
    ref = _ref_cca(x.numpy(), y.numpy())[0]
    for shift in (3.0, 1e6):  # folded centring, then explicit centring
        np.testing.assert_allclose(cca(x + shift, y - shift).rho.numpy(), ref, atol=1e-9)
        np.testing.assert_allclose(cca(x + shift, y).rho.numpy(), ref, atol=1e-9)


def test_float32_agrees_with_float64() -> None:
    x, y = _pair(n=2000, dx=20, dy=15, seed=14)
    r64 = cca(x, y).rho
    r32 = cca(x.float(), y.float(), dtype=torch.float32).rho
    assert r32.dtype == torch.float32
    # float32 rounding (~1e-7) amplified by the covariance condition numbers: stated 1e-4.
    assert_close(r32.double(), r64, atol=1e-4, rtol=0)
    assert abs(float(mean_cca(x, y, dtype=torch.float32)) - float(mean_cca(x, y))) < 1e-4


def test_non_contiguous_and_integer_input() -> None:
    x, y = _pair(dx=6, dy=5, seed=45)
    wide = torch.stack([x, torch.zeros_like(x)], 2).reshape(x.shape[0], 12)  # x in even columns
    assert not wide[:, ::2].is_contiguous()
    assert_close(cca(wide[:, ::2], y).rho, cca(x, y).rho, atol=1e-12, rtol=0)
    assert_close(cca(y.T.contiguous().T, x).rho, cca(y, x).rho, atol=1e-12, rtol=0)
    xi = torch.randint(-5, 6, (300, 4), generator=_gen(46))
    assert_close(mean_cca(xi, xi[:, :2]), torch.tensor(1.0, dtype=DT), atol=1e-10, rtol=0)


def test_output_type_device_and_numpy_input() -> None:
    x, y = _pair(dx=4, dy=3, seed=15)
    for fn in (mean_cca, svcca, pwcca):
        out = fn(x, y)
        assert out.ndim == 0 and out.dtype == DT and out.device == x.device
        assert_close(fn(x.numpy(), y.numpy()), out, atol=0, rtol=0)
        assert fn(x.float(), y.float(), dtype=torch.float32).dtype == DT


def test_public_names_are_the_functions() -> None:
    import repsim

    assert repsim.cca is cca and repsim.mean_cca is mean_cca
    assert callable(repsim.cca) and isinstance(repsim.cca(*_pair(dx=3, dy=2, seed=1)), CCAResult)


# ---------------------------------------------------------------- ill-posed input


def test_cholesky_and_fallback_paths_agree_on_well_posed_data() -> None:
    x, y = _pair(dx=9, dy=6, seed=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # well-posed: no warning on either path
        chol = canonical(x, y, epsilon=0.0, dtype=DT, weights=True, what="t")
        eig = canonical(x, y, epsilon=0.0, dtype=DT, weights=True, what="t", force_eigen=True)
    assert_close(chol.rho, eig.rho, atol=1e-12, rtol=0)
    # Same directions up to sign.
    assert_close(chol.x_weights.abs(), eig.x_weights.abs(), atol=1e-9, rtol=1e-9)
    assert_close(chol.y_weights.abs(), eig.y_weights.abs(), atol=1e-9, rtol=1e-9)


def test_well_posed_input_does_not_warn() -> None:
    x, y = _pair(dx=10, dy=12, seed=17)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fn in (cca, mean_cca, pwcca, svcca):
            fn(x, y)


def test_rank_deficient_input_warns_and_drops_null_directions() -> None:
    g = _gen(18)
    z = torch.randn(300, 3, dtype=DT, generator=g)
    x = z @ torch.randn(3, 8, dtype=DT, generator=g)  # rank 3 of 8
    y = z @ torch.randn(3, 6, dtype=DT, generator=g) + torch.randn(300, 6, dtype=DT, generator=g)
    with pytest.warns(UserWarning, match=r"x is ill-posed.*rank 3 of 8"):
        res = cca(x, y)
    assert res.rho.shape == (3,) and res.x_weights.shape == (8, 3)
    # x spans exactly the space of z, so CCA must equal that of the full-rank z.
    assert_close(res.rho, cca(z, y).rho, atol=1e-8, rtol=0)
    # The kept variates are still unit-variance.
    vx = (x - x.mean(0)) @ res.x_weights
    assert_close(vx.T @ vx / 299, torch.eye(3, dtype=DT), atol=1e-8, rtol=0)


def test_n_le_d_warns_about_meaningless_ones() -> None:
    x, y = _randn(20, 30, 19), _randn(20, 4, 20)
    with pytest.warns(UserWarning) as record:
        res = cca(x, y)
    messages = " | ".join(str(w.message) for w in record)
    assert "n = 20 samples <= 30 features" in messages
    assert "rank 19 of 30" in messages
    assert "1 by construction" in messages
    # Independent noise: the 1.0s are an artefact the warning names, not a similarity.
    assert_close(res.rho, torch.ones(4, dtype=DT), atol=1e-8, rtol=0)


def test_too_many_dimensions_for_n_warns_even_when_full_rank() -> None:
    x, y = _randn(30, 20, 21), _randn(30, 15, 22)  # n > d on each side, but 20 + 15 > 29
    with pytest.warns(UserWarning, match=r"at least 6 canonical correlation\(s\) are 1"):
        rho = cca(x, y).rho
    assert_close(rho[:6], torch.ones(6, dtype=DT), atol=1e-8, rtol=0)


def test_epsilon_regularises_ill_posed_input() -> None:
    x, y = _randn(20, 30, 23), _randn(20, 4, 24)
    with pytest.warns(UserWarning, match="regularising its covariance with epsilon = 0.1"):
        res = cca(x, y, epsilon=0.1)
    assert res.rho.shape == (4,)
    assert float(res.rho.max()) < 0.999
    # On well-posed data a tiny epsilon barely moves the result.
    a, b = _pair(seed=25)
    assert_close(mean_cca(a, b, epsilon=1e-9), mean_cca(a, b), atol=1e-7, rtol=0)


# ---------------------------------------------------------------- SVCCA


def test_svcca_keep_one_equals_mean_cca() -> None:
    x, y = _pair(dx=9, dy=13, seed=26)
    assert_close(svcca(x, y, keep=1.0), mean_cca(x, y), atol=1e-10, rtol=0)


def test_svcca_keeps_the_fewest_directions_on_a_known_spectrum() -> None:
    n = 600
    # Centred orthonormal columns scaled by s: the singular values are s, the directions the
    # coordinate axes, and the squared-singular-value shares are s^2 / 100.
    sx2 = np.array([50.0, 30.0, 10.0, 5.0, 3.0, 1.0, 0.5, 0.5])
    sy2 = np.array([70.0, 20.0, 6.0, 4.0])
    q = _centred_orthonormal(n, 8, 27)
    x = torch.from_numpy(q * np.sqrt(sx2))
    rng = np.random.default_rng(28)
    qy = _centred_orthonormal(n, 4, 29) + 0.8 * q[:, :4] @ rng.standard_normal((4, 4))
    qy, _ = np.linalg.qr(qy - qy.mean(0))
    y = torch.from_numpy(qy * np.sqrt(sy2))
    for keep, kx, ky in [(0.89, 3, 2), (0.91, 4, 3), (0.45, 1, 1), (0.97, 5, 4), (1.0, 8, 4)]:
        assert keep_count(torch.from_numpy(sx2), keep) == kx
        assert keep_count(torch.from_numpy(sy2), keep) == ky
        expected = mean_cca(x[:, :kx], y[:, :ky])
        assert_close(svcca(x, y, keep=keep), expected, atol=1e-10, rtol=0)


def test_svcca_with_n_le_d_warns() -> None:
    x, y = _randn(25, 40, 30), _randn(25, 40, 31)
    with pytest.warns(UserWarning, match="1 by construction"):
        svcca(x, y, keep=0.99)


# ---------------------------------------------------------------- PWCCA


@pytest.mark.parametrize("dx, dy", [(5, 12), (12, 5), (8, 8)])
def test_pwcca_matches_numpy_reference(dx: int, dy: int) -> None:
    x, y = _pair(dx=dx, dy=dy, seed=32 + dx)
    expected = _ref_pwcca(x.numpy(), y.numpy())
    assert abs(float(pwcca(x, y)) - expected) < 1e-10
    if dx != dy:
        # Weights from the wider side (google/svcca's bug when widths differ) give another
        # value, so the check above can tell the two apart.
        wrong = _ref_pwcca(x.numpy(), y.numpy(), weights_from="y" if dx < dy else "x")
        assert abs(wrong - expected) > 1e-3


def test_pwcca_weight_side_rule_and_asymmetry() -> None:
    x, y = _pair(dx=8, dy=8, seed=40)
    # Equal widths: weights from the first argument, so the order matters.
    assert abs(float(pwcca(x, y)) - float(pwcca(y, x))) > 1e-3
    assert abs(float(pwcca(y, x)) - _ref_pwcca(x.numpy(), y.numpy(), weights_from="y")) < 1e-10
    # Different widths: weights from the narrower side, whichever argument it is.
    a, b = _pair(dx=5, dy=9, seed=41)
    assert_close(pwcca(a, b), pwcca(b, a), atol=1e-12, rtol=0)
    # A weighted mean of the correlations lies between the smallest and the largest.
    rho = cca(a, b).rho
    assert float(rho.min()) <= float(pwcca(a, b)) <= float(rho.max())


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("fn", [cca, mean_cca, svcca, pwcca])
def test_bad_input_raises(fn) -> None:
    x = _randn(50, 4, 42)
    with pytest.raises(ValueError, match="same number of samples"):
        fn(x, _randn(49, 4, 43))
    with pytest.raises(ValueError, match="2-D"):
        fn(x.reshape(50, 2, 2), x)
    with pytest.raises(ValueError, match="2-D"):
        fn(x[:, 0], x)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        fn(x, bad)
    bad[3, 1] = float("inf")
    with pytest.raises(ValueError, match="finite"):
        fn(bad, x)
    with pytest.raises(ValueError, match="zero variance"):
        fn(torch.ones(50, 4, dtype=DT), x)
    with pytest.raises(ValueError, match="at least 2 samples"):
        fn(x[:1], x[:1])
    with pytest.raises(ValueError, match="epsilon"):
        fn(x, x, epsilon=-1.0)


@pytest.mark.parametrize("keep", [0.0, -0.5, 1.5, float("nan"), "0.9", None])
def test_svcca_bad_keep_raises(keep) -> None:
    x = _randn(50, 4, 44)
    with pytest.raises(ValueError, match=r"keep: expected a number with 0 < keep <= 1"):
        svcca(x, x, keep=keep)
