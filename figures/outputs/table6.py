"""Table 6: seconds per training iteration and per inference of MAML, first-order MAML and ANIL."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from figures.context import Context
from figures.grading import (NOT_MEASURED, NOT_REPRODUCED, PARTLY, REPRODUCED, Finding, fixed,
                             lookup, markdown_table, paper_column)
from figures.output import Output

__all__ = ["OUTPUT", "PAPER_TABLE6", "TimingResult", "time_algorithms"]

#: seconds per iteration (task batch 1, target set 1, TitanXp) and the speed-ups (MAML time /
#: other time) as the paper prints them or as they follow from it
PAPER_TABLE6 = {
    "train": {
        "5w1s": {"maml": 0.15, "fomaml": 0.089, "anil": 0.084},
        "5w5s": {"maml": 0.68, "fomaml": 0.40, "anil": 0.37},
    },
    "inference": {
        "5w1s": {"maml": 0.083, "anil": 0.020},
        "5w5s": {"maml": 0.37, "anil": 0.076},
    },
    "train_speedup_anil_vs_maml": {"5w1s": 1.79, "5w5s": 1.84},
    "train_speedup_fomaml_vs_maml": {"5w1s": 0.15 / 0.089, "5w5s": 0.68 / 0.40},
    "inference_speedup_anil_vs_maml": {"5w1s": 4.15, "5w5s": 4.87},
}
SPEEDUPS = ("train_speedup_anil_vs_maml", "inference_speedup_anil_vs_maml",
            "train_speedup_fomaml_vs_maml")
_WARMUP = 2             # untimed iterations before the median


@dataclass(frozen=True)
class TimingResult:
    """``speedup``: MAML seconds / other seconds (keys of :data:`SPEEDUPS`); ``seconds``:
    ``{"train": {alg: s}, "inference": {alg: s}}``, medians per iteration."""

    speedup: dict[str, float]
    seconds: dict[str, dict[str, float]]

    def write(self, results: dict, details: dict) -> None:
        results["timing"] = self.speedup
        results["timing_seconds"] = self.seconds


def _time_training(model, init: dict, tasks: list, algorithm: str, config) -> float:
    from meta.algorithms import task_loss

    params = {name: value.clone().requires_grad_() for name, value in init.items()}
    optimizer = torch.optim.Adam(params.values(), lr=config.meta_lr)
    times = []
    for i, task in enumerate(tasks):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss, _ = task_loss(model, params, task, algorithm=algorithm, steps=config.inner_steps,
                            lr=config.inner_lr, ways=config.ways, reduction=config.inner_loss,
                            adapt_norm=config.adapt_norm)
        loss.backward()
        optimizer.step()
        if i >= _WARMUP:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _time_inference(model, init: dict, tasks: list, algorithm: str, config) -> float:
    from meta.algorithms import inner_trainable, predict

    trainable = inner_trainable(algorithm, adapt_norm=config.adapt_norm)
    times = []
    for i, task in enumerate(tasks):
        start = time.perf_counter()
        predict(model, init, task, head="maml", trainable=trainable, steps=config.inner_steps_test,
                lr=config.inner_lr, reduction=config.inner_loss)
        if i >= _WARMUP:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_algorithms(context: Context) -> TimingResult:
    """Seconds per training iteration (task batch 1) of MAML / FO-MAML / ANIL and per inference
    of MAML vs ANIL, on the same freshly built model, in this process, one thread."""
    from meta import TaskSampler
    from meta._threads import torch_threads
    from meta.models import build_model

    config, preset = context.preset.base, context.preset
    with torch_threads(1):
        dataset = config.load_split(config.train_split)
        tasks = TaskSampler.fixed(dataset, config.ways, config.shots, config.query,
                                  preset.timing_iterations + _WARMUP, seed=7)
        torch.manual_seed(0)
        model = build_model(config, dataset.image_shape, config.ways)
        init = {name: value.detach().clone() for name, value in model.named_parameters()}
        train = {a: _time_training(model, init, tasks, a, config) for a in ("maml", "fomaml", "anil")}
        inference = {a: _time_inference(model, init, tasks, a, config) for a in ("maml", "anil")}
    speedup = {"train_speedup_anil_vs_maml": train["maml"] / train["anil"],
               "inference_speedup_anil_vs_maml": inference["maml"] / inference["anil"],
               "train_speedup_fomaml_vs_maml": train["maml"] / train["fomaml"]}
    return TimingResult(speedup, {"train": train, "inference": inference})


def grade(results: dict, details: dict) -> list[Finding]:
    """Reproduced when every speed-up is above 1; partly when some are."""
    claim = "ANIL trains and infers faster than MAML, first-order MAML trains faster (Table 6)"
    timing = results.get("timing")
    if not timing:
        return [Finding("table6", claim, NOT_MEASURED, "no timing")]
    values = {k: timing[k] for k in SPEEDUPS if timing.get(k) is not None}
    faster = [v > 1.0 for v in values.values()]
    status = REPRODUCED if faster and all(faster) else PARTLY if any(faster) else NOT_REPRODUCED
    return [Finding("table6", claim, status, ", ".join(f"{k} {v:.2f}x" for k, v in values.items()))]


def section(results: dict, details: dict) -> list[str]:
    mini = paper_column(results, family="mini")
    timing, seconds = results.get("timing") or {}, results.get("timing_seconds") or {}
    shots_key = "5w5s" if mini.endswith("5s") else "5w1s"
    rows = []
    for phase in ("train", "inference"):
        for algorithm in ("maml", "fomaml", "anil"):
            paper = PAPER_TABLE6[phase][shots_key].get(algorithm)
            ours = lookup(seconds, phase, algorithm)
            if ours is None and paper is None:
                continue
            rows.append([phase, algorithm, fixed(ours, 4), "—" if paper is None else f"{paper:g}"])
    lines = ["", "## Table 6 — speed (seconds per iteration, same model, same process)", ""]
    lines += markdown_table(["phase", "algorithm", "this run (s)", f"paper TitanXp ({shots_key}, s)"],
                            rows)
    lines += [""]
    return lines + markdown_table(
        ["speed-up", "this run", "paper"],
        [[k, fixed(timing.get(k), 2), fixed(PAPER_TABLE6[k][shots_key], 2)]
         for k in ("train_speedup_anil_vs_maml", "train_speedup_fomaml_vs_maml",
                   "inference_speedup_anil_vs_maml")])


OUTPUT = Output(name="table6", order=110, stage="timing", compute=time_algorithms, grade=grade,
                section=section, section_order=80)
