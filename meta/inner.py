"""The inner loop: a pure function on a ``{name: tensor}`` parameter dict.

MAML, ANIL and test-time freezing differ only in ``trainable``, a predicate on parameter names:

>>> model = Conv4.omniglot(5)
>>> params = dict(model.named_parameters())
>>> fast = adapt(model, params, x, y, steps=5, lr=0.1, trainable=head_only)   # ANIL
>>> fast is params, fast["conv1.0.weight"] is params["conv1.0.weight"]
(False, True)
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from meta.models import BODY_NAMES, is_norm_param

__all__ = ["adapt", "all_params", "head_only", "freeze_blocks", "without_norm", "inner_loss",
           "REDUCTIONS", "BLOCKS", "Trainable"]

Trainable = Callable[[str], bool]

#: Inner-loss reductions: "sum" is the MAML reference code's (per-example cross-entropy divided
#: by the shots and summed, i.e. ``ways`` times the mean); "mean" is the plain mean.
REDUCTIONS = ("sum", "mean")

#: Block numbers that test-time freezing accepts: 1..4 for conv1..conv4.
BLOCKS = tuple(range(1, len(BODY_NAMES) + 1))


def inner_loss(logits: torch.Tensor, y: torch.Tensor, *, reduction: str = "sum") -> torch.Tensor:
    """Support-set cross-entropy in the units the inner learning rate is quoted in.

    logits : (n_support, ways) tensor
    y : (n_support,) int64 tensor, ``shots`` examples of each of the ``ways`` classes
    reduction : "sum" (reference: ``sum_i CE_i / shots = ways * mean``) or "mean"
    Returns a 0-dim tensor.
    """
    if reduction == "mean":
        return F.cross_entropy(logits, y)
    if reduction == "sum":
        return F.cross_entropy(logits, y, reduction="sum") * (logits.shape[1] / y.shape[0])
    raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")


def all_params(name: str) -> bool:
    """MAML: every parameter adapts."""
    return True


def head_only(name: str) -> bool:
    """ANIL: only the linear head (``head.weight``, ``head.bias``) adapts."""
    return name.startswith("head.")


def without_norm(trainable: Trainable) -> Trainable:
    """``trainable`` less the batch-norm offsets (``conv{i}.1.*``), which the MAML reference
    code meta-learns but never adapts in the inner loop. :func:`head_only` is returned as is.

    >>> without_norm(all_params)("conv1.1.bias"), without_norm(all_params)("conv1.0.weight")
    (False, True)
    """
    if trainable is head_only:
        return trainable

    def keep(name: str) -> bool:
        return trainable(name) and not is_norm_param(name)

    keep.frozen = getattr(trainable, "frozen", ())  # type: ignore[attr-defined]
    return keep


def freeze_blocks(blocks: Iterable[int]) -> Trainable:
    """Test-time freezing (paper Table 1): blocks ``1..4`` (``conv1..conv4``) stay fixed.

    The head always adapts. ``freeze_blocks(())`` is equivalent to :func:`all_params`.

    >>> keep = freeze_blocks((1, 2, 3))
    >>> keep("conv2.0.weight"), keep("conv4.0.weight"), keep("head.bias")
    (False, True, True)
    """
    frozen = tuple(sorted({int(b) for b in blocks}))
    if any(b not in BLOCKS for b in frozen):
        raise ValueError(f"blocks: expected block numbers in {BLOCKS[0]}..{BLOCKS[-1]}, "
                         f"got {list(frozen)}")
    prefixes = tuple(f"conv{b}." for b in frozen)

    def trainable(name: str) -> bool:
        return not name.startswith(prefixes) if prefixes else True

    trainable.frozen = frozen  # type: ignore[attr-defined]
    return trainable


def adapt(
    model: nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float,
    trainable: Trainable = all_params,
    first_order: bool = False,
    reduction: str = "sum",
) -> dict[str, torch.Tensor]:
    """``steps`` gradient steps on the support loss; returns new parameters.

    Parameters
    ----------
    model : nn.Module
        Only its structure is used (``functional_call``); its own parameters are ignored.
    params : {name: tensor}
        Initial parameters (e.g. the meta-initialisation). Never modified.
    x : (n_support, C, H, W) tensor
    y : (n_support,) int64 tensor
    steps : int
        Number of inner gradient steps (0 returns a copy of ``params``).
    lr : float
        Inner learning rate.
    trainable : callable(name) -> bool
        Which parameters adapt; the others are passed through unchanged (same tensor objects).
    first_order : bool
        If True the inner gradients are detached (no ``create_graph``): first-order MAML.
    reduction : "sum" or "mean"
        The support loss, see :func:`inner_loss`; "sum" is the MAML reference code's, in whose
        units the paper's learning rates are quoted.

    Returns
    -------
    dict {name: tensor}
        Adapted parameters. With ``first_order=False`` and ``params`` requiring grad, they are
        differentiable functions of ``params`` (second-order MAML).
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps: expected a non-negative int, got {steps!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
    params = dict(params)
    names = [n for n in params if trainable(n)]
    if steps > 0 and not names:
        raise ValueError(f"trainable: expected it to select at least one of {list(params)}, got none")
    with torch.enable_grad():
        for n in names:   # evaluation passes detached tensors: give them a graph of their own
            if not params[n].requires_grad:
                params[n] = params[n].detach().requires_grad_()
        for _ in range(steps):
            loss = inner_loss(functional_call(model, params, (x,)), y, reduction=reduction)
            grads = torch.autograd.grad(loss, [params[n] for n in names],
                                        create_graph=not first_order)
            params = {**params, **{n: params[n] - lr * g for n, g in zip(names, grads)}}
    return params
