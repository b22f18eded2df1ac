"""Tests for repsim._tokens.flatten_tokens, alone and on real sequence models.

The sequence-model tests compare a padded batch with each sequence run alone, unpadded: the
rows that flatten_tokens keeps must not depend on the padding where the model guarantees it.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

import repsim
from repsim import flatten_tokens, linear_cka, record_activations, similarity_matrix

DT = torch.float64
MODES = ("mean", "first", "last", "tokens")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _reference(acts: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Row-by-row numpy implementation, independent of the vectorised one."""
    rows = []
    for a, m in zip(acts, mask.astype(bool)):
        real = a[m]  # (n_real, features), in token order
        if mode == "mean":
            rows.append(real.mean(axis=0, keepdims=True))
        elif mode == "first":
            rows.append(real[:1])
        elif mode == "last":
            rows.append(real[-1:])
        else:
            rows.append(real)
    return np.concatenate(rows, axis=0)


def _random_mask(batch: int, tokens: int, seed: int) -> torch.Tensor:
    """Left-padded, right-padded and holey rows, each with at least one real token."""
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand(batch, tokens, generator=g) < 0.6).long()
    lengths = torch.randint(1, tokens + 1, (batch,), generator=g)
    for b in range(batch):
        n = int(lengths[b])
        if b % 3 == 0:
            mask[b] = torch.arange(tokens) < n  # right padding
        elif b % 3 == 1:
            mask[b] = torch.arange(tokens) >= tokens - n  # left padding
        else:
            mask[b, int(torch.randint(tokens, (1,), generator=g))] = 1  # holes, never empty
    return mask


# ----------------------------------------------------------------------- values and shapes


@pytest.mark.parametrize("mode", MODES)
def test_agrees_with_numpy_reference_on_mixed_padding(mode):
    acts = torch.randn(9, 6, 5, generator=_gen(1), dtype=DT)
    mask = _random_mask(9, 6, seed=2)
    out = flatten_tokens(acts, mask, mode=mode)
    expected = _reference(acts.numpy(), mask.numpy(), mode)
    n_rows = int(mask.sum()) if mode == "tokens" else 9
    assert out.shape == (n_rows, 5) and out.dtype == DT
    assert_close(out, torch.from_numpy(expected), rtol=0, atol=1e-13)


def test_first_and_last_pick_real_tokens_under_left_and_right_padding():
    # acts[b, t] = [10 * b + t]: the value names the position it came from
    acts = (10 * torch.arange(4)[:, None] + torch.arange(5)[None, :]).to(DT).unsqueeze(-1)
    mask = torch.tensor(
        [
            [1, 1, 1, 0, 0],  # right padding: tokens 0..2
            [0, 0, 1, 1, 1],  # left padding: tokens 2..4
            [1, 1, 1, 1, 1],  # no padding
            [0, 1, 0, 1, 0],  # holes: tokens 1 and 3
        ]
    )
    assert flatten_tokens(acts, mask, mode="first").flatten().tolist() == [0, 12, 20, 31]
    assert flatten_tokens(acts, mask, mode="last").flatten().tolist() == [2, 14, 24, 33]
    assert flatten_tokens(acts, mask, mode="mean").flatten().tolist() == [1, 13, 22, 32]
    assert flatten_tokens(acts, mask, mode="tokens").flatten().tolist() == [
        0, 1, 2, 12, 13, 14, 20, 21, 22, 23, 24, 31, 33
    ]


def test_no_mask_means_every_token_is_real():
    acts = torch.randn(3, 4, 2, generator=_gen(3), dtype=DT)
    assert_close(flatten_tokens(acts, mode="mean"), acts.mean(1), rtol=0, atol=1e-15)
    assert_close(flatten_tokens(acts, None, mode="first"), acts[:, 0], rtol=0, atol=0)
    assert_close(flatten_tokens(acts, None, mode="last"), acts[:, -1], rtol=0, atol=0)
    assert_close(flatten_tokens(acts, None, mode="tokens"), acts.reshape(12, 2), rtol=0, atol=0)
    ones = torch.ones(3, 4, dtype=torch.long)
    for mode in MODES:
        assert_close(flatten_tokens(acts, ones, mode=mode), flatten_tokens(acts, mode=mode))


