"""Per-task objectives: second-order meta-gradient, first order, ANIL fast path, NIL, regimes."""
import math
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from meta.algorithms import (
    META_ALGORITHMS, fresh_head, meta_loss, multiclass_loss, multitask_loss, nil_logits, nil_loss,
    predict, task_loss, eval_setup,
)
from meta.algos._functional import query_logits
from meta.inner import adapt, all_params, head_only
from meta.models import Conv4


class Task(NamedTuple):   # the meta.data.Task layout
    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor


def _setup(seed=0, ways=2, shots=2, query=2, hidden=3, size=8):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = Conv4(ways, hidden=hidden, image_size=size).double()
    params = {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}
    task = Task(torch.rand(ways * shots, 1, size, size, generator=g, dtype=torch.float64),
                torch.arange(ways).repeat(shots),
                torch.rand(ways * query, 1, size, size, generator=g, dtype=torch.float64),
                torch.arange(ways).repeat(query))
    return model, params, task


def _grads(loss, params):
    return dict(zip(params, torch.autograd.grad(loss, list(params.values()), allow_unused=True)))


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "anil"])
def test_meta_gradient_reaches_every_parameter(algorithm):
    model, params, task = _setup(ways=3, hidden=4, size=12)
    spec = META_ALGORITHMS[algorithm]
    loss, acc = meta_loss(model, params, task, trainable=spec.trainable,
                          first_order=spec.first_order, steps=2, lr=0.2)
    assert 0 <= float(acc) <= 1
    for k, g in _grads(loss, params).items():
        assert g is not None and float(g.abs().sum()) > 0, k


def test_second_order_meta_gradient_matches_finite_differences():
    model, params, task = _setup(1)

    def objective(p):
        return meta_loss(model, p, task, trainable=all_params, first_order=False, steps=2, lr=0.3)[0]

    grads = _grads(objective(params), params)
    g = torch.Generator().manual_seed(0)
    eps = 1e-6
    with torch.no_grad():
        for k in params:   # one random direction inside each parameter tensor
            v = torch.randn(params[k].shape, generator=g, dtype=torch.float64)
            plus = {**params, k: params[k] + eps * v}
            minus = {**params, k: params[k] - eps * v}
            with torch.enable_grad():
                numeric = (objective(plus) - objective(minus)).detach() / (2 * eps)
            torch.testing.assert_close(numeric, (grads[k] * v).sum(), rtol=1e-5, atol=1e-8)


def test_first_order_is_the_query_gradient_at_the_adapted_point_and_differs_from_maml():
    model, params, task = _setup(2)
    fo = _grads(meta_loss(model, params, task, trainable=all_params, first_order=True,
                          steps=2, lr=0.3)[0], params)
    so = _grads(meta_loss(model, params, task, trainable=all_params, first_order=False,
                          steps=2, lr=0.3)[0], params)
    # Independent first-order gradient: adapt, cut the graph, differentiate the query loss.
    fast = {k: v.detach().requires_grad_() for k, v in
            adapt(model, params, task.support_x, task.support_y, steps=2, lr=0.3).items()}
    ref = _grads(F.cross_entropy(functional_call(model, fast, (task.query_x,)), task.query_y), fast)
    for k in params:
        torch.testing.assert_close(fo[k], ref[k], rtol=1e-10, atol=1e-12)
    gap = max(float((fo[k] - so[k]).abs().max()) for k in params)
    assert gap > 1e-4


@pytest.mark.parametrize("first_order", [False, True])
def test_anil_fast_path_equals_general_path(first_order):
    model, params, task = _setup(3, ways=3, hidden=4, size=12)
    kw = dict(trainable=head_only, first_order=first_order, steps=3, lr=0.4)
    fast_loss, fast_acc = meta_loss(model, params, task, fast=True, **kw)
    slow_loss, slow_acc = meta_loss(model, params, task, fast=False, **kw)
    torch.testing.assert_close(fast_loss, slow_loss, rtol=1e-12, atol=1e-12)
    assert float(fast_acc) == float(slow_acc)
    g_fast, g_slow = _grads(fast_loss, params), _grads(slow_loss, params)
    for k in params:
        torch.testing.assert_close(g_fast[k], g_slow[k], rtol=1e-9, atol=1e-12)


