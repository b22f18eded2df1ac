"""``python -m meta train|evaluate`` for RL presets and RL run directories (called by meta.cli)."""
from __future__ import annotations

import os

from meta.rl.config import RL_ALGORITHMS, get_rl_preset

__all__ = ["train_command", "evaluate_command"]


def train_command(args) -> int:
    """``train --preset <rl preset> [--algorithm maml|fomaml|anil] [--set f=v] --out RUN``."""
    from meta.cli import parse_set
    from meta.rl.train import train_rl

    cfg = get_rl_preset(args.preset)
    if args.algorithm:
        if args.algorithm not in RL_ALGORITHMS:
            raise ValueError(f"--algorithm: expected one of {list(RL_ALGORITHMS)} for the RL "
                             f"preset {args.preset}, got {args.algorithm!r}")
        cfg = cfg.replace(algorithm=args.algorithm)
    if args.data_root:
        raise ValueError(f"--data-root: expected none for the RL preset {args.preset}, "
                         f"got {args.data_root!r}")
    cfg = parse_set(cfg, args.overrides)
    print(train_rl(cfg, args.out, progress=False if args.quiet else None))
    return 0


def evaluate_command(args) -> int:
    """``evaluate RUN [--tasks N] [--checkpoint best|last] [--seed S]`` for an RL run."""
    from meta.rl.train import evaluate_rl

    unsupported = [flag for flag, used in (("--freeze", bool(args.freeze)),
                                           ("--head", args.head != "maml"),
                                           ("--inner-steps", args.inner_steps is not None),
                                           ("--split", args.split is not None),
                                           ("--device", args.device != "cpu")) if used]
    if unsupported:
        raise ValueError(f"{unsupported[0]}: expected only --tasks, --checkpoint and --seed for "
                         f"an RL run, got {', '.join(unsupported)}")
    checkpoint = args.checkpoint or "best"
    r = evaluate_rl(args.run, tasks=args.tasks, checkpoint=checkpoint, seed=args.seed)
    print(f"{args.run}: {r['algorithm']} {r['env']} ({r['checkpoint']}, iteration "
          f"{r['iteration']}), {r['tasks']} tasks x {r['episodes']} episodes: average return "
          f"pre-adaptation {r['pre']['mean']:.2f} +- {r['pre']['ci95']:.2f}, post-adaptation "
          f"{r['post']['mean']:.2f} +- {r['post']['ci95']:.2f} (95% CI) -> "
          f"{os.path.join(args.run, r['file'])}")
    return 0
