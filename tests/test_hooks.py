"""Tests for repsim._hooks: record_activations and flatten_conv."""
from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from repsim._hooks import flatten_conv, record_activations

DT = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(6 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv2(self.conv1(x)).flatten(1))


def _all_hooks_removed(model: nn.Module) -> bool:
    return all(len(m._forward_hooks) == 0 for m in model.modules())


@pytest.fixture
def convnet() -> ConvNet:
    torch.manual_seed(0)
    return ConvNet().to(DT)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(5, 1, 8, 8, generator=_gen(1), dtype=DT)


# ---------------------------------------------------------------- record_activations: values


def test_conv_net_values_equal_manual_forward(convnet, images):
    layers = ["conv1", "conv1.0", "conv2", "conv2.1", "head"]
    with record_activations(convnet, layers) as acts:
        out = convnet(images)
    c1_pre = convnet.conv1[0](images)
    c1 = convnet.conv1(images)
    c2 = convnet.conv2(c1)
    assert list(acts) == ["conv1.0", "conv1", "conv2.1", "conv2", "head"]  # order of execution
    assert_close(acts["conv1.0"], c1_pre, rtol=0, atol=0)
    assert_close(acts["conv1"], c1, rtol=0, atol=0)
    assert_close(acts["conv2.1"], convnet.conv2[1](convnet.conv2[0](c1)), rtol=0, atol=0)
    assert_close(acts["conv2"], c2, rtol=0, atol=0)
    assert_close(acts["head"], out, rtol=0, atol=0)
    assert acts["conv2"].shape == (5, 6, 4, 4)


def test_transformer_encoder_layers_equal_manual_forward():
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        d_model=16, nhead=4, dim_feedforward=32, dropout=0.0, batch_first=True
    )
    enc = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).to(DT).eval()
    x = torch.randn(3, 7, 16, generator=_gen(2), dtype=DT)
    with record_activations(enc, ["layers.0", "layers.1"]) as acts:
        out = enc(x)
    h0 = enc.layers[0](x)
    h1 = enc.layers[1](h0)
    assert_close(acts["layers.0"], h0)
    assert_close(acts["layers.1"], h1)
    assert_close(acts["layers.1"], out)
    # the two layers really differ, so the comparison above is not vacuous
    assert (acts["layers.0"] - acts["layers.1"]).abs().max() > 1e-3


class LSTMNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 8, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


def test_lstm_tuple_output_gives_output_tensor_and_select_overrides():
    torch.manual_seed(0)
    net = LSTMNet().to(DT)
    x = torch.randn(3, 5, 4, generator=_gen(3), dtype=DT)
    with record_activations(net, ["lstm"]) as acts:
        net(x)
    output, (h_n, _) = net.lstm(x)
    assert acts["lstm"].shape == (3, 5, 8)
    assert_close(acts["lstm"], output)
    with record_activations(net, "lstm", select=lambda o: o[1][0]) as acts2:
        net(x)
    assert acts2["lstm"].shape == (1, 3, 8)
    assert_close(acts2["lstm"], h_n)


class DictOut(nn.Module):
    Pair = namedtuple("Pair", ["meta", "value"])

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor):  # noqa: ANN201 - deliberately odd output
        return {"info": "text", "out": self.Pair(meta=None, value=[self.lin(x), x])}


def test_nested_dict_and_namedtuple_output_first_tensor():
    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = DictOut()

        def forward(self, x):
            return self.block(x)["out"].value[0]

    torch.manual_seed(0)
    net = Wrap().to(DT)
    x = torch.randn(4, 3, generator=_gen(4), dtype=DT)
    with record_activations(net, ["block"]) as acts:
        y = net(x)
    assert_close(acts["block"], y, rtol=0, atol=0)


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.tanh(self.lin(x)))


def test_module_called_twice_last_all_concat():
    torch.manual_seed(0)
    net = Twice().to(DT)
    x = torch.randn(4, 3, generator=_gen(5), dtype=DT)
    first = net.lin(x)
    second = net.lin(torch.tanh(first))
    with record_activations(net, ["lin"], calls="last") as last:
        net(x)
    with record_activations(net, ["lin"], calls="all") as every:
        net(x)
    with record_activations(net, ["lin"], calls="concat") as cat:
        net(x)
    assert_close(last["lin"], second, rtol=0, atol=0)
    assert isinstance(every["lin"], list) and len(every["lin"]) == 2
    assert_close(every["lin"][0], first, rtol=0, atol=0)
    assert_close(every["lin"][1], second, rtol=0, atol=0)
    assert cat["lin"].shape == (8, 3)
    assert_close(cat["lin"], torch.cat([first, second]), rtol=0, atol=0)


