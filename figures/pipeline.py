"""The paper pipeline: it only schedules the outputs of :mod:`figures.outputs`.

``run_pipeline(preset, out_dir)`` is what ``python -m figures`` calls: parse ``--only``, collect
the runs the selected outputs need, train the missing ones (:func:`meta.train` only; a run
whose ``checkpoints/last.pt`` reached its final iteration is never trained again, a
half-finished one is resumed), build the shared :class:`~figures.context.Context`, call each
output's ``compute`` stage by stage, write ``results.json`` / ``details.json`` / ``report.md``
and draw the PNGs. Evaluations are cached in each run directory (``eval*.json``) and reused.

Outputs in ``out_dir``:

``results.json``
    ``preset, dataset, ways, shots, seeds, iterations, inner_steps, inner_steps_test,
    eval_tasks, analysis_tasks``, then each selected output's keys (its result type documents
    them: ``accuracy``, ``freezing``, ``pre_post``, ``cross_seed_fit``, ...), ``stage_seconds``
    and ``seconds``. Accuracies are fractions; similarities in [0, 1]; layers ``conv1..conv4,
    head``. The results of a previous call in the same ``out_dir`` are kept and updated.
``details.json``
    The series the figures need (``checkpoints``, ``curves``, ``cross_seed``,
    ``maml_anil_layers``, ``network_map``, ``rl_pre_post``).
``report.md`` and one PNG per figure.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from figures import report
from figures.analyses import compute_outputs
from figures.context import Context
from figures.output import STAGES, Output, RunKey
from figures.outputs import aliases, discover
from figures.presets import PRESETS, PipelinePreset, make_preset, run_config
from figures.training import run_is_finished, train_runs
from meta._threads import torch_threads

__all__ = [
    "PipelinePreset",
    "PRESETS",
    "OUTPUTS",
    "FIGURES",
    "make_preset",
    "parse_only",
    "needed_runs",
    "check_outputs",
    "extra_training",
    "run_pipeline",
    "draw_figures",
    "run_is_finished",
    "run_config",
]

log = logging.getLogger(__name__)

#: every output name, in output order (``--only`` also takes the aliases)
OUTPUTS: tuple[str, ...] = tuple(output.name for output in discover())
#: ``{name: output}`` of the outputs that draw a figure
FIGURES: dict[str, Output] = {output.name: output for output in discover() if output.draw}


def parse_only(only: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"fig2,table1"`` -> ``("fig2", "table1")`` (aliases fig8->fig7, table7->table5, ...)."""
    outputs = discover()
    names = tuple(output.name for output in outputs)
    if only is None:
        return names
    alias_of = aliases(outputs)
    items = only.split(",") if isinstance(only, str) else list(only)
    selected: list[str] = []
    for raw in items:
        key = alias_of.get(raw.strip().lower(), raw.strip().lower())
        if not key:
            continue
        if key not in names:
            raise ValueError(f"only: expected names from {list(names) + list(alias_of)}, got {raw!r}")
        if key not in selected:
            selected.append(key)
    if not selected:
        raise ValueError("only: expected at least one output name, got none")
    return tuple(selected)


def _selected(names: Iterable[str]) -> list[Output]:
    """The outputs named, in the order they compute: by stage, then by output order."""
    wanted = set(names)
    rank = {stage: i for i, stage in enumerate(STAGES)}
    chosen = [output for output in discover() if output.name in wanted]
    return sorted(chosen, key=lambda output: (rank.get(output.stage, len(STAGES)), output.order))


def needed_runs(preset: PipelinePreset, outputs: Iterable[str]) -> list[RunKey]:
    """The runs the outputs named in ``outputs`` read, each once, in output order."""
    names = set(outputs)
    needed: list[RunKey] = []
    for output in discover():
        if output.name in names:
            needed.extend(key for key in output.needs(preset) if key not in needed)
    return needed


def extra_training(preset: PipelinePreset, runs_dir: Path,
                   names: Iterable[str]) -> list[tuple[Callable, tuple]]:
    """The selected outputs' ``train`` jobs (e.g. RL policies); outputs that share runs share
    their ``train`` function, which is called once."""
    trains = dict.fromkeys(output.train for output in _selected(names) if output.train is not None)
    return [job for train in trains for job in train(preset, runs_dir)]


def check_outputs(preset: PipelinePreset, names: Iterable[str]) -> None:
    """Each selected output's ``check``: a ``ValueError`` before any training when one cannot
    run (e.g. the ``rl`` extra is missing)."""
    outputs = _selected(names)
    for check in dict.fromkeys(output.check for output in outputs if output.check is not None):
        check(preset)


