"""Exact streaming ``repsim.StreamingSimilarity``: memory, time per sample and exactness.

Usage::

    python3 benchmarks/bench_streaming.py [--json results/bench_streaming.json]
    python3 benchmarks/bench_streaming.py --parts memory --sizes 100000,1000000 --d 512

Three parts, each printing its figures:

* ``memory``: each size runs in a fresh subprocess that generates its activations batch by
  batch (seeded, one ``(n, d)`` layer per side), streams them through one
  ``StreamingSimilarity`` with every measure and reports ``ru_maxrss``, the peak resident set
  of the whole process (Python and torch included), and the peak just before streaming starts
  (after one warm-up batch). Target: peak at the largest size <= 1.1 x peak at the smallest.
* ``time``: on the same pre-generated batches, seconds per sample of ``update`` (linear CKA
  only, and every measure; accumulators past their first batch, which also fixes the shift and
  looks for varying samples), of ``repsim.MinibatchCKA.update`` and of the bare product
  ``x.T @ y`` (torch's, and the numpy-BLAS one repsim uses). In every round each method runs
  back to back with the numpy-BLAS product (the faster of the two here), and ``x_product`` is
  the median of those per-pair ratios (robust to load drift on a shared machine). Target:
  linear CKA within 2x of the product. The flop bound is 2.0 for ``d_x = d_y``: the two Grams
  ``X^T X``, ``Y^T Y`` (half a product each through ``syrk``) come on top of ``X^T Y``; the
  row "the 3 products" times exactly those three BLAS calls, the floor for the update.
* ``exact``: ``n`` samples that fit in memory streamed in uneven batches; the largest absolute
  difference from the full-data functions for every measure.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from _common import format_table, machine_info, write_json  # noqa: E402

__all__ = ["make_batch", "peak_rss_mib", "stream_memory", "time_per_sample", "exactness", "main"]

MEMORY_TARGET = 1.1
TIME_TARGET = 2.0


def peak_rss_mib() -> float:
    """Peak resident set of this process so far, in MiB (Linux reports ru_maxrss in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024.0 if sys.platform != "darwin" else kib / 2**20


def make_batch(index: int, *, batch_size: int, d: int, seed: int = 0) -> tuple[Any, Any]:
    """Batch ``index`` of a seeded stream: ``x`` (batch, d) and a related ``y`` (batch, d)."""
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + index)
    x = torch.randn(batch_size, d, generator=g, dtype=torch.float64) + 1.0
    y = (2.0 * x.roll(1, dims=1)).tanh() + 0.5 * torch.randn(batch_size, d, generator=g,
                                                           dtype=torch.float64)
    return x, y


