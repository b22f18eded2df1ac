"""Reading what ``python -m repsim compare`` is given: activation files, saved models, inputs.

An activation file is a non-empty ``{layer: array}`` dict in ``.npz`` or in ``.pt`` (read with
``torch.load(weights_only=True)``). A saved model is TorchScript (``torch.jit.save``) or a full
``torch.save(model)`` pickle; unpickling such a file runs code stored in it, so it is loaded
only with ``trust_pickle=True`` (the command's ``--trust-pickle``) and refused otherwise.

Every problem with a file is a :class:`repsim._cli_policy.UserError` naming the side (``A``,
``B`` or ``--inputs``) and the file.

>>> source = load_source(Path("acts_a.npz"), "A")          # doctest: +SKIP
>>> source.acts["conv1"].shape                             # doctest: +SKIP
torch.Size([500, 16, 8, 8])
"""
from __future__ import annotations

import pickle
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from repsim._cli_policy import UserError

__all__ = ["Source", "ACT_SUFFIXES", "INPUT_SUFFIXES", "load_source", "load_inputs"]

ACT_SUFFIXES = (".pt", ".pth", ".npz")
INPUT_SUFFIXES = (".pt", ".pth", ".npz", ".npy")


@dataclass
class Source:
    """One side of a comparison: recorded activations, or a model to run on the inputs.

    Attributes
    ----------
    label : str
        ``"A"`` or ``"B"``; starts every message about this side.
    path : Path
        The file it came from.
    acts : dict of name -> (n_samples, ...) tensor, or None
        The recorded activations of an activation file.
    model : nn.Module or None
        The model of a saved-model file (exactly one of ``acts`` and ``model`` is set).
    """

    label: str
    path: Path
    acts: dict[str, torch.Tensor] | None = None
    model: nn.Module | None = None

    @property
    def scripted(self) -> bool:
        """Whether the model is TorchScript (its submodules run no Python forward hooks)."""
        return isinstance(self.model, torch.jit.ScriptModule)


def check_file(path: Path, label: str, suffixes: Sequence[str]) -> None:
    """Raise :class:`UserError` unless ``path`` is an existing file with one of ``suffixes``."""
    if not path.is_file():
        raise UserError(f"{label}: no such file: {str(path)!r}")
    if path.suffix.lower() not in suffixes:
        raise UserError(
            f"{label}: expected a {', '.join(suffixes)} file, got {path.name!r}"
        )


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a zip archive holding TorchScript code."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _tensor_dict(obj: Any, label: str, path: Path) -> dict[str, torch.Tensor]:
    """``obj`` as a ``{layer name: tensor}`` dict, or a :class:`UserError` saying what it is."""
    if not isinstance(obj, dict) or not obj:
        raise UserError(
            f"{label}: expected a non-empty {{layer: array}} dict or a saved model in "
            f"{path.name!r}, got {type(obj).__name__}"
        )
    bad = [
        str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)
    ]
    if bad:
        raise UserError(
            f"{label}: expected {{layer name: tensor}} in {path.name!r}, got non-tensor entries "
            f"{bad[:5]} (a training checkpoint? save activations or the model itself)"
        )
    return dict(obj)


def _load_npz(path: Path, label: str) -> dict[str, torch.Tensor]:
    """The numeric arrays of an ``.npz`` file as CPU tensors (no pickles are read)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise UserError(f"{label}: could not read {path.name!r} as .npz: {err}") from err
    out = {}
    for k, a in arrays.items():
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
            raise UserError(
                f"{label}: layer {k!r} in {path.name!r}: expected numbers, got {a.dtype}"
            )
        out[k] = torch.from_numpy(np.ascontiguousarray(a))
    if not out:
        raise UserError(f"{label}: expected at least one array in {path.name!r}, got none")
    return out


def _load_pickled_model(path: Path, label: str) -> Source:
    """A full ``torch.save(model)`` pickle; unpickling runs code stored in the file."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except (AttributeError, ImportError, pickle.UnpicklingError, RuntimeError) as err:
        raise UserError(
            f"{label}: could not unpickle {path.name!r} ({type(err).__name__}: {err}); the "
            f"model's class must be importable"
        ) from err
    if not isinstance(obj, nn.Module):
        raise UserError(
            f"{label}: expected activations or a saved nn.Module in {path.name!r}, "
            f"got {type(obj).__name__}"
        )
    return Source(label, path, model=obj)


def load_source(path: Path, label: str, *, trust_pickle: bool = False) -> Source:
    """Read activations (``.npz`` / ``.pt`` dict) or a saved model from ``path``.

    Parameters
    ----------
    path : Path
        An ``.npz``, ``.pt`` or ``.pth`` file.
    label : str
        ``"A"`` or ``"B"``, for messages.
    trust_pickle : bool
        Allow a full ``torch.save(model)`` pickle (its unpickling runs code from the file);
        without it such a file is refused with a :class:`UserError`.

    Returns
    -------
    Source
        With ``acts`` for an activation file, ``model`` (on CPU) for a saved model.
    """
    check_file(path, label, ACT_SUFFIXES)
    if path.suffix.lower() == ".npz":
        return Source(label, path, acts=_load_npz(path, label))
    if _is_torchscript(path):
        try:
            return Source(label, path, model=torch.jit.load(str(path), map_location="cpu"))
        except RuntimeError as err:
            raise UserError(f"{label}: could not load TorchScript {path.name!r}: {err}") from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        obj = None  # not plain tensors: a pickled model, loaded below
    except (RuntimeError, OSError, EOFError) as err:
        raise UserError(f"{label}: could not read {path.name!r}: {err}") from err
    if obj is not None:
        return Source(label, path, acts=_tensor_dict(obj, label, path))
    if not trust_pickle:
        raise UserError(
            f"{label}: {path.name!r} is not plain tensors: loading it would run code stored in the "
            f"file; pass --trust-pickle if you trust it, or save TorchScript or activations instead"
        )
    return _load_pickled_model(path, label)


def _read_inputs_file(path: Path) -> Any:
    """The object stored in an inputs file: a tensor from .npy / .npz, anything from .pt."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return torch.from_numpy(np.load(path, allow_pickle=False))
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            keys = data.files
            key = "inputs" if "inputs" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise UserError(
                    f"--inputs: expected one array (or one named 'inputs') in {path.name!r}, "
                    f"got {keys}"
                )
            return torch.from_numpy(data[key])
    return torch.load(path, map_location="cpu", weights_only=True)


def load_inputs(path: Path) -> torch.Tensor:
    """One tensor of model inputs, batch first, from .pt/.pth, .npz or .npy.

    Parameters
    ----------
    path : Path
        The ``--inputs`` file: one array (an ``.npz`` may name it ``inputs``), or a ``.pt``
        holding one tensor or a one-entry dict of it.

    Returns
    -------
    (n_samples, ...) tensor, ``n_samples >= 1``
    """
    check_file(path, "--inputs", INPUT_SUFFIXES)
    try:
        obj = _read_inputs_file(path)
    except (ValueError, OSError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise UserError(f"--inputs: could not read {path.name!r}: {err}") from err
    if isinstance(obj, dict) and len(obj) == 1:
        obj = next(iter(obj.values()))
    if not isinstance(obj, torch.Tensor) or obj.ndim == 0 or obj.shape[0] == 0:
        got = f"shape {tuple(obj.shape)}" if isinstance(obj, torch.Tensor) else type(obj).__name__
        raise UserError(
            f"--inputs: expected one non-empty tensor (n_samples, ...) in {path.name!r}, got {got}"
        )
    return obj
