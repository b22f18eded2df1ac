"""Tests for repsim._shape (generalized shape metrics, pairwise distances, MDS embedding)."""
from __future__ import annotations

import itertools
import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg as sl
import torch
from torch.testing import assert_close

from repsim._cca import cca
from repsim._cca_weighted import pwcca
from repsim._cka import linear_cka
from repsim._procrustes import procrustes_distance
from repsim._embed import embed_distances
from repsim._shape import pairwise_distances, shape_distance

DT = torch.float64
ALPHAS = (0.0, 0.25, 0.5, 0.8, 1.0)
FLOOR = 1e-7  # netrep's eigenvalue floor


def _randn(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, dtype=DT, generator=torch.Generator().manual_seed(seed))


def _orth(d: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(_randn(d, d, seed))
    return q


def _pair(seed: int = 0, n: int = 300, dx: int = 12, dy: int = 15) -> tuple[torch.Tensor, ...]:
    x = _randn(n, dx, seed) @ _randn(dx, dx, seed + 1) + 2.0  # correlated, off-centre features
    y = torch.tanh(x @ _randn(dx, dy, seed + 2) / 3 + 0.5 * _randn(n, dy, seed + 3))
    return x, y


# ------------------------------------------------------------- independent numpy reference


def _whiten_ref(x: np.ndarray, alpha: float, width: int) -> np.ndarray:
    """X_alpha = Xc (alpha I + (1 - alpha) (Xc^T Xc)^(-1/2)), variance preserved (netrep)."""
    xc = x - x.mean(0)
    c = xc.T @ xc
    if alpha == 1.0:
        return xc
    z = alpha * np.eye(c.shape[0]) + (1 - alpha) * np.linalg.inv(sl.sqrtm(c).real)
    lam = np.linalg.eigvalsh(c)
    lam = np.concatenate([np.maximum(lam, FLOOR), np.full(width - lam.size, FLOOR)])
    return xc @ z * np.sqrt(lam.sum() / np.sum((alpha * np.sqrt(lam) + 1 - alpha) ** 2))


def _shape_ref(x: np.ndarray, y: np.ndarray, alpha: float, score: str) -> float:
    """Align the zero-padded whitened sides with the SVD of X_a^T Y_a, then score directly."""
    w = max(x.shape[1], y.shape[1])
    xa = np.pad(_whiten_ref(x, alpha, w), ((0, 0), (0, w - x.shape[1])))
    ya = np.pad(_whiten_ref(y, alpha, w), ((0, 0), (0, w - y.shape[1])))
    u, _, vt = np.linalg.svd(xa.T @ ya)
    xr, yr = xa @ u, ya @ vt.T
    if score == "angular":
        cos = np.sum(xr * yr) / (np.linalg.norm(xr) * np.linalg.norm(yr))
        return float(np.arccos(np.clip(cos, -1.0, 1.0)))
    return float(np.linalg.norm(xr - yr))


# ------------------------------------------------------------- values


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("score", ["angular", "euclidean"])
@pytest.mark.parametrize("widths", [(12, 12), (12, 15), (15, 12)])
def test_matches_numpy_reference(alpha: float, score: str, widths: tuple[int, int]) -> None:
    x, y = _pair(dx=widths[0], dy=widths[1])
    got = shape_distance(x, y, alpha=alpha, score=score)
    assert got.dtype == DT and got.shape == ()
    want = _shape_ref(x.numpy(), y.numpy(), alpha, score)
    assert float(got) == pytest.approx(want, rel=1e-9, abs=1e-10)


def test_reference_values() -> None:
    # Regression values of this seed (equal to the numpy reference above to 1e-12).
    x, y = _pair()
    got = [float(shape_distance(x, y, alpha=a)) for a in (0.0, 0.5, 1.0)]
    want = [_shape_ref(x.numpy(), y.numpy(), a, "angular") for a in (0.0, 0.5, 1.0)]
    assert got == pytest.approx(want, rel=1e-10)
    assert 0 < got[2] < got[1] < got[0] < math.pi / 2  # whitening the tanh layer shows more


def test_alpha_one_is_procrustes() -> None:
    x, y = _pair()
    xc, yc = x - x.mean(0), y - y.mean(0)
    nx, ny = torch.linalg.matrix_norm(xc), torch.linalg.matrix_norm(yc)
    # angular: the same number
    assert_close(shape_distance(x, y), procrustes_distance(x, y, angular=True), rtol=1e-12, atol=0)
    # euclidean: procrustes_distance is the Euclidean score of unit-norm centred shapes ...
    assert_close(shape_distance(xc / nx, yc / ny, score="euclidean"), procrustes_distance(x, y),
                 rtol=1e-10, atol=0)
    # ... so on the raw data  d_e^2 = |Xc|^2 + |Yc|^2 - |Xc| |Yc| (2 - d_p^2)
    p = procrustes_distance(x, y)
    want = (nx**2 + ny**2 - nx * ny * (2 - p**2)).sqrt()
    assert_close(shape_distance(x, y, score="euclidean"), want, rtol=1e-10, atol=0)


@pytest.mark.parametrize("widths", [(10, 10), (8, 14)])
def test_alpha_zero_is_angular_cca(widths: tuple[int, int]) -> None:
    x, y = _pair(dx=widths[0], dy=widths[1])
    rho = cca(x, y).rho
    want = torch.arccos(rho.sum() / math.sqrt(widths[0] * widths[1]))
    assert_close(shape_distance(x, y, alpha=0.0), want, rtol=1e-10, atol=0)


def test_zero_padding_leaves_angular_unchanged() -> None:
    x, y = _pair()
    y_pad = torch.cat([y, torch.zeros(y.shape[0], 5, dtype=DT)], 1)
    for a in ALPHAS:
        assert_close(shape_distance(x, y_pad, alpha=a), shape_distance(x, y, alpha=a),
                     rtol=1e-10, atol=1e-12)


def _netrep_eigh_ref(x: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """Angular score with netrep's eigh-and-floor whitening (works for n <= d too)."""
    def white(a: np.ndarray) -> np.ndarray:
        ac = a - a.mean(0)
        lam, v = np.linalg.eigh(ac.T @ ac)
        return ac @ (v * (alpha + (1 - alpha) / np.sqrt(np.maximum(lam, FLOOR)))) @ v.T

    w = max(x.shape[1], y.shape[1])
    xa = np.pad(white(x), ((0, 0), (0, w - x.shape[1])))
    ya = np.pad(white(y), ((0, 0), (0, w - y.shape[1])))
    nuc = np.linalg.svd(xa.T @ ya, compute_uv=False).sum()
    return float(np.arccos(min(1.0, nuc / (np.linalg.norm(xa) * np.linalg.norm(ya)))))


def test_fewer_samples_than_features() -> None:
    x, y = _randn(40, 60, 0), _randn(40, 50, 1)
    for a in (0.2, 0.5, 1.0):
        # netrep's own whitening of the ~1e-13 null eigenvalues adds ~1e-6 noise
        assert float(shape_distance(x, y, alpha=a)) == pytest.approx(
            _netrep_eigh_ref(x.numpy(), y.numpy(), a), rel=1e-5)
    # fully whitened, both span the whole (n - 1)-dim centred sample space: distance 0
    assert float(shape_distance(x, y, alpha=0.0)) < 1e-6


# ------------------------------------------------------------- metric properties


@pytest.mark.parametrize("alpha", ALPHAS)
def test_identity_and_symmetry(alpha: float) -> None:
    x, y = _pair()
    assert float(shape_distance(x, x, alpha=alpha)) < 1e-6
    # sqrt of a difference of squares: rounding noise is sqrt(eps) relative to the norm
    norm = float(torch.linalg.matrix_norm(x - x.mean(0)))
    assert float(shape_distance(x, x, alpha=alpha, score="euclidean")) < 1e-6 * norm
    for score in ("angular", "euclidean"):
        assert_close(shape_distance(x, y, alpha=alpha, score=score),
                     shape_distance(y, x, alpha=alpha, score=score), rtol=1e-12, atol=1e-14)


def _family(n: int = 200, widths: tuple[int, ...] = (8,) * 9, seed: int = 0) -> dict:
    """Networks along a path: rotating mixtures of two bases, a shared readout, a ReLU."""
    a, b = _randn(n, 8, seed), _randn(n, 8, seed + 1)
    readout = _randn(8, max(widths), seed + 2)
    out = {}
    for i, d in enumerate(widths):
        t = 1.5 * i / max(1, len(widths) - 1)
        h = math.cos(t) * a + math.sin(t) * b + 0.05 * _randn(n, 8, seed + 10 + i)
        out[f"net{i}"] = torch.relu(h @ readout[:, :d] + 0.2)
    return out


def _triangle_gap(d: torch.Tensor) -> float:
    """min of d[i, j] + d[j, l] - d[i, l] over distinct i, j, l (>= 0 for a metric)."""
    triples = itertools.permutations(range(d.shape[0]), 3)
    return min(float(d[i, j] + d[j, l] - d[i, l]) for i, j, l in triples)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_triangle_inequality(alpha: float) -> None:
    mixed = _family(widths=(6, 8, 10, 7, 12, 8, 9, 5, 11))
    same = _family()
    d_ang = pairwise_distances(mixed, alpha=alpha)
    d_euc = pairwise_distances(same, alpha=alpha, score="euclidean")
    assert _triangle_gap(d_ang) >= -1e-12
    assert _triangle_gap(d_euc) >= -1e-9 * float(d_euc.max())
    # the triples are tight enough to catch non-metrics: 1 - cos(angle) and d^2 fail on them
    assert _triangle_gap(1 - torch.cos(d_ang)) < -0.05
    assert _triangle_gap(d_euc**2) < 0


@pytest.mark.parametrize("alpha", ALPHAS)
def test_orthogonal_and_translation_invariance(alpha: float) -> None:
    x, y = _pair()
    q = _orth(y.shape[1], 7)
    moved = y @ q + _randn(1, y.shape[1], 8) * 5
    for score in ("angular", "euclidean"):
        assert_close(shape_distance(x, moved, alpha=alpha, score=score),
                     shape_distance(x, y, alpha=alpha, score=score), rtol=1e-9, atol=1e-12)


def test_scale_invariance_of_angular_at_the_ends() -> None:
    x, y = _pair()
    for a in (0.0, 1.0):
        assert_close(shape_distance(x, 7.0 * y, alpha=a), shape_distance(x, y, alpha=a),
                     rtol=1e-10, atol=0)
    # in between, the whitening mixes units (netrep's rule): the overall scale matters
    change = shape_distance(x, 7.0 * y, alpha=0.5) - shape_distance(x, y, alpha=0.5)
    assert abs(float(change)) > 1e-3


def test_alpha_zero_invariant_to_invertible_maps_only_there() -> None:
    x, y = _pair()
    m = _randn(y.shape[1], y.shape[1], 9) + 3 * torch.eye(y.shape[1], dtype=DT)
    assert float(shape_distance(y, y @ m, alpha=0.0)) < 1e-6
    assert_close(shape_distance(x, y @ m, alpha=0.0), shape_distance(x, y, alpha=0.0),
                 rtol=1e-9, atol=0)
    for a in (0.5, 1.0):
        assert float(shape_distance(y, y @ m, alpha=a)) > 0.05


def test_not_invariant_to_nonuniform_scaling_at_alpha_one() -> None:
    x = _randn(300, 6, 3)
    scaled = x * torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 4.0], dtype=DT)
    assert float(shape_distance(x, scaled)) > 0.3
    assert float(shape_distance(x, scaled, alpha=0.0)) < 1e-6  # a diagonal map is invertible


