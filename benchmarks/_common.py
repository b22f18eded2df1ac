"""Timing, reference and reporting helpers shared by the benchmark scripts.

The math helpers here are deliberately independent of :mod:`repsim` (plain float64 numpy),
so that the benchmarks can check every implementation's value against them.

>>> import numpy as np
>>> x = np.random.default_rng(0).standard_normal((100, 8))
>>> round(reference_linear_cka(x, 2 * x + 1), 12)
1.0
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

__all__ = [
    "time_call",
    "reference_linear_cka",
    "reference_debiased_linear_cka",
    "reference_minibatch_cka",
    "format_table",
    "machine_info",
    "write_json",
]


def time_call(
    fn: Callable[[], Any],
    *,
    repeats: int = 5,
    warmup: int = 1,
    max_seconds: float = 60.0,
    budget_seconds: float | None = None,
) -> tuple[float, Any, int]:
    """Median wall time of ``fn()`` after warm-up.

    Parameters
    ----------
    fn : callable with no arguments
    repeats : int
        Timed calls at most (the median is returned).
    warmup : int
        Untimed calls first. A first call slower than one second needs no warm-up: it is
        counted as a timed call.
    max_seconds : float
        A call slower than this is timed once and not repeated.
    budget_seconds : float or None
        Stop repeating once the timed calls add up to more than this.

    Returns
    -------
    seconds : float
        Median of the timed calls.
    value : object
        What the last call returned.
    n_timed : int
        How many calls were timed.
    """
    if repeats < 1:
        raise ValueError(f"repeats: expected >= 1, got {repeats}")
    times: list[float] = []
    value = None
    calls = 0
    while len(times) < repeats:
        t0 = time.perf_counter()
        value = fn()
        dt = time.perf_counter() - t0
        calls += 1
        if calls > warmup or dt > 1.0:
            times.append(dt)
        if dt > max_seconds or (budget_seconds is not None and sum(times) > budget_seconds):
            break
    return statistics.median(times), value, len(times)


def _centre(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a - a.mean(axis=0, keepdims=True)


def reference_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Biased linear CKA in float64 via feature-space Frobenius norms.

    Parameters
    ----------
    x : (n_samples, n_features_x) array
    y : (n_samples, n_features_y) array
    """
    x, y = _centre(x), _centre(y)
    cross = np.linalg.norm(x.T @ y) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def _unbiased_hsic_features(x: np.ndarray, y: np.ndarray) -> float:
    """Song et al. (2012) unbiased HSIC of linear kernels, without forming n x n grams.

    With K = X X^T, L = Y Y^T and their zero-diagonal versions K~, L~:
    HSIC_1 = [tr(K~ L~) + 1^T K~ 1 * 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) * 1^T K~ L~ 1] / (n(n-3)).
    """
    n = x.shape[0]
    dk = np.einsum("ij,ij->i", x, x)  # diag(K)
    dl = np.einsum("ij,ij->i", y, y)  # diag(L)
    sx, sy = x.sum(0), y.sum(0)
    k1 = x @ sx - dk  # K~ 1
    l1 = y @ sy - dl  # L~ 1
    tr_kl = np.linalg.norm(x.T @ y) ** 2 - np.dot(dk, dl)  # tr(K~ L~) = tr(KL) - dk . dl
    return float(
        (tr_kl + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * np.dot(k1, l1))
        / (n * (n - 3))
    )


def reference_debiased_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased linear CKA (unbiased HSIC, Song et al. 2012) in float64.

    Parameters
    ----------
    x : (n_samples, n_features_x) array
    y : (n_samples, n_features_y) array
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xy = _unbiased_hsic_features(x, y)
    return float(xy / np.sqrt(_unbiased_hsic_features(x, x) * _unbiased_hsic_features(y, y)))


def reference_minibatch_cka(
    x_batches: Sequence[np.ndarray], y_batches: Sequence[np.ndarray]
) -> float:
    """Minibatch CKA of Nguyen et al. (2021): unbiased HSIC averaged over batches.

    Parameters
    ----------
    x_batches : sequence of (batch, n_features_x) arrays
    y_batches : sequence of (batch, n_features_y) arrays, same batch sizes
    """
    if len(x_batches) != len(y_batches) or not x_batches:
        raise ValueError(
            f"expected equal, non-zero numbers of batches, got {len(x_batches)} and {len(y_batches)}"
        )
    xy = xx = yy = 0.0
    for xb, yb in zip(x_batches, y_batches):
        xb = np.asarray(xb, dtype=np.float64)
        yb = np.asarray(yb, dtype=np.float64)
        xy += _unbiased_hsic_features(xb, yb)
        xx += _unbiased_hsic_features(xb, xb)
        yy += _unbiased_hsic_features(yb, yb)
    return float(xy / np.sqrt(xx * yy))


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Plain-text table of ``rows`` (dicts) with the given ``columns``; floats to 4 sig. digits."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
                return f"{v:.2e}"
            return f"{v:.4g}"
        return str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def machine_info(*, threads: int) -> dict[str, Any]:
    """What the timings ran on: CPU, core count, thread setting and the load average."""
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover - not on every platform
        load = (float("nan"),) * 3
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:  # pragma: no cover
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "loadavg_1_5_15": [round(v, 2) for v in load],
        "python": platform.python_version(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_json(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON to ``path`` (parents created, atomic rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    tmp.replace(p)
    return p