def draw_figures(results: dict, details: dict, out_dir: str | os.PathLike,
                 *, only: str | Iterable[str] | None = None) -> list[Path]:
    """Draw the selected figures (default all) from saved results; returns the PNG paths."""
    names = parse_only(only if only is None or isinstance(only, str) else list(only))
    figures = {output.name: output for output in discover() if output.draw is not None}
    paths: list[Path] = []
    for name in names:
        if name in figures:
            paths += figures[name].draw(results, details, out_dir)
    return paths


def _read_or_empty(path: Path) -> dict:
    return report.read_json(path) if path.exists() else {}


def run_pipeline(
    preset: str | PipelinePreset,
    out_dir: str | os.PathLike,
    *,
    only: str | Iterable[str] | None = None,
    runs_dir: str | os.PathLike | None = None,
    data_root: str | None = None,
    seeds: Iterable[int] | None = None,
    quiet: bool = False,
) -> dict:
    """Train (what is missing), evaluate, analyse, write ``results.json``/``details.json``/
    ``report.md`` and draw the PNGs into ``out_dir``. Returns the results dict.

    ``only`` selects outputs (names in :data:`OUTPUTS`); the results of a previous call in the
    same ``out_dir`` are kept and updated.
    """
    if isinstance(preset, str):
        preset = make_preset(preset, data_root=data_root, seeds=seeds)
    names = parse_only(only)
    # Small linear algebra collapses when its threads fight over shared cores: use the
    # runs' own thread count (1 by default) for the analyses too, as training does.
    with torch_threads(preset.base.threads):
        return _run(preset, Path(out_dir), names, runs_dir, quiet)


def _header(preset: PipelinePreset) -> dict:
    base = preset.base
    return dict(preset=preset.name, dataset=base.dataset, ways=base.ways, shots=base.shots,
                seeds=list(preset.seeds), iterations=base.iterations, inner_steps=base.inner_steps,
                inner_steps_test=base.inner_steps_test, inner_lr=base.inner_lr,
                meta_batch_size=base.meta_batch_size, head_init=base.head_init,
                network=base.resolved_network, image_size=base.image_size, query=base.query,
                eval_tasks=preset.eval_tasks, analysis_tasks=preset.analysis_tasks)


def _compute(outputs: list[Output], context: Context, results: dict, details: dict,
             stage_seconds: dict[str, float]) -> None:
    """Each output's ``compute``, stage by stage, its result written into ``results`` /
    ``details``; the analyses spread over ``preset.workers`` processes."""
    for stage in dict.fromkeys(output.stage for output in outputs):
        members = [output for output in outputs if output.stage == stage]
        start = time.perf_counter()
        workers = context.preset.workers if stage == "analyse" else 1
        for _, result in compute_outputs(members, context, workers=workers):
            if result is not None:
                result.write(results, details)
        if stage is not None:
            stage_seconds[stage] += time.perf_counter() - start


def _run(preset: PipelinePreset, out: Path, names: tuple[str, ...], runs_dir, quiet: bool) -> dict:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(runs_dir) if runs_dir is not None else out / "runs"
    outputs = _selected(names)
    results = _read_or_empty(out / "results.json")
    details = _read_or_empty(out / "details.json")
    results.update(_header(preset))

    check_outputs(preset, names)                     # fail before training, not after it
    stage_seconds = dict.fromkeys(("train", *STAGES), 0.0)
    start = time.perf_counter()
    run_dirs = train_runs(preset, runs, needed_runs(preset, names), quiet=quiet,
                          workers=preset.workers, extra=extra_training(preset, runs, names))
    stage_seconds["train"] = time.perf_counter() - start

    context = Context(preset, runs, run_dirs, frozenset(names))
    start = time.perf_counter()
    context.prefetch([request for output in outputs if output.evaluations is not None
                      for request in output.evaluations(context)])
    stage_seconds["evaluate"] += time.perf_counter() - start
    _compute(outputs, context, results, details, stage_seconds)

    start = time.perf_counter()
    results["stage_seconds"] = stage_seconds
    results["seconds"] = time.perf_counter() - started
    report.write_json(details, out / "details.json")
    report.write_json(results, out / "results.json")
    draw_figures(results, details, out, only=names)
    stage_seconds["draw"] = time.perf_counter() - start
    results["seconds"] = time.perf_counter() - started
    report.write_json(results, out / "results.json")
    report.write_report(results, out, details)
    return results
