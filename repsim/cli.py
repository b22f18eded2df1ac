"""``python -m repsim``: layer-by-layer similarity of two models or activation files, and a demo.

::

    python -m repsim compare acts_a.npz acts_b.npz --out results/ab
    python -m repsim compare model_a.pt model_b.pt --inputs images.pt --out results/ab \\
        --measure pwcca --layers conv1,conv2,head
    torchrun --nproc_per_node=4 -m repsim compare a.pt b.pt --inputs x.pt --out r --distributed
    python -m repsim demo --out results/demo

Each ``compare`` writes ``similarity.csv`` (rows: layers of A, columns: layers of B) and
``similarity.png`` (a heatmap) into ``--out`` and prints the table. A user error exits with
status 2 and one line ``repsim: error: ...`` on stderr.
"""
from __future__ import annotations

import argparse
import logging
import os
import pickle
import sys
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from repsim._hooks import _first_tensor, _resolve_layers, record_activations
from repsim._layer_matrix import compute_matrix, format_table, two_d, write_matrix
from repsim._matrix import MEASURES

__all__ = ["main", "build_parser", "compute_matrix", "write_matrix", "format_table"]

log = logging.getLogger(__name__)

_CCA_FAMILY = ("cca", "svcca", "pwcca")
# --distributed: measure -> its name in repsim.StreamingSimilarity (exact streaming)
_STREAMING = {"linear_cka": "linear_cka", "debiased_cka": "linear_cka_debiased", "cca": "mean_cca",
              "svcca": "svcca", "pwcca": "pwcca", "procrustes": "procrustes"}
_ACT_SUFFIXES = (".pt", ".pth", ".npz")
_INPUT_SUFFIXES = (".pt", ".pth", ".npz", ".npy")
OUTPUT = "output"  # name under which a model's own return value is recorded


