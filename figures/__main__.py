"""``python -m figures``: regenerate the paper's figures and tables (see ``--help``)."""
from __future__ import annotations

import argparse
import logging
import sys

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from figures.pipeline import OUTPUTS

    p = argparse.ArgumentParser(
        prog="python -m figures",
        description="Train the missing runs, evaluate, analyse, and write results.json, "
                    "report.md and one PNG per figure of Raghu et al. (ICLR 2020).")
    p.add_argument("--preset", choices=("tiny", "quick", "paper"), default="quick",
                   help="tiny: seconds (tests); quick: minutes on a CPU, embedded Glyphs data; "
                        "paper: real Omniglot/MiniImageNet with the paper's hyperparameters")
    p.add_argument("--out", required=True, help="output folder (results.json, report.md, PNGs)")
    p.add_argument("--only", default=None,
                   help=f"comma-separated outputs to produce, from {','.join(OUTPUTS)}")
    p.add_argument("--runs", default=None, help="folder of training runs (default OUT/runs)")
    p.add_argument("--data-root", default=None,
                   help="dataset folder (paper preset; default $REPSIM_OMNIGLOT or ../shared/omniglot)")
    p.add_argument("--setting", default=None,
                   help="the protocol the runs follow, a meta preset: paper: omniglot-20w1s "
                        "(default), omniglot-20w5s, miniimagenet-5w1s, miniimagenet-5w5s; quick: "
                        "glyphs-quick (default), omniglot-5w1s-quick, omniglot-20w1s (real data "
                        "at the quick budget)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from figures.pipeline import make_preset, run_pipeline

    try:
        seeds = None if args.seeds is None else [int(x) for x in args.seeds.split(",") if x.strip()]
        preset = make_preset(args.preset, data_root=args.data_root, seeds=seeds,
                             setting=args.setting)
        results = run_pipeline(preset, args.out, only=args.only, runs_dir=args.runs,
                               quiet=args.quiet or not sys.stderr.isatty())
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.quiet:
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in results.get("stage_seconds", {}).items())
        print(f"wrote {args.out}/results.json, report.md and figures in {results['seconds']:.1f}s "
              f"({stages})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
