"""MinibatchCKA: agreement with linear_cka and with a hand-summed numpy reference, merge,
dict form, a real two-process gloo all-reduce, and every error path."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from repsim._cka import linear_cka
from repsim._minibatch import MinibatchCKA

from _reference import np_hsic_song

F64 = torch.float64


def make_layers(n: int, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Two 'models' with related layers of different widths (one wider than the batch)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 6, generator=g, dtype=F64)
    w = torch.randn(6, 40, generator=g, dtype=F64)
    a = {"conv1": z + 1.0, "conv2": torch.tanh(z @ w), "fc": z[:, :2] ** 2}
    b = {"h1": torch.relu(z @ w[:, :9]) + 0.1 * torch.randn(n, 9, generator=g, dtype=F64),
         "h2": torch.randn(n, 5, generator=g, dtype=F64) + z[:, 3:4]}
    return a, b


def batches(n_batches: int, size: int, seed: int = 0):
    return [make_layers(size, seed + i) for i in range(n_batches)]


@pytest.mark.parametrize("n, d", [(200, 7), (12, 40)])  # feature form and gram form (n < d)
def test_one_batch_equals_debiased_linear_cka(n, d):
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, d, generator=g, dtype=F64)
    y = torch.tanh(x[:, :3] @ torch.randn(3, d + 5, generator=g, dtype=F64)) + 0.5 * torch.randn(
        n, d + 5, generator=g, dtype=F64)
    m = MinibatchCKA()
    m.update(x, y)
    got = m.compute()
    assert got.shape == () and got.dtype == F64
    torch.testing.assert_close(got, linear_cka(x, y, debiased=True), rtol=1e-12, atol=1e-14)
    assert m.layers_a is None and m.n_batches_ == 1 and m.n_samples_ == n


def test_several_batches_equal_hand_sum_and_memory_is_constant():
    m = MinibatchCKA()
    sums = np.zeros(3)
    shapes = set()
    for i in range(5):
        a, b = make_layers(16 + 3 * i, seed=i)  # batch sizes differ between batches: allowed
        x, y = a["conv2"].numpy(), b["h1"].numpy()
        m.update(x, y)
        k, l = x @ x.T, y @ y.T
        sums += [np_hsic_song(k, l), np_hsic_song(k, k), np_hsic_song(l, l)]
        shapes.add((tuple(m.hsic_xy_.shape), tuple(m.hsic_xx_.shape), tuple(m.hsic_yy_.shape)))
    assert shapes == {((1, 1), (1,), (1,))}  # state does not grow with the number of batches
    expected = sums[0] / np.sqrt(sums[1] * sums[2])
    assert float(m.compute()) == pytest.approx(expected, rel=1e-10)
    assert m.n_batches_ == 5 and m.n_samples_ == sum(16 + 3 * i for i in range(5))
    # and it is not simply the mean of the per-batch CKAs
    per_batch = []
    for i in range(5):
        a, b = make_layers(16 + 3 * i, seed=i)
        k, l = a["conv2"].numpy() @ a["conv2"].numpy().T, b["h1"].numpy() @ b["h1"].numpy().T
        per_batch.append(np_hsic_song(k, l) / np.sqrt(np_hsic_song(k, k) * np_hsic_song(l, l)))
    assert abs(float(m.compute()) - float(np.mean(per_batch))) > 1e-3


def test_dict_form_equals_per_pair_single_form():
    data = batches(4, 24)
    whole = MinibatchCKA()
    for a, b in data:
        whole.update(a, b)
    got = whole.compute()
    assert got.shape == (3, 2)
    assert whole.layers_a == ["conv1", "conv2", "fc"] and whole.layers_b == ["h1", "h2"]
    for i, la in enumerate(whole.layers_a):
        for j, lb in enumerate(whole.layers_b):
            single = MinibatchCKA()
            for a, b in data:
                single.update(a[la], b[lb])
            assert float(got[i, j]) == pytest.approx(float(single.compute()), rel=1e-12)
    assert float(got.min()) < 0.9  # the layers are not all alike


def test_merge_equals_one_accumulator_over_all_batches():
    data = batches(6, 20, seed=10)
    whole, first, second = MinibatchCKA(), MinibatchCKA(), MinibatchCKA()
    for i, (a, b) in enumerate(data):
        whole.update(a, b)
        (first if i < 2 else second).update(a, b)
    merged = MinibatchCKA().merge(first).merge(second)  # merging into an empty one copies
    torch.testing.assert_close(merged.compute(), whole.compute(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(merged.hsic_xy_, whole.hsic_xy_, rtol=1e-12, atol=1e-14)
    assert merged.n_batches_ == 6 and merged.n_samples_ == 120
    assert first.n_batches_ == 2  # merge does not touch its argument
    first.merge(second)
    torch.testing.assert_close(first.compute(), whole.compute(), rtol=1e-12, atol=1e-14)


def test_reset_and_float32():
    data = batches(3, 30, seed=20)
    m64, m32 = MinibatchCKA(), MinibatchCKA(dtype=torch.float32, device="cpu")
    for a, b in data:
        m64.update(a, b)
        m32.update({k: v.float() for k, v in a.items()}, {k: v.float() for k, v in b.items()})
    assert m32.compute().dtype == F64
    torch.testing.assert_close(m32.compute(), m64.compute(), rtol=0, atol=1e-4)  # float32 per batch
    m64.reset()
    assert m64.hsic_xy_ is None and m64.n_batches_ == 0 and m64.layers_a is None
    with pytest.raises(ValueError, match="before compute"):
        m64.compute()


# ----------------------------------------------------------------------------- distributed
def _rank_main(rank: int, world: int, init_file: str, shards, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        m = MinibatchCKA()
        for a, b in shards[rank]:
            m.update(a, b)
        m.all_reduce()
        torch.save({"cka": m.compute(), "n_batches": m.n_batches_, "n_samples": m.n_samples_},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_all_reduce_over_two_gloo_processes_equals_single_process(tmp_path: Path):
    data = batches(5, 16, seed=30)
    shards = [data[:2], data[2:]]  # uneven shards on purpose
    single = MinibatchCKA()
    for a, b in data:
        single.update(a, b)
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), shards, str(tmp_path)),
             nprocs=2, join=True)
    for rank in range(2):
        out = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(out["cka"], single.compute(), rtol=1e-12, atol=1e-14)
        assert out["n_batches"] == 5 and out["n_samples"] == 80


def test_all_reduce_without_process_group():
    m = MinibatchCKA()
    m.update(*make_layers(8, 0))
    with pytest.raises(RuntimeError, match="not initialised"):
        m.all_reduce()


# ----------------------------------------------------------------------------- errors
def test_errors():
    a, b = make_layers(10, 0)
    m = MinibatchCKA()
    with pytest.raises(ValueError, match="at least 4 samples"):
        m.update(a["conv1"][:3], b["h1"][:3])
    with pytest.raises(ValueError, match="flatten_conv"):
        m.update(torch.zeros(8, 3, 2, 2, dtype=F64), b["h1"][:8])
    with pytest.raises(ValueError, match="both matrices or both"):
        m.update(a, b["h1"])
    with pytest.raises(ValueError, match="same batch size"):
        m.update({"p": a["conv1"], "q": a["conv2"][:9]}, b)
    nan = a["conv1"].clone()
    nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        m.update(nan, b["h1"])
    with pytest.raises(ValueError, match="non-empty"):
        m.update({}, b)
    assert m.hsic_xy_ is None  # failed updates leave no state behind
    m.update(a, b)
    with pytest.raises(ValueError, match="as before"):
        m.update({"conv1": a["conv1"]}, b)
    with pytest.raises(ValueError, match="as before"):
        m.update(a["conv1"], b["h1"])
    other = MinibatchCKA()
    other.update({"x": a["conv1"]}, b)
    with pytest.raises(ValueError, match="as before"):
        m.merge(other)
    with pytest.raises(ValueError, match="expected a MinibatchCKA"):
        m.merge("nope")
    const = MinibatchCKA()
    const.update(torch.ones(8, 3, dtype=F64), b["h1"][:8])
    with pytest.raises(ValueError, match="positive summed self-HSIC"):
        const.compute()
