"""The inner loop: pure, lowers the support loss, trains exactly the selected parameters."""
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from meta.inner import adapt, all_params, freeze_blocks, head_only, inner_loss, without_norm
from meta.models import Conv4


def _setup(seed=0, ways=3, n=6):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = Conv4(ways, hidden=4, image_size=12).double()
    params = {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}
    x = torch.rand(n, 1, 12, 12, generator=g, dtype=torch.float64)
    y = torch.arange(n) % ways
    return model, params, x, y


def _loss(model, params, x, y):
    return float(F.cross_entropy(functional_call(model, params, (x,)), y).detach())


@pytest.mark.parametrize("trainable", [all_params, head_only, freeze_blocks((1, 2))])
def test_adapt_lowers_support_loss_and_leaves_input_untouched(trainable):
    model, params, x, y = _setup()
    before = {k: v.detach().clone() for k, v in params.items()}
    original = dict(params)
    fast = adapt(model, params, x, y, steps=5, lr=0.1, trainable=trainable)
    assert fast is not params
    assert _loss(model, fast, x, y) < _loss(model, params, x, y) - 1e-3
    assert params == original                     # same keys, same tensor objects
    for k in params:
        torch.testing.assert_close(params[k].detach(), before[k], rtol=0, atol=0)
        assert params[k].grad is None


def test_one_step_equals_plain_gradient_descent():
    model, params, x, y = _setup(1)
    # Independent: gradients through the module's own parameters and .backward().
    with torch.no_grad():
        for k, p in model.named_parameters():
            p.copy_(params[k])
    F.cross_entropy(model(x), y).backward()
    fast = adapt(model, params, x, y, steps=1, lr=0.3, reduction="mean")
    for k, p in model.named_parameters():
        torch.testing.assert_close(fast[k].detach(), p.detach() - 0.3 * p.grad, rtol=1e-12, atol=1e-12)


def test_reference_reduction_is_the_summed_loss_over_shots():
    # The MAML reference code's inner loss: per-example cross-entropy / shots, summed over the
    # ways * shots support examples; one step of lr on it is ways times the step on the mean.
    model, params, x, y = _setup(1, ways=3, n=6)            # 3 ways, 2 shots
    logits = functional_call(model, {k: v.detach() for k, v in params.items()}, (x,))
    per_example = -torch.log_softmax(logits, 1)[torch.arange(6), y]
    torch.testing.assert_close(inner_loss(logits, y, reduction="sum"), per_example.sum() / 2)
    torch.testing.assert_close(inner_loss(logits, y, reduction="mean"), per_example.mean())
    with torch.no_grad():
        for k, p in model.named_parameters():
            p.copy_(params[k])
    (F.cross_entropy(model(x), y, reduction="none") / 2).sum().backward()
    fast = adapt(model, params, x, y, steps=1, lr=0.1)                 # default: reference units
    mean = adapt(model, params, x, y, steps=1, lr=0.3, reduction="mean")
    for k, p in model.named_parameters():
        torch.testing.assert_close(fast[k].detach(), p.detach() - 0.1 * p.grad, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(fast[k].detach(), mean[k].detach(), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="reduction: expected"):
        adapt(model, params, x, y, steps=1, lr=0.1, reduction="max")


def test_without_norm_keeps_batch_norm_offsets_fixed():
    model, params, x, y = _setup(6)
    fast = adapt(model, params, x, y, steps=2, lr=0.5, trainable=without_norm(all_params))
    for k in params:
        if ".1." in k:                                     # conv{i}.1.bias: the offsets
            assert fast[k] is params[k], k
        else:
            assert not torch.equal(fast[k], params[k]), k
    assert without_norm(head_only) is head_only


def test_head_only_leaves_body_bit_identical():
    model, params, x, y = _setup(2)
    fast = adapt(model, params, x, y, steps=3, lr=0.5, trainable=head_only)
    for k in params:
        if k.startswith("head."):
            assert not torch.equal(fast[k], params[k])
        else:
            assert fast[k] is params[k]


@pytest.mark.parametrize("blocks", [(1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), (2, 4)])
def test_freezing_keeps_exactly_the_frozen_layers_fixed(blocks):
    model, params, x, y = _setup(3)
    fast = adapt(model, params, x, y, steps=2, lr=0.5, trainable=freeze_blocks(blocks))
    for k in params:
        layer = k.split(".")[0]
        frozen = layer != "head" and int(layer[-1]) in blocks
        if frozen:
            torch.testing.assert_close(fast[k], params[k], rtol=0, atol=0)
        else:
            assert not torch.equal(fast[k], params[k]), k


def test_freeze_blocks_predicate_and_errors():
    keep = freeze_blocks([3, 1, 2])
    assert [keep(n) for n in ("conv1.0.weight", "conv3.1.bias", "conv4.0.weight", "head.bias")] == [
        False, False, True, True]
    assert all(freeze_blocks(())(n) for n in ("conv1.0.weight", "head.weight"))
    with pytest.raises(ValueError, match="expected block numbers in 1..4"):
        freeze_blocks((0, 5))


def test_first_order_detaches_the_inner_gradients():
    model, params, x, y = _setup(4)
    second = adapt(model, params, x, y, steps=2, lr=0.1)
    first = adapt(model, params, x, y, steps=2, lr=0.1, first_order=True)
    for k in params:
        torch.testing.assert_close(first[k], second[k])     # same values ...
    # ... but d(fast)/d(params) is the identity for first order: the gradient of sum(fast[k])
    # with respect to params[k] is all ones.
    k = "conv2.0.weight"
    g_first, = torch.autograd.grad(first[k].sum(), params[k], retain_graph=True)
    g_second, = torch.autograd.grad(second[k].sum(), params[k])
    torch.testing.assert_close(g_first, torch.ones_like(g_first), rtol=0, atol=0)
    assert not torch.allclose(g_second, torch.ones_like(g_second))


def test_adapt_works_on_detached_parameters_under_no_grad():
    model, params, x, y = _setup(5)
    detached = {k: v.detach() for k, v in params.items()}
    with torch.no_grad():
        fast = adapt(model, detached, x, y, steps=2, lr=0.1, first_order=True)
    assert _loss(model, fast, x, y) < _loss(model, detached, x, y)
    assert all(not v.requires_grad for v in detached.values())


def test_bad_steps_and_empty_selection_raise():
    model, params, x, y = _setup()
    with pytest.raises(ValueError, match="non-negative int"):
        adapt(model, params, x, y, steps=-1, lr=0.1)
    with pytest.raises(ValueError, match="at least one"):
        adapt(model, params, x, y, steps=1, lr=0.1, trainable=lambda n: False)
    same = adapt(model, params, x, y, steps=0, lr=0.1)
    assert same == params and same is not params