# ------------------------------------------------------------- pairwise_distances


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("score", ["angular", "euclidean"])
def test_pairwise_matches_pairs(alpha: float, score: str) -> None:
    nets = _family(n=150, widths=(6, 9, 6, 12))
    d = pairwise_distances(nets, alpha=alpha, score=score)
    names = list(nets)
    assert d.shape == (4, 4) and d.dtype == DT
    assert torch.equal(d, d.mT) and torch.equal(d.diagonal(), torch.zeros(4, dtype=DT))
    for i, j in itertools.combinations(range(4), 2):
        want = shape_distance(nets[names[i]], nets[names[j]], alpha=alpha, score=score)
        assert_close(d[i, j], want, rtol=1e-9, atol=1e-12)


def test_pairwise_wide_networks_take_the_sample_route() -> None:
    nets = {f"n{i}": _randn(30, 40 + 5 * i, i) for i in range(3)}
    d = pairwise_distances(nets, alpha=0.3, score="euclidean")
    assert_close(d[0, 2], shape_distance(nets["n0"], nets["n2"], alpha=0.3, score="euclidean"),
                 rtol=1e-9, atol=0)


@pytest.mark.parametrize("angular", [False, True])
def test_pairwise_procrustes(angular: bool) -> None:
    nets = _family(n=120, widths=(5, 7, 9))
    d = pairwise_distances(nets, measure="procrustes", angular=angular)
    names = list(nets)
    for i, j in itertools.combinations(range(3), 2):
        want = procrustes_distance(nets[names[i]], nets[names[j]], angular=angular)
        assert_close(d[i, j], want, rtol=1e-9, atol=1e-12)
        assert_close(d[j, i], want, rtol=1e-9, atol=1e-12)


