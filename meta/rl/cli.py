"""``python -m meta train|evaluate`` for RL presets and RL run directories (called by meta.cli).

As in :mod:`meta.cli`, only the reading of the user's input is wrapped in
:func:`repsim._cli_policy.user_input`; the training and the evaluation themselves are not.
"""
from __future__ import annotations

import argparse
import os

from meta._cli_common import busy_run_is_user_error, check_inputs, parse_set
from meta.rl.algos import RL_REGISTRY
from meta.rl.config import get_rl_preset
from repsim._cli_policy import user_input

__all__ = ["train_command", "evaluate_command"]


def train_command(args: argparse.Namespace) -> int:
    """``train --preset <rl preset> [--algorithm maml|fomaml|anil] [--set f=v] --out RUN``."""
    from meta.rl.train import train_rl

    with user_input():
        cfg = get_rl_preset(args.preset)
        if args.algorithm:
            if args.algorithm not in RL_REGISTRY:
                raise ValueError(f"--algorithm: expected one of {list(RL_REGISTRY)} for the RL "
                                 f"preset {args.preset}, got {args.algorithm!r}")
            cfg = cfg.replace(algorithm=args.algorithm)
        if args.data_root:
            raise ValueError(f"--data-root: expected none for the RL preset {args.preset}, "
                             f"got {args.data_root!r}")
        cfg = parse_set(cfg, args.overrides)
        check_inputs(cfg, args.out)
    with busy_run_is_user_error():
        print(train_rl(cfg, args.out, progress=False if args.quiet else None))
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    """``evaluate RUN [--tasks N] [--checkpoint best|last] [--seed S]`` for an RL run."""
    from meta.rl.train import prepare_rl_evaluation, run_rl_evaluation

    with user_input():
        unsupported = [flag for flag, used in (("--freeze", bool(args.freeze)),
                                               ("--head", args.head != "maml"),
                                               ("--inner-steps", args.inner_steps is not None),
                                               ("--split", args.split is not None),
                                               ("--device", args.device != "cpu")) if used]
        if unsupported:
            raise ValueError(f"{unsupported[0]}: expected only --tasks, --checkpoint and --seed "
                             f"for an RL run, got {', '.join(unsupported)}")
        request = prepare_rl_evaluation(args.run, tasks=args.tasks,
                                        checkpoint=args.checkpoint or "best", seed=args.seed)
    r = run_rl_evaluation(request)
    print(f"{args.run}: {r['algorithm']} {r['env']} ({r['checkpoint']}, iteration "
          f"{r['iteration']}), {r['tasks']} tasks x {r['episodes']} episodes: average return "
          f"pre-adaptation {r['pre']['mean']:.2f} +- {r['pre']['ci95']:.2f}, post-adaptation "
          f"{r['post']['mean']:.2f} +- {r['post']['ci95']:.2f} (95% CI) -> "
          f"{os.path.join(args.run, r['file'])}")
    return 0
