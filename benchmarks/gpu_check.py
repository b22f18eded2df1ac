"""One prepared GPU check: agreement with the CPU, CCA/CKA speed at n = 100k, MAML/ANIL speed.

Usage::

    python3 benchmarks/gpu_check.py                      # on a GPU machine, < 5 min on an H100
    python3 benchmarks/gpu_check.py --device cpu --small # proves the script works, here

1. Every repsim measure (also streaming, the permutation null, bootstrap intervals, shape
   metrics and token flattening) on ``--device`` against the same measure on the CPU in float64:
   float64 must agree to 1e-10; float32 with TF32 disabled to the stated tolerance per measure;
   linear CKA and CCA are also run with TF32 enabled, to show whether it breaks accuracy.
2. Linear CKA (biased, debiased), mean CCA time on the device vs the CPU at n = 100 000, d = 512.
3. One MAML and one ANIL meta-iteration (second order, Adam step included) at the paper's
   Omniglot 20-way 1-shot (meta-batch 16, 5 steps, lr 0.1) and MiniImageNet 5-way 1-/5-shot
   (meta-batch 4, 15 query, 5 steps, lr 0.01) settings, on random tasks.

Prints one table per part and writes JSON to ``$OUT/gpu_check.json`` when ``OUT`` is set (and to
``--json`` when given). Exit status 1 if an agreement check fails.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from _common import format_table, machine_info, write_json  # noqa: E402

__all__ = ["MEASURES", "agreement", "timings", "maml_timings", "main"]

# name -> (function of (x, y, dtype) returning a tensor, float32 tolerance (abs, TF32 off))
MEASURES: dict[str, tuple[Callable[[torch.Tensor, torch.Tensor, torch.dtype], torch.Tensor], float]] = {}


def _register() -> None:
    import repsim
    from repsim import cca

    def minibatch(x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        m = repsim.MinibatchCKA(dtype=dtype)
        for xb, yb in zip(x.split(256), y.split(256)):
            if xb.shape[0] >= 4:
                m.update(xb, yb)
        return m.compute()

    def matrix(x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        a = {"x": x, "x2": x[:, : x.shape[1] // 2]}
        b = {"y": y, "ytanh": torch.tanh(y)}
        return repsim.similarity_matrix(a, b, measure="linear_cka", dtype=dtype)

    def streaming(x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        s = repsim.StreamingSimilarity(("linear_cka", "linear_cka_debiased", "mean_cca", "pwcca"),
                                       dtype=dtype, device=x.device)
        for xb, yb in zip(x.split(500), y.split(500)):
            s.update(xb, yb)
        return torch.stack(list(s.compute().values()))

    def permutation(x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        r = repsim.permutation_test(x[:2000], y[:2000], measure="linear_cka", n_permutations=200,
                                    generator=0, dtype=dtype)
        return torch.cat([r.value.reshape(1), r.null.reshape(-1)])

    def bootstrap(x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        r = repsim.bootstrap_ci(x[:2000], y[:2000], measure="linear_cka", n_boot=200, generator=0,
                                dtype=dtype)
        return torch.stack([r.value, r.low, r.high])

    def tokens(x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        n = x.shape[0] // 8 * 8                                # 8 tokens per sequence
        mask = torch.ones(n // 8, 8, dtype=torch.long, device=x.device)
        mask[::3, 5:] = 0                                      # every third sequence padded
        xt = repsim.flatten_tokens(x[:n].reshape(n // 8, 8, -1), mask, mode="mean")
        yt = repsim.flatten_tokens(y[:n].reshape(n // 8, 8, -1), mask, mode="last")
        return repsim.linear_cka(xt, yt, dtype=dtype)

    MEASURES.update({
        "cca.rho": (lambda x, y, dt: cca(x, y, dtype=dt).rho, 1e-3),
        "mean_cca": (lambda x, y, dt: repsim.mean_cca(x, y, dtype=dt), 1e-4),
        "svcca": (lambda x, y, dt: repsim.svcca(x, y, dtype=dt), 1e-3),
        "pwcca": (lambda x, y, dt: repsim.pwcca(x, y, dtype=dt), 1e-3),
        "linear_cka": (lambda x, y, dt: repsim.linear_cka(x, y, dtype=dt), 1e-5),
        "linear_cka(debiased)": (lambda x, y, dt: repsim.linear_cka(x, y, debiased=True, dtype=dt), 1e-5),
        "rbf_cka": (lambda x, y, dt: repsim.rbf_cka(x, y, dtype=dt), 1e-4),
        "rbf_cka(debiased)": (lambda x, y, dt: repsim.rbf_cka(x, y, debiased=True, dtype=dt), 1e-4),
        "MinibatchCKA": (minibatch, 1e-5),
        "procrustes_distance": (lambda x, y, dt: repsim.procrustes_distance(x, y, dtype=dt), 1e-4),
        "similarity_matrix": (matrix, 1e-5),
        "StreamingSimilarity": (streaming, 1e-3),
        "permutation_test (value, null)": (permutation, 1e-5),
        "bootstrap_ci (value, low, high)": (bootstrap, 1e-5),
        "shape_distance(alpha=0.5)": (lambda x, y, dt: repsim.shape_distance(x, y, alpha=0.5, dtype=dt), 1e-4),
        "flatten_tokens + linear_cka": (tokens, 1e-5),
    })


def _data(n: int, dx: int, dy: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dx, generator=g, dtype=torch.float64) * torch.linspace(0.3, 2.0, dx, dtype=torch.float64)
    w = torch.randn(dx, dy, generator=g, dtype=torch.float64) / dx**0.5
    y = torch.tanh(x @ w) + 0.3 * torch.randn(n, dy, generator=g, dtype=torch.float64) + 1.0
    return x, y


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = torch.as_tensor(a).double().cpu(), torch.as_tensor(b).double().cpu()
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max())


def _set_tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def agreement(device: torch.device, *, n: int, dx: int, dy: int) -> list[dict[str, Any]]:
    """Part 1: every measure on ``device`` against float64 on the CPU."""
    x, y = _data(n, dx, dy)
    xd, yd = x.to(device), y.to(device)
    rows = []
    for name, (fn, tol32) in MEASURES.items():
        ref = fn(x, y, torch.float64)
        row: dict[str, Any] = {"measure": name, "value_cpu64": float(torch.as_tensor(ref).flatten()[0])}
        try:
            _set_tf32(False)
            row["|d| f64"] = _maxdiff(fn(xd, yd, torch.float64), ref)
            row["|d| f32"] = _maxdiff(fn(xd, yd, torch.float32), ref)
            row["tol f32"] = tol32
            if name in ("linear_cka", "cca.rho", "mean_cca") and device.type == "cuda":
                _set_tf32(True)
                row["|d| f32+TF32"] = _maxdiff(fn(xd, yd, torch.float32), ref)
            row["ok"] = row["|d| f64"] <= 1e-10 and row["|d| f32"] <= tol32
        except Exception as e:  # report, do not stop the check
            row["error"], row["ok"] = f"{type(e).__name__}: {e}", False
        finally:
            _set_tf32(False)
        rows.append(row)
    return rows


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], Any], device: torch.device, *, repeats: int) -> float:
    fn()  # warm-up (kernels, allocator)
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def timings(device: torch.device, *, n: int, d: int, repeats: int) -> list[dict[str, Any]]:
    """Part 2: seconds on ``device`` and on the CPU for the big measures."""
    import repsim

    x, y = _data(n, d, d, seed=1)
    cases = {
        "linear_cka f64": lambda a, b: repsim.linear_cka(a, b),
        "linear_cka f32": lambda a, b: repsim.linear_cka(a, b, dtype=torch.float32),
        "linear_cka(debiased) f64": lambda a, b: repsim.linear_cka(a, b, debiased=True),
        "mean_cca f64": lambda a, b: repsim.mean_cca(a, b),
        "GEMM x.T @ y f64": lambda a, b: a.T @ b,
    }
    rows = []
    xd, yd = x.to(device), y.to(device)
    for name, fn in cases.items():
        t_dev = _time(lambda: fn(xd, yd), device, repeats=repeats)
        t_cpu = _time(lambda: fn(x, y), torch.device("cpu"), repeats=1)
        rows.append({"case": f"{name} n={n} d={d}", "device s": t_dev, "cpu s": t_cpu, "cpu / device": t_cpu / t_dev})
    return rows


def maml_timings(device: torch.device, *, small: bool, repeats: int) -> list[dict[str, Any]]:
    """Part 3: one meta-iteration (meta-batch of tasks, backward, Adam step) per setting."""
    from bench_maml_higher import random_tasks
    from meta.algorithms import META_ALGORITHMS, meta_loss
    from meta.models import Conv4

    settings = [  # (label, model factory, ways, shots, query, meta-batch, steps, lr)
        ("omniglot 20w1s", lambda w: Conv4.omniglot(w), 20, 1, 1, 16, 5, 0.1, 1, 28),
        ("miniimagenet 5w1s", lambda w: Conv4.miniimagenet(w), 5, 1, 15, 4, 5, 0.01, 3, 84),
        ("miniimagenet 5w5s", lambda w: Conv4.miniimagenet(w), 5, 5, 15, 4, 5, 0.01, 3, 84),
    ]
    rows = []
    for label, make, ways, shots, query, mb, steps, lr, ch, size in settings:
        if small:
            ways, query, mb, steps = min(ways, 5), min(query, 2), 1, 1
        tasks = [t._replace(**{k: v.to(device) for k, v in t._asdict().items()})
                 for t in random_tasks(mb, ways=ways, shots=shots, query=query, channels=ch, size=size, seed=2)]
        for algo in ("maml", "anil"):
            torch.manual_seed(0)
            model = make(ways).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            spec = META_ALGORITHMS[algo]

            def step() -> None:
                params = dict(model.named_parameters())
                opt.zero_grad()
                loss = sum(meta_loss(model, params, t, trainable=spec.trainable, first_order=spec.first_order,
                                     steps=steps, lr=lr)[0] for t in tasks) / len(tasks)
                loss.backward()
                opt.step()

            sec = _time(step, device, repeats=repeats)
            rows.append({"setting": label, "algorithm": algo, "ways": ways, "shots": shots, "query": query,
                         "meta-batch": mb, "steps": steps, "s / iteration": sec})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--small", action="store_true", help="tiny sizes (CPU smoke run)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device; use --device cpu", file=sys.stderr)
        return 2
    _register()
    t0 = time.perf_counter()
    info = machine_info(threads=torch.get_num_threads())
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    print(f"gpu_check on {device} ({info.get('gpu', info['cpu'])}), torch {torch.__version__}")

    n_agree, d_agree = (300, 16) if args.small else (4000, 128)
    agree = agreement(device, n=n_agree, dx=d_agree, dy=d_agree * 3 // 4)
    print(f"\n[1] agreement with CPU float64 (n={n_agree}); f64 must be <= 1e-10, f32 (TF32 off) <= tol")
    print(format_table(agree, ["measure", "value_cpu64", "|d| f64", "|d| f32", "tol f32", "|d| f32+TF32", "ok", "error"]))

    n_time, d_time = (5000, 64) if args.small else (100_000, 512)
    times = timings(device, n=n_time, d=d_time, repeats=2 if args.small else 5)
    print(f"\n[2] time on {device} vs CPU ({torch.get_num_threads()} threads)")
    print(format_table(times, ["case", "device s", "cpu s", "cpu / device"]))

    maml = maml_timings(device, small=args.small, repeats=1 if args.small else 5)
    print(f"\n[3] meta-iteration time on {device} (second order, Adam step included)")
    print(format_table(maml, ["setting", "algorithm", "ways", "shots", "query", "meta-batch", "steps", "s / iteration"]))

    ok = all(r.get("ok") for r in agree)
    total = time.perf_counter() - t0
    print(f"\nagreement: {'PASS' if ok else 'FAIL'}; total {total:.1f} s")
    payload = {"machine": info, "device": str(device), "small": args.small, "agreement": agree,
               "timings": times, "maml": maml, "ok": ok, "total_seconds": total}
    for path in filter(None, [args.json, os.environ.get("OUT") and os.path.join(os.environ["OUT"], "gpu_check.json")]):
        write_json(path, payload)
        print(f"wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
