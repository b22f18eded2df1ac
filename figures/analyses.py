"""The analysis outputs' ``compute``, spread over worker processes.

Outputs that share a ``compute`` function (Figure 6 reads Figure 3's checkpoint series, Figure
11 Table 3's similarities) form one group and compute in one process, on one
:class:`~figures.context.Context`, so that the second reads the first's cached result. The
groups start costliest first (``Output.cost``); each worker builds its own context from the
same preset and runs, so every number equals that of computing the outputs one by one.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from figures.context import Context
from figures.output import Output, OutputResult
from figures.presets import PipelinePreset
from figures.training import run_jobs
from meta._threads import torch_threads
from meta.run import RunDir

__all__ = ["groups", "compute_outputs"]

Computed = tuple[str, "OutputResult | None"]                 # (output name, result)


def groups(outputs: list[Output]) -> list[list[Output]]:
    """``outputs`` that have a ``compute``, grouped by that function (first appearance order
    within a group), the groups sorted by their summed ``cost``, largest first (stable)."""
    by_function: dict[Callable, list[Output]] = {}
    for output in outputs:
        if output.compute is not None:
            by_function.setdefault(output.compute, []).append(output)
    return sorted(by_function.values(), key=lambda group: -sum(o.cost for o in group))


def _compute_in(context: Context, outputs: list[Output]) -> list[Computed]:
    return [(output.name, output.compute(context)) for output in outputs]


def compute_group(preset: PipelinePreset, runs_dir: str, runs: dict, selected: frozenset[str],
                  names: list[str]) -> list[Computed]:
    """In a worker process: the outputs ``names`` on a context of their own (picklable job)."""
    from figures.outputs import discover

    by_name = {output.name: output for output in discover()}
    context = Context(preset, Path(runs_dir), {key: RunDir(path) for key, path in runs.items()},
                      selected)
    with torch_threads(preset.base.threads):
        return _compute_in(context, [by_name[name] for name in names])


def compute_outputs(outputs: list[Output], context: Context, *, workers: int) -> list[Computed]:
    """Each output's ``compute`` (those with one), in ``outputs``' order: in this process on
    ``context`` when ``workers <= 1`` or there is one group, else the groups of :func:`groups`
    in up to ``workers`` processes."""
    grouped = groups(outputs)
    if workers <= 1 or len(grouped) <= 1:
        return _compute_in(context, [o for o in outputs if o.compute is not None])
    runs = {key: str(run.path) for key, run in context.runs.items()}
    jobs = [(context.preset, str(context.runs_dir), runs, context.selected,
             [output.name for output in group]) for group in grouped]
    done: dict[str, Computed] = {}
    for computed in run_jobs(compute_group, jobs, workers=workers):
        done.update({name: (name, result) for name, result in computed})
    return [done[o.name] for o in outputs if o.compute is not None]
