"""Linear and RBF CKA (biased and debiased) against independent numpy implementations,
Kornblith et al.'s published demo values, and the invariances CKA should and should not have."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from repsim import _blas, _hsic, _hsic_terms, _packed_gram
from repsim._cka import linear_cka, rbf_cka

from _reference import (hsic_biased_features, hsic_biased_gram, hsic_unbiased_features,
                        np_hsic_song, packed_gram)

F64 = torch.float64


# ----------------------------------------------------------------------------- references
def np_centre(g: np.ndarray) -> np.ndarray:
    n = g.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return h @ g @ h


def np_cka_biased(k: np.ndarray, l: np.ndarray) -> float:
    """CKA from explicit n x n Grams: <HKH, HLH> / (||HKH|| ||HLH||)."""
    kc, lc = np_centre(k), np_centre(l)
    return float(np.sum(kc * lc) / (np.linalg.norm(kc) * np.linalg.norm(lc)))


def np_cka_debiased(k: np.ndarray, l: np.ndarray) -> float:
    return np_hsic_song(k, l) / np.sqrt(np_hsic_song(k, k) * np_hsic_song(l, l))


def np_rbf_gram(x: np.ndarray, threshold: float) -> np.ndarray:
    """Kornblith et al.'s recipe: median over all n^2 squared distances, diagonal included."""
    dots = x @ x.T
    sq = np.diag(dots)
    sq_dist = -2 * dots + sq[:, None] + sq[None, :]
    return np.exp(-sq_dist / (2 * threshold**2 * np.median(sq_dist)))


def data(n: int = 60, dx: int = 7, dy: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dx)) + 0.5
    y = np.tanh(x @ rng.standard_normal((dx, dy))) + 0.3 * rng.standard_normal((n, dy))
    return x, y


