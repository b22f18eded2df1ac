"""permutation_test and bootstrap_ci: fast paths equal the plain repeated calls, p-values are
uniform under independence and small under dependence, bootstrap intervals cover a population
value known in closed form, duplicate rows are handled, and every bad input is refused."""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from torch.testing import assert_close

import repsim
from repsim import _inference_fast
from repsim import (bootstrap_ci, linear_cka, mean_cca, permutation_test, procrustes_distance,
                    pwcca, rbf_cka, svcca)

F64 = torch.float64


def related(n, dx, dy, *, seed=0, strength=0.5, shift=0.5):
    """x and y sharing a few latent directions (plus a column offset, so centring matters)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, dtype=F64, generator=g)
    x = z @ torch.randn(3, dx, dtype=F64, generator=g) + torch.randn(n, dx, dtype=F64, generator=g)
    y = strength * z @ torch.randn(3, dy, dtype=F64, generator=g)
    return x + shift, y + torch.randn(n, dy, dtype=F64, generator=g) - shift


MEASURES = [
    ("linear_cka", linear_cka, {}),
    ("linear_cka", linear_cka, {"debiased": True}),
    ("debiased_cka", lambda x, y: linear_cka(x, y, debiased=True), {}),
    ("rbf_cka", rbf_cka, {"threshold": 0.7}),
    ("rbf_cka", rbf_cka, {"debiased": True}),
    ("mean_cca", mean_cca, {}),
    ("mean_cca", mean_cca, {"epsilon": 0.1}),
    ("svcca", svcca, {"keep": 0.9}),
    ("pwcca", pwcca, {}),
    ("procrustes", procrustes_distance, {}),
    ("procrustes", procrustes_distance, {"angular": True}),
]
IDS = [f"{m}-{'-'.join(kw) or 'default'}" for m, _, kw in MEASURES]


def plain(fn, kw):
    """The same measure as a callable: always the plain path (one call per permutation)."""
    return lambda x, y: fn(x, y, **kw)


# --------------------------------------------------------------------------- permutations


@pytest.mark.parametrize("shape", [(60, 5, 8), (50, 12, 3), (24, 40, 30)],
                         ids=["n>d", "n>d-narrow-y", "d>n"])
@pytest.mark.parametrize("name, fn, kw", MEASURES, ids=IDS)
def test_fast_null_equals_plain_calls(name, fn, kw, shape):
    x, y = related(*shape, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n <= d CCA warns (once per call)
        fast = permutation_test(x, y, measure=name, n_permutations=40, generator=3, **kw)
        slow = permutation_test(x, y, measure=plain(fn, kw), n_permutations=40, generator=3)
    assert fast.null.shape == (40,) and fast.null.dtype == F64
    assert_close(fast.null, slow.null, rtol=0, atol=1e-10)
    assert_close(fast.value, slow.value, rtol=0, atol=0)
    # the permutations really differ (except for CCA with d > n: 1 by construction)
    assert float(fast.null.std()) > 1e-6 or float(fast.value) == pytest.approx(1.0)


@pytest.mark.parametrize("cost", [0.0, 1e9], ids=["gram-form", "feature-form"])
@pytest.mark.parametrize("debiased", [False, True])
def test_both_linear_forms_equal_plain_calls(monkeypatch, cost, debiased):
    monkeypatch.setattr(_inference_fast, "_GATHER_COST", cost)
    x, y = related(45, 6, 9, seed=2)
    fast = permutation_test(x, y, n_permutations=30, generator=5, debiased=debiased)
    slow = permutation_test(x, y, measure=plain(linear_cka, {"debiased": debiased}),
                            n_permutations=30, generator=5)
    assert_close(fast.null, slow.null, rtol=0, atol=1e-10)


def test_null_is_the_measure_on_permuted_rows_and_p_value_formula():
    x, y = related(30, 4, 5, seed=3)
    res = permutation_test(x, y, n_permutations=25, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    want = torch.stack([linear_cka(x, y[torch.randperm(30, generator=g)]) for _ in range(25)])
    assert_close(res.null, want, rtol=0, atol=1e-12)
    assert_close(res.value, linear_cka(x, y))
    count = int((want.numpy() >= float(res.value)).sum())
    assert float(res.p_value) == pytest.approx((1 + count) / 26, abs=1e-15)
    assert res.p_value.shape == () and res.p_value.dtype == F64


@pytest.mark.parametrize("name", ["linear_cka", "mean_cca", "procrustes"])
def test_ties_count_as_extreme(name):
    # two groups of 3 rows: every permutation that keeps the groups gives exactly the value
    x = torch.tensor([[1.0]] * 3 + [[0.0]] * 3, dtype=F64)
    y = torch.tensor([[2.0]] * 3 + [[-1.0]] * 3, dtype=F64)
    res = permutation_test(x, y, measure=name, n_permutations=200, generator=0)
    ties = np.isclose(res.null.numpy(), float(res.value), rtol=0, atol=1e-9)
    assert 3 <= ties.sum() < 200
    assert float(res.p_value) == pytest.approx((1 + ties.sum()) / 201)  # nothing is beyond


def test_dependent_data_give_the_smallest_p_value():
    x, y = related(200, 10, 10, seed=4, strength=1.0)
    for name in ("linear_cka", "mean_cca", "procrustes"):
        res = permutation_test(x, y, measure=name, n_permutations=99, generator=0)
        assert float(res.p_value) == pytest.approx(1 / 100), name


def test_procrustes_is_a_distance_small_values_are_extreme():
    x, y = related(80, 6, 6, seed=5, strength=1.0)
    res = permutation_test(x, y, measure="procrustes", n_permutations=50, generator=1)
    assert bool((res.null > res.value).all())  # dependence makes the distance small
    assert float(res.p_value) == pytest.approx(1 / 51)
    # the same values handed in as a callable are taken as a similarity: the direction flips
    as_sim = permutation_test(x, y, measure=procrustes_distance, n_permutations=50, generator=1)
    assert_close(as_sim.null, res.null, rtol=0, atol=1e-10)
    assert float(as_sim.p_value) == pytest.approx(1.0)
    neg = permutation_test(x, y, measure=lambda a, b: -procrustes_distance(a, b),
                           n_permutations=50, generator=1)
    assert float(neg.p_value) == pytest.approx(float(res.p_value))


@pytest.mark.parametrize("name, kw", [("linear_cka", {}), ("linear_cka", {"debiased": True}),
                                      ("mean_cca", {}), ("procrustes", {})])
def test_p_values_are_uniform_under_independence(name, kw):
    g = torch.Generator().manual_seed(11)
    pvals = []
    for _ in range(300):
        x = torch.randn(25, 3, dtype=F64, generator=g)
        y = torch.randn(25, 4, dtype=F64, generator=g) ** 2  # skewed, still independent
        pvals.append(float(permutation_test(x, y, measure=name, n_permutations=49,
                                            generator=g, **kw).p_value))
    pvals = np.array(pvals)
    assert stats.kstest(pvals, "uniform").pvalue > 0.01
    assert np.mean(pvals <= 0.1) == pytest.approx(0.1, abs=0.05)  # level is kept


def test_p_values_are_small_under_weak_dependence():
    g = torch.Generator().manual_seed(12)
    pvals = []
    for _ in range(60):
        x = torch.randn(60, 3, dtype=F64, generator=g)
        y = 0.4 * x[:, :2] + torch.randn(60, 2, dtype=F64, generator=g)
        pvals.append(float(permutation_test(x, y, n_permutations=99, generator=g).p_value))
    assert np.mean(np.array(pvals) <= 0.05) > 0.8
    assert stats.kstest(pvals, "uniform").pvalue < 1e-6


def test_same_generator_state_gives_same_result_and_global_rng():
    x, y = related(40, 5, 5, seed=6)
    a = permutation_test(x, y, n_permutations=np.int64(20), generator=np.int64(9))
    b = permutation_test(x, y, n_permutations=20, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a.null, b.null)
    torch.manual_seed(123)
    c = permutation_test(x, y, n_permutations=20)
    torch.manual_seed(123)
    d = permutation_test(x, y, n_permutations=20)
    assert torch.equal(c.null, d.null) and not torch.equal(a.null, c.null)


def test_warnings_of_the_measure_are_emitted_once():
    x, y = related(20, 15, 12, seed=7)  # n <= d: rank x + rank y > n - 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        permutation_test(x, y, measure="mean_cca", n_permutations=30, generator=0)
    plain_count = len(caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mean_cca(x, y)
    assert plain_count == len(caught) >= 1


def test_dtype_option_and_numpy_input():
    x, y = related(50, 4, 6, seed=8)
    res = permutation_test(x.numpy(), y.numpy().astype(np.float32), n_permutations=10,
                           generator=1, dtype=torch.float32)
    ref = permutation_test(x, y, n_permutations=10, generator=1)
    assert res.value.dtype == res.null.dtype == F64
    assert_close(res.null, ref.null, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- layer dicts


def layer_dicts(n=40, seed=9):
    x, y = related(n, 6, 9, seed=seed)
    acts_a = {"a1": x, "a2": torch.tanh(x[:, :4]), "a3": x @ x.T[:, :12] / 10}
    acts_b = {"b1": y, "b2": y[:, :3] ** 2}
    return acts_a, acts_b


@pytest.mark.filterwarnings("ignore:.*ill-posed:UserWarning")  # layer a3 has rank 6 of 12
@pytest.mark.parametrize("name, fn, kw", MEASURES[::2] + MEASURES[1:2], ids=IDS[::2] + IDS[1:2])
def test_dicts_give_every_pair_with_one_permutation_per_draw(name, fn, kw):
    acts_a, acts_b = layer_dicts()
    res = permutation_test(acts_a, acts_b, measure=name, n_permutations=15, generator=4, **kw)
    assert res.value.shape == res.p_value.shape == (3, 2) and res.null.shape == (15, 3, 2)
    for (i, a), (j, b) in itertools.product(enumerate(acts_a.values()), enumerate(acts_b.values())):
        one = permutation_test(a, b, measure=plain(fn, kw), n_permutations=15, generator=4)
        assert_close(res.null[:, i, j], one.null, rtol=0, atol=1e-10)
        assert_close(res.value[i, j], one.value, rtol=0, atol=1e-12)
        same = permutation_test(a, b, measure=name, n_permutations=15, generator=4, **kw)
        assert float(res.p_value[i, j]) == pytest.approx(float(same.p_value))
    # plain path on dicts too
    slow = permutation_test(acts_a, acts_b, measure=plain(fn, kw), n_permutations=15, generator=4)
    assert_close(slow.null, res.null, rtol=0, atol=1e-10)


def test_dict_values_match_similarity_matrix():
    acts_a, acts_b = layer_dicts()
    res = permutation_test(acts_a, acts_b, measure="debiased_cka", n_permutations=5, generator=0)
    assert_close(res.value, repsim.similarity_matrix(acts_a, acts_b, measure="debiased_cka"),
                 rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- bootstrap


@pytest.mark.filterwarnings("ignore:bootstrap_ci. the estimate lies outside:UserWarning")
def test_bootstrap_plain_path_resamples_rows_jointly():
    x, y = related(30, 4, 5, seed=10)
    res = bootstrap_ci(x, y, measure="mean_cca", n_boot=20, level=0.8, generator=2)
    g = torch.Generator().manual_seed(2)
    idx = [torch.randint(30, (30,), generator=g) for _ in range(20)]
    want = torch.stack([mean_cca(x[i], y[i]) for i in idx])
    assert_close(res.samples, want, rtol=0, atol=1e-12)
    lo, hi = np.quantile(want.numpy(), [0.1, 0.9])
    assert float(res.low) == pytest.approx(lo, abs=1e-14)
    assert float(res.high) == pytest.approx(hi, abs=1e-14)
    assert_close(res.value, mean_cca(x, y))


def np_weighted_hsic(k, l, c, *, debiased):
    """Brute force over the distinct original samples of a resample (multiplicities c):
    biased: the resample's centred-Gram inner product without pairs of two copies;
    debiased: E[K_ij L_ij] + E[K_ij L_qr] - 2 E[K_ij L_iq] over distinct indices, weighted."""
    w = c / c.sum()
    h = np.eye(len(c)) - w[None, :]  # centring on the resample's weights
    kc, lc = h @ k @ h.T, h @ l @ h.T
    if not debiased:
        weights = np.outer(c, c) - np.diag(c * c - c)
        return float((weights * kc * lc).sum())
    idx = [i for i in range(len(c)) if c[i] > 0]
    terms = {2: [0.0, 0.0], 3: [0.0, 0.0], 4: [0.0, 0.0]}
    for size in (2, 3, 4):
        for t in itertools.permutations(idx, size):
            wt = np.prod(c[list(t)])
            i, j = t[0], t[1]
            val = {2: kc[i, j] * lc[i, j],
                   3: kc[i, j] * lc[i, t[2]] if size == 3 else 0,
                   4: kc[i, j] * lc[t[2], t[3]] if size == 4 else 0}[size]
            terms[size][0] += wt * val
            terms[size][1] += wt
    return (terms[2][0] / terms[2][1] + terms[4][0] / terms[4][1]
            - 2 * terms[3][0] / terms[3][1])


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("kind", ["linear", "rbf"])
def test_weighted_resample_matches_brute_force(kind, debiased):
    n = 8
    x, y = related(n, 3, 2, seed=13)
    c = np.array([2, 0, 1, 3, 0, 1, 1, 0], dtype=float)
    if kind == "linear":
        k, l = (t.numpy() @ t.numpy().T for t in (x, y))
        fn = _inference_fast.weighted_function("linear_cka", {"debiased": debiased},
                                               {"x": x}, {"y": y})
    else:
        from repsim._cka import rbf_gram
        k, l = rbf_gram(x).numpy(), rbf_gram(y).numpy()
        fn = _inference_fast.weighted_function("rbf_cka", {"debiased": debiased},
                                               {"x": x}, {"y": y})
    hxy = np_weighted_hsic(k, l, c, debiased=debiased)
    hxx = np_weighted_hsic(k, k, c, debiased=debiased)
    hyy = np_weighted_hsic(l, l, c, debiased=debiased)
    got = fn(torch.tensor(c, dtype=torch.long)[None])
    assert float(got[0, 0, 0]) == pytest.approx(hxy / np.sqrt(hxx * hyy), abs=1e-12)


@pytest.mark.parametrize("widths", [(5, 30), (5, 40)], ids=["features", "grams"])
@pytest.mark.parametrize("name, fn", [("linear_cka", linear_cka), ("rbf_cka", rbf_cka)])
@pytest.mark.parametrize("debiased", [False, True])
def test_weighted_resample_with_unit_counts_is_the_estimator(name, fn, debiased, widths):
    x, y = related(35, *widths, seed=14)
    f = _inference_fast.weighted_function(name, {"debiased": debiased}, {"x": x}, {"y": y})
    got = f(torch.ones(2, 35, dtype=torch.long))
    assert_close(got[:, 0, 0], fn(x, y, debiased=debiased).expand(2), rtol=0, atol=1e-12)
    if name == "linear_cka":  # a resample without duplicates: the estimator on those rows
        c = torch.zeros(1, 35, dtype=torch.long)
        c[0, ::2] = 1
        assert float(f(c)[0, 0, 0]) == pytest.approx(
            float(fn(x[::2], y[::2], debiased=debiased)), abs=1e-12)


def test_copies_are_not_counted_as_matching_pairs():
    g = torch.Generator().manual_seed(15)
    x = torch.randn(100, 32, dtype=F64, generator=g)
    y = torch.randn(100, 32, dtype=F64, generator=g)
    handled = bootstrap_ci(x, y, n_boot=100, generator=1, debiased=True)
    with pytest.warns(UserWarning, match="estimate lies outside its own 0.95 interval"):
        naive = bootstrap_ci(x, y, measure=plain(linear_cka, {"debiased": True}), n_boot=100,
                             generator=1)
    assert abs(float(handled.samples.mean() - handled.value)) < 0.01
    assert float(naive.samples.mean() - naive.value) > 0.05  # duplicates pull the naive one up
    assert bool(handled.low <= handled.value <= handled.high)
    assert not bool(naive.low <= naive.value <= naive.high)
    for debiased in (False, True):  # the biased estimator too: centred on its value
        res = bootstrap_ci(x, x + y, n_boot=100, generator=2, debiased=debiased)
        assert abs(float(res.samples.mean() - res.value)) < 0.01


@pytest.mark.parametrize("debiased, lo", [(True, 0.91), (False, 0.88)])
def test_bootstrap_intervals_cover_the_population_cka(debiased, lo):
    # x ~ N(0, I_4), y = x B + N(0, I_4): population linear CKA in closed form,
    # ||Sxy||_F^2 / (||Sxx||_F ||Syy||_F) = ||B||_F^2 / (2 ||B^T B + I||_F)
    g = torch.Generator().manual_seed(0)
    b = 0.5 * torch.randn(4, 4, dtype=F64, generator=g)
    pop = float(b.square().sum() / (2.0 * torch.linalg.norm(b.T @ b + torch.eye(4, dtype=F64))))
    hits = 0
    for _ in range(200):
        x = torch.randn(100, 4, dtype=F64, generator=g)
        y = x @ b + torch.randn(100, 4, dtype=F64, generator=g)
        ci = bootstrap_ci(x, y, n_boot=200, level=0.95, generator=g, debiased=debiased)
        hits += bool(ci.low <= pop <= ci.high)
    assert lo <= hits / 200 <= 0.99


@pytest.mark.filterwarnings("ignore:bootstrap_ci. the estimate lies outside:UserWarning")
def test_bootstrap_dicts_resample_every_layer_jointly():
    acts_a, acts_b = layer_dicts(n=30)
    for name, kw in (("linear_cka", {"debiased": True}), ("svcca", {"keep": 0.95})):
        res = bootstrap_ci(acts_a, acts_b, measure=name, n_boot=12, generator=6, **kw)
        assert res.samples.shape == (12, 3, 2) and res.low.shape == res.high.shape == (3, 2)
        for (i, a), (j, b) in itertools.product(enumerate(acts_a.values()),
                                                enumerate(acts_b.values())):
            one = bootstrap_ci(a, b, measure=name, n_boot=12, generator=6, **kw)
            assert_close(res.samples[:, i, j], one.samples, rtol=0, atol=1e-12)
            assert_close(res.low[i, j], one.low, rtol=0, atol=1e-12)


def test_bootstrap_warns_once_for_ill_posed_and_shifted_resamples():
    x, y = related(40, 12, 12, seed=16)  # fine on the full data, not on ~25 distinct rows
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = bootstrap_ci(x, y, measure="mean_cca", n_boot=20, generator=0)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2, messages
    assert "outside its own 0.95 interval for 1 of 1" in messages[0]
    assert "warned on 5 of 20 resamples" in messages[1] and "distinct rows" in messages[1]
    assert float(res.value) < float(res.low)  # CCA's upward bias grows with fewer rows
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the debiased CKA of the same data: no warning
        ci = bootstrap_ci(x, y, n_boot=50, generator=0, debiased=True)
    assert float(ci.low) <= float(ci.value) <= float(ci.high)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kw, match", [
    ({"n_permutations": 0}, "n_permutations: expected an integer >= 1, got 0"),
    ({"n_permutations": -3}, "n_permutations: expected an integer >= 1"),
    ({"n_permutations": 2.5}, "n_permutations: expected an integer >= 1, got 2.5"),
    ({"n_permutations": True}, "n_permutations: expected an integer >= 1, got True"),
    ({"measure": "cosine"}, "measure: expected one of .* got 'cosine'"),
    ({"measure": 3}, "measure: expected one of .* or a callable"),
    ({"measure": "svcca", "threshold": 1.0}, r"expected options among .* got \['threshold'\]"),
    ({"measure": "debiased_cka", "debiased": False}, "expected debiased=True"),
    ({"generator": "seed"}, "generator: expected a torch.Generator, an int seed or None"),
])
def test_permutation_test_bad_options(kw, match):
    x, y = related(20, 3, 3)
    with pytest.raises(ValueError, match=match):
        permutation_test(x, y, **kw)


@pytest.mark.parametrize("kw, match", [
    ({"n_boot": 0}, "n_boot: expected an integer >= 1, got 0"),
    ({"n_boot": "10"}, "n_boot: expected an integer >= 1"),
    ({"level": 0.0}, r"level: expected a number with 0 < level < 1, got 0.0"),
    ({"level": 1.0}, r"level: expected a number with 0 < level < 1, got 1.0"),
    ({"level": 95}, r"level: expected a number with 0 < level < 1, got 95"),
    ({"level": "0.9"}, "level: expected a number"),
    ({"level": float("nan")}, "level: expected a number with 0 < level < 1, got nan"),
    ({"measure": "nope"}, "measure: expected one of"),
])
def test_bootstrap_bad_options(kw, match):
    x, y = related(20, 3, 3)
    with pytest.raises(ValueError, match=match):
        bootstrap_ci(x, y, **kw)


@pytest.mark.parametrize("fn", [permutation_test, bootstrap_ci])
def test_bad_data(fn):
    x, y = related(20, 3, 3)
    with pytest.raises(ValueError, match=r"same number of samples .* x \(20, 3\) and y \(19, 3\)"):
        fn(x, y[:19])
    with pytest.raises(ValueError, match="expected two .* matrices or two .* dicts"):
        fn({"a": x}, y)
    with pytest.raises(ValueError, match=r"same number of samples in every layer"):
        fn({"a": x}, {"b": y[:10]})
    with pytest.raises(ValueError, match="expected finite values"):
        fn(x, y.clone().fill_(float("nan")))
    with pytest.raises(ValueError, match="expected at least one layer"):
        fn({}, {"b": y})
