"""meta.analysis: pre/post similarity, weight change and cross-run similarity, checked by value."""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from meta.analysis import (
    MEASURES,
    AdaptSpec,
    _similarity,
    body_mean,
    layer_similarity,
    cross_run_similarity,
    pre_post_analysis,
    layer_activations,
    pre_post_similarity,
    weight_change,
)
from meta.inner import all_params, head_only
from meta.models import Conv4

LAYERS = ("conv1", "conv2", "conv3", "conv4", "head")


class _Task(NamedTuple):  # the meta.data Task contract, built by hand
    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor


def _tiny(seed: int = 0, ways: int = 3, hidden: int = 6) -> tuple[Conv4, dict]:
    torch.manual_seed(seed)
    model = Conv4(ways, in_channels=1, hidden=hidden, image_size=28).double()
    return model, dict(model.named_parameters())


def _tasks(n: int = 2, ways: int = 3, shots: int = 2, query: int = 4, seed: int = 1) -> list[_Task]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        sy = torch.arange(ways).repeat_interleave(shots)
        qy = torch.arange(ways).repeat_interleave(query)
        out.append(_Task(torch.rand(len(sy), 1, 28, 28, generator=g, dtype=torch.float64), sy,
                         torch.rand(len(qy), 1, 28, 28, generator=g, dtype=torch.float64), qy))
    return out


# ----------------------------------------------------------------- independent reference math
def _np_mean_cca(x: np.ndarray, y: np.ndarray) -> float:
    """Mean canonical correlation via QR of the centred data (Bjorck & Golub), numpy only."""
    def basis(a):
        a = a - a.mean(0)
        a = a[:, np.ptp(a, axis=0) > 0]          # dead ReLU channels: exactly constant columns
        q, r = np.linalg.qr(a)
        return q[:, np.abs(np.diag(r)) > 1e-10 * np.abs(np.diag(r)).max()]
    s = np.linalg.svd(basis(x).T @ basis(y), compute_uv=False)
    return float(np.clip(s, 0, 1).mean())


def _np_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA from centred Gram matrices (HSIC form), numpy only."""
    n = x.shape[0]
    h = np.eye(n) - 1.0 / n
    k, l = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float((k * l).sum() / (np.linalg.norm(k) * np.linalg.norm(l)))


def _norm(h: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Batch statistics, epsilon 1e-3, a per-channel offset and no scale (the MAML code's)."""
    mean = h.mean(dim=(0, 2, 3), keepdim=True)
    var = h.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (h - mean) / torch.sqrt(var + 1e-3) + offset.view(1, -1, 1, 1)


