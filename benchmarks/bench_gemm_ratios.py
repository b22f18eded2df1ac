"""Cost of each repsim measure in units of one ``x.T @ y`` GEMM (the hardware limit).

Every measure here needs at least one ``(d, n) @ (n, d)`` product, so the time of a single
``x.T @ y`` on the same inputs is a machine-independent yardstick. Targets: the CCA family
(``mean_cca``, ``svcca``, ``pwcca``) within 4 GEMM-times, linear CKA (biased and debiased)
within 3. ``procrustes_distance`` is reported without a target.

Usage::

    python3 benchmarks/bench_gemm_ratios.py               # n=10000, d=500, float64, 2 threads
    python3 benchmarks/bench_gemm_ratios.py --dtype float32 --threads 1 --json out.json

The linear CKA rows appear only when ``repsim._cka`` is importable.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import format_table, machine_info, time_call, write_json  # noqa: E402

__all__ = ["main", "paired_ratio", "run"]

log = logging.getLogger("bench_gemm_ratios")

DTYPES = {"float64": torch.float64, "float32": torch.float32}
CCA_TARGET = 4.0
CKA_TARGET = 3.0


def _measures(dtype: torch.dtype) -> list[tuple[str, Callable[..., Any], float | None]]:
    """(name, fn(x, y), target ratio) for every measure that is importable."""
    from repsim._cca import mean_cca
    from repsim._cca_weighted import pwcca, svcca
    from repsim._procrustes import procrustes_distance

    out: list[tuple[str, Callable[..., Any], float | None]] = [
        ("mean_cca", lambda x, y: mean_cca(x, y, dtype=dtype), CCA_TARGET),
        ("svcca", lambda x, y: svcca(x, y, dtype=dtype), CCA_TARGET),
        ("pwcca", lambda x, y: pwcca(x, y, dtype=dtype), CCA_TARGET),
        ("procrustes_distance", lambda x, y: procrustes_distance(x, y, dtype=dtype), None),
    ]
    try:
        linear_cka = importlib.import_module("repsim._cka").linear_cka
    except (ImportError, AttributeError) as err:
        log.warning("repsim._cka.linear_cka not importable (%s); skipping the CKA rows", err)
    else:
        out += [
            ("linear_cka", lambda x, y: linear_cka(x, y, dtype=dtype), CKA_TARGET),
            (
                "linear_cka(debiased)",
                lambda x, y: linear_cka(x, y, debiased=True, dtype=dtype),
                CKA_TARGET,
            ),
        ]
    return out


def _limit_numpy_blas(threads: int) -> int | None:
    """Set numpy's BLAS thread pool to ``threads`` (for the rest of the process)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        log.warning("threadpoolctl not installed: numpy's BLAS keeps its default thread count")
        return None
    threadpool_limits(limits=threads, user_api="blas")
    return threads


def _seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def paired_ratio(
    fn: Callable[[], Any], gemm: Callable[[], Any], *, repeats: int
) -> tuple[float, float, float, Any]:
    """Time ``fn`` and the GEMM back to back, ``repeats`` times, after one warm-up of each.

    On a shared machine the load drifts between rows; the ratio of two adjacent calls is far
    less sensitive to that than the ratio of two medians taken a minute apart.

    Returns
    -------
    seconds : float
        Median time of ``fn``.
    ratio : float
        Median over the repeats of ``time(fn) / time(gemm)`` for adjacent calls.
    gemm_seconds : float
        Median time of the GEMM in these pairs.
    value : object
        What the last ``fn()`` returned.
    """
    fn(), gemm()
    times, ratios, gemm_times = [], [], []
    value = None
    for _ in range(repeats):
        t_fn, value = _seconds(fn)
        t_gemm, _ = _seconds(gemm)
        times.append(t_fn)
        gemm_times.append(t_gemm)
        ratios.append(t_fn / t_gemm)
    return statistics.median(times), statistics.median(ratios), statistics.median(gemm_times), value


def run(
    *, n: int, d: int, dtype: torch.dtype, threads: int, repeats: int, seed: int = 0
) -> dict[str, Any]:
    """Time the GEMM and every measure; return the rows and the machine description."""
    torch.set_num_threads(threads)
    # repsim._cca_core computes A^T A through numpy's BLAS (syrk) on CPU: pin that pool too.
    blas_threads = _limit_numpy_blas(threads)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    # y shares half of its variance with x, so the measures see a realistic, non-trivial pair.
    y = 0.7 * x @ torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    y += torch.randn(n, d, generator=g, dtype=torch.float64)
    x, y = x.to(dtype), y.to(dtype)

    def gemm() -> torch.Tensor:
        return x.T @ y

    gemm_s, _, _ = time_call(gemm, repeats=repeats, warmup=2)
    rows = [{"measure": "x.T @ y (GEMM)", "seconds": gemm_s, "ratio": 1.0, "target": None}]
    for name, fn, target in _measures(dtype):
        secs, ratio, gemm_pair_s, value = paired_ratio(
            lambda fn=fn: fn(x, y), gemm, repeats=repeats
        )
        rows.append(
            {
                "measure": name,
                "seconds": secs,
                "ratio": ratio,
                "gemm_seconds": gemm_pair_s,
                "target": target,
                "ok": None if target is None else ratio <= target,
                "value": float(value),
            }
        )
    # The GEMM again at the end: the spread between the two says how noisy the machine was.
    gemm_end, _, _ = time_call(lambda: x.T @ y, repeats=repeats, warmup=1)
    return {
        "config": {"n": n, "d": d, "dtype": str(dtype).replace("torch.", ""), "repeats": repeats},
        "machine": {**machine_info(threads=threads), "numpy_blas_threads": blas_threads},
        "gemm_seconds_start": gemm_s,
        "gemm_seconds_end": gemm_end,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10000, help="samples (default 10000)")
    parser.add_argument("--d", type=int, default=500, help="features on each side (default 500)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float64")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per row (median)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.n < 2 or args.d < 1 or args.threads < 1 or args.repeats < 1:
        parser.error("expected --n >= 2, --d >= 1, --threads >= 1 and --repeats >= 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    res = run(
        n=args.n, d=args.d, dtype=DTYPES[args.dtype], threads=args.threads, repeats=args.repeats
    )
    cfg, mach = res["config"], res["machine"]
    print(
        f"n={cfg['n']} d={cfg['d']} {cfg['dtype']} threads={mach['threads']} "
        f"cpu={mach['cpu']!r} load={mach['loadavg_1_5_15']}"
    )
    print(
        f"GEMM x.T @ y: {res['gemm_seconds_start']:.4f} s at start, "
        f"{res['gemm_seconds_end']:.4f} s at end (spread = machine noise)"
    )
    print("ratio = median over repeats of time(measure) / time(GEMM) for back-to-back calls")
    columns = ["measure", "seconds", "gemm_seconds", "ratio", "target", "ok", "value"]
    print(format_table(res["rows"], columns))
    if args.json is not None:
        print(f"wrote {write_json(args.json, res)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