def test_last_over_several_forwards_keeps_last_and_concat_stacks_batches(convnet, images):
    a, b = images[:2], images[2:]
    with record_activations(convnet, ["head"]) as last:
        convnet(a)
        convnet(b)
    with record_activations(convnet, ["head"], calls="concat") as cat:
        convnet(a)
        convnet(b)
    assert_close(last["head"], convnet(b), rtol=0, atol=0)
    assert_close(cat["head"], convnet(images))


def test_concat_mismatched_shapes_raises():
    net = nn.Sequential(nn.Flatten())
    with pytest.raises(ValueError, match="concat"):
        with record_activations(net, ["0"], calls="concat"):
            net(torch.zeros(2, 3, 4))
            net(torch.zeros(2, 5))


# ------------------------------------------------------ record_activations: hooks and errors


def test_hooks_removed_after_exit_and_after_exception(convnet, images):
    with record_activations(convnet, ["conv1", "conv2.0", "head"]) as acts:
        assert len(convnet.conv1._forward_hooks) == 1  # installed while inside
        convnet(images)
    assert _all_hooks_removed(convnet)
    saved = acts["head"].clone()
    convnet(images * 2)  # nothing is recorded after the block
    assert_close(acts["head"], saved, rtol=0, atol=0)

    with pytest.raises(RuntimeError, match="boom"):
        with record_activations(convnet, ["conv1", "head"]):
            convnet(images)
            raise RuntimeError("boom")
    assert _all_hooks_removed(convnet)


def test_exception_inside_block_is_not_masked_by_never_fired_check(convnet):
    with pytest.raises(KeyError):
        with record_activations(convnet, ["conv1"]):
            raise KeyError("mine")
    assert _all_hooks_removed(convnet)


def test_unknown_name_lists_valid_ones_closest_first(convnet):
    with pytest.raises(ValueError, match="unknown 'conv3'") as info:
        with record_activations(convnet, ["conv1", "conv3"]):
            pass
    msg = str(info.value)
    for valid in ("conv1", "conv2", "conv1.0", "head"):
        assert repr(valid) in msg
    # closest matches come before the others
    assert msg.index("'conv1'") < msg.index("'head'")
    assert _all_hooks_removed(convnet)


def test_unknown_name_list_is_truncated_for_big_models():
    net = nn.Sequential(*[nn.Linear(2, 2) for _ in range(40)])
    with pytest.raises(ValueError, match=r"more\)") as info:
        with record_activations(net, ["39x"]):
            pass
    msg = str(info.value)
    assert "'39'" in msg  # the closest match is shown
    assert msg.count("'") < 2 * 20


def test_empty_name_and_bad_options_raise(convnet):
    with pytest.raises(ValueError, match="model itself"):
        with record_activations(convnet, [""]):
            pass
    with pytest.raises(ValueError, match="calls"):
        with record_activations(convnet, ["head"], calls="first"):
            pass
    with pytest.raises(ValueError, match="to: expected"):
        with record_activations(convnet, ["head"], to=3):
            pass
    with pytest.raises(ValueError, match="at least one"):
        with record_activations(convnet, []):
            pass


def test_never_fired_hook_raises_naming_layers(images):
    class Unused(ConvNet):
        def __init__(self) -> None:
            super().__init__()
            self.spare = nn.Linear(3, 3)

    torch.manual_seed(0)
    net = Unused().to(DT)
    with pytest.raises(ValueError, match=r"\['spare'\] never fired"):
        with record_activations(net, ["conv1", "spare"]):
            net(images)
    assert _all_hooks_removed(net)