def _manual_forward(params: dict, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Conv4 (no pool) written out by hand: conv stride 2, batch-stat BN, ReLU; mean; linear."""
    out, h = {}, x
    for i in range(1, 5):
        h = F.conv2d(h, params[f"conv{i}.0.weight"], params.get(f"conv{i}.0.bias"), stride=2, padding=1)
        h = torch.relu(_norm(h, params[f"conv{i}.1.bias"]))
        out[f"conv{i}"] = h.detach()
    out["head"] = F.linear(h.mean((2, 3)), params["head.weight"], params["head.bias"]).detach()
    return out


def _manual_adapt(model, params: dict, task: _Task, *, lr: float, head_only_: bool) -> dict:
    """One plain SGD step on the support loss in the reference units (summed over the examples,
    divided by the shots), by hand."""
    p = {n: t.detach().clone().requires_grad_() for n, t in params.items()}
    logits = _manual_forward_grad(p, task.support_x)
    shots = len(task.support_y) // logits.shape[1]
    loss = F.cross_entropy(logits, task.support_y, reduction="sum") / shots
    names = [n for n in p if (n.startswith("head.") or not head_only_)]
    grads = torch.autograd.grad(loss, [p[n] for n in names])
    new = {n: t.detach() for n, t in p.items()}
    for n, g in zip(names, grads):
        new[n] = p[n].detach() - lr * g
    return new


def _manual_forward_grad(params: dict, x: torch.Tensor) -> torch.Tensor:
    h = x
    for i in range(1, 5):
        h = F.conv2d(h, params[f"conv{i}.0.weight"], params.get(f"conv{i}.0.bias"), stride=2, padding=1)
        h = torch.relu(_norm(h, params[f"conv{i}.1.bias"]))
    return F.linear(h.mean((2, 3)), params["head.weight"], params["head.bias"])


# ----------------------------------------------------------------- tests
def test_layer_activations_match_a_hand_written_forward():
    model, params = _tiny()
    x = _tasks(1)[0].query_x
    acts = layer_activations(model, params, x)
    ref = _manual_forward(params, x)
    assert list(acts) == list(LAYERS)
    for k in LAYERS:
        torch.testing.assert_close(acts[k], ref[k])


def test_zero_steps_gives_similarity_one_and_zero_weight_change():
    model, params = _tiny()
    tasks = _tasks(2)
    sim = pre_post_similarity(model, params, tasks, steps=0, lr=0.5)
    for m in ("cca", "cka"):
        assert set(sim[m]) == set(LAYERS)
        for k in LAYERS:
            assert sim[m][k] == pytest.approx(1.0, abs=1e-9), (m, k)
    wc = weight_change(model, params, tasks, steps=0, lr=0.5)
    assert wc == {k: 0.0 for k in LAYERS}


def test_anil_leaves_conv_weights_exactly_unchanged_and_conv_similarity_one():
    model, params = _tiny()
    tasks = _tasks(2)
    wc = weight_change(model, params, tasks, trainable=head_only, steps=3, lr=0.5)
    for k in LAYERS[:4]:
        assert wc[k] == 0.0
    assert wc["head"] > 1e-4
    sim = pre_post_similarity(model, params, tasks, trainable=head_only, steps=3, lr=0.5)
    for k in LAYERS[:4]:
        assert sim["cca"][k] == pytest.approx(1.0, abs=1e-9)
        assert sim["cka"][k] == pytest.approx(1.0, abs=1e-9)
    assert sim["cka"]["head"] < 1 - 1e-6   # the head did move


def test_pre_post_and_weight_change_agree_with_hand_computation():
    model, params = _tiny()
    tasks = _tasks(2)
    lr = 0.7
    sim = pre_post_similarity(model, params, tasks, trainable=all_params, steps=1, lr=lr)
    wc = weight_change(model, params, tasks, trainable=all_params, steps=1, lr=lr)
    ref_sim = {m: dict.fromkeys(LAYERS, 0.0) for m in ("cca", "cka")}
    ref_wc = dict.fromkeys(LAYERS, 0.0)
    for t in tasks:
        fast = _manual_adapt(model, params, t, lr=lr, head_only_=False)
        pre, post = _manual_forward(params, t.query_x), _manual_forward(fast, t.query_x)
        for k in LAYERS:
            a, b = pre[k].numpy(), post[k].numpy()
            if a.ndim == 4:
                chan_a = a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1])
                chan_b = b.transpose(0, 2, 3, 1).reshape(-1, b.shape[1])
            else:
                chan_a, chan_b = a, b
            ref_sim["cca"][k] += _np_mean_cca(chan_a, chan_b) / len(tasks)
            ref_sim["cka"][k] += _np_linear_cka(a.reshape(len(a), -1), b.reshape(len(b), -1)) / len(tasks)
            sq = sum(float(((fast[n] - params[n].detach()) ** 2).sum()) for n in params
                     if n.startswith(k + "."))
            ref_wc[k] += math.sqrt(sq) / len(tasks)
    for m in ("cca", "cka"):
        for k in LAYERS:
            assert sim[m][k] == pytest.approx(ref_sim[m][k], abs=1e-7), (m, k)
    for k in LAYERS:
        assert wc[k] == pytest.approx(ref_wc[k], rel=1e-9)
    assert all(v > 0 for v in wc.values())
    both = pre_post_analysis(model, params, tasks, trainable=all_params, steps=1, lr=lr)
    assert both == (sim, wc, {})  # one adaptation per task gives exactly the two separate results


def test_pre_post_chance_level_is_the_same_measure_on_shuffled_images():
    model, params = _tiny()
    tasks = _tasks(2)
    out = pre_post_analysis(model, params, tasks, trainable=all_params, steps=1, lr=0.7,
                            chance=True, seed=3)
    gen = torch.Generator().manual_seed(3)
    ref = {m: dict.fromkeys(LAYERS, 0.0) for m in ("cca", "cka")}
    for t in tasks:
        fast = _manual_adapt(model, params, t, lr=0.7, head_only_=False)
        pre, post = _manual_forward(params, t.query_x), _manual_forward(fast, t.query_x)
        order = torch.randperm(len(t.query_x), generator=gen)
        for k in LAYERS:
            a, b = pre[k].numpy(), post[k][order].numpy()
            ref["cka"][k] += _np_linear_cka(a.reshape(len(a), -1), b.reshape(len(b), -1)) / len(tasks)
    for k in LAYERS:
        assert out.chance["cka"][k] == pytest.approx(ref["cka"][k], abs=1e-7), k
        # unrelated rows are less similar than the same images before and after (the body; the
        # untrained head is replaced by one large step)
        assert k == "head" or out.chance["cka"][k] < out.similarity["cka"][k], k
        assert 0.0 <= out.chance["cca"][k] <= 1.0, k


def test_cross_run_similarity_structure_and_identities():
    model_a, params_a = _tiny(seed=0)
    model_b, params_b = _tiny(seed=5)
    tasks = _tasks(2)
    spec = AdaptSpec(all_params, 1, 0.5)
    out = cross_run_similarity(model_a, params_a, model_b, params_b, tasks,
                               adapt_a=spec, adapt_b=spec, layers=LAYERS)
    assert set(out) == {"pre_pre", "pre_post", "post_pre", "post_post", "a_pre_post", "b_pre_post"}
    # a run against itself, no adaptation: every comparison is 1
    same = cross_run_similarity(model_a, params_a, model_a, params_a, tasks)
    for key, d in same.items():
        for m in ("cca", "cka"):
            for k in LAYERS[:4]:
                assert d[m][k] == pytest.approx(1.0, abs=1e-9), (key, m, k)
    # (L1 pre, L1 post) equals the pre/post analysis of run a
    pp = pre_post_similarity(model_a, params_a, tasks, steps=1, lr=0.5)
    for m in ("cca", "cka"):
        for k in LAYERS:
            assert out["a_pre_post"][m][k] == pytest.approx(pp[m][k], abs=1e-12)
    # restricting the comparisons gives the same numbers for those computed
    only = cross_run_similarity(model_a, params_a, model_b, params_b, tasks, adapt_a=spec,
                                adapt_b=spec, layers=LAYERS, comparisons=("pre_pre", "post_post"))
    assert set(only) == {"pre_pre", "post_post"}
    for key in only:
        for m in ("cca", "cka"):
            for k in LAYERS:
                assert only[key][m][k] == pytest.approx(out[key][m][k], abs=1e-12)
    # two different seeds are less than identical
    assert body_mean(out["pre_pre"]["cka"]) < 0.999
    # symmetry: swapping the runs swaps pre_post and post_pre
    swapped = cross_run_similarity(model_b, params_b, model_a, params_a, tasks,
                                   adapt_a=spec, adapt_b=spec, layers=LAYERS)
    for m in ("cca", "cka"):
        for k in LAYERS:
            assert swapped["pre_post"][m][k] == pytest.approx(out["post_pre"][m][k], abs=1e-9)


def test_bad_input_raises():
    model, params = _tiny()
    tasks = _tasks(1)
    with pytest.raises(ValueError, match="tasks: expected at least one"):
        pre_post_similarity(model, params, [], steps=1, lr=0.1)
    with pytest.raises(ValueError, match="measures: expected"):
        pre_post_similarity(model, params, tasks, steps=1, lr=0.1, measures=("svcca",))
    with pytest.raises(ValueError, match="layers: expected"):
        weight_change(model, params, tasks, steps=1, lr=0.1, layers=("fc7",))
    with pytest.raises(ValueError, match="on: expected"):
        pre_post_similarity(model, params, tasks, steps=1, lr=0.1, on="support")
    with pytest.raises(ValueError, match="comparisons: expected"):
        cross_run_similarity(model, params, model, params, tasks, comparisons=("pre_mid",))
    with pytest.raises(ValueError, match="per_layer: expected"):
        body_mean({"head": 1.0})


def test_unknown_measure_is_an_error_everywhere_never_cka():
    model, params = _tiny()
    task = _tasks(1)[0]
    acts = layer_activations(model, params, task.query_x, layers=("conv1", "head"))
    assert MEASURES == ("cca", "cka")
    for measure in ("svcca", "CKA", "linear_cka"):
        with pytest.raises(ValueError, match=r"measures: expected .*'cca', 'cka'"):
            layer_similarity(acts, acts, measures=(measure,))
        with pytest.raises(ValueError, match=r"measure: expected one of \['cca', 'cka'\]"):
            _similarity(measure, acts["conv1"], acts["conv1"], epsilon=0.0)
    # the valid names still give the identity value
    assert _similarity("cka", acts["conv1"], acts["conv1"], epsilon=0.0) == pytest.approx(1.0)
