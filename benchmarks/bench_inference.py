"""Permutation tests: the fast null paths against one plain call of the measure per permutation.

For each setting, ``permutation_test(x, y, measure=name)`` (each side prepared once, a batch
of permutations costing only the cross term) and the same test with the measure handed in as
a callable (the plain path: the measure called on ``(x, y[perm])`` for every permutation) run
side by side in one process, with the same generator seed, so their null values are compared
too. Times are per permutation (value call and setup included, spread over the
permutations; median of alternating rounds), projected to 1000 permutations.

Usage::

    python benchmarks/bench_inference.py                        # n 500, 2000; d 64, 512; 1 thread
    python benchmarks/bench_inference.py --n 500 --widths 64 128 256 512 --permutations 200
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import format_table, machine_info, write_json  # noqa: E402

from repsim import linear_cka, mean_cca, permutation_test  # noqa: E402

__all__ = ["main", "run"]

MEASURES: dict[str, tuple[str, dict[str, Any], Callable[..., Any]]] = {
    "linear_cka": ("linear_cka", {}, lambda x, y: linear_cka(x, y)),
    "debiased_cka": ("linear_cka", {"debiased": True},
                     lambda x, y: linear_cka(x, y, debiased=True)),
    "mean_cca": ("mean_cca", {}, lambda x, y: mean_cca(x, y)),
}


def make_pair(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two related (n, d) layers: ReLU features of a shared latent plus noise."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 16, dtype=torch.float64, generator=g)

    def layer() -> torch.Tensor:
        w = torch.randn(16, d, dtype=torch.float64, generator=g) / 4.0
        return torch.relu(z @ w) + 0.5 * torch.randn(n, d, dtype=torch.float64, generator=g)

    return layer(), layer()


def _median_times(fns: list[Callable[[], Any]], repeats: int) -> tuple[list[float], list[Any]]:
    """Median wall time of each function, the functions alternating within each round (so
    that load from other processes falls on all of them alike), and their last results."""
    times: list[list[float]] = [[] for _ in fns]
    outs: list[Any] = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            outs[i] = fn()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times], outs


def run(ns: list[int], widths: list[int], measures: list[str], *, permutations: int,
        plain: int, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for n in ns:
        for d in widths:
            x, y = make_pair(n, d)
            for label in measures:
                name, kw, fn = MEASURES[label]
                with warnings.catch_warnings():  # CCA with n <= d warns (ill-posed, eigen path)
                    warnings.simplefilter("ignore")
                    permutation_test(x[:64], y[:64], measure=name, n_permutations=2, **kw)
                    (t_fast, t_plain), (fast, slow) = _median_times([
                        lambda: permutation_test(x, y, measure=name, n_permutations=permutations,
                                                 generator=0, **kw),
                        lambda: permutation_test(x, y, measure=fn, n_permutations=plain,
                                                 generator=0),
                    ], repeats)
                per_fast, per_plain = t_fast / permutations, t_plain / plain
                rows.append({
                    "measure": label, "n": n, "d": d,
                    "fast_ms": 1e3 * per_fast, "plain_ms": 1e3 * per_plain,
                    "speedup": per_plain / per_fast,
                    "fast_1000_s": 1000 * per_fast, "plain_1000_s": 1000 * per_plain,
                    "max_abs_diff": float((fast.null[:plain] - slow.null).abs().max()),
                })
                print(f"  {label} n={n} d={d}: {rows[-1]['speedup']:.1f}x", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[500, 2000], help="samples")
    p.add_argument("--widths", type=int, nargs="+", default=[64, 512], help="features per side")
    p.add_argument("--measures", nargs="+", default=list(MEASURES), choices=list(MEASURES))
    p.add_argument("--permutations", type=int, default=100,
                   help="permutations timed on the fast path (default 100)")
    p.add_argument("--plain", type=int, default=10,
                   help="permutations timed on the plain path (default 10)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds, median (default 3)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = run(args.n, args.widths, args.measures, permutations=args.permutations,
               plain=args.plain, repeats=args.repeats)
    info = machine_info(threads=args.threads)
    print(f"# permutation_test: fast null vs one plain call per permutation; float64; "
          f"{args.permutations} fast / {args.plain} plain permutations timed (median of "
          f"{args.repeats}), per permutation and projected to 1000; {args.threads} thread(s); "
          f"load {info['loadavg_1_5_15']}")
    print(format_table(rows, ["measure", "n", "d", "fast_ms", "plain_ms", "speedup",
                              "fast_1000_s", "plain_1000_s", "max_abs_diff"]))
    if args.json:
        write_json(args.json, {"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                               "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
