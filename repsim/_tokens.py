"""Token activations of sequence models to 2-D, ignoring padding.

>>> import torch
>>> from repsim import flatten_tokens
>>> acts = torch.arange(12, dtype=torch.float64).reshape(2, 3, 2)   # (batch, tokens, features)
>>> mask = torch.tensor([[1, 1, 0], [0, 1, 1]])                    # right and left padding
>>> flatten_tokens(acts, mask, mode="last")
tensor([[ 2.,  3.],
        [10., 11.]], dtype=torch.float64)
>>> flatten_tokens(acts, mask, mode="tokens").shape                 # every real token a row
torch.Size([4, 2])

The mask follows the Hugging Face convention, 1 (True) for a real token and 0 (False) for
padding. PyTorch's ``nn.Transformer*`` ``src_key_padding_mask`` is the opposite (True = pad):
pass ``~src_key_padding_mask``.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

__all__ = ["flatten_tokens"]

_MODES = ("mean", "first", "last", "tokens")
_MAX_LISTED = 8  # row indices / values shown in an error message


def _listed(values: list[Any]) -> str:
    """``[a, b, c]``, truncated to the first few with a count of the rest."""
    shown = ", ".join(str(v) for v in values[:_MAX_LISTED])
    more = len(values) - _MAX_LISTED
    return f"[{shown}{f', ... ({more} more)' if more > 0 else ''}]"


def _as_tensor(a: Any, name: str, expected: str) -> torch.Tensor:
    """A tensor as it is (graph kept), or a numeric numpy array as a tensor."""
    if isinstance(a, torch.Tensor):
        return a
    if isinstance(a, np.ndarray) and (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        return torch.from_numpy(np.ascontiguousarray(a))
    what = f"array of dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
    raise ValueError(f"{name}: expected a torch.Tensor or numpy.ndarray {expected}, got {what}")


def _check_acts(acts: Any) -> torch.Tensor:
    acts = _as_tensor(acts, "acts", "of shape (batch, tokens, features)")
    if acts.is_nested:
        raise ValueError(
            "acts: expected a regular (batch, tokens, features) tensor, got a nested tensor; "
            "use acts.to_padded_tensor(0.0) (record_activations does this for you)"
        )
    if acts.ndim != 3:
        hint = " (use repsim.flatten_conv for (N, C, H, W) activations)" if acts.ndim == 4 else ""
        raise ValueError(
            f"acts: expected a 3-D (batch, tokens, features) input, got shape "
            f"{tuple(acts.shape)}{hint}"
        )
    if 0 in acts.shape:
        raise ValueError(
            f"acts: expected a non-empty (batch, tokens, features) input, got shape "
            f"{tuple(acts.shape)}"
        )
    if acts.dtype == torch.bool or acts.is_complex():
        raise ValueError(f"acts: expected real numeric activations, got dtype {acts.dtype}")
    return acts


def _check_mask(mask: Any, acts: torch.Tensor) -> torch.Tensor:
    """The mask as a bool ``(batch, tokens)`` tensor on the device of ``acts``.

    ``acts`` may have fewer tokens than the mask when every dropped column is padding (the
    fast path of ``nn.TransformerEncoder`` returns outputs only up to the longest sequence).
    """
    batch, tokens = acts.shape[:2]
    if mask is None:
        return torch.ones(batch, tokens, dtype=torch.bool, device=acts.device)
    mask = _as_tensor(mask, "attention_mask", "of shape (batch, tokens)")
    if mask.ndim != 2 or mask.shape[0] != batch or mask.shape[1] < tokens:
        raise ValueError(
            f"attention_mask: expected shape (batch, tokens) = ({batch}, {tokens}) to match "
            f"acts {tuple(acts.shape)}, got shape {tuple(mask.shape)}"
        )
    mask = mask.to(acts.device)
    if mask.dtype != torch.bool:
        if mask.is_complex():
            raise ValueError(
                f"attention_mask: expected 0/1 or bool values, got dtype {mask.dtype}"
            )
        valid = (mask == 0) | (mask == 1)
        if not bool(valid.all()):
            bad = torch.unique(mask[~valid]).tolist()  # NaN included: it equals neither
            raise ValueError(
                f"attention_mask: expected 0/1 or bool values (1 = real token, 0 = padding), "
                f"got {_listed(bad)}"
            )
        mask = mask != 0
    if mask.shape[1] > tokens:
        extra = mask[:, tokens:].any(dim=0).nonzero().flatten()
        if extra.numel():
            raise ValueError(
                f"attention_mask: expected shape ({batch}, {tokens}) to match acts "
                f"{tuple(acts.shape)}, got {tuple(mask.shape)} with real tokens in the columns "
                f"{_listed((extra + tokens).tolist())} that acts does not have"
            )
        mask = mask[:, :tokens]
    empty = (~mask.any(dim=1)).nonzero().flatten()
    if empty.numel():
        raise ValueError(
            f"attention_mask: expected at least one real token (1) in every row, got rows "
            f"{_listed(empty.tolist())} that are all padding"
        )
    return mask


def _check_finite(out: torch.Tensor, acts: torch.Tensor, mask: torch.Tensor) -> None:
    """Raise if a real token that enters ``out`` holds NaN/Inf; padding may hold anything."""
    if not out.is_floating_point():
        return
    # one cheap pass: a finite sum implies finite entries; count only when it is not finite
    if bool(torch.isfinite(out.sum())) or bool(torch.isfinite(out).all()):
        return
    bad = (~torch.isfinite(acts)).any(dim=-1) & mask  # (batch, tokens)
    where = [tuple(ix) for ix in bad.nonzero().tolist()]
    raise ValueError(
        f"acts: expected finite values at real tokens, got NaN/Inf at {len(where)} real tokens, "
        f"(row, token) {_listed(where)}"
    )


def _mean(acts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the real tokens of each row: ``(batch, features)``, one batched product.

    Sum, then divide by the count (exact for integer-valued data); in 16-bit floats the
    weights ``mask / n_real`` come first instead, so that no partial sum can overflow.
    """
    if not acts.is_floating_point():
        acts = acts.to(torch.float64)
    count = mask.sum(dim=1, keepdim=True).to(acts.dtype)  # (batch, 1)
    weights = mask.to(acts.dtype).unsqueeze(1)  # (batch, 1, tokens)
    half = acts.element_size() < 4
    if half:
        weights = weights / count.unsqueeze(-1)

    def weighted(a: torch.Tensor) -> torch.Tensor:
        total = torch.bmm(weights, a).squeeze(1)  # (batch, features)
        return total if half else total / count

    out = weighted(acts)
    if not bool(torch.isfinite(out.sum())):
        # 0 * NaN is NaN: zero the padding first (a copy of acts, only on this rare path)
        out = weighted(acts.masked_fill(~mask.unsqueeze(-1), 0))
    return out