def test_pairwise_linear_cka_is_its_angle() -> None:
    nets = _family(n=120, widths=(5, 7, 9))
    d = pairwise_distances(nets, measure="linear_cka")
    names = list(nets)
    for i, j in itertools.combinations(range(3), 2):
        want = torch.arccos(linear_cka(nets[names[i]], nets[names[j]]))
        assert_close(d[i, j], want, rtol=1e-9, atol=1e-12)
    assert torch.equal(d.diagonal(), torch.zeros(3, dtype=DT))
    assert _triangle_gap(pairwise_distances(_family(), measure="linear_cka")) >= -1e-12


def test_pairwise_accepts_numpy_and_float32() -> None:
    nets = _family(n=100, widths=(5, 6, 7))
    d64 = pairwise_distances({k: v.numpy() for k, v in nets.items()})
    d32 = pairwise_distances(nets, dtype=torch.float32)
    assert d32.dtype == DT
    assert_close(d32, d64, rtol=1e-3, atol=1e-3)


# ------------------------------------------------------------- embed_distances


def test_embed_recovers_planar_points() -> None:
    pts = np.random.default_rng(0).standard_normal((7, 2)) * 3
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    coords = embed_distances(torch.from_numpy(d))
    assert coords.shape == (7, 2) and coords.dtype == np.float64
    got = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.testing.assert_allclose(got, d, atol=1e-4 * d.max())