@pytest.mark.parametrize("mode", MODES)
def test_mask_as_bool_int_float_and_numpy_agree(mode):
    acts = torch.randn(5, 4, 3, generator=_gen(4), dtype=DT)
    mask = _random_mask(5, 4, seed=5)
    expected = flatten_tokens(acts, mask.bool(), mode=mode)
    for variant in (mask, mask.to(torch.int32), mask.to(DT), mask.numpy(), mask.bool().numpy()):
        assert_close(flatten_tokens(acts, variant, mode=mode), expected, rtol=0, atol=0)
    from_numpy = flatten_tokens(acts.numpy(), mask.numpy(), mode=mode)
    assert isinstance(from_numpy, torch.Tensor)
    assert_close(from_numpy, expected, rtol=0, atol=0)


@pytest.mark.parametrize("mode", MODES)
def test_padding_values_are_ignored_even_nan_and_inf(mode):
    acts = torch.randn(6, 5, 4, generator=_gen(6), dtype=DT)
    mask = _random_mask(6, 5, seed=7).bool()
    clean = flatten_tokens(acts, mask, mode=mode)
    dirty = acts.clone()
    dirty[~mask] = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e300], dtype=DT)
    assert_close(flatten_tokens(dirty, mask, mode=mode), clean, rtol=0, atol=0)


def test_keeps_input_dtype_and_accumulates_half_precision_in_float32():
    acts = torch.randn(4, 300, 8, generator=_gen(8), dtype=DT)
    mask = _random_mask(4, 300, seed=9)
    exact = flatten_tokens(acts, mask, mode="mean")
    for dt, tol in ((torch.float32, 1e-6), (torch.bfloat16, 2e-2), (torch.float16, 2e-3)):
        low = acts.to(dt)
        for mode in MODES:
            assert flatten_tokens(low, mask, mode=mode).dtype == dt
        # the exact mean of the rounded inputs, rounded once
        target = flatten_tokens(low.to(DT), mask, mode="mean")
        assert_close(flatten_tokens(low, mask, mode="mean").to(DT), target, rtol=tol, atol=tol)
        assert (target - exact).abs().max() < 10 * tol
    # 300 tokens of 60000 overflow a float16 running sum, but not the mean
    big = torch.full((1, 300, 2), 60000.0, dtype=torch.float16)
    assert flatten_tokens(big, mode="mean").tolist() == [[60000.0, 60000.0]]


def test_integer_activations_mean_is_float64_selections_keep_ints():
    acts = torch.arange(2 * 3 * 1).reshape(2, 3, 1)
    mask = torch.tensor([[1, 1, 0], [0, 1, 1]])
    mean = flatten_tokens(acts, mask, mode="mean")
    assert mean.dtype == DT and mean.flatten().tolist() == [0.5, 4.5]
    assert flatten_tokens(acts, mask, mode="last").dtype == acts.dtype


def test_gradient_flows_to_real_tokens_only():
    acts = torch.randn(3, 4, 2, generator=_gen(10), dtype=DT, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1]])
    flatten_tokens(acts, mask, mode="mean").sum().backward()
    expected = (mask / mask.sum(1, keepdim=True)).to(DT).unsqueeze(-1).expand(3, 4, 2)
    assert_close(acts.grad, expected, rtol=0, atol=1e-15)


def test_mask_may_be_longer_when_extra_columns_are_padding():
    acts = torch.randn(3, 4, 2, generator=_gen(11), dtype=DT)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0]])
    for mode in MODES:
        assert_close(
            flatten_tokens(acts, mask, mode=mode), flatten_tokens(acts, mask[:, :4], mode=mode)
        )
    mask[1, 5] = 1
    with pytest.raises(ValueError, match=r"real tokens in the columns \[5\]"):
        flatten_tokens(acts, mask)


# --------------------------------------------------------------------------------- errors


