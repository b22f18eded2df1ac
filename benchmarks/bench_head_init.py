"""Head-only test accuracy of trained bodies from different starting heads, beside the NIL rule.

For each run folder: the body is kept fixed (every conv block frozen, as Table 1's last row and
Table 7) and the head adapts for the protocol's test steps (or ``--steps``) from

- ``learned``: the run's meta-learned head (what the pipeline evaluates; multiclass and
  NIL-trained runs are evaluated from a zero head, so for them it is ``zero``),
- ``zero``: a zero head (the first step makes it a prototype classifier),
- ``glorot``: a fresh Glorot-uniform head (the reference's MiniImageNet initialisation),

and the NIL rule (cosine similarity to the support features) classifies with the same body, on
the same fixed test tasks as ``meta.evaluate`` (seed 0). The gap ``NIL - learned`` is Table 7's
quantity; a small ``NIL - zero`` with a large ``NIL - learned`` says the meta-learned head, not
the body, is what trails the NIL rule. ``learned`` also prints the head's mean row norm
against a fresh Glorot head's, to show how far training moved it.

Usage::

    python benchmarks/bench_head_init.py results/quick/runs/{maml,anil,random,multiclass-head}-s0
    python benchmarks/bench_head_init.py RUN --steps 1 5 10 --tasks 100 --checkpoint 500
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import format_table, machine_info, write_json  # noqa: E402

from meta import TaskSampler, load_run  # noqa: E402
from meta.algorithms import eval_setup  # noqa: E402
from meta.algos._functional import predict  # noqa: E402
from meta.run import RunDir  # noqa: E402

__all__ = ["main", "run", "start_heads"]

STARTS = ("learned", "zero", "glorot")


def start_heads(params: dict[str, torch.Tensor], seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """``params`` with each starting head of :data:`STARTS` (``head.weight`` (ways, d))."""
    weight = params["head.weight"]
    glorot = torch.empty_like(weight)
    torch.nn.init.xavier_uniform_(glorot, generator=torch.Generator().manual_seed(seed))
    zero_bias = torch.zeros_like(params["head.bias"])
    return {"learned": dict(params),
            "zero": {**params, "head.weight": torch.zeros_like(weight), "head.bias": zero_bias},
            "glorot": {**params, "head.weight": glorot, "head.bias": zero_bias}}


def run(run_dir: str, *, steps: list[int] | None, tasks: int,
        checkpoint: int | str | None) -> dict[str, Any]:
    """Accuracies (%) of one run: ``{start: {steps: acc}}``, ``nil`` and the head norms."""
    cfg, model, params = load_run(run_dir, checkpoint=checkpoint)
    params, trainable = eval_setup(cfg.algorithm, params, cfg.ways, freeze=(1, 2, 3, 4),
                                   adapt_norm=cfg.adapt_norm)
    fixed = TaskSampler.fixed(cfg.load_split(cfg.test_split), cfg.ways, cfg.shots, cfg.query,
                              tasks, seed=0, augment_rotations=cfg.augment_rotations)
    steps = steps or [cfg.inner_steps_test]

    def accuracy(start: dict[str, torch.Tensor], head: str, k: int) -> float:
        hits = [float((predict(model, start, task, head=head, trainable=trainable, steps=k,
                               lr=cfg.inner_lr, reduction=cfg.inner_loss).argmax(1)
                       == task.query_y).double().mean()) for task in fixed]
        return 100.0 * sum(hits) / len(hits)

    heads = start_heads(params)
    out: dict[str, Any] = {start: {k: accuracy(heads[start], "maml", k) for k in steps}
                           for start in STARTS}
    out["nil"] = accuracy(params, "nil", 0)
    out["row_norm"] = {name: float(heads[name]["head.weight"].norm(dim=1).mean())
                       for name in ("learned", "glorot")}
    out.update(algorithm=cfg.algorithm, iteration=RunDir(run_dir).iteration(checkpoint),
               steps=steps, tasks=tasks)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders written by meta train / figures")
    parser.add_argument("--steps", type=int, nargs="+", default=None,
                        help="test-time head steps (default: the run's inner_steps_test)")
    parser.add_argument("--tasks", type=int, default=100, help="fixed test tasks (seed 0)")
    parser.add_argument("--checkpoint", default=None, help="iteration or 'last' (default)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    checkpoint = int(args.checkpoint) if args.checkpoint and args.checkpoint.isdigit() else args.checkpoint
    torch.set_num_threads(1)
    rows, results = [], {}
    for path in args.runs:
        res = run(path, steps=args.steps, tasks=args.tasks, checkpoint=checkpoint)
        results[path] = res
        for k in res["steps"]:
            rows.append({"run": Path(path).name, "iteration": res["iteration"], "steps": k,
                         **{s: round(res[s][k], 1) for s in STARTS}, "NIL": round(res["nil"], 1),
                         "NIL - learned": round(res["nil"] - res["learned"][k], 1),
                         "NIL - zero": round(res["nil"] - res["zero"][k], 1),
                         "|row| learned": round(res["row_norm"]["learned"], 2),
                         "|row| glorot": round(res["row_norm"]["glorot"], 2)})
        print(f"{path}: done", file=sys.stderr, flush=True)
    print(format_table(rows, list(rows[0])))
    if args.json:
        write_json(args.json, {"machine": machine_info(), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
