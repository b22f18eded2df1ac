"""Command line: ``python -m meta train ...`` and ``python -m meta evaluate RUN ...``.

    python -m meta train --preset omniglot-5w1s-quick --algorithm anil --out runs/anil
    python -m meta evaluate runs/anil --freeze 1,2,3

User errors (unknown preset or field, bad value, a run directory with another config, missing
run or checkpoint) exit with status 2 and a one-line message (:mod:`repsim._cli_policy`); any
other error is a bug and shows its traceback. ``evaluate`` prints one line with the accuracy and
its 95% confidence interval.
"""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from meta.algos import algorithm_names
from meta.algos._functional import HEADS
from meta._cli_common import busy_run_is_user_error, check_inputs, parse_set
from meta.config import PRESETS, get_preset
from meta.rl.config import RL_PRESETS
from repsim._cli_policy import run_cli, user_input

__all__ = ["main", "build_parser", "parse_set", "check_inputs", "PROG"]

PROG = "python -m meta"


def _parse_freeze(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected block numbers like 1,2,3, got {text!r}") from None


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m meta`` argument parser."""
    parser = _Parser(prog=PROG,
                     description="MAML / first-order MAML / ANIL / NIL training and evaluation.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a run (resumes if RUN holds the same config)",
                       description="Train a run directory; an existing one with the same config resumes.")
    t.add_argument("--preset", required=True, choices=sorted(PRESETS) + sorted(RL_PRESETS),
                   help="hyperparameter preset (RL: " + ", ".join(sorted(RL_PRESETS)) + ")")
    t.add_argument("--algorithm", choices=algorithm_names(), help="override the preset's algorithm")
    t.add_argument("--data-root", help="folder with the dataset files")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any TrainConfig field, e.g. --set iterations=1000 (repeatable)")
    t.add_argument("--out", required=True, metavar="RUN", help="run directory")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("evaluate", help="test accuracy of a run over fixed tasks",
                       description="Mean test accuracy and 95% CI; writes RUN/eval*.json.")
    e.add_argument("run", metavar="RUN", help="run directory")
    e.add_argument("--tasks", type=int, help="number of test tasks (default: the config's, 600)")
    e.add_argument("--freeze", type=_parse_freeze, default=(), metavar="1,2,3",
                   help="blocks kept fixed in the inner loop")
    e.add_argument("--head", choices=HEADS, default="maml", help="test-time head")
    e.add_argument("--inner-steps", type=int, help="test-time inner steps")
    e.add_argument("--checkpoint", help="iteration of a saved checkpoint, or 'last'")
    e.add_argument("--split", help="dataset split (default: the config's test_split)")
    e.add_argument("--seed", type=int, default=0, help="seed of the fixed tasks")
    e.add_argument("--device", default="cpu", help="cpu or cuda")
    return parser


def _train(args: argparse.Namespace) -> int:
    if args.preset in RL_PRESETS:                      # MAML-RL / ANIL-RL: meta.rl
        from meta.rl.cli import train_command
        return train_command(args)
    from meta.training import train

    with user_input():
        cfg = get_preset(args.preset)
        if args.algorithm:
            cfg = cfg.replace(algorithm=args.algorithm)
        if args.data_root:
            cfg = cfg.replace(data_root=args.data_root)
        cfg = parse_set(cfg, args.overrides)
        check_inputs(cfg, args.out)
    with busy_run_is_user_error():
        run = train(cfg, args.out, progress=False if args.quiet else None)
    if int(os.environ.get("RANK", "0")) == 0:
        print(run)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from meta.rl.train import is_rl_run
    if is_rl_run(args.run):
        from meta.rl.cli import evaluate_command
        return evaluate_command(args)
    from meta.evaluation import prepare_evaluation, run_evaluation

    with user_input():
        checkpoint = args.checkpoint
        if checkpoint not in (None, "last"):
            try:
                checkpoint = int(checkpoint)
            except ValueError:
                raise ValueError(f"--checkpoint: expected an iteration or 'last', got {checkpoint!r}") from None
        request = prepare_evaluation(args.run, tasks=args.tasks, freeze=args.freeze, head=args.head,
                                     inner_steps=args.inner_steps, checkpoint=checkpoint,
                                     split=args.split, seed=args.seed, device=args.device)
    r = run_evaluation(request)
    freeze = ",".join(map(str, r["freeze"])) or "none"
    print(f"{args.run}: {r['algorithm']} {r['ways']}-way {r['shots']}-shot {r['dataset']}, "
          f"head {r['head']}, frozen {freeze}, {r['inner_steps']} steps, {r['tasks']} tasks: "
          f"accuracy {100 * r['accuracy']['mean']:.2f}% +- {100 * r['accuracy']['ci95']:.2f}% "
          f"(95% CI) -> {os.path.join(args.run, r['file'])}")
    return 0


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return _train(args) if args.command == "train" else _evaluate(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 with a one-line message on a user error; a bug
    is a traceback)."""
    return run_cli(PROG, _main, argv)