def test_repsim_import_does_not_load_sklearn_or_matplotlib() -> None:
    code = ("import sys, repsim; bad = [m for m in ('sklearn', 'matplotlib') if m in sys.modules];"
            " sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ------------------------------------------------------------- bad input


def test_bad_alpha_and_score() -> None:
    x, y = _pair()
    for bad in (-0.1, 1.5, "0.5", True, float("nan")):
        with pytest.raises(ValueError, match=r"alpha: expected a number with 0 <= alpha <= 1"):
            shape_distance(x, y, alpha=bad)
    with pytest.raises(ValueError, match=r"score: expected one of 'angular', 'euclidean', "
                                         r"got 'cos'"):
        shape_distance(x, y, score="cos")
    with pytest.raises(ValueError, match="alpha: expected"):
        pairwise_distances({"a": x, "b": x}, alpha=2.0)


def test_bad_shapes() -> None:
    x, _ = _pair()
    with pytest.raises(ValueError, match="same number of samples"):
        shape_distance(x, x[:-1])
    with pytest.raises(ValueError, match="at least 2 samples"):
        shape_distance(x[:1], x[:1])
    with pytest.raises(ValueError, match="zero variance"):
        shape_distance(x, torch.ones_like(x))
    with pytest.raises(ValueError, match="NaN/Inf"):
        shape_distance(x, x.clone().fill_(math.nan))


def test_bad_pairwise_input() -> None:
    x, y = _pair()
    with pytest.raises(ValueError, match="at least 2 networks, got 1"):
        pairwise_distances({"a": x})
    with pytest.raises(ValueError, match="expected a dict"):
        pairwise_distances([x, y])
    with pytest.raises(ValueError, match=r"same n_samples .*'b': \(299, 15\)"):
        pairwise_distances({"a": x, "b": y[:-1]})
    with pytest.raises(ValueError, match=r"measure: expected one of 'shape', 'procrustes', "
                                         r"'linear_cka', got 'cca'"):
        pairwise_distances({"a": x, "b": y}, measure="cca")
    with pytest.raises(ValueError, match=r"expected options among \['angular'\], got \['alpha'\]"):
        pairwise_distances({"a": x, "b": y}, measure="procrustes", alpha=0.5)
    with pytest.raises(ValueError, match=r"acts\['b'\]: expected a 2-D"):
        pairwise_distances({"a": x, "b": y[0]})


def test_bad_embedding_input() -> None:
    d = np.array([[0.0, 1.0], [2.0, 0.0]])
    with pytest.raises(ValueError, match="symmetric"):
        embed_distances(d)
    with pytest.raises(ValueError, match="square"):
        embed_distances(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="zero diagonal"):
        embed_distances(np.ones((2, 2)))
    with pytest.raises(ValueError, match="n_components: expected an int >= 1"):
        embed_distances(np.zeros((2, 2)), n_components=0)


# ------------------------------------------------------------- pwcca weights option


def _relu_layers(seed: int, n: int = 2000, d_in: int = 32, widths=(24, 40)) -> list[torch.Tensor]:
    """Two ReLU layers of random affine maps of one input batch."""
    g = torch.Generator().manual_seed(seed)
    inp = torch.randn(n, d_in, dtype=DT, generator=g)
    return [torch.relu(inp @ torch.randn(d_in, w, dtype=DT, generator=g) / d_in**0.5
                       + 0.5 * torch.randn(w, dtype=DT, generator=g)) for w in widths]


def _pwcca_svcca_code_ref(narrow: np.ndarray, wide: np.ndarray) -> float:
    """google/svcca compute_pwcca's rule, transcribed to (n, d) arrays, narrower side first.

    Left singular vectors u of Sxx^-1/2 Sxy Syy^-1/2 (svd_flip signs), directions
    (x - mu) u + mu, QR, then projections on the uncentred neurons.
    """
    d = narrow.shape[1]
    c = np.cov(narrow.T, wide.T)
    inv_x, inv_y = (np.linalg.inv(sl.sqrtm(m).real) for m in (c[:d, :d], c[d:, d:]))
    u, rho, _ = np.linalg.svd(inv_x @ c[:d, d:] @ inv_y)
    u = u * np.sign(u[np.abs(u).argmax(0), np.arange(d)])
    mu = narrow.mean(0)
    q, _ = np.linalg.qr((narrow - mu) @ u + mu)
    a = np.abs(q.T @ narrow).sum(1)
    return float(np.sum(a / a.sum() * rho[:d]))


def _pwcca_centered_ref(narrow: np.ndarray, wide: np.ndarray) -> float:
    """Morcos et al.'s formula: canonical variates against the centred neurons."""
    d = narrow.shape[1]
    c = np.cov(narrow.T, wide.T)
    inv_x, inv_y = (np.linalg.inv(sl.sqrtm(m).real) for m in (c[:d, :d], c[d:, d:]))
    u, rho, _ = np.linalg.svd(inv_x @ c[:d, d:] @ inv_y)
    xc = narrow - narrow.mean(0)
    a = np.abs((xc @ inv_x @ u).T @ xc).sum(1)
    return float(np.sum(a / a.sum() * rho[:d]))


@pytest.mark.parametrize("seed", [0, 1])
def test_pwcca_svcca_code_matches_transcription(seed: int) -> None:
    x, y = _relu_layers(seed)
    want = _pwcca_svcca_code_ref(x.numpy(), y.numpy())
    assert float(pwcca(x, y, weights="svcca_code")) == pytest.approx(want, rel=1e-10)
    # y narrower: the same rule on y (the released code indexes x there and fails)
    assert float(pwcca(y, x, weights="svcca_code")) == pytest.approx(want, rel=1e-10)


def test_pwcca_default_is_centered_formula() -> None:
    x, y = _relu_layers(0)
    got = pwcca(x, y)
    assert torch.equal(got, pwcca(x, y, weights="centered"))
    assert float(got) == pytest.approx(_pwcca_centered_ref(x.numpy(), y.numpy()), rel=1e-10)


def test_pwcca_conventions_differ_on_relu_layers() -> None:
    x, y = _relu_layers(0)
    centered, code = float(pwcca(x, y)), float(pwcca(x, y, weights="svcca_code"))
    assert centered == pytest.approx(0.63888, abs=1e-5)
    assert code == pytest.approx(0.68113, abs=1e-5)  # 0.042 higher
    # the centred weights ignore a shift of the activations, the code's do not
    assert_close(pwcca(x + 3.0, y), pwcca(x, y), rtol=1e-9, atol=0)
    assert abs(float(pwcca(x + 3.0, y, weights="svcca_code")) - code) > 1e-3


def test_pwcca_bad_weights() -> None:
    x, y = _relu_layers(0, n=200)
    with pytest.raises(ValueError, match="expected 'centered' or 'svcca_code', got 'svcca'"):
        pwcca(x, y, weights="svcca")
