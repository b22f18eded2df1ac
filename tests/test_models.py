"""Conv4: the MAML network, layer by layer."""
import pytest
import torch
from torch.func import functional_call

from meta.models import BODY_NAMES, LAYER_NAMES, Conv4


def test_omniglot_shapes_follow_the_contract():
    torch.manual_seed(0)
    model = Conv4.omniglot(20)
    x = torch.rand(6, 1, 28, 28)
    h = x
    sizes = []
    for name in BODY_NAMES:
        h = getattr(model, name)(h)
        sizes.append(tuple(h.shape[1:]))
    assert sizes == [(64, 14, 14), (64, 7, 7), (64, 4, 4), (64, 2, 2)]
    torch.testing.assert_close(model.features(x), h.mean(dim=(2, 3)), rtol=0, atol=0)
    assert model(x).shape == (6, 20)
    assert model.feature_dim == 64


def test_miniimagenet_shapes_follow_the_contract():
    torch.manual_seed(0)
    model = Conv4.miniimagenet(5)
    x = torch.rand(2, 3, 84, 84)
    h = x
    sizes = []
    for name in BODY_NAMES:
        h = getattr(model, name)(h)
        sizes.append(tuple(h.shape[1:]))
    assert sizes == [(32, 42, 42), (32, 21, 21), (32, 10, 10), (32, 5, 5)]
    assert model.feature_dim == 800
    torch.testing.assert_close(model.features(x), h.flatten(1), rtol=0, atol=0)
    assert isinstance(model.conv1[3], torch.nn.MaxPool2d)


def test_layer_names_and_parameter_names():
    model = Conv4(5, hidden=4)
    assert model.layer_names == LAYER_NAMES == ("conv1", "conv2", "conv3", "conv4", "head")
    names = [n for n, _ in model.named_parameters()]
    # no conv bias; batch norm with an offset and no scale (the MAML reference code)
    assert names[:3] == ["conv1.0.weight", "conv1.1.bias", "conv2.0.weight"]
    assert names[-2:] == ["head.weight", "head.bias"]
    assert model.conv1[0].stride == (2, 2) and model.conv1[0].padding == (1, 1)


def test_batch_norm_always_uses_batch_statistics():
    torch.manual_seed(0)
    model = Conv4(3, hidden=4).double()
    assert list(model.buffers()) == []            # track_running_stats=False: no running stats
    x = torch.rand(5, 1, 28, 28, dtype=torch.float64)
    train_out = model.train()(x)
    eval_out = model.eval()(x)
    torch.testing.assert_close(train_out, eval_out, rtol=0, atol=0)
    # Batch statistics: an example's output depends on the rest of the batch.
    assert not torch.allclose(model(x)[:2], model(x[:2]))


def test_features_only_matches_features_under_functional_call():
    torch.manual_seed(0)
    model = Conv4(3, hidden=4).double()
    params = {n: p * 1.5 for n, p in model.named_parameters()}
    x = torch.rand(4, 1, 28, 28, dtype=torch.float64)
    got = functional_call(model, params, (x,), {"features_only": True})
    logits = functional_call(model, params, (x,))
    torch.testing.assert_close(logits, got @ params["head.weight"].T + params["head.bias"])
    assert not torch.allclose(got, model.features(x))


@pytest.mark.parametrize("kw", [{"ways": 0}, {"ways": 3, "hidden": 0}, {"ways": 2.5}])
def test_bad_arguments_raise(kw):
    ways = kw.pop("ways")
    with pytest.raises(ValueError, match="expected a positive int"):
        Conv4(ways, **kw)


def test_batch_norm_offset_matches_a_hand_normalisation():
    torch.manual_seed(0)
    model = Conv4(3, hidden=4).double()
    with torch.no_grad():
        model.conv1[1].bias.copy_(torch.tensor([0.5, -1.0, 0.0, 2.0]))
    x = torch.rand(5, 1, 28, 28, dtype=torch.float64)
    h = model.conv1[0](x)
    mean, var = h.mean(dim=(0, 2, 3), keepdim=True), h.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    want = torch.relu((h - mean) / torch.sqrt(var + 1e-3) + model.conv1[1].bias.view(1, -1, 1, 1))
    torch.testing.assert_close(model.conv1(x), want)


def test_initialisation_follows_the_reference_code():
    torch.manual_seed(0)
    omni, mini = Conv4.omniglot(20), Conv4.miniimagenet(5)
    # Glorot-uniform convolutions: bound sqrt(6 / (fan_in + fan_out)), fan = channels * 9
    bound = (6 / (64 * 9 + 64 * 9)) ** 0.5
    w = omni.conv2[0].weight.detach()
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.9 * bound
    # Omniglot head: standard normal; MiniImageNet head: Glorot-uniform; zero biases
    assert 0.8 < float(omni.head.weight.detach().std()) < 1.2
    assert float(mini.head.weight.detach().abs().max()) <= (6 / (800 + 5)) ** 0.5
    assert float(omni.head.bias.detach().abs().max()) == 0 and float(omni.conv1[1].bias.detach().abs().max()) == 0
    glorot = Conv4(20, head_init="glorot")
    assert float(glorot.head.weight.detach().abs().max()) <= (6 / (64 + 20)) ** 0.5
    with pytest.raises(ValueError, match="head_init"):
        Conv4(5, head_init="zeros")


def test_zero_head_takes_a_prototype_step_first():
    # From a zero head every class scores 0 and p = 1/ways; one inner step on the reference loss
    # (sum_i CE_i / shots) moves row c by lr / shots * sum_i (y_ic - 1/ways) f_i, so the query
    # logits become lr / shots * (f_q . s_c - mean_k f_q . s_k), s_c the sum of class c's features.
    from meta.algos._functional import adapt_head, body_features, head_logits

    torch.manual_seed(0)
    ways, shots, lr = 4, 2, 0.3
    model = Conv4(ways, hidden=8, image_size=28, head_init="zero")
    params = {n: p.detach() for n, p in model.named_parameters()}
    assert float(params["head.weight"].abs().sum()) == 0.0
    x, y = torch.randn(ways * shots, 1, 28, 28), torch.arange(ways).repeat_interleave(shots)
    query = torch.randn(6, 1, 28, 28)
    support, feats = body_features(model, params, x), body_features(model, params, query)
    head = adapt_head(params, support, y, steps=1, lr=lr, first_order=True)
    sums = torch.stack([support[y == c].sum(0) for c in range(ways)])    # (ways, d)
    dots = feats @ sums.T                                                # (6, ways)
    expected = lr / shots * (dots - dots.mean(1, keepdim=True))
    torch.testing.assert_close(head_logits(head, feats), expected, rtol=1e-4, atol=1e-4)
    assert float(head["head.bias"].abs().max()) < 1e-6      # balanced classes: no bias step
