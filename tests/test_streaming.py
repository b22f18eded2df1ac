"""StreamingSimilarity: equal to the full-data functions for any batching, merge and a real
two-process gloo all-reduce; the shift algebra; an independent numpy reference; the
distributed command line; every error path."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import repsim
from repsim import _streaming
from repsim._linear_stats import batch_stats, reshift, summed
from repsim._streaming import MEASURES, StreamingSimilarity

from _reference import np_hsic_song

F64 = torch.float64
TOL = dict(rtol=0, atol=1e-10)

FULL = {
    "linear_cka": repsim.linear_cka,
    "linear_cka_debiased": lambda x, y: repsim.linear_cka(x, y, debiased=True),
    "mean_cca": repsim.mean_cca,
    "svcca": repsim.svcca,
    "pwcca": repsim.pwcca,
    "procrustes": repsim.procrustes_distance,
}


def make_layers(n: int, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Two 'models' with related layers of different widths, offsets and scales."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 6, generator=g, dtype=F64)
    w = torch.randn(6, 11, generator=g, dtype=F64)
    a = {"conv1": 3.0 * z + 5.0, "conv2": torch.relu(z @ w), "fc": z[:, :2] ** 2 - 1.0}
    b = {"h1": torch.tanh(z @ w[:, :9]) + 0.2 * torch.randn(n, 9, generator=g, dtype=F64),
         "h2": 10.0 * torch.randn(n, 4, generator=g, dtype=F64) + z[:, 3:4] - 20.0}
    return a, b


def random_split(n: int, seed: int) -> list[torch.Tensor]:
    """Consecutive batches of random sizes 1..n (uneven), covering 0..n-1 once."""
    g = torch.Generator().manual_seed(seed)
    sizes, left = [], n
    while left:
        size = int(torch.randint(1, left + 1, (1,), generator=g))
        size = min(size, 1 + int(torch.randint(0, max(1, n // 3), (1,), generator=g)))
        sizes.append(size)
        left -= size
    return list(torch.arange(n).split(sizes))


def reference(a, b, measure):
    return torch.stack([torch.stack([FULL[measure](a[i], b[j]) for j in b]) for i in a])


def stream(a, b, split, measures=MEASURES, **kw) -> StreamingSimilarity:
    m = StreamingSimilarity(measures, **kw)
    for idx in split:
        m.update({k: v[idx] for k, v in a.items()}, {k: v[idx] for k, v in b.items()})
    return m


# ------------------------------------------------------------------------ exactness
LINEAR_ONLY = tuple(m for m in MEASURES if m != "linear_cka_debiased")


@pytest.mark.parametrize("measures", [MEASURES, LINEAR_ONLY], ids=["all", "no_debiased"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_any_split_equals_full_data_functions(seed, measures):
    a, b = make_layers(90, seed)
    split = random_split(90, seed + 100)
    if seed == 0:
        split = list(torch.arange(90).split(1))  # batches of one sample
    elif seed == 1:
        split = [torch.arange(90)]  # one batch
    m = stream(a, b, split, measures=measures)
    out = m.compute()
    assert list(out) == list(measures)
    assert m.layers_a == list(a) and m.layers_b == list(b)
    assert m.n_samples_ == 90 and m.n_batches_ == len(split)
    for measure in measures:
        assert out[measure].shape == (3, 2) and out[measure].dtype == F64
        torch.testing.assert_close(out[measure], reference(a, b, measure), **TOL)


@pytest.mark.parametrize("measures", [MEASURES, LINEAR_ONLY], ids=["all", "no_debiased"])
def test_drifting_stream_equals_full_data(measures):
    """A layer whose mean dwarfs its spread (the shift cannot be folded into the raw products
    there and is subtracted explicitly), next to one whose batches drift from the first."""
    a, b = make_layers(80, 24)
    a["conv1"] = a["conv1"] + 1e3
    b["h1"] = b["h1"].clone()
    b["h1"][20:50] += 30.0  # batches 2 and 3 drift, batch 4 comes back
    m = stream(a, b, [torch.arange(0, 20), torch.arange(20, 35), torch.arange(35, 50),
                      torch.arange(50, 80)], measures=measures)
    out = m.compute()
    for measure in measures:
        torch.testing.assert_close(out[measure], reference(a, b, measure), **TOL)


def test_single_pair_form_returns_0_dim_values():
    a, b = make_layers(60, 5)
    x, y = a["conv2"], b["h1"]
    m = StreamingSimilarity(MEASURES, keep=0.9, epsilon=1e-3, angular=True)
    for idx in random_split(60, 7):
        m.update(x[idx].numpy(), y[idx])  # numpy and torch both accepted
    out = m.compute()
    assert m.layers_a is None and m.layers_b is None
    expected = {
        "linear_cka": repsim.linear_cka(x, y),
        "linear_cka_debiased": repsim.linear_cka(x, y, debiased=True),
        "mean_cca": repsim.mean_cca(x, y, epsilon=1e-3),
        "svcca": repsim.svcca(x, y, keep=0.9, epsilon=1e-3),
        "pwcca": repsim.pwcca(x, y, epsilon=1e-3),
        "procrustes": repsim.procrustes_distance(x, y, angular=True),
    }
    for measure, value in expected.items():
        assert out[measure].shape == ()
        torch.testing.assert_close(out[measure], value, **TOL)


def test_default_measure_and_invariances():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(200, 10, generator=g, dtype=F64)
    q, _ = torch.linalg.qr(torch.randn(10, 10, generator=g, dtype=F64))
    m = StreamingSimilarity()
    assert m.measures == ("linear_cka",)
    all_m = StreamingSimilarity(MEASURES)
    for idx in torch.arange(200).split(33):
        m.update(x[idx], 3.0 * x[idx] @ q + 7.0)
        all_m.update(x[idx], 3.0 * x[idx] @ q + 7.0)
    torch.testing.assert_close(m.compute()["linear_cka"], torch.tensor(1.0, dtype=F64), **TOL)
    out = all_m.compute()
    for measure in ("linear_cka", "linear_cka_debiased", "mean_cca", "pwcca"):
        torch.testing.assert_close(out[measure], torch.tensor(1.0, dtype=F64), **TOL)
    assert float(out["procrustes"]) < 1e-6  # rounding noise of sqrt(2 - 2 * nuclear)
    # not invariant to a non-orthogonal map: CKA drops, CCA stays 1
    w = torch.diag(torch.linspace(0.1, 10.0, 10, dtype=F64))
    m2 = StreamingSimilarity(["linear_cka", "mean_cca"])
    m2.update(x, x @ w)
    out2 = m2.compute()
    assert float(out2["linear_cka"]) < 0.9
    torch.testing.assert_close(out2["mean_cca"], torch.tensor(1.0, dtype=F64), **TOL)


def test_debiased_equals_independent_numpy_reference():
    a, b = make_layers(40, 9)
    m = stream(a, b, random_split(40, 4), measures="linear_cka_debiased")
    out = m.compute()["linear_cka_debiased"]
    for i, x in enumerate(a.values()):
        for j, y in enumerate(b.values()):
            k, l = x.numpy() @ x.numpy().T, y.numpy() @ y.numpy().T
            ref = np_hsic_song(k, l) / np.sqrt(np_hsic_song(k, k) * np_hsic_song(l, l))
            assert abs(float(out[i, j]) - ref) < 1e-10


def test_float32_input_and_float32_computation():
    a, b = make_layers(120, 11)
    a32 = {k: v.float() for k, v in a.items()}
    b32 = {k: v.float() for k, v in b.items()}
    split = random_split(120, 12)
    # float32 input, float64 accumulation (the default): the full-data value of the same input
    out = stream(a32, b32, split).compute()
    for measure in MEASURES:
        torch.testing.assert_close(out[measure], reference(a32, b32, measure), **TOL)
    # float32 computation of each batch, float64 sums: within 1e-5 of the float64 value
    out32 = stream(a32, b32, split, measures=("linear_cka", "linear_cka_debiased", "procrustes"),
                   dtype=torch.float32).compute()
    for measure, value in out32.items():
        assert value.dtype == F64
        torch.testing.assert_close(value, reference(a, b, measure), rtol=0, atol=1e-5)


def test_state_size_does_not_grow_with_samples():
    a, b = make_layers(400, 13)
    one = stream(a, b, [torch.arange(10)])
    many = stream(a, b, list(torch.arange(400).split(7)))
    sizes = [sum(t.numel() for t in summed(m._stats)) for m in (one, many)]
    widths = [t.shape[1] for t in (*a.values(), *b.values())]
    assert sizes[0] == sizes[1]
    assert sizes[0] < 2 * (sum(w * w for w in widths) + 3 * 2 * 11 * 9)  # O(d^2), no n


# ------------------------------------------------------------------- shifts and merging
def test_reshift_equals_direct_statistics_about_the_new_shift():
    a, b = make_layers(50, 14)
    xs = [*a.values(), *b.values()]
    g = torch.Generator().manual_seed(15)
    c1 = [torch.randn(x.shape[1], generator=g, dtype=F64) for x in xs]
    c2 = [x.mean(0) + torch.randn(x.shape[1], generator=g, dtype=F64) for x in xs]
    moved = reshift(batch_stats(xs, 3, c1, extras=True), c2)
    direct = batch_stats(xs, 3, c2, extras=True)
    for p, q in zip(summed(moved), summed(direct)):
        torch.testing.assert_close(p, q, rtol=1e-11, atol=1e-9)


def test_merge_of_differently_shifted_accumulators_equals_full_data():
    a, b = make_layers(100, 16)
    parts = [torch.arange(0, 1), torch.arange(1, 37), torch.arange(37, 100)]
    accs = [stream(a, b, [idx[:5], idx[5:]] if len(idx) > 5 else [idx]) for idx in parts]
    total = StreamingSimilarity(MEASURES)
    total.merge(StreamingSimilarity(MEASURES))  # an empty one changes nothing
    for acc in accs:
        assert total.merge(acc) is total
    assert total.n_samples_ == 100 and total.n_batches_ == 5
    out = total.compute()
    for measure in MEASURES:
        torch.testing.assert_close(out[measure], reference(a, b, measure), **TOL)
    # the merged accumulator keeps streaming exactly
    c, d = make_layers(20, 17)
    total.update(c, d)
    both = {k: torch.cat([a[k], c[k]]) for k in a}, {k: torch.cat([b[k], d[k]]) for k in b}
    torch.testing.assert_close(total.compute()["pwcca"], reference(*both, "pwcca"), **TOL)


def test_merge_into_fewer_measures_drops_the_debiased_statistics():
    a, b = make_layers(30, 18)
    plain = stream(a, b, [torch.arange(30)], measures="mean_cca")
    plain.merge(stream(a, b, [torch.arange(30)]))
    assert plain._stats.m is None and plain.n_samples_ == 60
    with pytest.raises(ValueError, match="debiased-CKA statistics"):
        StreamingSimilarity(MEASURES).merge(plain)


# ------------------------------------------------------------------------ distributed
def _rank_main(rank: int, world: int, init_file: str, shards, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        a, b = make_layers(77, 19)
        m = StreamingSimilarity(MEASURES)
        for idx in shards[rank]:
            m.update({k: v[idx] for k, v in a.items()}, {k: v[idx] for k, v in b.items()})
        m.all_reduce()
        torch.save({"out": m.compute(), "n": m.n_samples_, "batches": m.n_batches_},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_all_reduce_over_two_gloo_processes_equals_full_data(tmp_path: Path):
    a, b = make_layers(77, 19)
    split = random_split(77, 20)
    shards = [split[:1], split[1:]]  # uneven on purpose: rank 0 holds one batch
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), shards, str(tmp_path)),
             nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got["n"] == 77 and got["batches"] == len(split)
        for measure in MEASURES:
            torch.testing.assert_close(got["out"][measure], reference(a, b, measure), **TOL)


def test_all_reduce_without_process_group():
    m = StreamingSimilarity()
    m.update(*make_layers(8, 0))
    with pytest.raises(RuntimeError, match="not initialised"):
        m.all_reduce()


# ----------------------------------------------------------------- command line
def _cli_rank(rank: int, world: int, init_file: str, argv, out_dir: str) -> None:
    from repsim.cli import main

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        code = main([*argv, "--out", os.path.join(out_dir, "dist")])
        Path(out_dir, f"code{rank}").write_text(str(code))
    finally:
        dist.destroy_process_group()


def _read_csv(path: Path) -> tuple[list[str], list[str], torch.Tensor]:
    lines = [line.split(",") for line in path.read_text().splitlines()]
    values = torch.tensor([[float(v) for v in row[1:]] for row in lines[1:]], dtype=F64)
    return [row[0] for row in lines[1:]], lines[0][1:], values


@pytest.mark.parametrize("measure", ["cca", "debiased_cka"])
def test_cli_distributed_equals_single_process(measure, tmp_path: Path, capsys):
    from repsim.cli import main

    a, b = make_layers(41, 21)
    np.savez(tmp_path / "a.npz", **{k: v.numpy() for k, v in a.items()})
    np.savez(tmp_path / "b.npz", **{k: v.numpy() for k, v in b.items()})
    argv = [str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--measure", measure,
            "--batch-size", "3", "--quiet"]
    assert main(["compare", *argv, "--out", str(tmp_path / "single")]) == 0
    mp.spawn(_cli_rank, args=(2, str(tmp_path / "init"), ["compare", *argv, "--distributed"],
                              str(tmp_path)), nprocs=2, join=True)
    assert [Path(tmp_path, f"code{r}").read_text() for r in range(2)] == ["0", "0"]
    rows, cols, values = _read_csv(tmp_path / "dist" / "similarity.csv")
    rows1, cols1, single = _read_csv(tmp_path / "single" / "similarity.csv")
    assert (rows, cols) == (rows1, cols1) == (list(a), list(b))
    torch.testing.assert_close(values, single, **TOL)
    assert (tmp_path / "dist" / "similarity.png").is_file()


def test_cli_distributed_wide_layers(tmp_path: Path, capsys, monkeypatch):
    """Above the width limit: debiased_cka falls back to MinibatchCKA, the others refuse."""
    from repsim.cli import main

    a, b = make_layers(24, 22)
    np.savez(tmp_path / "a.npz", **{k: v.numpy() for k, v in a.items()})
    np.savez(tmp_path / "b.npz", **{k: v.numpy() for k, v in b.items()})
    monkeypatch.setattr(_streaming, "MAX_FEATURES", 8)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0,
                            world_size=1)
    try:
        base = ["compare", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--distributed",
                "--quiet", "--batch-size", "6"]
        assert main([*base, "--out", str(tmp_path / "d")]) == 0
        assert main([*base, "--measure", "cca", "--out", str(tmp_path / "e")]) == 2
    finally:
        dist.destroy_process_group()
    err = capsys.readouterr().err
    assert "cca keeps (d, d) statistics and a layer has 11 features (limit 8)" in err
    _, _, values = _read_csv(tmp_path / "d" / "similarity.csv")
    mini = repsim.MinibatchCKA()
    for idx in torch.arange(24).tensor_split(4):
        mini.update({k: v[idx] for k, v in a.items()}, {k: v[idx] for k, v in b.items()})
    torch.testing.assert_close(values, mini.compute(), **TOL)


# ----------------------------------------------------------------------------- errors
def test_errors():
    a, b = make_layers(10, 0)
    x, y = a["conv1"], b["h1"]
    with pytest.raises(ValueError, match="measures: expected one or more of"):
        StreamingSimilarity(["linear_cka", "rbf_cka"])
    with pytest.raises(ValueError, match="measures: expected one or more of"):
        StreamingSimilarity([])
    with pytest.raises(ValueError, match="keep: expected"):
        StreamingSimilarity("svcca", keep=1.5)
    with pytest.raises(ValueError, match="epsilon: expected"):
        StreamingSimilarity("mean_cca", epsilon=-1.0)
    with pytest.raises(ValueError, match="max_features: expected a positive integer"):
        StreamingSimilarity(max_features=0)
    m = StreamingSimilarity(MEASURES)
    with pytest.raises(ValueError, match="before compute"):
        m.compute()
    with pytest.raises(ValueError, match="same number of samples"):
        m.update(x[:5], y[:4])
    with pytest.raises(ValueError, match="flatten_conv"):
        m.update(torch.zeros(8, 3, 2, 2, dtype=F64), y[:8])
    with pytest.raises(ValueError, match="both matrices or both"):
        m.update(a, y)
    with pytest.raises(ValueError, match="non-empty"):
        m.update({}, b)
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"x\['conv1'\]: expected finite values, got 1 NaN/Inf"):
        m.update({**a, "conv1": bad}, b)
    with pytest.raises(ValueError, match="expected finite values"):
        StreamingSimilarity().update(x, y.clone().fill_(float("inf")))
    m.update({k: v[:2] for k, v in a.items()}, {k: v[:2] for k, v in b.items()})
    with pytest.raises(ValueError, match="at least 4 samples"):
        m.compute()  # the debiased estimator needs n >= 4
    with pytest.raises(ValueError, match=r"expected layers \['conv1', 'conv2', 'fc'\]"):
        m.update({"conv1": x}, b)
    with pytest.raises(ValueError, match="a single"):
        m.update(x, y)
    with pytest.raises(ValueError, match=r"expected the layer widths \[6, 11, 2, 9, 4\]"):
        m.update({**a, "fc": x[:, :3]}, b)
    with pytest.raises(ValueError, match="merge: expected a StreamingSimilarity"):
        m.merge(repsim.MinibatchCKA())
    other = StreamingSimilarity(MEASURES)
    other.update(x, y)
    with pytest.raises(ValueError, match="as before"):
        m.merge(other)
    assert m.n_samples_ == 2  # failed calls leave the state alone
    with pytest.raises(ValueError, match="zero variance"):
        const = StreamingSimilarity()
        const.update(x, torch.ones(10, 3, dtype=F64))
        const.update(x, torch.ones(10, 3, dtype=F64))
        const.compute()
    with pytest.raises(ValueError, match=r"identical\) in \[\"y\['h2'\]\"\]"):
        const = StreamingSimilarity()
        const.update({"c1": x[:4]}, {"h2": torch.full((4, 2), 3.0, dtype=F64)})
        const.update({"c1": x[4:]}, {"h2": torch.full((6, 2), 3.0, dtype=F64)})
        const.compute()
    # samples that differ only between batches (or accumulators) do vary
    vary = StreamingSimilarity("procrustes")
    vary.update(x[:3], torch.ones(3, 2, dtype=F64))
    other_acc = StreamingSimilarity("procrustes")
    other_acc.update(x[3:6], torch.full((3, 2), 2.0, dtype=F64))
    ys = torch.cat([torch.ones(3, 2, dtype=F64), torch.full((3, 2), 2.0, dtype=F64)])
    torch.testing.assert_close(vary.merge(other_acc).compute()["procrustes"],
                               repsim.procrustes_distance(x[:6], ys), **TOL)


def test_too_wide_layers_point_to_minibatch_cka():
    m = StreamingSimilarity(max_features=16)
    with pytest.raises(ValueError, match=r"y\['wide'\] has 17 features, above max_features = 16"
                                         r".*repsim.MinibatchCKA"):
        m.update({"a": torch.randn(5, 4, dtype=F64)}, {"wide": torch.randn(5, 17, dtype=F64)})
    with pytest.raises(ValueError, match="x has 40000 features.*11.9 GiB.*MinibatchCKA"):
        StreamingSimilarity().update(torch.zeros(2, 40000), torch.zeros(2, 3))


@pytest.mark.filterwarnings("ignore:mean_cca. rank x . rank y")
def test_ill_posed_cca_warns_as_the_full_function():
    g = torch.Generator().manual_seed(23)
    x = torch.randn(12, 15, generator=g, dtype=F64)  # n <= d
    m = StreamingSimilarity("mean_cca")
    m.update(x[:5], x[:5, :4])
    m.update(x[5:], x[5:, :4])
    with pytest.warns(UserWarning, match="n = 12 samples <= 15 features"):
        value = m.compute()["mean_cca"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(value, repsim.mean_cca(x, x[:, :4]), **TOL)


# ------------------------------------------------------------------------------ benchmark
def test_benchmark_exactness_part_is_exact():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_streaming

    rows = bench_streaming.exactness(n=600, d=16)
    assert [r["measure"] for r in rows] == list(MEASURES)
    assert rows[0]["batches"] > 1
    assert max(r["abs_error"] for r in rows) < 1e-10
    x, y = bench_streaming.make_batch(3, batch_size=5, d=4)
    x2, _ = bench_streaming.make_batch(3, batch_size=5, d=4)
    assert x.shape == y.shape == (5, 4) and torch.equal(x, x2)  # seeded per batch