def test_acts_must_be_3d_nonempty_numeric():
    with pytest.raises(ValueError, match=r"3-D \(batch, tokens, features\).*got shape \(4, 5\)"):
        flatten_tokens(torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 4, 5\).*flatten_conv"):
        flatten_tokens(torch.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"non-empty.*got shape \(2, 0, 4\)"):
        flatten_tokens(torch.zeros(2, 0, 4))
    with pytest.raises(ValueError, match="expected a torch.Tensor or numpy.ndarray.*got list"):
        flatten_tokens([[[1.0]]])
    with pytest.raises(ValueError, match="got array of dtype <U1"):
        flatten_tokens(np.array([[["a"]]]))
    with pytest.raises(ValueError, match="real numeric activations, got dtype torch.bool"):
        flatten_tokens(torch.zeros(1, 2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="real numeric activations, got dtype torch.complex128"):
        flatten_tokens(torch.zeros(1, 2, 3, dtype=torch.complex128))
    nested = torch.nested.nested_tensor(
        [torch.zeros(2, 3), torch.zeros(4, 3)], layout=torch.jagged
    )
    with pytest.raises(ValueError, match="nested tensor; use acts.to_padded_tensor"):
        flatten_tokens(nested)


def test_mask_shape_must_match_batch_and_tokens():
    acts = torch.zeros(3, 4, 2, dtype=DT)
    for bad in (torch.ones(2, 4), torch.ones(3, 3), torch.ones(12), torch.ones(3, 4, 1)):
        expected = re.escape("(batch, tokens) = (3, 4)") + ".*" + re.escape(
            f"got shape {tuple(bad.shape)}"
        )
        with pytest.raises(ValueError, match=expected):
            flatten_tokens(acts, bad)


def test_all_padding_rows_are_named():
    acts = torch.zeros(4, 3, 2, dtype=DT)
    mask = torch.tensor([[1, 0, 0], [0, 0, 0], [0, 1, 1], [0, 0, 0]])
    with pytest.raises(ValueError, match=r"rows \[1, 3\] that are all padding"):
        flatten_tokens(acts, mask, mode="last")
    many = torch.zeros(20, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"rows \[0, 1, 2, 3, 4, 5, 6, 7, \.\.\. \(12 more\)\]"):
        flatten_tokens(torch.zeros(20, 3, 2), many)


def test_mask_values_must_be_zero_or_one():
    acts = torch.zeros(2, 3, 2, dtype=DT)
    with pytest.raises(ValueError, match=r"0/1 or bool values.*got \[2\]"):
        flatten_tokens(acts, torch.tensor([[1, 1, 2], [1, 0, 0]]))
    with pytest.raises(ValueError, match=r"got \[-1, 3\]"):
        flatten_tokens(acts, torch.tensor([[1, -1, 3], [1, 0, 0]]))
    with pytest.raises(ValueError, match=r"got \[0.5\]"):
        flatten_tokens(acts, torch.tensor([[1.0, 0.5, 0.0], [1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"got \[nan\]"):
        flatten_tokens(acts, torch.tensor([[1.0, float("nan"), 0.0], [1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="0/1 or bool values, got dtype torch.complex64"):
        flatten_tokens(acts, torch.ones(2, 3, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"attention_mask: expected a torch.Tensor.*got list"):
        flatten_tokens(acts, [[1, 1, 1], [1, 1, 1]])


@pytest.mark.parametrize("mode", MODES)
def test_nan_or_inf_at_a_real_token_is_named(mode):
    acts = torch.randn(3, 4, 2, generator=_gen(12), dtype=DT)
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1], [1, 1, 1, 1]])
    acts[1, 3, 0] = float("nan")
    acts[2, 0, 1] = float("inf")
    acts[0, 3, 1] = float("nan")  # padding: not reported
    with pytest.raises(ValueError, match=r"finite values at real tokens, got NaN/Inf at 2 real "
                                         r"tokens, \(row, token\) \[\(1, 3\), \(2, 0\)\]"):
        flatten_tokens(acts, mask, mode=mode)


def test_nan_at_an_unselected_real_token_is_not_an_error_for_first_and_last():
    acts = torch.randn(2, 3, 2, generator=_gen(13), dtype=DT)
    acts[0, 1] = float("nan")  # a real token in the middle of row 0
    first = flatten_tokens(acts, mode="first")
    last = flatten_tokens(acts, mode="last")
    assert_close(first, acts[:, 0], rtol=0, atol=0)
    assert_close(last, acts[:, -1], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"\(row, token\) \[\(0, 1\)\]"):
        flatten_tokens(acts, mode="mean")


def test_unknown_mode():
    with pytest.raises(ValueError, match=r"mode: expected one of .*'mean'.*got 'cls'"):
        flatten_tokens(torch.zeros(1, 2, 3), mode="cls")
    with pytest.raises(TypeError):
        flatten_tokens(torch.zeros(1, 2, 3), None, "mean")  # mode is keyword-only


def test_exported():
    assert "flatten_tokens" in repsim.__all__ and repsim.flatten_tokens is flatten_tokens


# ------------------------------------------------------------------- sequence models: data

PAD_ID = 0
# four "sentences" of token ids (1..99), different lengths
SENTENCES = [[5, 17, 42, 8, 77], [3, 9], [61, 2, 33, 90, 12, 7, 4], [15, 15, 28]]


def _pad(sentences: list[list[int]], *, side: str, extra: int = 0):
    """``(input_ids, attention_mask)`` padded to the longest sentence plus ``extra`` columns."""
    width = max(len(s) for s in sentences) + extra
    ids = torch.full((len(sentences), width), PAD_ID, dtype=torch.long)
    mask = torch.zeros(len(sentences), width, dtype=torch.long)
    for b, s in enumerate(sentences):
        cols = slice(0, len(s)) if side == "right" else slice(width - len(s), width)
        ids[b, cols] = torch.tensor(s)
        mask[b, cols] = 1
    return ids, mask


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count real tokens only (0 at each sequence's first real token)."""
    return (mask.cumsum(1) - 1).clamp(min=0)


def _alone(run, layers: list[str], sentences: list[list[int]], mode: str) -> dict:
    """Each sentence through the model on its own, unpadded; rows stacked per layer."""
    pieces: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    for s in sentences:
        acts = run(torch.tensor([s]), None, None)
        for name in layers:
            pieces[name].append(flatten_tokens(acts[name], mode=mode))
    return {name: torch.cat(rows) for name, rows in pieces.items()}


def _max_gap(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


# ----------------------------------------------------------- nn.TransformerEncoder (PyTorch)

ENC_LAYERS = ["layers.0", "layers.1"]


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    embed = nn.Embedding(100, 16).to(DT)
    layer = nn.TransformerEncoderLayer(
        d_model=16, nhead=4, dim_feedforward=32, dropout=0.0, batch_first=True
    )
    enc = nn.TransformerEncoder(layer, num_layers=2).to(DT).eval()
    return embed, enc


def _run_encoder(encoder, *, grad: bool):
    embed, enc = encoder

    def run(ids, mask, _positions_unused):
        # PyTorch's src_key_padding_mask is True at padding: the opposite of attention_mask
        pad = None if mask is None else mask == 0
        with torch.set_grad_enabled(grad), record_activations(enc, ENC_LAYERS) as acts:
            enc(embed(ids), src_key_padding_mask=pad)
        return acts

    return run


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
@pytest.mark.parametrize("grad", [True, False], ids=["slow-path", "no-grad-fast-path"])
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("mode", MODES)
def test_transformer_encoder_padding_invariance(encoder, grad, side, mode):
    run = _run_encoder(encoder, grad=grad)
    ids, mask = _pad(SENTENCES, side=side, extra=2)
    acts = run(ids, mask, None)
    padded = {k: flatten_tokens(acts[k], mask, mode=mode) for k in ENC_LAYERS}
    alone = _alone(run, ENC_LAYERS, SENTENCES, mode)
    assert _max_gap(padded, alone) < 1e-10
    # not vacuous: without the padding mask the real tokens attend to the padding
    with record_activations(encoder[1], ENC_LAYERS) as unmasked:
        encoder[1](encoder[0](ids))
    assert _max_gap({k: flatten_tokens(unmasked[k], mask, mode=mode) for k in ENC_LAYERS},
                    alone) > 1e-3


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_transformer_encoder_fast_path_records_padded_tensors(encoder):
    embed, enc = encoder
    ids, mask = _pad(SENTENCES, side="right", extra=2)  # 7 real columns at most, 9 in all
    with torch.no_grad(), record_activations(enc, ENC_LAYERS) as acts:
        enc(embed(ids), src_key_padding_mask=mask == 0)
    # the nested fast path returns up to the longest sequence, stored as a padded tensor
    assert not acts["layers.0"].is_nested and acts["layers.0"].shape == (4, 7, 16)
    assert bool((acts["layers.0"][1, 2:] == 0).all())


def test_transformer_encoder_padding_mask_convention_is_checked(encoder):
    embed, enc = encoder
    ids, mask = _pad(SENTENCES, side="right")  # sentence 2 fills its row: no padding
    pad = mask == 0  # src_key_padding_mask: True at padding
    with record_activations(enc, ENC_LAYERS) as acts:
        enc(embed(ids), src_key_padding_mask=pad)
    assert_close(flatten_tokens(acts["layers.1"], ~pad), flatten_tokens(acts["layers.1"], mask))
    with pytest.raises(ValueError, match=r"rows \[2\] that are all padding"):
        flatten_tokens(acts["layers.1"], pad)  # the PyTorch mask passed as it is


# ------------------------------------------- Hugging Face transformers (tiny, random weights)

BERT_LAYERS = ["embeddings", "encoder.layer.0", "encoder.layer.1"]
GPT2_LAYERS = ["h.0", "h.1", "ln_f"]


def _bert(seed: int = 0):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, pad_token_id=PAD_ID,
    )
    return transformers.BertModel(config).to(DT).eval()


def _gpt2(seed: int = 0):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=99, eos_token_id=99,
    )
    return transformers.GPT2Model(config).to(DT).eval()


def _hidden(out):
    """A block's hidden states: a tensor, or the first item of a tuple in older versions."""
    return out[0] if isinstance(out, tuple) else out


def _runner(model, layers):
    def run(ids, mask, positions):
        with torch.no_grad(), record_activations(model, layers, select=_hidden) as acts:
            model(input_ids=ids, attention_mask=mask, position_ids=positions)
        return acts

    return run


@pytest.fixture(scope="module")
def bert():
    return _bert()


@pytest.fixture(scope="module")
def gpt2():
    return _gpt2()


def _padded_vs_alone(run, layers, *, side, mode, with_mask=True, with_positions=False):
    ids, mask = _pad(SENTENCES, side=side, extra=1)
    acts = run(ids, mask if with_mask else None, _positions(mask) if with_positions else None)
    padded = {k: flatten_tokens(acts[k], mask, mode=mode) for k in layers}
    return _max_gap(padded, _alone(run, layers, SENTENCES, mode))


@pytest.mark.parametrize("mode", MODES)
def test_bert_padding_invariance_with_attention_mask(bert, mode):
    run = _runner(bert, BERT_LAYERS)
    # right padding: the mask alone makes the real tokens blind to the padding
    assert _padded_vs_alone(run, BERT_LAYERS, side="right", mode=mode) < 1e-10
    # left padding shifts the absolute positions: it needs position ids as well
    gap = _padded_vs_alone(run, BERT_LAYERS, side="left", mode=mode, with_positions=True)
    assert gap < 1e-10
    # and the failures these settings prevent are real
    assert _padded_vs_alone(run, BERT_LAYERS, side="left", mode=mode) > 1e-3
    assert _padded_vs_alone(run, BERT_LAYERS, side="right", mode=mode, with_mask=False) > 1e-3


@pytest.mark.parametrize("mode", MODES)
def test_gpt2_padding_invariance(gpt2, mode):
    run = _runner(gpt2, GPT2_LAYERS)
    # causal attention: right padding cannot reach earlier tokens, with or without the mask
    assert _padded_vs_alone(run, GPT2_LAYERS, side="right", mode=mode) < 1e-10
    assert _padded_vs_alone(run, GPT2_LAYERS, side="right", mode=mode, with_mask=False) < 1e-10
    # left padding (the usual setting for generation) needs the mask and the position ids
    gap = _padded_vs_alone(run, GPT2_LAYERS, side="left", mode=mode, with_positions=True)
    assert gap < 1e-10
    assert _padded_vs_alone(run, GPT2_LAYERS, side="left", mode=mode) > 1e-3


def _corpus(n: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 12, (n,), generator=g)
    return [torch.randint(1, 99, (int(k),), generator=g).tolist() for k in lengths]


def _flat(run, layers, ids, mask, positions, mode):
    acts = run(ids, mask, positions)
    return {k: flatten_tokens(acts[k], mask, mode=mode) for k in layers}


@pytest.mark.parametrize("mode", ["mean", "last", "tokens"])
def test_cka_across_paddings_is_one_and_across_models_below_one(bert, gpt2, mode):
    corpus = _corpus(40, seed=14)
    right_ids, right_mask = _pad(corpus, side="right")
    left_ids, left_mask = _pad(corpus, side="left", extra=3)
    runs = {"bert": (_runner(bert, BERT_LAYERS), BERT_LAYERS),
            "gpt2": (_runner(gpt2, GPT2_LAYERS), GPT2_LAYERS)}
    right = {m: _flat(r, ls, right_ids, right_mask, None, mode) for m, (r, ls) in runs.items()}
    left = {m: _flat(r, ls, left_ids, left_mask, _positions(left_mask), mode)
            for m, (r, ls) in runs.items()}
    n = int(right_mask.sum()) if mode == "tokens" else 40
    assert right["bert"]["encoder.layer.1"].shape == (n, 32)
    for m in runs:
        for layer in runs[m][1]:
            assert abs(float(linear_cka(right[m][layer], left[m][layer])) - 1) < 1e-10
        same = similarity_matrix(right[m], left[m])  # layer by layer, padded two ways
        assert_close(torch.diagonal(same), torch.ones(3, dtype=DT), rtol=0, atol=1e-10)
        assert_close(same, same.T, rtol=0, atol=1e-10)
    across = similarity_matrix(right["bert"], right["gpt2"])
    assert across.shape == (3, 3)
    assert bool((across > 0).all()) and bool((across < 0.99).all())
    # another random initialisation of the same architecture is a different representation
    other = _flat(_runner(_bert(seed=1), BERT_LAYERS), BERT_LAYERS, right_ids, right_mask, None,
                  mode)
    assert float(linear_cka(right["bert"]["encoder.layer.1"], other["encoder.layer.1"])) < 0.99