class UserError(Exception):
    """A problem with the user's input: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(message)


# ------------------------------------------------------------------------------- loading


@dataclass
class _Source:
    """One side of a comparison: recorded activations, or a model to run on the inputs."""

    label: str  # "A" or "B"
    path: Path
    acts: dict[str, torch.Tensor] | None = None
    model: nn.Module | None = None

    @property
    def scripted(self) -> bool:
        return isinstance(self.model, torch.jit.ScriptModule)


def _check_file(path: Path, label: str, suffixes: Sequence[str]) -> None:
    if not path.is_file():
        raise UserError(f"{label}: no such file: {str(path)!r}")
    if path.suffix.lower() not in suffixes:
        raise UserError(
            f"{label}: expected a {', '.join(suffixes)} file, got {path.name!r}"
        )


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _tensor_dict(obj: Any, label: str, path: Path) -> dict[str, torch.Tensor]:
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


def _load_source(path: Path, label: str, *, trust_pickle: bool = False) -> _Source:
    """Read activations (.npz / .pt dict) or a model (TorchScript; a full torch.save pickle
    only with ``trust_pickle``, since unpickling it runs code from the file)."""
    _check_file(path, label, _ACT_SUFFIXES)
    if path.suffix.lower() == ".npz":
        return _Source(label, path, acts=_load_npz(path, label))
    if _is_torchscript(path):
        try:
            return _Source(label, path, model=torch.jit.load(str(path), map_location="cpu"))
        except RuntimeError as err:
            raise UserError(f"{label}: could not load TorchScript {path.name!r}: {err}") from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        obj = None  # not plain tensors: a pickled model, loaded below
    except (RuntimeError, OSError, EOFError) as err:
        raise UserError(f"{label}: could not read {path.name!r}: {err}") from err
    if obj is not None:
        return _Source(label, path, acts=_tensor_dict(obj, label, path))
    if not trust_pickle:
        raise UserError(
            f"{label}: {path.name!r} is not plain tensors: loading it would run code stored in the "
            f"file; pass --trust-pickle if you trust it, or save TorchScript or activations instead"
        )
    try:
        # A full pickle of an nn.Module: this runs code from the file (documented in --help).
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
    return _Source(label, path, model=obj)


def _load_inputs(path: Path) -> torch.Tensor:
    """One tensor of model inputs, batch first, from .pt/.pth, .npz or .npy."""
    _check_file(path, "--inputs", _INPUT_SUFFIXES)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            obj: Any = torch.from_numpy(np.load(path, allow_pickle=False))
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                keys = data.files
                key = "inputs" if "inputs" in keys else (keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise UserError(
                        f"--inputs: expected one array (or one named 'inputs') in {path.name!r}, "
                        f"got {keys}"
                    )
                obj = torch.from_numpy(data[key])
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
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


# ----------------------------------------------------------------------- choosing layers


def _split_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError(f"--layers: expected comma-separated layer names, got {text!r}")
    return names


def _default_model_layers(model: nn.Module) -> list[str]:
    """Every leaf module that owns parameters, in definition order, then the output."""
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


def _layers_for(source: _Source, wanted: list[str] | None) -> list[str]:
    if source.acts is not None:
        names = list(source.acts) if wanted is None else wanted
        unknown = [n for n in names if n not in source.acts]
        if unknown:
            raise UserError(
                f"{source.label}: unknown layer(s) {unknown} in {source.path.name!r}; "
                f"available: {list(source.acts)[:20]}"
            )
        return names
    names = _default_model_layers(source.model) if wanted is None else wanted
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


# ------------------------------------------------------------------------------ recording


def _batches(n: int, batch_size: int) -> list[torch.Tensor]:
    """Indices ``0..n-1`` in near-equal consecutive batches of at least ``batch_size`` (or n)."""
    return list(torch.arange(n).tensor_split(max(1, n // batch_size)))


def _progress(iterable: Any, *, desc: str, quiet: bool, total: int | None = None) -> Any:
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="batch", leave=False,
                disable=quiet or not sys.stderr.isatty())


def _run_model_batch(
    source: _Source, layers: list[str], batch: torch.Tensor, device: torch.device
) -> dict[str, torch.Tensor]:
    """Activations of ``layers`` (incl. ``OUTPUT``) of ``source.model`` on one batch, on CPU."""
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


def _prepare_model(source: _Source, inputs: torch.Tensor, device: torch.device) -> torch.Tensor:
    source.model.to(device).eval()
    params = [p for p in source.model.parameters() if p.is_floating_point()]
    if params and inputs.is_floating_point():
        inputs = inputs.to(params[0].dtype)  # e.g. float64 numpy inputs into a float32 model
    return inputs


def _record(source: _Source, layers: list[str], inputs: torch.Tensor, *, batch_size: int,
            device: torch.device, quiet: bool) -> dict[str, torch.Tensor]:
    inputs = _prepare_model(source, inputs, device)
    pieces: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    batches = _batches(len(inputs), batch_size)
    for idx in _progress(batches, desc=f"{source.label}: recording", quiet=quiet):
        for name, t in _run_model_batch(source, layers, inputs[idx], device).items():
            pieces[name].append(t)
    return {n: torch.cat(p) for n, p in pieces.items()}


# ------------------------------------------------------------------------ the matrix itself


def _check_samples(acts: dict[str, torch.Tensor], label: str) -> int:
    counts = {n: (t.shape[0] if t.ndim else 0) for n, t in acts.items()}
    if len(set(counts.values())) != 1:
        raise UserError(
            f"{label}: expected the same number of samples in every layer, got {counts}"
        )
    bad = {n: tuple(t.shape) for n, t in acts.items() if t.ndim < 1 or t.ndim > 4}
    if bad:
        raise UserError(f"{label}: expected 1- to 4-D activations (samples first), got {bad}")
    return next(iter(counts.values()))


def _echo(text: str) -> None:
    sys.stdout.write(text + "\n")


# ------------------------------------------------------------------------------- commands


def _default_flatten(measure: str) -> str:
    return "channels" if measure in _CCA_FAMILY else "full"


def _compare(args: argparse.Namespace) -> int:
    measure = args.measure or ("debiased_cka" if args.distributed else "linear_cka")
    flatten = args.flatten or _default_flatten(measure)
    if args.batch_size < 1:
        raise UserError(f"--batch-size: expected a positive integer, got {args.batch_size}")
    if args.distributed and measure not in _STREAMING:
        raise UserError(
            f"--distributed supports --measure {', '.join(_STREAMING)} (exact streaming), "
            f"got {measure}"
        )
    wanted_a = _split_names(args.layers)
    wanted_b = _split_names(args.layers_b) if args.layers_b is not None else wanted_a
    sources = [_load_source(Path(args.a), "A", trust_pickle=args.trust_pickle),
               _load_source(Path(args.b), "B", trust_pickle=args.trust_pickle)]
    inputs = None
    if any(s.model is not None for s in sources):
        if args.inputs is None:
            raise UserError("--inputs is required when A or B is a saved model")
        inputs = _load_inputs(Path(args.inputs))
    layers = [_layers_for(s, w) for s, w in zip(sources, (wanted_a, wanted_b))]
    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        raise UserError(
            f"--device: expected a torch device such as cpu or cuda:0, got {args.device!r}"
        ) from err
    if args.distributed:
        return _compare_distributed(args, sources, layers, inputs, measure=measure,
                                    flatten=flatten, device=device)

    acts = []
    for source, names in zip(sources, layers):
        if source.acts is not None:
            acts.append({n: source.acts[n] for n in names})
        else:
            acts.append(_record(source, names, inputs, batch_size=args.batch_size,
                                device=device, quiet=args.quiet))
    n_a, n_b = _check_samples(acts[0], "A"), _check_samples(acts[1], "B")
    if n_a != n_b:
        raise UserError(f"mismatched sample counts: A has {n_a} samples (rows), B has {n_b}")
    try:
        matrix = compute_matrix(acts[0], acts[1], measure=measure, flatten=flatten)
    except ValueError as err:
        raise UserError(f"{measure}: {err}") from err
    _finish(args, matrix, layers[0], layers[1], measure=measure, flatten=flatten)
    return 0


def _finish(args: argparse.Namespace, matrix: torch.Tensor, rows: list[str], cols: list[str],
            *, measure: str, flatten: str) -> None:
    title = f"{measure}: {Path(args.a).name} vs {Path(args.b).name}"
    csv_path, png_path = write_matrix(
        matrix, rows, cols, args.out, title=title,
        xlabel=f"B: {Path(args.b).name}", ylabel=f"A: {Path(args.a).name}",
    )
    _echo(f"{measure} (flatten={flatten}); rows: layers of A, columns: layers of B")
    _echo(format_table(matrix, rows, cols))
    _echo(f"wrote {csv_path} and {png_path}")


def _stream(source: _Source, names: list[str], inputs: torch.Tensor | None, rows: torch.Tensor,
            *, device: torch.device, flatten: str) -> Iterator[dict[str, torch.Tensor]]:
    """2-D activations of this process's rows, one near-equal batch at a time."""
    if source.model is not None:
        inputs = _prepare_model(source, inputs, device)
    for idx in rows:
        if source.acts is not None:
            batch = {n: source.acts[n][idx] for n in names}
        else:
            batch = _run_model_batch(source, names, inputs[idx], device)
        flat = {n: two_d(t, flatten) for n, t in batch.items()}
        if len({t.shape[0] for t in flat.values()}) != 1:
            raise UserError(
                f"{source.label}: --flatten {flatten} gives layers different numbers of rows "
                f"({ {n: t.shape[0] for n, t in flat.items()} }); use --flatten full or pool "
                f"with --distributed"
            )
        yield flat


