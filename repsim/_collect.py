"""Choosing the layers of each side of ``python -m repsim compare`` and recording them.

A side given as activations is used as it is; a side given as a model is run in eval mode on
the inputs, batch by batch, with :func:`repsim.record_activations` hooks on the chosen layers
(``"output"`` is the model's own return value). Problems caused by what the user gave (unknown
layers, inputs that do not fit the model) are :class:`repsim._cli_policy.UserError`.

>>> layers = layers_for(source, None)                   # doctest: +SKIP
>>> acts = record(source, layers, inputs, batch_size=256, device=torch.device("cpu"),
...               quiet=True)                            # doctest: +SKIP
>>> acts["output"].shape                                 # doctest: +SKIP
torch.Size([500, 10])
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from repsim._cli_policy import UserError
from repsim._hooks import _first_tensor, _resolve_layers, record_activations
from repsim._loading import Source

__all__ = [
    "OUTPUT",
    "default_model_layers",
    "layers_for",
    "batches",
    "progress",
    "prepare_model",
    "run_model_batch",
    "record",
    "collect",
    "check_samples",
]

OUTPUT = "output"  # name under which a model's own return value is recorded


def default_model_layers(model: nn.Module) -> list[str]:
    """Every leaf module that owns parameters, in definition order, then :data:`OUTPUT`."""
    if isinstance(model, torch.jit.ScriptModule):
        return [OUTPUT]  # TorchScript runs no Python hooks
    leaves = [
        name
        for name, m in model.named_modules()
        if name
        and next(m.children(), None) is None
        and next(m.parameters(recurse=False), None) is not None
    ]
    return leaves + [OUTPUT]


def layers_for(source: Source, wanted: list[str] | None) -> list[str]:
    """The layers of ``source`` to compare: ``wanted`` (checked to exist) or the default ones.

    The default is every array of an activation file, or :func:`default_model_layers`.
    """
    if source.acts is not None:
        names = list(source.acts) if wanted is None else wanted
        unknown = [n for n in names if n not in source.acts]
        if unknown:
            raise UserError(
                f"{source.label}: unknown layer(s) {unknown} in {source.path.name!r}; "
                f"available: {list(source.acts)[:20]}"
            )
        return names
    names = default_model_layers(source.model) if wanted is None else wanted
    if source.scripted and any(n != OUTPUT for n in names):
        raise UserError(
            f"{source.label}: {source.path.name!r} is TorchScript, whose submodules run no "
            f"forward hooks: only '{OUTPUT}' can be compared (save the model with "
            f"torch.save(model) to compare inner layers)"
        )
    inner = [n for n in names if n != OUTPUT]
    if inner and not source.scripted:
        try:
            _resolve_layers(source.model, inner)
        except ValueError as err:
            raise UserError(f"{source.label}: {err}") from err
    return names


def batches(n: int, batch_size: int) -> list[torch.Tensor]:
    """Indices ``0..n-1`` in near-equal consecutive batches of at least ``batch_size`` (or n)."""
    return list(torch.arange(n).tensor_split(max(1, n // batch_size)))


def progress(iterable: Iterable, *, desc: str, quiet: bool, total: int | None = None) -> Any:
    """``iterable`` under a tqdm bar, shown only when stderr is a terminal and not ``quiet``."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="batch", leave=False,
                disable=quiet or not sys.stderr.isatty())


def prepare_model(source: Source, inputs: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move the model to ``device`` in eval mode; return ``inputs`` in its floating dtype."""
    source.model.to(device).eval()
    params = [p for p in source.model.parameters() if p.is_floating_point()]
    if params and inputs.is_floating_point():
        inputs = inputs.to(params[0].dtype)  # e.g. float64 numpy inputs into a float32 model
    return inputs


def run_model_batch(
    source: Source, layers: list[str], batch: torch.Tensor, device: torch.device
) -> dict[str, torch.Tensor]:
    """Activations of ``layers`` (incl. :data:`OUTPUT`) of ``source.model`` on one batch.

    batch : (b, ...) tensor of inputs. Returns a dict of name -> (b, ...) tensor on CPU.
    """
    model = source.model
    inner = [n for n in layers if n != OUTPUT]
    try:
        with torch.no_grad():
            if inner:
                with record_activations(model, inner, to="cpu") as acts:
                    out = model(batch.to(device))
            else:
                acts, out = {}, model(batch.to(device))
    except ValueError as err:  # unknown layer, a hook that never fired, ...
        raise UserError(f"{source.label}: {err}") from err
    except RuntimeError as err:  # the inputs do not fit the model
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{source.label}: running the model on --inputs failed: {first}") from err
    if OUTPUT in layers:
        tensor = _first_tensor(out)
        if tensor is None:
            raise UserError(
                f"{source.label}: expected the model to return a tensor, got {type(out).__name__}"
            )
        acts[OUTPUT] = tensor.detach().cpu()
    return {n: acts[n] for n in layers}


def record(source: Source, layers: list[str], inputs: torch.Tensor, *, batch_size: int,
           device: torch.device, quiet: bool) -> dict[str, torch.Tensor]:
    """Run ``source.model`` on all ``inputs`` (n, ...) batch by batch; return name -> (n, ...)."""
    inputs = prepare_model(source, inputs, device)
    pieces: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    for idx in progress(batches(len(inputs), batch_size), desc=f"{source.label}: recording",
                        quiet=quiet):
        for name, t in run_model_batch(source, layers, inputs[idx], device).items():
            pieces[name].append(t)
    return {n: torch.cat(p) for n, p in pieces.items()}


def collect(sources: Sequence[Source], layers: Sequence[list[str]], inputs: torch.Tensor | None,
            *, batch_size: int, device: torch.device,
            quiet: bool) -> list[dict[str, torch.Tensor]]:
    """The chosen activations of every side: read from its file, or recorded from its model."""
    acts = []
    for source, names in zip(sources, layers):
        if source.acts is not None:
            acts.append({n: source.acts[n] for n in names})
        else:
            acts.append(record(source, names, inputs, batch_size=batch_size, device=device,
                               quiet=quiet))
    return acts


def check_samples(acts: dict[str, torch.Tensor], label: str) -> int:
    """The common number of samples (rows) of 1- to 4-D activations, else a :class:`UserError`."""
    counts = {n: (t.shape[0] if t.ndim else 0) for n, t in acts.items()}
    if len(set(counts.values())) != 1:
        raise UserError(
            f"{label}: expected the same number of samples in every layer, got {counts}"
        )
    bad = {n: tuple(t.shape) for n, t in acts.items() if t.ndim < 1 or t.ndim > 4}
    if bad:
        raise UserError(f"{label}: expected 1- to 4-D activations (samples first), got {bad}")
    return next(iter(counts.values()))
