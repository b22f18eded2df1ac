"""``python -m repsim``: layer-by-layer similarity of two models or activation files, and a demo.

::

    python -m repsim compare acts_a.npz acts_b.npz --out results/ab
    python -m repsim compare model_a.pt model_b.pt --inputs images.pt --out results/ab \\
        --measure pwcca --layers conv1,conv2,head
    torchrun --nproc_per_node=4 -m repsim compare a.pt b.pt --inputs x.pt --out r --distributed
    python -m repsim demo --out results/demo

Each ``compare`` writes ``similarity.csv`` (rows: layers of A, columns: layers of B) and
``similarity.png`` (a heatmap) into ``--out`` and prints the table. A user error exits with
status 2 and one line ``repsim: error: ...`` on stderr (:mod:`repsim._cli_policy`).

This module parses the arguments and calls the library: files are read by
:mod:`repsim._loading`, models are run by :mod:`repsim._collect`, ``--distributed`` is
:mod:`repsim._compare_distributed`, and the matrix and its outputs are
:mod:`repsim._layer_matrix`.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from repsim._cli_policy import UserError, run_cli
from repsim._collect import OUTPUT, check_samples, collect, layers_for
from repsim._compare_distributed import STREAMING, compare_distributed
from repsim._layer_matrix import compute_matrix, format_table, write_matrix
from repsim._loading import Source, load_inputs, load_source
from repsim._matrix import MEASURES

__all__ = ["main", "build_parser", "compute_matrix", "write_matrix", "format_table", "UserError"]

_CCA_FAMILY = ("cca", "svcca", "pwcca")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`UserError` (one line, exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(message)


def _echo(text: str) -> None:
    sys.stdout.write(text + "\n")


# ------------------------------------------------------------------------------- commands


def _split_names(text: str | None) -> list[str] | None:
    """``--layers a,b,c`` as a list of names (None when the option was not given)."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError(f"--layers: expected comma-separated layer names, got {text!r}")
    return names


def _measure_and_flatten(args: argparse.Namespace) -> tuple[str, str]:
    """The measure and flatten mode asked for, with their defaults; checks the options."""
    measure = args.measure or ("debiased_cka" if args.distributed else "linear_cka")
    flatten = args.flatten or ("channels" if measure in _CCA_FAMILY else "full")
    if args.batch_size < 1:
        raise UserError(f"--batch-size: expected a positive integer, got {args.batch_size}")
    if args.distributed and measure not in STREAMING:
        raise UserError(
            f"--distributed supports --measure {', '.join(STREAMING)} (exact streaming), "
            f"got {measure}"
        )
    return measure, flatten


def _read_sides(args: argparse.Namespace
                ) -> tuple[list[Source], list[list[str]], torch.Tensor | None, torch.device]:
    """Load A and B (and --inputs when a side is a model); choose their layers and the device."""
    wanted_a = _split_names(args.layers)
    wanted_b = _split_names(args.layers_b) if args.layers_b is not None else wanted_a
    sources = [load_source(Path(args.a), "A", trust_pickle=args.trust_pickle),
               load_source(Path(args.b), "B", trust_pickle=args.trust_pickle)]
    inputs = None
    if any(s.model is not None for s in sources):
        if args.inputs is None:
            raise UserError("--inputs is required when A or B is a saved model")
        inputs = load_inputs(Path(args.inputs))
    layers = [layers_for(s, w) for s, w in zip(sources, (wanted_a, wanted_b))]
    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        raise UserError(
            f"--device: expected a torch device such as cpu or cuda:0, got {args.device!r}"
        ) from err
    return sources, layers, inputs, device


def _compare(args: argparse.Namespace) -> int:
    measure, flatten = _measure_and_flatten(args)
    sources, layers, inputs, device = _read_sides(args)
    if args.distributed:
        result = compare_distributed(sources, layers, inputs, measure=measure, flatten=flatten,
                                     batch_size=args.batch_size, device=device, quiet=args.quiet)
        if result is not None:  # rank 0 writes
            _finish(args, *result, measure=measure, flatten=flatten)
        return 0
    acts = collect(sources, layers, inputs, batch_size=args.batch_size, device=device,
                   quiet=args.quiet)
    n_a, n_b = check_samples(acts[0], "A"), check_samples(acts[1], "B")
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
    """Write the CSV and heatmap into ``--out`` and print the table."""
    title = f"{measure}: {Path(args.a).name} vs {Path(args.b).name}"
    csv_path, png_path = write_matrix(
        matrix, rows, cols, args.out, title=title,
        xlabel=f"B: {Path(args.b).name}", ylabel=f"A: {Path(args.a).name}",
    )
    _echo(f"{measure} (flatten={flatten}); rows: layers of A, columns: layers of B")
    _echo(format_table(matrix, rows, cols))
    _echo(f"wrote {csv_path} and {png_path}")


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
    _add_compare(sub)
    _add_demo(sub)
    return parser


def _add_compare(sub: Any) -> None:
    """The ``compare`` sub-command and its options."""
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


def _add_demo(sub: Any) -> None:
    """The ``demo`` sub-command and its options."""
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


def _show_warning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    """Library warnings (e.g. a rank-deficient CCA) as one ``repsim: warning:`` line each."""
    sys.stderr.write(f"repsim: warning: {' '.join(str(message).split())}\n")


def _run(argv: Sequence[str] | None) -> int:
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        args = build_parser().parse_args(argv)
        return args.func(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (2 and one stderr line on a user error)."""
    return run_cli("repsim", _run, argv)