def _streaming_metric(measure: str, first: tuple[dict, dict], batch_size: int) -> Any:
    """Exact :class:`repsim.StreamingSimilarity` where the widths allow, else (debiased CKA
    only) the minibatch estimator :class:`repsim.MinibatchCKA`."""
    from repsim import _streaming
    from repsim._minibatch import MinibatchCKA

    widest = max(t.shape[1] for side in first for t in side.values())
    if widest <= _streaming.MAX_FEATURES:  # gloo reduces CPU tensors
        return _streaming.StreamingSimilarity(_STREAMING[measure], device="cpu")
    if measure != "debiased_cka":
        raise UserError(
            f"--distributed: {measure} keeps (d, d) statistics and a layer has {widest} features "
            f"(limit {_streaming.MAX_FEATURES}); use --flatten pool or channels, or --measure "
            "debiased_cka (minibatch CKA for wide layers)"
        )
    if batch_size < 4:
        raise UserError(
            f"--batch-size: expected >= 4 for minibatch CKA (unbiased HSIC), got {batch_size}"
        )
    log.info("a layer has %d features: minibatch CKA instead of exact streaming", widest)
    return MinibatchCKA(device="cpu")


def _compare_distributed(args: argparse.Namespace, sources: list[_Source], layers: list[list[str]],
                         inputs: torch.Tensor | None, *, measure: str, flatten: str,
                         device: torch.device) -> int:
    import itertools

    import torch.distributed as dist

    started = False
    if not dist.is_initialized():
        if "WORLD_SIZE" not in os.environ:
            raise UserError("--distributed: expected a torchrun launch (WORLD_SIZE is not set)")
        dist.init_process_group("gloo")
        started = True
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        counts = []
        for source, names in zip(sources, layers):
            if source.acts is not None:
                counts.append(_check_samples({n: source.acts[n] for n in names}, source.label))
            else:
                counts.append(len(inputs))
        if counts[0] != counts[1]:
            raise UserError(
                f"mismatched sample counts: A has {counts[0]} samples (rows), B has {counts[1]}"
            )
        mine = torch.arange(rank, counts[0], world)  # this rank's shard: rows rank::world
        if len(mine) == 0:
            raise UserError(
                f"--distributed: {counts[0]} samples cannot be split over {world} processes"
            )
        batches = [mine[b] for b in _batches(len(mine), args.batch_size)]
        streams = [
            _stream(s, names, inputs, batches, device=device, flatten=flatten)
            for s, names in zip(sources, layers)
        ]
        pairs = zip(*streams)
        first = next(pairs)
        metric = _streaming_metric(measure, first, args.batch_size)
        try:
            for acts_a, acts_b in _progress(itertools.chain([first], pairs), desc=f"rank {rank}",
                                            quiet=args.quiet, total=len(batches)):
                metric.update(acts_a, acts_b)
            metric.all_reduce()
            matrix = metric.compute()
        except ValueError as err:
            raise UserError(f"{measure}: {err}") from err
        if isinstance(matrix, dict):
            matrix = matrix[_STREAMING[measure]]
        if rank == 0:
            _finish(args, matrix, list(metric.layers_a), list(metric.layers_b),
                    measure=measure, flatten=flatten)
    finally:
        if started:
            dist.destroy_process_group()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from repsim._demo import run_demo

    if args.epochs < 1:
        raise UserError(f"--epochs: expected a positive integer, got {args.epochs}")
    result = run_demo(args.out, epochs=args.epochs, quiet=args.quiet)
    for key, label in (("accuracy_a", "net A (seed 0)"), ("accuracy_b", "net B (seed 1)")):
        _echo(f"{label} test accuracy: {result[key]:.4f}")
    for stem, title in (("linear_cka", "linear CKA (flatten=full)"),
                        ("mean_cca", "mean CCA (flatten=channels)")):
        _echo(f"\n{title}; rows: layers of net A, columns: layers of net B")
        _echo(format_table(result[stem], result["layers"], result["layers"]))
    _echo(f"\nwrote {', '.join(str(p) for p in result['files'])}")
    return 0


