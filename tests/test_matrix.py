"""similarity_matrix: equal to the loop of separate calls for every measure, both linear-CKA
forms (features and Grams), and every error path."""
from __future__ import annotations

import warnings

import pytest
import torch

from repsim import _blas, _hsic_terms
from repsim._cka import linear_cka, rbf_cka
from repsim._matrix import MEASURES, similarity_matrix

F64 = torch.float64


def layers(n: int, widths_a, widths_b, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 4, generator=g, dtype=F64)

    def layer(d: int) -> torch.Tensor:
        w = torch.randn(4, d, generator=g, dtype=F64)
        return torch.tanh(z @ w) + 0.3 * torch.randn(n, d, generator=g, dtype=F64) + 0.2

    return ({f"a{i}": layer(d) for i, d in enumerate(widths_a)},
            {f"b{i}": layer(d) for i, d in enumerate(widths_b)})


def loop(acts_a, acts_b, fn):
    return torch.tensor([[float(fn(x, y)) for y in acts_b.values()] for x in acts_a.values()],
                        dtype=F64)


def _measure_fn(measure, kw):
    if measure in ("linear_cka", "debiased_cka"):
        return lambda x, y: linear_cka(x, y, debiased=kw.get("debiased", measure == "debiased_cka"))
    if measure == "rbf_cka":
        return lambda x, y: rbf_cka(x, y, **kw)
    if measure == "procrustes":
        from repsim._procrustes import procrustes_distance
        return procrustes_distance
    from repsim import mean_cca, pwcca, svcca
    fn = {"cca": mean_cca, "svcca": svcca, "pwcca": pwcca}[measure]
    return lambda x, y: fn(x, y, **kw)


CASES = [
    ("linear_cka", {}),
    ("linear_cka", {"debiased": True}),
    ("debiased_cka", {}),
    ("rbf_cka", {"threshold": 0.6}),
    ("rbf_cka", {"debiased": True}),
    ("cca", {}),
    ("svcca", {"keep": 0.95}),
    ("pwcca", {}),
    ("procrustes", {}),
]


@pytest.mark.parametrize("measure, kw", CASES, ids=[f"{m}-{'-'.join(k)}" for m, k in CASES])
def test_equals_loop_of_separate_calls(measure, kw):
    acts_a, acts_b = layers(80, [3, 12, 20], [5, 16])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = similarity_matrix(acts_a, acts_b, measure=measure, **kw)
        expected = loop(acts_a, acts_b, _measure_fn(measure, kw))
    assert got.shape == (3, 2) and got.dtype == F64
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    assert float(expected.max() - expected.min()) > 1e-3  # entries differ: order matters


@pytest.mark.parametrize("n, widths, form",
                         [(300, [4, 9, 30], "features"), (10, [40, 25, 60], "gram")])
@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("syrk", [True, False])  # CPU full-Gram layout, or block triangles
def test_linear_cka_feature_and_gram_forms(n, widths, form, debiased, syrk, monkeypatch):
    monkeypatch.setattr(_blas, "uses_syrk", lambda a: syrk)
    acts_a, acts_b = layers(n, widths, widths[::-1], seed=n)
    assert _hsic_terms.choose_form(n, widths, widths[::-1], full=syrk) == form
    got = similarity_matrix(acts_a, acts_b, debiased=debiased)
    expected = loop(acts_a, acts_b, lambda x, y: linear_cka(x, y, debiased=debiased))
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n", [50, 20])  # feature form and Gram form
def test_self_similarity_is_symmetric_with_unit_diagonal_and_accepts_numpy(n):
    acts, _ = layers(n, [6, 30, 3], [])
    as_numpy = {k: v.numpy() for k, v in acts.items()}
    for measure, fn in (("linear_cka", linear_cka), ("rbf_cka", rbf_cka),
                        ("debiased_cka", lambda x, y: linear_cka(x, y, debiased=True))):
        m = similarity_matrix(as_numpy, acts, measure=measure)
        torch.testing.assert_close(m, m.T, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(torch.diagonal(m), torch.ones(3, dtype=F64), rtol=0, atol=1e-12)
        same = similarity_matrix(acts, acts, measure=measure)  # the shared-Gram path
        torch.testing.assert_close(same, loop(acts, acts, fn), rtol=1e-10, atol=1e-12)


def test_errors():
    acts_a, acts_b = layers(20, [3, 4], [5])
    valid = r"expected one of \['linear_cka', 'debiased_cka', 'rbf_cka', 'cca', 'svcca', 'pwcca'"
    with pytest.raises(ValueError, match=valid):
        similarity_matrix(acts_a, acts_b, measure="cosine")
    assert "procrustes" in MEASURES
    short = {**acts_b, "late": acts_b["b0"][:15]}
    named = r"same number of samples.*acts_a\['a0'\]: 20.*acts_b\['late'\]: 15"
    with pytest.raises(ValueError, match=named):
        similarity_matrix(acts_a, short)
    with pytest.raises(ValueError, match="flatten_conv"):
        similarity_matrix({"conv": torch.zeros(20, 2, 3, 3, dtype=F64)}, acts_b)
    with pytest.raises(ValueError, match="expected a 2-D"):
        similarity_matrix({"v": torch.zeros(20, dtype=F64)}, acts_b)
    bad = acts_a["a0"].clone()
    bad[1, 1] = float("inf")
    with pytest.raises(ValueError, match=r"acts_a\['a0'\].*finite"):
        similarity_matrix({"a0": bad}, acts_b)
    tiny_a = {k: v[:3] for k, v in acts_a.items()}
    tiny_b = {k: v[:3] for k, v in acts_b.items()}
    with pytest.raises(ValueError, match="at least 4 samples"):
        similarity_matrix(tiny_a, tiny_b, measure="debiased_cka")
    with pytest.raises(ValueError, match="at least 4 samples"):
        similarity_matrix(tiny_a, tiny_b, measure="rbf_cka", debiased=True)
    const = {"dead": torch.full((20, 3), 0.1, dtype=F64)}
    for measure in ("linear_cka", "rbf_cka"):
        with pytest.raises(ValueError, match=r"acts_b\['dead'\]: has zero variance"):
            similarity_matrix(acts_a, const, measure=measure)
    with pytest.raises(ValueError, match="at least one layer"):
        similarity_matrix({}, acts_b)
    with pytest.raises(ValueError, match="dict"):
        similarity_matrix(acts_a["a0"], acts_b)
    with pytest.raises(ValueError, match=r"options among .* got \['keep'\]"):
        similarity_matrix(acts_a, acts_b, measure="linear_cka", keep=0.9)