def stream_memory(n_samples: int, *, d: int, batch_size: int, threads: int) -> dict[str, Any]:
    """Stream ``n_samples`` generated on the fly through one accumulator of every measure."""
    import torch

    import repsim
    from repsim._streaming import MEASURES

    torch.set_num_threads(threads)
    warm = repsim.StreamingSimilarity(MEASURES)
    warm.update(*make_batch(-1, batch_size=batch_size, d=d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm.compute()
    before = peak_rss_mib()
    metric = repsim.StreamingSimilarity(MEASURES)
    n_batches = n_samples // batch_size
    t0 = time.perf_counter()
    for b in range(n_batches):
        metric.update(*make_batch(b, batch_size=batch_size, d=d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = metric.compute()
    return {
        "n_samples": metric.n_samples_,
        "n_batches": n_batches,
        "d": d,
        "peak_rss_before_mib": before,
        "peak_rss_mib": peak_rss_mib(),
        "seconds": time.perf_counter() - t0,
        "linear_cka": float(out["linear_cka"]),
    }


def time_per_sample(*, d: int, batch_size: int, n_batches: int, rounds: int,
                    threads: int) -> list[dict[str, Any]]:
    """Seconds per sample of each method on the same batches, medians over ``rounds``."""
    import torch

    import repsim
    from repsim import _blas
    from repsim._streaming import MEASURES

    torch.set_num_threads(threads)
    batches = [make_batch(b, batch_size=batch_size, d=d) for b in range(n_batches)]

    def accumulate(metric: Any) -> Any:
        for x, y in batches:
            metric.update(x, y)
        return metric

    # steady state: the accumulators have seen their first batch (shift, first-sample checks)
    linear = repsim.StreamingSimilarity()
    every = repsim.StreamingSimilarity(MEASURES)
    for metric in (linear, every):
        metric.update(*make_batch(-1, batch_size=batch_size, d=d))

    methods = {
        "x.T @ y (torch)": lambda: [x.T @ y for x, y in batches],
        "x.T @ y (numpy BLAS, as repsim)": lambda: [_blas.cross_t(x, y) for x, y in batches],
        "the 3 products: 2 x syrk + x.T @ y": lambda: [
            (_blas.gram_t(x), _blas.gram_t(y), _blas.cross_t(x, y)) for x, y in batches],
        "StreamingSimilarity linear_cka": lambda: accumulate(linear),
        "StreamingSimilarity all 6 measures": lambda: accumulate(every),
        "MinibatchCKA": lambda: accumulate(repsim.MinibatchCKA()),
    }
    product = methods["x.T @ y (numpy BLAS, as repsim)"]
    times: dict[str, list[float]] = {name: [] for name in methods}
    ratios: dict[str, list[float]] = {name: [] for name in methods}
    for fn in methods.values():  # warm-up
        fn()
    for _ in range(rounds):
        for name, fn in methods.items():  # each method back to back with the product
            t0 = time.perf_counter()
            product()
            t1 = time.perf_counter()
            fn()
            t2 = time.perf_counter()
            times[name].append(t2 - t1)
            ratios[name].append((t2 - t1) / (t1 - t0))
    n = batch_size * n_batches
    return [{"method": name, "us_per_sample": 1e6 * statistics.median(times[name]) / n,
             "x_product": statistics.median(ratios[name])} for name in methods]


def exactness(*, n: int, d: int, seed: int = 1) -> list[dict[str, Any]]:
    """Largest |streamed - full-data| of every measure, ``n`` samples in uneven batches."""
    import torch

    import repsim
    from repsim._streaming import MEASURES

    full = {
        "linear_cka": repsim.linear_cka,
        "linear_cka_debiased": lambda x, y: repsim.linear_cka(x, y, debiased=True),
        "mean_cca": repsim.mean_cca,
        "svcca": repsim.svcca,
        "pwcca": repsim.pwcca,
        "procrustes": repsim.procrustes_distance,
    }
    x, y = make_batch(0, batch_size=n, d=d, seed=seed)
    g = torch.Generator().manual_seed(seed)
    cuts = torch.randint(1, n, (max(1, n // 197),), generator=g).unique().tolist()
    metric = repsim.StreamingSimilarity(MEASURES)
    for lo, hi in zip([0, *cuts], [*cuts, n]):
        metric.update(x[lo:hi], y[lo:hi])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = metric.compute()
        rows = [{"measure": m, "value": float(out[m]),
                 "abs_error": abs(float(out[m] - full[m](x, y)))} for m in MEASURES]
    for r in rows:
        r["batches"] = metric.n_batches_
    return rows


def _child(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--d", type=int, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--threads", type=int, required=True)
    a = p.parse_args(argv)
    print(json.dumps(stream_memory(a.n, d=a.d, batch_size=a.batch_size, threads=a.threads)))


def _memory(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--child", "--n", str(n), "--d", str(args.d),
               "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for r in rows:
        r["added_mib"] = r["peak_rss_mib"] - r["peak_rss_before_mib"]
    print(format_table(rows, ["n_samples", "n_batches", "d", "peak_rss_before_mib",
                              "peak_rss_mib", "added_mib", "seconds", "linear_cka"]))
    ratio = rows[-1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
    print(f"peak RSS ratio {rows[-1]['n_samples']} / {rows[0]['n_samples']} samples: "
          f"{ratio:.3f} -> {'PASS' if ratio <= MEMORY_TARGET else 'FAIL'} "
          f"(target <= {MEMORY_TARGET})")
    return {"rows": rows, "ratio": ratio}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="memory,time,exact")
    p.add_argument("--sizes", default="100000,1000000", help="memory: samples per run")
    p.add_argument("--d", type=int, default=512, help="features per side")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--time-batches", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--exact-n", type=int, default=20000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    parts = args.parts.split(",")
    payload: dict[str, Any] = {"machine": machine_info(threads=args.threads)}
    if "memory" in parts:
        payload["memory"] = _memory(args)
    if "time" in parts:
        rows = time_per_sample(d=args.d, batch_size=args.batch_size, n_batches=args.time_batches,
                               rounds=args.rounds, threads=args.threads)
        print(format_table(rows, ["method", "us_per_sample", "x_product"]))
        lin = next(r["x_product"] for r in rows if r["method"].endswith("linear_cka"))
        print(f"linear_cka update / x.T @ y: {lin:.2f} -> "
              f"{'PASS' if lin <= TIME_TARGET else 'FAIL'} (target <= {TIME_TARGET}; "
              f"flop bound 2.0)")
        payload["time"] = rows
    if "exact" in parts:
        rows = exactness(n=args.exact_n, d=args.d)
        print(format_table(rows, ["measure", "batches", "value", "abs_error"]))
        print(f"largest |streamed - full data| at n = {args.exact_n}, d = {args.d}: "
              f"{max(r['abs_error'] for r in rows):.2e}")
        payload["exact"] = rows
    if args.json:
        write_json(args.json, payload)
        print(f"wrote {args.json}")
    return payload


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        main()