def orthogonal(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


MEASURES = {
    "linear": lambda x, y: linear_cka(x, y),
    "linear_debiased": lambda x, y: linear_cka(x, y, debiased=True),
    "rbf": lambda x, y: rbf_cka(x, y, threshold=0.8),
    "rbf_debiased": lambda x, y: rbf_cka(x, y, threshold=0.8, debiased=True),
}


# ----------------------------------------------------------------------------- properties
@pytest.mark.parametrize("name", MEASURES)
def test_identity_and_similarity_transform_give_one(name):
    x, _ = data()
    f = MEASURES[name]
    assert float(f(x, x)) == pytest.approx(1.0, abs=1e-12)
    if name.startswith("linear"):  # y = c x Q + v is "the same representation" for linear CKA
        y = 2.5 * x @ orthogonal(7, 1) + 3.0
        assert float(f(x, y)) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", MEASURES)
def test_symmetric(name):
    x, y = data()
    f = MEASURES[name]
    torch.testing.assert_close(f(x, y), f(y, x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", MEASURES)
def test_invariant_to_orthogonal_scaling_translation(name):
    x, y = data()
    f = MEASURES[name]
    base = float(f(x, y))
    assert 0.05 < base < 0.99  # a non-trivial value, so the invariances below mean something
    for xt in (x @ orthogonal(7, 2), 7.0 * x, x + np.arange(7.0) * 4):
        assert float(f(xt, y)) == pytest.approx(base, abs=1e-10)


@pytest.mark.parametrize("name", MEASURES)
def test_not_invariant_to_ill_conditioned_linear_map(name):
    x, y = data()
    a = orthogonal(7, 4) @ np.diag(np.logspace(0, -3, 7)) @ orthogonal(7, 5)  # cond 1e3
    assert np.linalg.cond(a) == pytest.approx(1e3, rel=1e-6)
    f = MEASURES[name]
    assert abs(float(f(x @ a, y)) - float(f(x, y))) > 0.02


# ----------------------------------------------------------------------------- references
@pytest.mark.parametrize("shape", [(60, 7, 5), (30, 50, 40), (12, 300, 3), (200, 280, 20)])
def test_linear_biased_matches_explicit_centred_grams(shape):
    n, dx, dy = shape
    rng = np.random.default_rng(n + dx)
    x = rng.standard_normal((n, dx)) + 1.0
    y = x[:, :1] * rng.standard_normal((1, dy)) + rng.standard_normal((n, dy))
    expected = np_cka_biased(x @ x.T, y @ y.T)
    got = linear_cka(x, y)
    assert got.dtype == F64 and got.shape == ()
    assert float(got) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("shape", [(4, 3, 2), (9, 4, 6), (60, 7, 5), (40, 300, 30)])
def test_linear_debiased_matches_song_formula(shape):
    n, dx, dy = shape
    rng = np.random.default_rng(n * dx)
    x = rng.standard_normal((n, dx))
    y = x[:, :1] * rng.standard_normal((1, dy)) + rng.standard_normal((n, dy))
    expected = np_cka_debiased(x @ x.T, y @ y.T)
    assert float(linear_cka(x, y, debiased=True)) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_hsic_gram_forms_equal_feature_forms():
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.standard_normal((25, 9)) + 2.0)  # uncentred on purpose
    y = torch.from_numpy(rng.standard_normal((25, 4)) - 1.0)
    k, l = x @ x.T, y @ y.T
    torch.testing.assert_close(hsic_unbiased_features(x, y), _hsic.hsic_unbiased_gram(k, l),
                               rtol=1e-10, atol=0)
    torch.testing.assert_close(hsic_biased_features(x, y), hsic_biased_gram(k, l),
                               rtol=1e-10, atol=0)
    assert float(_hsic.hsic_unbiased_gram(k, l)) == pytest.approx(
        np_hsic_song(k.numpy(), l.numpy()), rel=1e-10)
    for got, want in zip(_hsic.kernel_stats_gram(k), _hsic.kernel_stats_features(x)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    n = 25
    assert float(hsic_biased_gram(k, l)) == pytest.approx(
        np.sum(np_centre(k.numpy()) * np_centre(l.numpy())) / (n - 1) ** 2, rel=1e-12)


@pytest.mark.parametrize("syrk", [True, False])  # BLAS syrk (CPU) or the panelled product
@pytest.mark.parametrize("shape", [(50, 40), (700, 300), (30, 600)])
def test_gram_sq_norm_uses_symmetry_correctly(shape, syrk, monkeypatch):
    monkeypatch.setattr(_blas, "uses_syrk", lambda a: syrk)
    x = torch.from_numpy(np.random.default_rng(6).standard_normal(shape))
    want = (x.T @ x).square().sum()
    torch.testing.assert_close(_hsic.gram_sq_norm(x), want, rtol=1e-12, atol=0)
    mean = x.mean(0)
    if shape[1] <= shape[0]:
        torch.testing.assert_close(_hsic.gram_sq_norm(x, mean=mean),
                                   _hsic.gram_sq_norm(x - mean), rtol=1e-10, atol=0)


@pytest.mark.parametrize("shape", [(40, 7), (600, 300)])
def test_implicit_centring_equals_explicit(shape):
    rng = np.random.default_rng(8)
    x = torch.from_numpy(np.abs(rng.standard_normal(shape)) + 0.3)  # ReLU-like: mean share ~ 0.7
    y = torch.from_numpy(rng.standard_normal((shape[0], 5)) - 0.5)
    mx, my = _hsic.foldable_mean(x), _hsic.foldable_mean(y)
    assert mx is not None and my is not None
    xc, yc = _hsic.center_features(x), _hsic.center_features(y)
    torch.testing.assert_close(_hsic.gram_sq_norm(x, mean=mx), _hsic.gram_sq_norm(xc),
                               rtol=1e-12, atol=0)
    torch.testing.assert_close(_hsic.cross_sq_norm(x, y, mean_x=mx, mean_y=my),
                               _hsic.cross_sq_norm(xc, yc), rtol=1e-12, atol=0)
    for got, want in zip(_hsic.kernel_stats_features(x, mean=mx), _hsic.kernel_stats_features(xc)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10 * float(want.abs().max()))
    # a dominant mean (or d > n, or no variance) is centred explicitly instead
    assert _hsic.foldable_mean(x + 10.0) is None
    assert _hsic.foldable_mean(x[:5]) is None or x.shape[1] <= 5
    assert _hsic.foldable_mean(torch.zeros(10, 3, dtype=F64)) is None


@pytest.mark.parametrize("syrk", [True, False])  # full Grams via BLAS syrk, or block triangles
@pytest.mark.parametrize("n", [20, 300, 513])  # one panel, several panels, a ragged last panel
def test_traces_forms_and_chunking_agree(n, syrk, monkeypatch):
    monkeypatch.setattr(_blas, "uses_syrk", lambda a: syrk)
    rng = np.random.default_rng(n)
    xs = [torch.from_numpy(rng.standard_normal((n, d))) for d in (3, 30, 8)]
    ys = [torch.from_numpy(rng.standard_normal((n, d))) for d in (25, 2)]
    cross = torch.tensor([[float((x.T @ y).square().sum()) for y in ys] for x in xs], dtype=F64)
    self_a = torch.tensor([float((x.T @ x).square().sum()) for x in xs], dtype=F64)
    self_b = torch.tensor([float((y.T @ y).square().sum()) for y in ys], dtype=F64)
    packed = packed_gram(xs[1])
    assert packed.numel() == _packed_gram.packed_size(n) <= 0.5 * n * n + 128 * n  # about half of K
    for form in ("gram", "features"):
        for got, want in zip(_hsic_terms.traces(xs, ys, form=form), (cross, self_a, self_b)):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
    monkeypatch.setattr(_hsic, "MAX_ELEMENTS", 40)  # force the column-chunked path
    torch.testing.assert_close(_hsic_terms.traces(xs, ys, form="features")[0], cross,
                               rtol=1e-12, atol=0)
    torch.testing.assert_close(_hsic.cross_sq_norm(xs[1], ys[0]), cross[1, 0], rtol=1e-12, atol=0)


@pytest.mark.parametrize("syrk", [True, False])
@pytest.mark.parametrize("dtype, tol", [(F64, 1e-12), (torch.float32, 1e-5)])
def test_packed_grams_match_explicit_centred_grams(syrk, dtype, tol, monkeypatch):
    monkeypatch.setattr(_blas, "uses_syrk", lambda a: syrk)
    rng = np.random.default_rng(9)
    n = 150  # three panels of 64 rows, the last one ragged
    xs = [torch.from_numpy(rng.standard_normal((n, d)) + 3.0).to(dtype) for d in (7, 40, 7, 200)]
    packed, diag, k1 = _packed_gram.packed_grams(xs)
    assert packed.shape[1] == (n * n if syrk else _packed_gram.packed_size(n))
    grams = [(x - x.mean(0)).double() @ (x - x.mean(0)).double().T for x in xs]
    want = torch.tensor([[float((k * l).sum()) for l in grams] for k in grams], dtype=F64)
    torch.testing.assert_close(2.0 * (packed.double() @ packed.double().T), want, rtol=tol, atol=0)
    for i, k in enumerate(grams):
        torch.testing.assert_close(diag[i].double(), torch.diagonal(k), rtol=tol, atol=tol)
        k1_want = k.sum(1) - torch.diagonal(k)
        torch.testing.assert_close(k1[i].double(), k1_want, rtol=0,
                                   atol=tol * float(torch.diagonal(k).abs().max()))


@pytest.mark.parametrize("n", [40, 41])  # even n^2 (median of two middle values) and odd
@pytest.mark.parametrize("threshold", [0.5, 1.0, 2.0])
def test_rbf_matches_kornblith_recipe(n, threshold):
    x, y = data(n=n, seed=n)
    kx, ky = np_rbf_gram(x, threshold), np_rbf_gram(y, threshold)
    assert float(rbf_cka(x, y, threshold=threshold)) == pytest.approx(
        np_cka_biased(kx, ky), abs=1e-12)
    assert float(rbf_cka(x, y, threshold=threshold, debiased=True)) == pytest.approx(
        np_cka_debiased(kx, ky), rel=1e-9)


def test_kornblith_demo_values():
    # google-research/representation_similarity/Demo.ipynb: np.random.seed(1337),
    # X = randn(100, 10), Y = randn(100, 10) + X; printed to 5 decimals.
    rs = np.random.RandomState(1337)
    x = rs.randn(100, 10)
    y = rs.randn(100, 10) + x
    assert float(linear_cka(x, y)) == pytest.approx(0.55761, abs=5e-6)
    assert float(rbf_cka(x, y, threshold=0.5)) == pytest.approx(0.65483, abs=5e-6)
    assert float(linear_cka(x, y, debiased=True)) == pytest.approx(0.51346, abs=5e-6)


@pytest.mark.parametrize("debiased", [False, True])
def test_rbf_with_large_bandwidth_approaches_linear(debiased):
    x, y = data()
    lin = float(linear_cka(x, y, debiased=debiased))
    gaps = [abs(float(rbf_cka(x, y, threshold=t, debiased=debiased)) - lin)
            for t in (3.0, 30.0, 300.0)]
    assert gaps[0] > 1e-3 and gaps[1] < gaps[0] / 50 and gaps[2] < 1e-5


# ----------------------------------------------------------------------------- dtypes, inputs
@pytest.mark.parametrize("name", MEASURES)
def test_float32_agrees_with_float64(name):
    x, y = data(n=200)
    f64 = MEASURES[name](x, y)
    xf, yf = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    if name.startswith("linear"):
        f32 = linear_cka(xf, yf, debiased=name.endswith("debiased"), dtype=torch.float32)
    else:
        f32 = rbf_cka(xf, yf, threshold=0.8, debiased=name.endswith("debiased"),
                      dtype=torch.float32)
    assert f32.dtype == F64  # result is always float64
    # float32 data computed in float32: agreement to ~1e-5 (tolerance stated, not tuned to pass)
    assert float(f32) == pytest.approx(float(f64), abs=1e-5)


def test_numpy_and_torch_inputs_agree_and_result_is_float64_scalar():
    x, y = data()
    a = linear_cka(x, y)
    b = linear_cka(torch.from_numpy(x), torch.from_numpy(y))
    assert a.shape == () and a.dtype == F64 and a.device.type == "cpu"
    assert float(a) == float(b)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("f", [linear_cka, rbf_cka])
def test_errors(f):
    x, y = data()
    with pytest.raises(ValueError, match="same number of samples"):
        f(x, y[:-1])
    with pytest.raises(ValueError, match="expected a 2-D"):
        f(x[None], x[None])
    with pytest.raises(ValueError, match="flatten_conv"):
        f(np.zeros((4, 3, 2, 2)), np.zeros((4, 3, 2, 2)))
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        f(bad, y)
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match="finite"):
        f(x, bad)
    with pytest.raises(ValueError, match="at least 4 samples"):
        f(x[:3], y[:3], debiased=True)
    # identical rows whose mean is not exactly representable: still detected exactly
    const = np.full((30, 4), 0.1)
    with pytest.raises(ValueError, match="zero variance"):
        f(const, y[:30])
    with pytest.raises(ValueError, match="zero variance"):
        f(x[:30], const, debiased=True)


def test_debiased_undefined_self_hsic_raises():
    x = np.array([[0.0], [0.0], [0.0], [4.0]])  # unbiased self-HSIC is exactly 0 here
    y = np.random.default_rng(0).standard_normal((4, 3))
    with pytest.raises(ValueError, match="CKA is undefined.*unbiased HSIC of x"):
        linear_cka(x, y, debiased=True)
    assert float(linear_cka(x, y)) == pytest.approx(np_cka_biased(x @ x.T, y @ y.T), abs=1e-12)


def test_rbf_bad_threshold():
    x, y = data()
    for t in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="threshold: expected a positive"):
            rbf_cka(x, y, threshold=t)


@pytest.mark.parametrize("debiased", [False, True])
def test_wide_layers_use_grams_and_agree_with_feature_form(debiased, monkeypatch):
    rng = np.random.default_rng(12)
    x = torch.from_numpy(rng.standard_normal((40, 900)) + 1.0)  # d >> n: flattened conv maps
    y = torch.cat([x[:, :300] * 2.0, torch.from_numpy(rng.standard_normal((40, 200)))], 1) - 3.0
    assert _hsic_terms.choose_form(40, [900], [500], full=True) == "gram"
    got = linear_cka(x, y, debiased=debiased)
    k, l = (np_centre((t @ t.T).numpy()) for t in (x, y))
    want = (np_hsic_song(k, l) / np.sqrt(np_hsic_song(k, k) * np_hsic_song(l, l)) if debiased
            else np.sum(k * l) / np.sqrt(np.sum(k * k) * np.sum(l * l)))
    assert float(got) == pytest.approx(want, rel=1e-10)
    monkeypatch.setattr(_hsic_terms, "choose_form", lambda *a, **k: "features")
    assert float(linear_cka(x, y, debiased=debiased)) == pytest.approx(float(got), rel=1e-10)
