"""Benchmark: the whole quick pipeline, ``python -m figures --preset quick``, into a temp dir.

Prints the total wall-clock seconds and the seconds of each stage (from results.json), the
headline numbers, and each finding's verdict.

    python benchmarks/bench_figures.py [--preset quick] [--keep DIR]
    python benchmarks/bench_figures.py --after-training results/quick/runs [--repeats 2]

``--after-training RUNS`` times only what follows training, on a copy of a finished preset's
runs with their ``eval*.json`` removed: the pipeline with one worker process and with one per
core (the preset's default), alternately, ``--repeats`` times each. It prints the seconds of
every stage, the ratio of the totals, and whether the two give the same ``results.json``
numbers (timings aside).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]


_TIMINGS = ("timing", "timing_seconds", "stage_seconds", "seconds")


def _numbers(results: dict) -> dict:
    return {k: v for k, v in results.items() if k not in _TIMINGS}


def _after_training(preset_name: str, runs: Path, repeats: int) -> int:
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from figures.pipeline import make_preset, run_pipeline

    preset = make_preset(preset_name)
    variants = {"1 worker": dataclasses.replace(preset, workers=1),
                f"{preset.workers} workers": preset}
    totals: dict[str, list[float]] = {name: [] for name in variants}
    numbers = {}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "runs"
        shutil.copytree(runs, copy)
        for repeat in range(repeats):
            for name, variant in variants.items():
                for cached in copy.glob("*/eval*.json"):
                    cached.unlink()
                start = time.perf_counter()
                r = run_pipeline(variant, Path(tmp) / f"out{repeat}-{variant.workers}",
                                 runs_dir=copy, quiet=True)
                totals[name].append(time.perf_counter() - start)
                numbers[name] = _numbers(r)
                stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stage_seconds"].items())
                print(f"{name:>10}: {totals[name][-1]:6.1f} s ({stages}); load {os.getloadavg()[0]:.2f}",
                      flush=True)
    one, many = (statistics.median(v) for v in totals.values())
    print(f"median {one:.1f} s with 1 worker, {many:.1f} s with {preset.workers}: {one / many:.2f}x")
    same = len({json.dumps(v, sort_keys=True) for v in numbers.values()}) == 1
    print("results.json numbers " + ("identical" if same else "DIFFER"))
    return 0 if same else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="quick", choices=("tiny", "quick", "paper"))
    p.add_argument("--keep", default=None, help="write into this folder instead of a temp dir")
    p.add_argument("--after-training", default=None, metavar="RUNS",
                   help="time the stages after training on a copy of these finished runs")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    if args.after_training is not None:
        return _after_training(args.preset, Path(args.after_training), args.repeats)
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep) if args.keep else Path(tmp) / "out"
        cmd = [sys.executable, "-m", "figures", "--preset", args.preset, "--out", str(out), "--quiet"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=root)
        total = time.perf_counter() - t0
        if proc.returncode != 0:
            print(f"error: {' '.join(cmd)} exited with {proc.returncode}", file=sys.stderr)
            return proc.returncode
        r = json.loads((out / "results.json").read_text())
        print(f"preset {args.preset}: total {total:.1f} s wall (pipeline {r['seconds']:.1f} s)")
        for k, v in r.get("stage_seconds", {}).items():
            print(f"  {k:<10} {v:8.1f} s")
        acc = r.get("accuracy", {})
        print("accuracy: " + ", ".join(f"{k} {100 * v['mean']:.1f}%" for k, v in acc.items()))
        for line in (out / "report.md").read_text().splitlines():
            if line.startswith("- **"):
                print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