# ----------------------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    """The ``repsim`` argument parser (``compare`` and ``demo`` sub-commands)."""
    parser = _Parser(
        prog="repsim",
        description="Representational similarity (CKA, CCA, SVCCA, PWCCA, Procrustes) "
        "between the layers of two PyTorch models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{compare,demo}")

    cmp = sub.add_parser(
        "compare",
        help="similarity of every layer of A with every layer of B",
        description="Similarity of every layer of A with every layer of B. Writes "
        "OUT/similarity.csv (rows: layers of A, columns: layers of B) and OUT/similarity.png, "
        "and prints the table.",
        epilog="A and B are activation files ({layer: array} in .npz, or in .pt read with "
        "torch.load(weights_only=True)) or saved models: TorchScript (torch.jit.save; only its "
        "'output' can be compared) or, with --trust-pickle, a full torch.save(model) pickle: "
        "unpickling runs code stored in the file, so without the flag such a file is refused. "
        "Models are run in eval mode on --inputs, batch by batch.",
    )
    cmp.add_argument("a", metavar="A", help="activations (.npz/.pt) or saved model (.pt/.pth)")
    cmp.add_argument("b", metavar="B", help="activations (.npz/.pt) or saved model (.pt/.pth)")
    cmp.add_argument("--out", required=True, metavar="DIR", help="output directory")
    cmp.add_argument(
        "--measure", choices=MEASURES, default=None,
        help="similarity measure (default linear_cka; debiased_cka with --distributed)",
    )
    cmp.add_argument(
        "--layers", default=None, metavar="a,b,...",
        help="comma-separated layers of A (and of B unless --layers-b); default: every array of "
        f"an activation file, or every leaf module with parameters plus '{OUTPUT}' (the model's "
        "return value) of a model",
    )
    cmp.add_argument("--layers-b", default=None, metavar="a,b,...",
                     help="layers of B, when they differ from --layers")
    cmp.add_argument("--inputs", default=None, metavar="FILE",
                     help="model inputs, samples first (.pt/.pth/.npz/.npy); required for models")
    cmp.add_argument(
        "--flatten", choices=("channels", "full", "pool"), default=None,
        help="how (N, C, H, W) and (N, L, C) activations become 2-D (repsim.flatten_conv); default "
        "'full' for CKA and Procrustes, 'channels' for cca/svcca/pwcca (each position a "
        "datapoint; maps of different sizes are average-pooled to the smaller one)",
    )
    cmp.add_argument("--batch-size", type=int, default=256,
                     help="samples per forward pass / minibatch (default 256)")
    cmp.add_argument("--device", default="cpu", help="device to run the models on (default cpu)")
    cmp.add_argument(
        "--distributed", action="store_true",
        help="under torchrun: each process takes rows rank::world_size and streams them through "
        "repsim.StreamingSimilarity (gloo all-reduce; exact: the values of a single process); "
        "every measure but rbf_cka; debiased_cka on layers wider than 8192 features falls back "
        "to repsim.MinibatchCKA; rank 0 writes the outputs",
    )
    cmp.add_argument("--trust-pickle", action="store_true",
                     help="allow loading a full torch.save(model) pickle, which runs code from the "
                     "file; only for models you trust")
    cmp.add_argument("--quiet", action="store_true", help="no progress bar")
    cmp.set_defaults(func=_compare)

    demo = sub.add_parser(
        "demo",
        help="train two small conv nets on scikit-learn's digits and compare their layers",
        description="Train two small conv nets (seeds 0 and 1) on scikit-learn's bundled 8x8 "
        "digits, record their layers on held-out images and write linear CKA and mean CCA "
        "matrices (CSV + PNG) into OUT. No downloads; well under a minute on a laptop CPU.",
    )
    demo.add_argument("--out", required=True, metavar="DIR", help="output directory")
    demo.add_argument("--epochs", type=int, default=10, help="training epochs per net (default 10)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)
    return parser


def _show_warning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    """Library warnings (e.g. a rank-deficient CCA) as one ``repsim: warning:`` line each."""
    sys.stderr.write(f"repsim: warning: {' '.join(str(message).split())}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (2 and one stderr line on a user error)."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            args = build_parser().parse_args(argv)
            return args.func(args)
    except UserError as err:
        message = " ".join(str(err).split())  # always one line
        sys.stderr.write(f"repsim: error: {message}\n")
        return 2
    except BrokenPipeError:  # e.g. `python -m repsim demo ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
