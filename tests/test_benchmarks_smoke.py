"""The benchmark scripts' helpers compute the right values (no peer libraries needed)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _common  # noqa: E402
import bench_cka_peers  # noqa: E402
import bench_maml_higher  # noqa: E402
import bench_minibatch_memory  # noqa: E402
from _reference import np_hsic_song  # noqa: E402


def _gram_hsic_biased(k: np.ndarray, l: np.ndarray) -> float:
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ l @ h))


def _cka(x, y, hsic):
    k, l = x @ x.T, y @ y.T
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


@pytest.fixture
def xy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 7))
    y = np.tanh(x @ rng.standard_normal((7, 5))) + 0.3 * rng.standard_normal((60, 5)) + 2.0
    return x, y


def test_reference_linear_cka_matches_gram_formula(xy):
    x, y = xy
    want = _cka(x, y, _gram_hsic_biased)
    assert _common.reference_linear_cka(x, y) == pytest.approx(want, abs=1e-12)
    assert 0.1 < want < 0.99  # a non-trivial value


def test_reference_linear_cka_invariances(xy):
    x, _ = xy
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((7, 7)))
    assert _common.reference_linear_cka(x, 3.0 * x @ q + 5.0) == pytest.approx(1.0, abs=1e-12)
    # not invariant to an invertible non-orthogonal map
    a = np.diag(np.linspace(0.1, 10.0, 7))
    assert _common.reference_linear_cka(x, x @ a) < 0.99


def test_reference_debiased_matches_gram_formula(xy):
    x, y = xy
    want = _cka(x, y, np_hsic_song)
    got = _common.reference_debiased_linear_cka(x, y)
    assert got == pytest.approx(want, abs=1e-12)
    assert abs(got - _common.reference_linear_cka(x, y)) > 1e-3  # really a different estimator


def test_reference_minibatch_is_summed_unbiased_hsic(xy):
    x, y = xy
    xb, yb = bench_cka_peers.split_batches(x, 20, 3), bench_cka_peers.split_batches(y, 20, 3)
    sxy = sum(np_hsic_song(a @ a.T, b @ b.T) for a, b in zip(xb, yb))
    sxx = sum(np_hsic_song(a @ a.T, a @ a.T) for a in xb)
    syy = sum(np_hsic_song(b @ b.T, b @ b.T) for b in yb)
    assert _common.reference_minibatch_cka(xb, yb) == pytest.approx(sxy / np.sqrt(sxx * syy), abs=1e-12)
    # one batch of everything == debiased CKA
    assert _common.reference_minibatch_cka([x], [y]) == pytest.approx(
        _common.reference_debiased_linear_cka(x, y), abs=1e-12)
    with pytest.raises(ValueError, match="expected equal"):
        _common.reference_minibatch_cka(xb, yb[:2])


def test_split_batches_values_and_error():
    a = np.arange(20.0).reshape(10, 2)
    b = bench_cka_peers.split_batches(a, 3, 3)
    assert [blk[0, 0] for blk in b] == [0.0, 6.0, 12.0] and all(blk.shape == (3, 2) for blk in b)
    with pytest.raises(ValueError, match="expected batch_size"):
        bench_cka_peers.split_batches(a, 4, 3)


def test_time_call_counts_calls_and_returns_last_value():
    calls = []

    def fn():
        calls.append(1)
        return len(calls)

    sec, value, n_timed = _common.time_call(fn, repeats=4, warmup=2)
    assert (len(calls), value, n_timed) == (6, 6, 4)
    assert 0.0 <= sec < 1.0
    with pytest.raises(ValueError, match="repeats"):
        _common.time_call(fn, repeats=0)


def test_ratio_rows_against_fastest_peer_and_gemm():
    rows = [
        {"impl": "ours", "mode": "linear", "dtype": "float32", "seconds": 0.5},
        {"impl": "p1", "peer": True, "mode": "linear", "dtype": "float32", "seconds": 10.0},
        {"impl": "p2", "peer": True, "mode": "linear", "dtype": "float32", "seconds": 20.0},
        {"impl": "p3", "peer": True, "mode": "linear", "dtype": "float64", "seconds": 1.0},
        {"impl": "p4", "peer": True, "mode": "linear", "dtype": "float32", "error": "boom"},
    ]
    out = bench_cka_peers.ratio_rows(rows, {"float32": 0.25})
    assert out[0]["x fastest peer"] == pytest.approx(0.05)
    assert out[0]["x GEMM"] == pytest.approx(2.0)
    assert out[2]["x fastest peer"] == pytest.approx(2.0)
    assert out[3]["x fastest peer"] == pytest.approx(1.0) and out[3]["x GEMM"] is None
    assert "x fastest peer" not in out[4]
    assert "x GEMM" not in rows[0]  # input rows untouched


def test_make_data_is_seeded_and_nontrivial():
    x1, y1 = bench_cka_peers.make_data(200, 16, seed=3)
    x2, y2 = bench_cka_peers.make_data(200, 16, seed=3)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert 0.2 < _common.reference_linear_cka(x1, y1) < 0.95


def test_format_table_and_write_json(tmp_path):
    text = _common.format_table([{"a": 1.23456, "b": None}, {"a": 1e-6, "b": "x"}], ["a", "b"])
    lines = text.splitlines()
    assert lines[0].split() == ["a", "b"]
    assert lines[2].split() == ["1.235", "-"] and lines[3].split() == ["1.00e-06", "x"]
    p = _common.write_json(tmp_path / "sub" / "r.json", {"v": 0.5, "t": torch.tensor(2.0).item()})
    assert json.loads(p.read_text()) == {"v": 0.5, "t": 2.0}


def test_layer_widths():
    assert bench_minibatch_memory.layer_widths(4) == [64, 128, 256, 512]
    assert bench_minibatch_memory.layer_widths(2, base=8) == [8, 16]
    with pytest.raises(ValueError, match="n_layers"):
        bench_minibatch_memory.layer_widths(0)


def test_random_tasks_shapes_labels_and_seed():
    tasks = bench_maml_higher.random_tasks(2, ways=4, shots=2, query=3, seed=5)
    t = tasks[0]
    assert t.support_x.shape == (8, 1, 28, 28) and t.query_x.shape == (12, 1, 28, 28)
    assert sorted(t.support_y.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert sorted(t.query_y.tolist()) == sorted([0, 1, 2, 3] * 3)
    again = bench_maml_higher.random_tasks(2, ways=4, shots=2, query=3, seed=5)
    torch.testing.assert_close(again[1].query_x, tasks[1].query_x)


def test_max_rel_diff():
    a = [torch.tensor([3.0, 4.0]), torch.tensor([1.0])]
    b = [torch.tensor([3.0, 4.0]) * 1.1, torch.tensor([1.0])]
    # ||a - b|| / ||b|| = 0.5 / 5.5
    assert bench_maml_higher.max_rel_diff(a, b) == pytest.approx(0.5 / 5.5)
    with pytest.raises(ValueError, match="equal numbers"):
        bench_maml_higher.max_rel_diff(a, b[:1])


def test_bench_head_init_agrees_with_meta_evaluate(tmp_path):
    import bench_head_init

    from meta.config import get_preset
    from meta.evaluation import evaluate
    from meta.training import train

    cfg = get_preset("tiny").replace(iterations=2, checkpoints=(2,), val_every=2, save_every=2)
    run = train(cfg, tmp_path / "run", progress=False)
    res = bench_head_init.run(str(run), steps=[0, 2], tasks=4, checkpoint=None)
    for k in (0, 2):   # the learned head is what the pipeline evaluates with conv1-4 frozen
        want = evaluate(run, tasks=4, freeze=(1, 2, 3, 4), inner_steps=k)["accuracy"]["mean"]
        assert res["learned"][k] == pytest.approx(100 * want, abs=1e-9)
    assert res["nil"] == pytest.approx(100 * evaluate(run, tasks=4, head="nil")["accuracy"]["mean"])
    # a zero head before any step scores every class 0: arg-max is class 0, 1 in `ways` right
    assert res["zero"][0] == pytest.approx(100 / cfg.ways)
    assert res["iteration"] == 2 and res["row_norm"]["glorot"] > 0
