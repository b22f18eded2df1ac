"""Generalized shape metrics: ``shape_distance`` and ``pairwise_distances`` against numpy.

netrep (the authors' reference code) is not on PyPI, so the baseline is a plain numpy
transcription of its ``LinearMetric`` (written here): per network, ``eigh`` of ``Xc^T Xc``,
the partial whitening ``Z`` with its floor and variance-preserving rescale, ``X @ Z``; per pair,
the full SVD of ``X_a^T Y_a``, both sides rotated, then the angle (or the norm of the
difference). Its values are the reference every timed result is checked against.

Rows:

* one pair, ``shape_distance`` vs the numpy transcription, at alpha = 1, 0.5, 0 (and the time
  of one ``x.T @ y`` for scale);
* K networks, ``pairwise_distances`` (whitening each network once, one GEMM per pair, batched
  ``svdvals``) vs ``K (K - 1) / 2`` separate ``shape_distance`` calls vs the numpy
  transcription with each network whitened once.

Usage::

    python benchmarks/bench_shape.py                     # 1 thread, about a minute
    python benchmarks/bench_shape.py --threads 2 --json out.json
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import format_table, machine_info, time_call, write_json  # noqa: E402

from repsim._shape import pairwise_distances, shape_distance  # noqa: E402

__all__ = ["main", "run", "numpy_whiten", "numpy_score"]

FLOOR = 1e-7  # netrep's eigval_tol


def numpy_whiten(x: np.ndarray, alpha: float) -> np.ndarray:
    """netrep's partial whitening of one network: centre, ``X Z``, total variance preserved."""
    xc = x - x.mean(0)
    if alpha == 1.0:
        return xc
    lam, v = np.linalg.eigh(xc.T @ xc)
    lam = np.maximum(lam, FLOOR)
    d = alpha + (1 - alpha) / np.sqrt(lam)
    d *= np.sqrt(lam.sum() / np.sum((alpha * np.sqrt(lam) + 1 - alpha) ** 2))
    return xc @ ((v * d) @ v.T)


def numpy_score(xa: np.ndarray, ya: np.ndarray, score: str = "angular") -> float:
    """Align two whitened networks of one width by the SVD of ``X_a^T Y_a`` and score them."""
    u, _, vt = np.linalg.svd(xa.T @ ya)
    xr, yr = xa @ u, ya @ vt.T
    if score == "angular":
        cos = np.sum(xr * yr) / (np.linalg.norm(xr) * np.linalg.norm(yr))
        return float(np.arccos(np.clip(cos, -1.0, 1.0)))
    return float(np.linalg.norm(xr - yr))


def make_networks(k: int, n: int, d: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """K related 'networks' (seeds): ReLU features of a shared latent plus private noise."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 64, generator=g, dtype=torch.float64)
    out = {}
    for i in range(k):
        w = torch.randn(64, d, generator=g, dtype=torch.float64) / 8
        noise = torch.randn(n, d, generator=g, dtype=torch.float64)
        out[f"seed{i}"] = torch.relu(z @ w + 0.3 * noise)
    return out


def _pair_rows(n: int, d: int, repeats: int) -> list[dict[str, Any]]:
    nets = make_networks(2, n, d)
    x, y = nets["seed0"], nets["seed1"]
    xn, yn = x.numpy(), y.numpy()
    t_gemm, _, _ = time_call(lambda: x.mT @ y, repeats=repeats)
    rows = []
    for alpha in (1.0, 0.5, 0.0):
        t_np, want, _ = time_call(
            lambda: numpy_score(numpy_whiten(xn, alpha), numpy_whiten(yn, alpha)), repeats=repeats)
        t_rs, got, _ = time_call(lambda: shape_distance(x, y, alpha=alpha), repeats=repeats)
        rows.append({"what": f"pair n={n} d={d} alpha={alpha:g}", "numpy_s": t_np,
                     "loop_s": None, "repsim_s": t_rs, "speedup": t_np / t_rs,
                     "gemm_units": t_rs / t_gemm, "max_abs_diff": abs(float(got) - want)})
    return rows


def _numpy_pairwise(nets: dict[str, np.ndarray], alpha: float) -> np.ndarray:
    white = [numpy_whiten(v, alpha) for v in nets.values()]
    k = len(white)
    out = np.zeros((k, k))
    for i, j in itertools.combinations(range(k), 2):
        out[i, j] = out[j, i] = numpy_score(white[i], white[j])
    return out


def _loop(nets: dict[str, torch.Tensor], alpha: float) -> torch.Tensor:
    vals = list(nets.values())
    k = len(vals)
    out = torch.zeros(k, k, dtype=torch.float64)
    for i, j in itertools.combinations(range(k), 2):
        out[i, j] = out[j, i] = shape_distance(vals[i], vals[j], alpha=alpha)
    return out


def _pairwise_rows(k: int, n: int, d: int, repeats: int) -> list[dict[str, Any]]:
    nets = make_networks(k, n, d, seed=1)
    nets_np = {name: v.numpy() for name, v in nets.items()}
    rows = []
    for alpha in (1.0, 0.5):
        t_np, want, _ = time_call(lambda: _numpy_pairwise(nets_np, alpha), repeats=repeats)
        t_loop, _, _ = time_call(lambda: _loop(nets, alpha), repeats=repeats)
        t_rs, got, _ = time_call(lambda: pairwise_distances(nets, alpha=alpha), repeats=repeats)
        rows.append({"what": f"pairwise K={k} n={n} d={d} alpha={alpha:g}", "numpy_s": t_np,
                     "loop_s": t_loop, "repsim_s": t_rs, "speedup": t_np / t_rs,
                     "gemm_units": None, "max_abs_diff": float(np.abs(got.numpy() - want).max())})
    return rows


def run(*, pairs: list[tuple[int, int]], k: int, k_n: int, k_d: int, repeats: int) -> list[dict]:
    rows = []
    for n, d in pairs:
        rows += _pair_rows(n, d, repeats)
    if k >= 2:
        rows += _pairwise_rows(k, k_n, k_d, repeats)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=str, nargs="+", default=["5000x256", "10000x512"],
                   help="single-pair sizes n x d (default 5000x256 10000x512)")
    p.add_argument("--k", type=int, default=10, help="networks in the pairwise rows (0: skip)")
    p.add_argument("--k-n", type=int, default=2000, help="samples in the pairwise rows")
    p.add_argument("--k-d", type=int, default=128, help="width in the pairwise rows")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    pairs = [tuple(int(v) for v in s.split("x")) for s in args.pairs]
    with threadpool_limits(args.threads):  # numpy's BLAS gets the same threads as torch
        rows = run(pairs=pairs, k=args.k, k_n=args.k_n, k_d=args.k_d, repeats=args.repeats)
    info = machine_info(threads=args.threads)
    print(f"# shape metrics vs a numpy transcription of netrep's LinearMetric; float64; "
          f"{args.threads} thread(s); load {info['loadavg_1_5_15']}")
    print(format_table(rows, ["what", "numpy_s", "loop_s", "repsim_s", "speedup", "gemm_units",
                              "max_abs_diff"]))
    print("# speedup = numpy_s / repsim_s; gemm_units = repsim_s / (one x.T @ y); loop_s = "
          "K(K-1)/2 shape_distance calls")
    if args.json:
        write_json(args.json, {"machine": info, "args": {k: str(v) for k, v in vars(args).items()},
                               "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