def _at(acts: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Row ``b`` of the result is ``acts[b, index[b]]``: ``(batch, features)``."""
    rows = torch.arange(acts.shape[0], device=acts.device)
    return acts[rows, index]


def flatten_tokens(
    acts: Any,
    attention_mask: Any = None,
    *,
    mode: Literal["mean", "first", "last", "tokens"] = "mean",
) -> torch.Tensor:
    """Turn ``(batch, tokens, features)`` activations into a 2-D matrix, ignoring padding.

    >>> acts = torch.randn(4, 7, 32)                  # e.g. a transformer block's output
    >>> mask = torch.ones(4, 7, dtype=torch.long)     # tokenizer(...)["attention_mask"]
    >>> flatten_tokens(acts, mask).shape              # mean over each sequence's real tokens
    torch.Size([4, 32])

    Parameters
    ----------
    acts : (batch, tokens, features) tensor or array
        Token activations, batch first (Hugging Face models, ``batch_first=True`` PyTorch
        transformers). Padded positions may hold any value, NaN included.
    attention_mask : (batch, tokens) tensor or array of 0/1 or bool, or None
        Hugging Face convention: 1 / True for a real token, 0 / False for padding; every row
        needs at least one real token. ``None`` means every token is real. For PyTorch's
        ``src_key_padding_mask`` (True = padding) pass ``~src_key_padding_mask``. It may have
        more columns than ``acts`` has tokens when the extra columns are all padding.
    mode : {"mean", "first", "last", "tokens"}
        ``"mean"``: each sequence's mean over its real tokens, ``(batch, features)``.
        ``"first"`` / ``"last"``: each sequence's first / last real token, ``(batch,
        features)``, right for left and right padding alike (``"first"`` is the ``[CLS]``
        position of BERT-like models, ``"last"`` the prediction position of GPT-like ones).
        ``"tokens"``: every real token a row, ``(n_real_tokens, features)``, batch-major
        (the tokens of sequence 0 in order, then sequence 1, ...).

    Returns
    -------
    tensor : 2-D, on the device of ``acts``, in its dtype (integer activations averaged by
    ``"mean"`` become float64). The autograd graph of ``acts`` is kept.

    Raises
    ------
    ValueError
        ``acts`` not 3-D or empty; a mask of the wrong shape, with values other than 0/1, or
        with a row that is all padding (the rows are named); NaN/Inf in a real token that
        enters the result (every non-finite real token is named); an unknown mode.
    """
    if mode not in _MODES:
        raise ValueError(f"mode: expected one of {_MODES}, got {mode!r}")
    acts = _check_acts(acts)
    mask = _check_mask(attention_mask, acts)
    if mode == "mean":
        out = _mean(acts, mask)
    elif mode == "tokens":
        real = mask.flatten().nonzero().squeeze(1)  # row-major = batch-major order
        out = acts.flatten(0, 1).index_select(0, real)  # (n_real_tokens, features)
    else:
        position = torch.arange(acts.shape[1], device=acts.device)  # (tokens,)
        if mode == "first":
            index = torch.where(mask, position, acts.shape[1]).amin(dim=1)
        else:
            index = torch.where(mask, position, -1).amax(dim=1)
        out = _at(acts, index)
    _check_finite(out, acts, mask)
    return out
