"""One second-order MAML meta-iteration: ``meta`` (torch.func) against ``higher``.

Usage (``higher`` lives in the peers venv, which imports our packages via PYTHONPATH)::

    bash benchmarks/setup_peers.sh
    PYTHONPATH=. .venv-peers/bin/python benchmarks/bench_maml_higher.py [--profile] [--json F]

Conv4 Omniglot, 20-way 1-shot (1 query per class, the paper's setting), 5 inner SGD steps at
lr 0.1, second order, meta-batch 16 (``--meta-batch 4`` for the small one). Both sides get the
same model initialisation and the same random tasks; one iteration = per-task adapt + query loss,
mean over tasks, backward to the meta-parameters (no optimiser step, identical for both).
Checks that both meta-gradients agree, then prints seconds per iteration and the ratio
(target: ours >= 1.5x faster). ``--profile`` adds a torch.profiler table of each.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from _common import format_table, machine_info, time_call, write_json  # noqa: E402

__all__ = ["FakeTask", "random_tasks", "meta_grad_ours", "meta_grad_higher", "max_rel_diff", "main"]


class FakeTask(NamedTuple):
    """Same fields as ``meta.data.Task``."""

    support_x: torch.Tensor  # (ways*shots, C, H, W)
    support_y: torch.Tensor  # (ways*shots,)
    query_x: torch.Tensor  # (ways*query, C, H, W)
    query_y: torch.Tensor  # (ways*query,)


def random_tasks(n_tasks: int, *, ways: int, shots: int, query: int, channels: int = 1,
                 size: int = 28, seed: int = 0, dtype: torch.dtype = torch.float32) -> list[FakeTask]:
    """Seeded random tasks in [0, 1] with labels ``0..ways-1`` (shuffled)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_tasks):
        sy = torch.arange(ways).repeat_interleave(shots)[torch.randperm(ways * shots, generator=g)]
        qy = torch.arange(ways).repeat_interleave(query)[torch.randperm(ways * query, generator=g)]
        sx = torch.rand(ways * shots, channels, size, size, generator=g, dtype=dtype)
        qx = torch.rand(ways * query, channels, size, size, generator=g, dtype=dtype)
        out.append(FakeTask(sx, sy, qx, qy))
    return out


def meta_grad_ours(model: torch.nn.Module, tasks: list[FakeTask], *, steps: int, lr: float) -> list[torch.Tensor]:
    """Second-order MAML meta-gradient with ``meta.algorithms.meta_loss`` (mean over tasks)."""
    from meta.algorithms import meta_loss
    from meta.inner import all_params

    params = {n: p for n, p in model.named_parameters()}
    total = 0.0
    for t in tasks:
        loss, _ = meta_loss(model, params, t, trainable=all_params, first_order=False, steps=steps, lr=lr)
        total = total + loss
    return list(torch.autograd.grad(total / len(tasks), list(params.values())))


def meta_grad_higher(model: torch.nn.Module, tasks: list[FakeTask], *, steps: int, lr: float) -> list[torch.Tensor]:
    """The same meta-gradient with ``higher.innerloop_ctx`` (its documented MAML recipe)."""
    import higher

    params = list(model.parameters())
    grads = [torch.zeros_like(p) for p in params]
    inner_opt = torch.optim.SGD(model.parameters(), lr=lr)
    for t in tasks:
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(steps):
                diffopt.step(F.cross_entropy(fmodel(t.support_x), t.support_y))
            loss = F.cross_entropy(fmodel(t.query_x), t.query_y) / len(tasks)
            for acc, g in zip(grads, torch.autograd.grad(loss, params)):
                acc += g
    return grads


def max_rel_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """max over tensors of ``||a_i - b_i|| / ||b_i||`` (relative Frobenius difference)."""
    if len(a) != len(b):
        raise ValueError(f"expected equal numbers of tensors, got {len(a)} and {len(b)}")
    return max(float((x - y).norm() / y.norm().clamp_min(1e-30)) for x, y in zip(a, b))


def _profile(fn: Any, label: str, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
    return f"--- torch.profiler, one iteration, {label} (sorted by self CPU time) ---\n{table}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ways", type=int, default=20)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--query", type=int, default=1)
    p.add_argument("--meta-batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--profile-rows", type=int, default=15)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from meta.models import Conv4

    torch.manual_seed(0)
    model = Conv4.omniglot(args.ways)
    tasks = random_tasks(args.meta_batch, ways=args.ways, shots=args.shots, query=args.query, seed=1)
    kw = dict(steps=args.steps, lr=args.lr)

    g_ours = meta_grad_ours(model, tasks, **kw)
    g_high = meta_grad_higher(model, tasks, **kw)
    diff = max_rel_diff(g_ours, g_high)

    # interleave the two so that a change of machine load hits both alike
    t_ours, t_high = [], []
    for _ in range(args.repeats):
        t_ours.append(time_call(lambda: meta_grad_ours(model, tasks, **kw), repeats=1, warmup=0)[0])
        t_high.append(time_call(lambda: meta_grad_higher(model, tasks, **kw), repeats=1, warmup=0)[0])
    s_ours, s_high = sorted(t_ours)[len(t_ours) // 2], sorted(t_high)[len(t_high) // 2]
    rows = [
        dict(impl="meta (torch.func)", seconds_per_iter=s_ours, speedup_vs_higher=s_high / s_ours),
        dict(impl="higher.innerloop_ctx", seconds_per_iter=s_high, speedup_vs_higher=1.0),
    ]
    import higher

    print(f"MAML 2nd order, Conv4 Omniglot {args.ways}-way {args.shots}-shot, query {args.query}/class, "
          f"meta-batch {args.meta_batch}, {args.steps} inner steps, lr {args.lr}, {args.threads} threads, "
          f"median of {args.repeats} (interleaved); higher {higher.__version__ if hasattr(higher, '__version__') else ''} torch {torch.__version__}")
    print(format_table(rows, ["impl", "seconds_per_iter", "speedup_vs_higher"]))
    print(f"meta-gradients agree: max relative difference {diff:.2e} -> {'PASS' if diff < 1e-4 else 'FAIL'} (< 1e-4, float32)")
    ratio = s_high / s_ours
    print(f"ours vs higher: {ratio:.2f}x -> {'PASS' if ratio >= 1.5 else 'FAIL'} (target >= 1.5x)")
    profiles = []
    if args.profile:
        profiles.append(_profile(lambda: meta_grad_ours(model, tasks, **kw), "meta (ours)", args.profile_rows))
        profiles.append(_profile(lambda: meta_grad_higher(model, tasks, **kw), "higher", args.profile_rows))
        print("\n".join(profiles))
    payload = {"machine": machine_info(threads=args.threads), "args": vars(args), "rows": rows,
               "times_ours": t_ours, "times_higher": t_high, "grad_max_rel_diff": diff, "ratio": ratio}
    if args.json:
        write_json(args.json, payload)
        print(f"wrote {args.json}")
    return payload


if __name__ == "__main__":
    main()
