"""Vectorised ``similarity_matrix`` against the loop of separate calls, and streaming CKA.

Two "models" with five layers each (widths 64..1024) are compared on the same ``n`` inputs:

* ``similarity_matrix(a, b, measure=...)`` (each layer's statistics computed once, cross terms
  from batched products) against ``len(a) * len(b)`` separate ``linear_cka`` / ``rbf_cka`` calls;
  target: at least 3x faster for linear CKA;
* ``MinibatchCKA`` over the same data in batches of 256 (all layer pairs at once).

Every timed result is checked against the loop's values.

Usage::

    python3 benchmarks/bench_matrix.py                       # n=2000, widths 64..1024, 1 thread
    python3 benchmarks/bench_matrix.py --n 4000 --threads 2 --json out.json
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import format_table, machine_info, time_call, write_json  # noqa: E402

from repsim._cka import linear_cka, rbf_cka  # noqa: E402
from repsim._matrix import similarity_matrix  # noqa: E402
from repsim._minibatch import MinibatchCKA  # noqa: E402

__all__ = ["main", "run"]

log = logging.getLogger("bench_matrix")

TARGET = 3.0


def make_models(n: int, widths: list[int], seed: int = 0) -> tuple[dict, dict]:
    """Two related 5-layer 'models': random ReLU features of a shared latent, plus noise."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 32, generator=g, dtype=torch.float64)

    def model(tag: str) -> dict[str, torch.Tensor]:
        out, h = {}, z
        for i, d in enumerate(widths):
            w = torch.randn(h.shape[1], d, generator=g, dtype=torch.float64) / h.shape[1] ** 0.5
            h = torch.relu(h @ w) + 0.1 * torch.randn(n, d, generator=g, dtype=torch.float64)
            out[f"{tag}{i + 1}"] = h
        return out

    return model("a"), model("b")


def _loop(acts_a: dict, acts_b: dict, fn: Any) -> torch.Tensor:
    return torch.stack([torch.stack([fn(x, y) for y in acts_b.values()]) for x in acts_a.values()])


def _minibatch(acts_a: dict, acts_b: dict, batch: int) -> torch.Tensor:
    m = MinibatchCKA()
    n = next(iter(acts_a.values())).shape[0]
    for s in range(0, n - batch + 1, batch):  # full batches only
        m.update({k: v[s:s + batch] for k, v in acts_a.items()},
                 {k: v[s:s + batch] for k, v in acts_b.items()})
    return m.compute()


def run(n: int, widths: list[int], *, repeats: int, rbf_n: int, batch: int,
        wide_n: int = 0, wide_widths: list[int] | None = None) -> list[dict[str, Any]]:
    acts_a, acts_b = make_models(n, widths)
    pairs = len(acts_a) * len(acts_b)
    rows = []
    cases = [
        ("linear_cka", {}, lambda x, y: linear_cka(x, y), acts_a, acts_b),
        ("debiased_cka", {}, lambda x, y: linear_cka(x, y, debiased=True), acts_a, acts_b),
    ]
    if wide_n and wide_widths:  # flattened conv maps: d >> n, both sides use (n, n) Grams
        wa, wb = make_models(wide_n, wide_widths, seed=1)
        cases += [("linear_cka", {}, lambda x, y: linear_cka(x, y), wa, wb),
                  ("debiased_cka", {}, lambda x, y: linear_cka(x, y, debiased=True), wa, wb)]
    if rbf_n:
        ra = {k: v[:rbf_n] for k, v in acts_a.items()}
        rb = {k: v[:rbf_n] for k, v in acts_b.items()}
        cases.append(("rbf_cka", {}, lambda x, y: rbf_cka(x, y), ra, rb))
    for measure, kw, fn, a, b in cases:
        t_loop, loop_val, _ = time_call(lambda: _loop(a, b, fn), repeats=repeats)
        t_mat, mat_val, _ = time_call(lambda: similarity_matrix(a, b, measure=measure, **kw),
                                      repeats=repeats)
        err = float((mat_val - loop_val).abs().max())
        n_here = next(iter(a.values())).shape[0]
        d_here = [v.shape[1] for v in a.values()]
        rows.append({"what": f"{measure} {len(a)}x{len(b)}, n={n_here}, d={min(d_here)}..{max(d_here)}",
                     "loop_s": t_loop, "matrix_s": t_mat, "speedup": t_loop / t_mat,
                     "target": TARGET if measure != "rbf_cka" else None, "max_abs_diff": err})
    t_mb, mb_val, _ = time_call(lambda: _minibatch(acts_a, acts_b, batch), repeats=repeats)
    exact = similarity_matrix(acts_a, acts_b, measure="debiased_cka")
    rows.append({"what": f"MinibatchCKA {len(acts_a)}x{len(acts_b)}, {n // batch} x {batch}",
                 "loop_s": None, "matrix_s": t_mb, "speedup": None, "target": None,
                 "max_abs_diff": float((mb_val - exact).abs().max())})
    log.info("%d pairs", pairs)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="samples (default 2000)")
    p.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    p.add_argument("--rbf-n", type=int, default=1000, help="samples for the RBF rows (0: skip)")
    p.add_argument("--batch", type=int, default=256, help="MinibatchCKA batch size")
    p.add_argument("--wide-n", type=int, default=500,
                   help="samples of the wide (d >> n, flattened conv maps) rows (0: skip)")
    p.add_argument("--wide-widths", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    rows = run(args.n, args.widths, repeats=args.repeats, rbf_n=args.rbf_n, batch=args.batch,
               wide_n=args.wide_n, wide_widths=args.wide_widths)
    info = machine_info(threads=args.threads)
    print(f"# similarity_matrix vs separate calls; widths {args.widths} (wide rows: "
          f"{args.wide_widths}); float64; "
          f"{args.threads} thread(s); load {info['loadavg_1_5_15']}")
    print(format_table(rows, ["what", "loop_s", "matrix_s", "speedup", "target", "max_abs_diff"]))
    print("# MinibatchCKA row: max_abs_diff is against the full-data debiased CKA matrix "
          "(minibatch CKA is a different estimator, so a small gap is expected)")
    if args.json:
        write_json(args.json, {"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                               "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
