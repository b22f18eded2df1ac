"""Few-shot data: how hard Glyphs is next to real Omniglot, and how fast the data path is.

Prints

(a) 1-nearest-neighbour accuracy in pixel space (each image minus its own mean pixel, then
    Euclidean distance to the support images) on 600 fixed 5-way 1-shot and 20-way 1-shot
    tasks (one query per class) of Glyphs-evaluation and real Omniglot-evaluation, with 95%
    confidence intervals: the two sets should be of comparable difficulty;
(b) the time to sample a meta-batch of 16 tasks of 20-way 1-shot (query 19) from Omniglot
    background (Glyphs background if Omniglot is absent), median of repeats;
(c) Glyphs' first render (into an empty temporary cache) and cached load times.

Usage::

    python3 benchmarks/bench_data.py                 # 1 thread
    python3 benchmarks/bench_data.py --tasks 200 --threads 2
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meta.data import FewShotDataset, Glyphs, Omniglot, TaskSampler  # noqa: E402

__all__ = ["main", "nearest_neighbour_accuracy"]


def nearest_neighbour_accuracy(
    dataset: FewShotDataset, ways: int, *, n_tasks: int = 600, seed: int = 0
) -> tuple[float, float]:
    """Mean 1-NN accuracy and 95% CI half-width over fixed ``ways``-way 1-shot tasks."""
    accs = []
    for task in TaskSampler.fixed(dataset, ways, 1, 1, n_tasks, seed=seed):
        s = task.support_x.flatten(1).double()                      # (ways, C*H*W)
        q = task.query_x.flatten(1).double()                        # (ways, C*H*W)
        s, q = s - s.mean(1, keepdim=True), q - q.mean(1, keepdim=True)
        pred = task.support_y[torch.cdist(q, s).argmin(1)]
        accs.append((pred == task.query_y).double().mean().item())
    mean = statistics.fmean(accs)
    return mean, 1.96 * statistics.stdev(accs) / len(accs) ** 0.5


def _median_ms(fn, repeats: int = 20) -> tuple[float, float]:
    """Median wall and process-CPU milliseconds of ``fn()`` (CPU time is robust to a shared box)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    return statistics.median(wall), statistics.median(cpu)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=600, help="1-NN tasks per setting (600)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    ap.add_argument("--omniglot", default=None, help="Omniglot root (default: loader's)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    # (c) first render and cached load, in a private cache
    with tempfile.TemporaryDirectory() as tmp:
        t, c = time.perf_counter(), time.process_time()
        Glyphs("evaluation", cache_dir=tmp)
        first, first_cpu = time.perf_counter() - t, time.process_time() - c
        t = time.perf_counter()
        glyphs_eval = Glyphs("evaluation", cache_dir=tmp)
        glyphs_bg = Glyphs("background", cache_dir=tmp)
        cached = (time.perf_counter() - t) / 2
    try:
        omni_eval = Omniglot(args.omniglot, "evaluation")
        omni_bg = Omniglot(args.omniglot, "background")
    except ValueError as err:
        print(f"Omniglot not available ({err}); showing Glyphs only")
        omni_eval = omni_bg = None

    # (a) difficulty
    print(f"(a) 1-NN pixel accuracy, 1-shot, {args.tasks} tasks (mean +- 95% CI)")
    print(f"    {'dataset':<22}{'classes':>8}{'5-way':>16}{'20-way':>16}")
    for name, ds in (("glyphs/evaluation", glyphs_eval), ("omniglot/evaluation", omni_eval)):
        if ds is None:
            continue
        cells = [nearest_neighbour_accuracy(ds, w, n_tasks=args.tasks) for w in (5, 20)]
        row = "".join(f"{100 * m:>9.1f} +- {100 * h:3.1f}" for m, h in cells)
        print(f"    {name:<22}{len(ds):>8}{row}")

    # (b) sampling speed
    source = omni_bg if omni_bg is not None else glyphs_bg
    sampler = TaskSampler(source, 20, 1, 19, seed=0)
    ms, ms_cpu = _median_ms(lambda: sampler.batch(16))
    print(f"(b) meta-batch of 16 tasks, 20-way 1-shot 19-query from {source.name}/{source.split}: "
          f"{ms:.1f} ms wall, {ms_cpu:.1f} ms CPU (median of 20)")
    print(f"(c) Glyphs first render (both splits, {len(glyphs_bg)} + {len(glyphs_eval)} classes "
          f"x 20): {first:.1f} s wall, {first_cpu:.1f} s CPU; cached load per split: "
          f"{cached:.2f} s (threads={args.threads})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