def test_every_block_frozen_takes_the_head_only_path_with_the_same_logits():
    # Table 1's all-frozen evaluation: only the head adapts, so predict runs the body once on
    # the support set and once on the query set instead of once per step, and gives the very
    # logits of the general path.
    from meta.inner import freeze_blocks, without_norm

    model, params, task = _setup(4, ways=3, hidden=4, size=12)
    params = {k: v.detach() for k, v in params.items()}
    frozen = without_norm(freeze_blocks((1, 2, 3, 4)))
    calls = []
    model.conv1.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    got = predict(model, params, task, trainable=frozen, steps=5, lr=0.4)
    assert calls == [len(task.support_y), len(task.query_y)]
    calls.clear()
    want = query_logits(model, params, task, trainable=frozen, first_order=True, steps=5, lr=0.4,
                        fast=False, reduction="sum")
    assert len(calls) == 6                                  # 5 support passes and the query
    assert torch.equal(got, want.detach())
    # conv4 adapting too: the general path
    calls.clear()
    predict(model, params, task, trainable=without_norm(freeze_blocks((1, 2, 3))), steps=5, lr=0.4)
    assert len(calls) == 6


def test_nil_logits_match_a_hand_computation_on_a_two_way_toy():
    support = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]], dtype=torch.float64)
    support_y = torch.tensor([0, 1, 0])
    query = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    # cosines of (0.6, 0.8) with (1, 0), (0, 1), (1, 1)/sqrt(2)
    c = [0.6, 0.8, 1.4 / math.sqrt(2)]
    z = sum(math.exp(v) for v in c)
    p0 = (math.exp(c[0]) + math.exp(c[2])) / z
    p1 = math.exp(c[1]) / z
    got = nil_logits(support, support_y, query, 2)
    torch.testing.assert_close(got, torch.log(torch.tensor([[p0, p1]], dtype=torch.float64)))
    # Cosine: invariant to rescaling any feature vector, not to shifting all of them.
    torch.testing.assert_close(nil_logits(support * torch.tensor([[2.0], [0.5], [7.0]],
                                          dtype=torch.float64), support_y, 3 * query, 2), got)
    assert not torch.allclose(nil_logits(support + 1, support_y, query + 1, 2), got)


def test_nil_logits_rows_are_log_probabilities_and_bad_input_raises():
    g = torch.Generator().manual_seed(0)
    s, q = torch.randn(10, 7, generator=g, dtype=torch.float64), torch.randn(4, 7, generator=g, dtype=torch.float64)
    out = nil_logits(s, torch.arange(10) % 5, q, 5)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="same width"):
        nil_logits(s, torch.arange(10) % 5, q[:, :3], 5)
    with pytest.raises(ValueError, match="support_y: expected shape"):
        nil_logits(s, torch.arange(9) % 5, q, 5)