def test_output_without_tensor_raises():
    class NoTensor(nn.Module):
        def forward(self, x):
            return ("a", None)

    class Outer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = NoTensor()

        def forward(self, x):
            self.inner(x)
            return x

    net = Outer()
    with pytest.raises(ValueError, match="expected a tensor"):
        with record_activations(net, ["inner"]):
            net(torch.zeros(1))
    assert _all_hooks_removed(net)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_submodule_is_rejected():
    net = nn.Sequential(torch.jit.script(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="TorchScript"):
        with record_activations(net, ["0"]):
            pass


# --------------------------------------------------- record_activations: detach, to, reduce


def test_detach_default_and_detach_false_keeps_graph(convnet, images):
    with record_activations(convnet, ["conv2"]) as acts:
        convnet(images)
    assert acts["conv2"].grad_fn is None and not acts["conv2"].requires_grad
    with record_activations(convnet, ["conv2"], detach=False) as live:
        convnet(images)
    assert live["conv2"].grad_fn is not None
    live["conv2"].sum().backward()
    assert convnet.conv2[0].weight.grad is not None
    assert convnet.conv2[0].weight.grad.abs().sum() > 0


def test_to_moves_device_and_dtype(convnet, images):
    with record_activations(convnet, ["conv1", "head"], to="cpu") as acts:
        out = convnet(images)
    assert acts["head"].device == torch.device("cpu")
    with record_activations(convnet, ["conv1", "head"], to=torch.float32) as acts32:
        convnet(images)
    assert acts32["head"].dtype == torch.float32
    assert_close(acts32["head"], out.float())


def test_reduce_feeds_running_sum_and_leaves_dict_empty(convnet, images):
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def running_sum(name: str, t: torch.Tensor) -> None:
        sums[name] = sums.get(name, 0) + t.sum(0)
        counts[name] = counts.get(name, 0) + t.shape[0]

    with record_activations(convnet, ["conv1", "head"], reduce=running_sum) as acts:
        for batch in images.split(2):
            convnet(batch)
    assert acts == {}
    assert counts == {"conv1": 5, "head": 5}
    assert_close(sums["head"], convnet(images).sum(0))
    assert_close(sums["conv1"], convnet.conv1(images).sum(0))


# ----------------------------------------------------------------------------- flatten_conv


def test_flatten_conv_4d_exact_element_mapping():
    n, c, h, w = 2, 3, 4, 5
    x = torch.arange(n * c * h * w, dtype=DT).reshape(n, c, h, w)
    ch = flatten_conv(x, mode="channels")
    full = flatten_conv(x, mode="full")
    pool = flatten_conv(x, mode="pool")
    assert ch.shape == (n * h * w, c) and full.shape == (n, c * h * w) and pool.shape == (n, c)
    for i in range(n):
        for k in range(c):
            for r in range(h):
                for s in range(w):
                    assert ch[i * h * w + r * w + s, k] == x[i, k, r, s]
                    assert full[i, k * h * w + r * w + s] == x[i, k, r, s]
    # pool: mean over the h*w values of each (sample, channel); arange makes them consecutive
    expected = torch.tensor(
        [[(i * c + k) * h * w + (h * w - 1) / 2 for k in range(c)] for i in range(n)], dtype=DT
    )
    assert_close(pool, expected, rtol=0, atol=1e-12)


def test_flatten_conv_3d_sequence_mapping():
    n, length, c = 2, 4, 3
    x = torch.arange(n * length * c, dtype=DT).reshape(n, length, c)
    ch = flatten_conv(x, mode="channels")
    full = flatten_conv(x, mode="full")
    pool = flatten_conv(x, mode="pool")
    assert ch.shape == (n * length, c) and full.shape == (n, length * c) and pool.shape == (n, c)
    for i in range(n):
        for t in range(length):
            for k in range(c):
                assert ch[i * length + t, k] == x[i, t, k]
                assert full[i, t * c + k] == x[i, t, k]
    assert_close(pool, x.mean(1), rtol=0, atol=0)


def test_flatten_conv_2d_unchanged_numpy_and_int_input():
    x = torch.randn(6, 4, generator=_gen(6), dtype=DT)
    for mode in ("channels", "full", "pool"):
        assert flatten_conv(x, mode=mode) is x
    arr = np.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)
    pooled = flatten_conv(arr, mode="pool")
    assert pooled.dtype == DT
    assert_close(pooled, torch.tensor([[1.5, 5.5, 9.5], [13.5, 17.5, 21.5]], dtype=DT))


def test_flatten_conv_bad_mode_and_ndim():
    with pytest.raises(ValueError, match="mode: expected"):
        flatten_conv(torch.zeros(2, 3, 4, 4), mode="spatial")
    with pytest.raises(ValueError, match="got shape \\(2,\\)"):
        flatten_conv(torch.zeros(2), mode="full")
    with pytest.raises(ValueError, match="got shape \\(1, 2, 3, 4, 5\\)"):
        flatten_conv(torch.zeros(1, 2, 3, 4, 5), mode="channels")
    with pytest.raises(ValueError, match="expected a tensor or array"):
        flatten_conv(object(), mode="full")
