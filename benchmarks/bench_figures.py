"""Benchmark: the whole quick pipeline, ``python -m figures --preset quick``, into a temp dir.

Prints the total wall-clock seconds and the seconds of each stage (from results.json), the
headline numbers, and each finding's verdict.

    python benchmarks/bench_figures.py [--preset quick] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="quick", choices=("tiny", "quick", "paper"))
    p.add_argument("--keep", default=None, help="write into this folder instead of a temp dir")
    args = p.parse_args(argv)
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