def _hand_ce(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Mean cross-entropy written out: -log(exp(z_y) / sum_c exp(z_c))."""
    z = logits.detach().double()
    return float(sum(-(z[i, y[i]] - torch.log(torch.exp(z[i]).sum())) for i in range(len(y))) / len(y))


def test_nil_and_multitask_and_multiclass_losses_equal_hand_computations():
    model, params, task = _setup(4, ways=3, hidden=4, size=12)
    # Independent forward: the module itself, loaded with the same parameters.
    copy = type(model)(3, hidden=4, image_size=12).double()
    copy.load_state_dict({k: v.detach() for k, v in params.items()})
    with torch.no_grad():
        fs, fq = copy.features(task.support_x), copy.features(task.query_x)
        logits_q = copy(task.query_x)
    # NIL: p(c|q) = sum_j softmax_j(cos(q, s_j)) [y_j == c], by loops
    hand = 0.0
    for i in range(len(fq)):
        cos = torch.stack([torch.dot(fq[i], fs[j]) / (fq[i].norm() * fs[j].norm())
                           for j in range(len(fs))])
        w = torch.exp(cos) / torch.exp(cos).sum()
        hand -= float(torch.log(w[task.support_y == task.query_y[i]].sum())) / len(fq)
    loss, _ = nil_loss(model, params, task, ways=3)
    assert float(loss.detach()) == pytest.approx(hand, rel=1e-10)
    assert _grads(loss, params)["head.weight"] is None          # NIL training has no head
    loss, _ = multitask_loss(model, params, task)                # no inner loop, query labels
    assert float(loss.detach()) == pytest.approx(_hand_ce(logits_q, task.query_y), rel=1e-10)
    loss, acc = multiclass_loss(model, params, task.query_x, task.query_y)
    assert float(loss.detach()) == pytest.approx(_hand_ce(logits_q, task.query_y), rel=1e-10)
    assert float(acc) == pytest.approx(float((logits_q.argmax(1) == task.query_y).double().mean()))
    with pytest.raises(ValueError, match="algorithm: expected one of"):
        task_loss(model, params, task, algorithm="multiclass", steps=1, lr=0.1, ways=3)


def test_test_setup_and_predict():
    model, params, task = _setup(5, ways=3, hidden=4, size=12)
    p, trainable = eval_setup("multiclass", params, 3)
    assert float(p["head.weight"].abs().sum()) == 0 and trainable is head_only
    names = list(params)
    maml = eval_setup("maml", params, 3)[1]
    # MAML adapts every weight but the batch-norm offsets (the reference code), unless asked
    assert [n for n in names if maml(n)] == [n for n in names if ".1." not in n]
    assert eval_setup("maml", params, 3, adapt_norm=True)[1] is all_params
    assert eval_setup("anil", params, 3)[1] is head_only
    frozen = eval_setup("maml", params, 3, freeze=(1, 2))[1]
    assert [n for n in names if frozen(n)] == ["conv3.0.weight", "conv4.0.weight", "head.weight",
                                                "head.bias"]
    wide = fresh_head(params, 7)
    assert wide["head.weight"].shape == (7, 4) and wide["conv1.0.weight"] is params["conv1.0.weight"]

    before = {k: v.detach().clone() for k, v in params.items()}
    logits = predict(model, params, task, head="maml", trainable=maml, steps=2, lr=0.3)
    # Independent: two SGD steps on a copy of the module with .backward(), reference units
    # (summed cross-entropy / shots), batch-norm offsets fixed.
    copy = type(model)(3, hidden=4, image_size=12).double()
    copy.load_state_dict({k: v.detach() for k, v in params.items()})
    for _ in range(2):
        copy.zero_grad()
        shots = len(task.support_y) // 3
        (F.cross_entropy(copy(task.support_x), task.support_y, reduction="sum") / shots).backward()
        with torch.no_grad():
            for n, p in copy.named_parameters():
                if ".1." not in n:
                    p -= 0.3 * p.grad
    torch.testing.assert_close(logits, copy(task.query_x).detach(), rtol=1e-10, atol=1e-10)
    nil = predict(model, params, task, head="nil", steps=0, lr=0.0)
    feats = lambda x: functional_call(model, params, (x,), {"features_only": True}).detach()
    torch.testing.assert_close(nil, nil_logits(feats(task.support_x), task.support_y,
                                               feats(task.query_x), 3))
    for k in params:
        torch.testing.assert_close(params[k].detach(), before[k], rtol=0, atol=0)
    with pytest.raises(ValueError, match="head: expected"):
        predict(model, params, task, head="proto", steps=1, lr=0.1)


def test_registry_lists_every_regime_and_unknown_names_are_errors():
    from meta.algorithms import ALGORITHMS
    from meta.algos import REGISTRY, Algorithm, get_algorithm

    assert ALGORITHMS == ("maml", "fomaml", "anil", "multiclass", "multitask", "random", "nil")
    assert all(isinstance(a, Algorithm) and a.name == name for name, a in REGISTRY.items())
    assert sorted(META_ALGORITHMS) == ["anil", "fomaml", "maml", "random"]
    with pytest.raises(ValueError, match=r"algorithm: expected one of \['maml', 'fomaml'.*'nil'\], "
                                         r"got 'reptile'"):
        get_algorithm("reptile")
    with pytest.raises(TypeError):
        REGISTRY["reptile"] = REGISTRY["maml"]          # read-only


def test_algorithm_objects_say_what_trains_and_what_adapts():
    from meta.algos import get_algorithm

    model, params, task = _setup(6, ways=3, hidden=4, size=12)
    names = list(params)
    head = [n for n in names if n.startswith("head.")]
    body = [n for n in names if not n.startswith("head.")]
    outer = {a: get_algorithm(a).outer_parameter_names(model) for a in ("maml", "random", "nil")}
    assert outer == {"maml": names, "random": head, "nil": body}
    assert get_algorithm("anil").inner_trainable() is head_only
    assert get_algorithm("maml").inner_trainable(adapt_norm=True) is all_params
    assert get_algorithm("fomaml").first_order and not get_algorithm("maml").first_order
    assert get_algorithm("nil").test_head == "nil" and get_algorithm("anil").test_head == "maml"
    assert [a for a in ("maml", "multiclass", "nil") if get_algorithm(a).episodic] == ["maml", "nil"]

    class Cfg(NamedTuple):
        ways: int = 3
        augment_rotations: bool = True

    class Classes:
        def __len__(self):
            return 11

    assert get_algorithm("multiclass").head_width(Cfg(), Classes()) == 11
    assert get_algorithm("anil").head_width(Cfg(), Classes()) == 3
    assert not get_algorithm("multiclass").rotates_tasks(Cfg()) and get_algorithm("maml").rotates_tasks(Cfg())
    # task_loss by name is the object's task_loss
    for name in ("maml", "anil", "nil", "multitask"):
        by_name = task_loss(model, params, task, algorithm=name, steps=1, lr=0.2, ways=3)
        by_object = get_algorithm(name).task_loss(model, params, task, steps=1, lr=0.2, ways=3)
    assert float(by_name[0].detach()) == float(by_object[0].detach())
    assert float(by_name[1].detach()) == float(by_object[1].detach())
