"""Trainer benchmark: accuracy within a time budget, and MAML / first-order MAML / ANIL speed.

    python benchmarks/bench_trainer.py                      # everything (about 15 minutes)
    python benchmarks/bench_trainer.py --skip-accuracy      # speed only (a minute or two)

Accuracy: the ``omniglot-5w1s-quick`` preset, MAML and ANIL, trained on the real Omniglot
background characters (``../shared/omniglot`` or ``$REPSIM_OMNIGLOT``) for at most
``--max-seconds`` of training-loop wall clock each, one thread, then tested on 600 fixed 5-way
1-shot tasks of the 659 evaluation characters. An existing complete run in ``--out`` is reused.

Speed (paper Table 6 setting): seconds per training iteration (task batch 1, one target example
per class, 5 inner steps, Adam step included) and per inference task (adaptation + query
prediction), MiniImageNet Conv4 5-way 1-shot and 5-shot with 10 inner steps at test; and the
Omniglot 20-way 1-shot setting with the paper's meta-batch of 16. Timings use random inputs of
the right shapes (the cost does not depend on pixel values), one thread, median of repeats.
The machine's load average is printed with every section: on a shared machine it explains noise.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from meta.algorithms import eval_setup, predict, task_loss  # noqa: E402
from meta.config import get_preset  # noqa: E402
from meta.data import Task  # noqa: E402
from meta import evaluate, train  # noqa: E402
from meta.models import Conv4  # noqa: E402
from meta.run import RunDir  # noqa: E402

__all__ = ["main"]


def _load() -> str:
    return "load average %.2f %.2f %.2f on %d cores" % (*os.getloadavg(), os.cpu_count() or 0)


def _random_task(g, ways, shots, query, shape) -> Task:
    return Task(torch.rand(ways * shots, *shape, generator=g), torch.arange(ways).repeat_interleave(shots),
                torch.rand(ways * query, *shape, generator=g), torch.arange(ways).repeat_interleave(query))


def _median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _speed(make_model, algorithm, tasks, *, steps, test_steps, lr, repeats):
    torch.manual_seed(0)
    model = make_model()
    params = dict(model.named_parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step():
        opt.zero_grad(set_to_none=True)
        for task in tasks:
            loss, _ = task_loss(model, params, task, algorithm=algorithm, steps=steps, lr=lr,
                                ways=int(task.support_y.max()) + 1)
            (loss / len(tasks)).backward()
        opt.step()

    test_params, trainable = eval_setup(algorithm, {n: p.detach() for n, p in params.items()},
                                        int(tasks[0].support_y.max()) + 1)

    def infer():
        predict(model, test_params, tasks[0], trainable=trainable, steps=test_steps, lr=lr)

    return _median_seconds(train_step, repeats), _median_seconds(infer, repeats)


def speed_section(repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)
    out = {}
    print(f"\n== speed: seconds per iteration, 1 thread ({_load()})")
    settings = [
        ("mini 5w1s, batch 1, 1 target", Conv4.miniimagenet, 5, 1, 1, 1, (3, 84, 84), "miniimagenet-5w1s"),
        ("mini 5w5s, batch 1, 1 target", Conv4.miniimagenet, 5, 5, 1, 1, (3, 84, 84), "miniimagenet-5w5s"),
        ("omni 20w1s, batch 16, 1 target", Conv4.omniglot, 20, 1, 1, 16, (1, 28, 28), "omniglot-20w1s"),
    ]
    header = (f"{'setting':34s} {'train MAML':>10s} {'FOMAML':>8s} {'ANIL':>8s} {'MAML/ANIL':>9s} "
              f"{'MAML/FO':>8s} | {'infer MAML':>10s} {'ANIL':>8s} {'MAML/ANIL':>9s}")
    print(header)
    for name, make, ways, shots, query, batch, shape, preset in settings:
        cfg = get_preset(preset)
        tasks = [_random_task(g, ways, shots, query, shape) for _ in range(batch)]
        reps = max(3, repeats // batch)
        row = {alg: _speed(lambda: make(ways), alg, tasks, steps=cfg.inner_steps,
                           test_steps=cfg.inner_steps_test, lr=cfg.inner_lr, repeats=reps)
               for alg in ("maml", "fomaml", "anil")}
        out[name] = row
        (tm, im), (tf, _), (ta, ia) = row["maml"], row["fomaml"], row["anil"]
        print(f"{name:34s} {tm:10.4f} {tf:8.4f} {ta:8.4f} {tm / ta:8.2f}x {tm / tf:7.2f}x | "
              f"{im:10.4f} {ia:8.4f} {im / ia:8.2f}x")
    print(f"({_load()})")
    return out


def accuracy_section(root: str, out_dir: Path, max_seconds: float, eval_tasks: int) -> dict:
    results = {}
    print(f"\n== omniglot-5w1s-quick on real Omniglot, <= {max_seconds:.0f} s training each")
    for algorithm in ("maml", "anil"):
        cfg = get_preset("omniglot-5w1s-quick").replace(algorithm=algorithm, data_root=root,
                                                       max_seconds=max_seconds)
        run = out_dir / f"quick-{algorithm}"
        print(f"[{algorithm}] training ({_load()})", flush=True)
        t0 = time.perf_counter()
        train(cfg, run, progress=False)
        wall = time.perf_counter() - t0
        state = RunDir(run).load()
        lines = RunDir(run).metrics()
        spi = statistics.median(r["seconds_per_iteration"] for r in lines if "seconds_per_iteration" in r)
        print(f"[{algorithm}] evaluating {eval_tasks} tasks ({_load()})", flush=True)
        result = evaluate(run, tasks=eval_tasks)
        acc = result["accuracy"]
        results[algorithm] = {"iterations": state["iteration"], "train_loop_seconds": state["elapsed"],
                              "train_call_seconds": wall, "seconds_per_iteration": spi,
                              "accuracy": acc, "eval_seconds": result["seconds"]}
        print(f"[{algorithm}] {state['iteration']} iterations in {state['elapsed']:.0f} s "
              f"(median {spi:.3f} s/it; train() call {wall:.0f} s incl. data loading) -> "
              f"test accuracy {100 * acc['mean']:.2f}% +- {100 * acc['ci95']:.2f}% over "
              f"{result['tasks']} tasks ({result['seconds']:.0f} s)", flush=True)
    print(f"\n{'algorithm':10s} {'iterations':>10s} {'train s':>8s} {'s/it':>7s} {'accuracy':>16s}")
    for algorithm, r in results.items():
        print(f"{algorithm:10s} {r['iterations']:10d} {r['train_loop_seconds']:8.0f} "
              f"{r['seconds_per_iteration']:7.3f} {100 * r['accuracy']['mean']:9.2f} +- "
              f"{100 * r['accuracy']['ci95']:.2f}")
    print(f"({_load()})")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--omniglot", default=os.environ.get("REPSIM_OMNIGLOT", str(ROOT.parent / "shared" / "omniglot")),
                        help="folder with images_background/evaluation (.npz or extracted)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench"), help="run directories")
    parser.add_argument("--max-seconds", type=float, default=290.0, help="training budget per algorithm")
    parser.add_argument("--eval-tasks", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats per speed cell")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, {_load()}")
    report = {}
    if not args.skip_speed:
        report["speed"] = speed_section(args.repeats)
    if not args.skip_accuracy:
        if not Path(args.omniglot).is_dir():
            print(f"skipping accuracy: no Omniglot folder at {args.omniglot}")
        else:
            report["accuracy"] = accuracy_section(args.omniglot, Path(args.out), args.max_seconds,
                                                  args.eval_tasks)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
