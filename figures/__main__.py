"""``python -m figures``: regenerate the paper's figures and tables (see ``--help``)."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from repsim._cli_policy import run_cli, user_input

__all__ = ["main", "build_parser"]

PROG = "python -m figures"


def build_parser() -> argparse.ArgumentParser:
    from figures.pipeline import OUTPUTS, PRESETS

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train the missing runs, evaluate, analyse, and write results.json, "
                    "report.md and one PNG per figure of Raghu et al. (ICLR 2020).")
    parser.add_argument("--preset", choices=PRESETS, default="quick",
                        help="tiny: seconds (tests); quick: minutes on a CPU, embedded Glyphs data; "
                             "paper: real Omniglot/MiniImageNet with the paper's hyperparameters")
    parser.add_argument("--out", required=True, help="output folder (results.json, report.md, PNGs)")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated outputs to produce, from {','.join(OUTPUTS)}")
    parser.add_argument("--runs", default=None, help="folder of training runs (default OUT/runs)")
    parser.add_argument("--data-root", default=None,
                        help="dataset folder (paper preset; default $REPSIM_OMNIGLOT or ../shared/omniglot)")
    parser.add_argument("--setting", default=None,
                        help="the protocol the runs follow, a meta preset: paper: omniglot-20w1s "
                             "(default), omniglot-20w5s, miniimagenet-5w1s, miniimagenet-5w5s; quick: "
                             "glyphs-miniimagenet-quick (default: the MiniImageNet protocol on Glyphs), "
                             "glyphs-quick (the Omniglot 5-way protocol), omniglot-5w1s-quick, "
                             "omniglot-20w1s (real data at the quick budget)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2")
    parser.add_argument("--iterations", type=int, default=None,
                        help="outer steps of every run (default: the preset's; quick 500 with the "
                             "default setting, else 1500; paper 30000); checkpoints and "
                             "validation keep their fractions of the run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of every run's TrainConfig, e.g. --set "
                             "head_init=glorot (repeatable; not algorithm, seed, body_from, "
                             "data_root or iterations)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    return parser


def _main(argv: Sequence[str] | None) -> int:
    from figures.pipeline import check_outputs, make_preset, parse_only, run_pipeline
    from meta._cli_common import busy_run_is_user_error, parse_fields
    from meta.data.episodes import check_data_root

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    with user_input("seeds"):
        seeds = None if args.seeds is None else [int(x) for x in args.seeds.split(",") if x.strip()]
    with user_input():
        preset = make_preset(args.preset, data_root=args.data_root, seeds=seeds, setting=args.setting,
                             iterations=args.iterations, overrides=parse_fields(args.overrides))
        only = parse_only(args.only)
        check_outputs(preset, only)
        check_data_root(preset.base.dataset, preset.base.data_root)
    with busy_run_is_user_error():
        results = run_pipeline(preset, args.out, only=only, runs_dir=args.runs,
                               quiet=args.quiet or not sys.stderr.isatty())
    if not args.quiet:
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in results.get("stage_seconds", {}).items())
        print(f"wrote {args.out}/results.json, report.md and figures in {results['seconds']:.1f}s "
              f"({stages})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv``; 2 with a one-line error on a bad argument."""
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
