"""Recording layer activations with forward hooks, and flattening conv / sequence activations.

>>> import torch, torch.nn as nn
>>> from repsim import record_activations, flatten_conv
>>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
>>> with record_activations(net, ["0", "3"]) as acts:
...     _ = net(torch.randn(5, 3, 32, 32))
>>> acts["0"].shape, acts["3"].shape
(torch.Size([5, 8, 30, 30]), torch.Size([5, 10]))
>>> flatten_conv(acts["0"], mode="channels").shape      # each spatial position a datapoint
torch.Size([4500, 8])
"""
from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal

import torch
from torch import nn

__all__ = ["record_activations", "flatten_conv"]

_CALLS = ("last", "all", "concat")
_MODES = ("channels", "full", "pool")
_MAX_LISTED = 12  # valid layer names shown in an "unknown layer" message


def _first_tensor(output: Any) -> torch.Tensor | None:
    """Depth-first search for the first tensor in a (nested) tuple / list / dict output."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, (tuple, list)):  # namedtuples are tuples
        for item in output:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _unknown_layers_message(unknown: list[str], valid: list[str]) -> str:
    """Name the unknown layers and list valid ones, closest matches first, truncated."""
    close: list[str] = []
    for name in unknown:
        matches = difflib.get_close_matches(name, valid, n=5, cutoff=0.5)
        close += [c for c in matches if c not in close]
    rest = [v for v in valid if v not in close]
    shown = (close + rest)[:_MAX_LISTED]
    more = len(valid) - len(shown)
    listing = ", ".join(repr(v) for v in shown) + (f", ... ({more} more)" if more > 0 else "")
    return (
        f"layers: expected names from model.named_modules(), got unknown "
        f"{', '.join(repr(u) for u in unknown)}; valid names"
        f"{' (closest first)' if close else ''}: {listing}"
    )


def _resolve_layers(model: nn.Module, layers: str | Iterable[str]) -> dict[str, nn.Module]:
    if isinstance(layers, str):
        layers = [layers]
    names = list(dict.fromkeys(layers))  # de-duplicated, order kept
    if not names:
        raise ValueError("layers: expected at least one layer name, got none")
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"layers: expected str names, got {type(name).__name__}")
    if "" in names:
        raise ValueError(
            "layers: expected names of submodules, got '' (the model itself); "
            "use the value the model returns instead"
        )
    modules = dict(model.named_modules(remove_duplicate=False))
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise ValueError(_unknown_layers_message(unknown, [n for n in modules if n]))
    scripted = [n for n in names if isinstance(modules[n], torch.jit.ScriptModule)]
    if scripted:
        raise ValueError(
            f"layers: expected eager (non-TorchScript) modules, got TorchScript modules "
            f"{scripted}; forward hooks do not run inside TorchScript"
        )
    return {n: modules[n] for n in names}


def _check_to(to: Any) -> None:
    if to is not None and not isinstance(to, (str, torch.device, torch.dtype)):
        raise ValueError(f"to: expected None, a device or a dtype, got {type(to).__name__}")


@contextlib.contextmanager
def record_activations(
    model: nn.Module,
    layers: str | Iterable[str],
    *,
    detach: bool = True,
    to: str | torch.device | torch.dtype | None = None,
    reduce: Callable[[str, torch.Tensor], Any] | None = None,
    select: Callable[[Any], torch.Tensor] | None = None,
    calls: Literal["last", "all", "concat"] = "last",
) -> Iterator[dict[str, Any]]:
    """Record the outputs of named submodules while the ``with`` block runs.

    ::

        with record_activations(model, ["conv1", "conv4", "head"]) as acts:
            model(images)
        acts["conv4"]            # (N, C, H, W), detached

    Parameters
    ----------
    model : nn.Module
        Any eager PyTorch module.
    layers : str or iterable of str
        Names from ``model.named_modules()`` (``""``, the model itself, is not allowed).
    detach : bool
        Detach the recorded tensors from the autograd graph (default True).
    to : device, str, dtype or None
        Passed to ``Tensor.to`` inside the hook, e.g. ``"cpu"`` to move activations off the
        accelerator as they are produced, or ``torch.float64``.
    reduce : callable(name, tensor) or None
        Called inside the hook with each (detached, moved) activation *instead of* storing it,
        e.g. to feed a streaming :class:`repsim.MinibatchCKA` batch by batch. The dict then
        stays empty.
    select : callable(output) -> tensor, or None
        Picks the tensor out of a module's output. By default the first tensor found
        depth-first in tuples / lists / dicts / namedtuples (the ``output`` of an ``nn.LSTM``,
        the hidden states of most transformer blocks). A nested tensor (the layers of an
        ``nn.TransformerEncoder`` in eval mode under ``torch.no_grad()`` with a right-padded
        ``src_key_padding_mask``) is stored padded with zeros, ``(batch, longest, features)``,
        which :func:`repsim.flatten_tokens` accepts with the full mask.
    calls : {"last", "all", "concat"}
        For a module that runs several times while recording: keep the last output, a list
        of all outputs in call order, or their concatenation along dim 0. The concatenation
        is made when the block exits; inside the block ``acts[name]`` is the list so far.

    Yields
    ------
    acts : dict
        ``{layer name: tensor}`` (a list of tensors for ``calls="all"``), filled as the model
        runs. Hooks are removed when the block exits, with or without an error; nothing is
        recorded afterwards.

    Raises
    ------
    ValueError
        Unknown layer names (the message lists valid ones, closest first), a bad option, an
        output with no tensor in it, or -- when the block ends without error -- layers whose
        hook never fired.
    """
    _check_options(calls=calls, reduce=reduce, select=select, to=to)
    modules = _resolve_layers(model, layers)

    acts: dict[str, Any] = {}
    fired: set[str] = set()
    handles = []
    try:
        for name, module in modules.items():
            hook = _make_hook(name, acts, fired, detach=detach, to=to, reduce=reduce,
                              select=select, calls=calls)
            handles.append(module.register_forward_hook(hook))
        yield acts
    finally:
        for handle in handles:
            handle.remove()
    _finish_recording(acts, fired, list(modules), calls=calls)


def _check_options(*, calls: Any, reduce: Any, select: Any, to: Any) -> None:
    """``ValueError`` for an option of :func:`record_activations` that cannot work."""
    if calls not in _CALLS:
        raise ValueError(f"calls: expected one of {_CALLS}, got {calls!r}")
    if reduce is not None and not callable(reduce):
        raise ValueError(f"reduce: expected a callable(name, tensor), got {type(reduce).__name__}")
    if select is not None and not callable(select):
        raise ValueError(f"select: expected a callable(output), got {type(select).__name__}")
    _check_to(to)


def _make_hook(
    name: str, acts: dict[str, Any], fired: set[str], *, detach: bool,
    to: str | torch.device | torch.dtype | None, reduce: Callable[[str, torch.Tensor], Any] | None,
    select: Callable[[Any], torch.Tensor] | None, calls: str,
) -> Callable[[nn.Module, Any, Any], None]:
    """The forward hook of layer ``name``: stores its output tensor in ``acts`` (or passes it
    to ``reduce``) and adds ``name`` to ``fired``."""

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        tensor = select(output) if select is not None else _first_tensor(output)
        if not isinstance(tensor, torch.Tensor):
            what = "select(output)" if select is not None else "the output"
            raise ValueError(
                f"layer {name!r}: expected a tensor in {what}, got {type(output).__name__}"
                f"{'' if select is None else f' -> {type(tensor).__name__}'}"
            )
        if tensor.is_nested:  # nn.TransformerEncoder's fast path with a padding mask
            tensor = tensor.to_padded_tensor(0.0)
        if detach:
            tensor = tensor.detach()
        if to is not None:
            tensor = tensor.to(to)
        fired.add(name)
        if reduce is not None:
            reduce(name, tensor)
        elif calls == "last":
            acts[name] = tensor
        else:
            acts.setdefault(name, []).append(tensor)

    return hook


def _finish_recording(acts: dict[str, Any], fired: set[str], names: list[str], *,
                      calls: str) -> None:
    """After a block without error: check that every hook fired; concatenate for ``"concat"``."""
    never = [n for n in names if n not in fired]
    if never:
        raise ValueError(
            f"layers: expected every requested layer to run inside the block, but the hooks of "
            f"{never} never fired (the forward pass does not call these modules)"
        )
    if calls == "concat":
        for name, pieces in acts.items():
            try:
                acts[name] = torch.cat(pieces, dim=0)
            except RuntimeError as err:
                shapes = [tuple(p.shape) for p in pieces]
                raise ValueError(
                    f"layer {name!r}: calls='concat' expected outputs that agree beyond dim 0, "
                    f"got shapes {shapes}"
                ) from err


def flatten_conv(acts: Any, *, mode: Literal["channels", "full", "pool"]) -> torch.Tensor:
    """Turn conv or sequence activations into a 2-D ``(n_samples, n_features)`` matrix.

    >>> flatten_conv(torch.zeros(10, 64, 5, 5), mode="channels").shape
    torch.Size([250, 64])

    Parameters
    ----------
    acts : (N, C, H, W), (N, L, C) or (N, C) tensor or array
        Conv feature maps (channels first), sequence activations (channels last, as
        ``batch_first`` transformers and LSTMs give them), or an already 2-D layer.
    mode : {"channels", "full", "pool"}
        ``"channels"``: every spatial position (or sequence step) is a datapoint and the
        channels are the features -- ``(N*H*W, C)`` / ``(N*L, C)``, rows ordered sample-major
        (the paper's CCA convention). ``"full"``: one row per sample, ``(N, C*H*W)`` /
        ``(N, L*C)`` (the CKA convention). ``"pool"``: the mean over positions, ``(N, C)``.
        A 2-D input is returned unchanged in every mode.

    Returns
    -------
    tensor : 2-D, same dtype and device as ``acts``.

    Raises
    ------
    ValueError
        For an unknown mode or an input that is not 2-, 3- or 4-D.
    """
    if mode not in _MODES:
        raise ValueError(f"mode: expected one of {_MODES}, got {mode!r}")
    if not isinstance(acts, torch.Tensor):
        try:
            acts = torch.as_tensor(acts)
        except (TypeError, RuntimeError) as err:
            raise ValueError(
                f"acts: expected a tensor or array, got {type(acts).__name__}"
            ) from err
    if acts.ndim == 2:
        return acts
    if acts.ndim not in (3, 4):
        raise ValueError(
            f"acts: expected a 2-D (N, C), 3-D (N, L, C) or 4-D (N, C, H, W) input, "
            f"got shape {tuple(acts.shape)}"
        )
    n = acts.shape[0]
    if mode == "full":
        return acts.reshape(n, -1)  # (N, C*H*W) in (C, H, W) order / (N, L*C)
    if acts.ndim == 4:
        acts = acts.permute(0, 2, 3, 1)  # (N, H, W, C): channels last, like (N, L, C)
    c = acts.shape[-1]
    if mode == "channels":
        return acts.reshape(-1, c)  # (N*H*W, C) / (N*L, C), sample-major rows
    if not acts.is_floating_point():
        acts = acts.to(torch.float64)
    return acts.reshape(n, -1, c).mean(dim=1)  # "pool": (N, C)
