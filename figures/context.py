"""What the outputs compute from: the trained runs, cached evaluations, the analysis tasks and
a cache of computations several outputs share (e.g. cross-run similarities)."""
from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from figures.constants import CONV_LAYERS, RunKey
from figures.presets import PipelinePreset
from figures.training import evaluate_job, run_jobs
from meta.run import RunDir

__all__ = ["Context", "LoadedRun", "accuracy_summary", "mean_over"]


@dataclass(frozen=True)
class LoadedRun:
    """A run ready for the analyses: float64 model and parameters as evaluated."""

    config: Any                          # meta.config.TrainConfig
    model: torch.nn.Module
    params: dict[str, torch.Tensor]
    trainable: Any                       # meta.inner.Trainable


def accuracy_summary(evaluations: list[dict]) -> dict[str, Any]:
    """``{mean, ci95, std, per_seed}`` over seeds of ``meta.evaluate`` results.

    ``ci95`` is the CI of the mean over every seed's tasks; ``std`` is over seeds (None for one
    seed), as the paper reports.
    """
    means = [evaluation["accuracy"]["mean"] for evaluation in evaluations]
    cis = [evaluation["accuracy"]["ci95"] for evaluation in evaluations]
    count = len(means)
    return {"mean": sum(means) / count,
            "ci95": (sum(ci * ci for ci in cis) ** 0.5) / count,
            "std": statistics.stdev(means) if count > 1 else None,
            "per_seed": means}


def mean_over(trees: list) -> Any:
    """Element-wise mean of nested dicts of floats with identical structure."""
    first = trees[0]
    if isinstance(first, dict):
        return {key: mean_over([tree[key] for tree in trees]) for key in first}
    return sum(trees) / len(trees)


def _double_tasks(tasks: list) -> list:
    return [type(task)(task.support_x.double(), task.support_y, task.query_x.double(), task.query_y)
            for task in tasks]


@dataclass
class Context:
    """Shared inputs of the outputs of one pipeline call.

    Parameters
    ----------
    preset : the pipeline preset
    runs_dir : the folder of training runs
    runs : ``{(algorithm, seed): RunDir}`` of the runs trained for the selected outputs
    selected : names of the selected outputs (a few outputs write more when others are absent)
    """

    preset: PipelinePreset
    runs_dir: Path
    runs: dict[RunKey, RunDir]
    selected: frozenset[str]
    _shared: dict[Any, Any] = field(default_factory=dict, repr=False)
    _similarities: dict[tuple, dict] = field(default_factory=dict, repr=False)

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.preset.seeds

    def run(self, algorithm: str, seed: int | None = None) -> RunDir:
        """The run directory of ``algorithm`` at ``seed`` (default the first seed)."""
        return self.runs[(algorithm, self.seeds[0] if seed is None else seed)]

    def shared(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per ``key`` for this pipeline call; later calls reuse it."""
        if key not in self._shared:
            self._shared[key] = compute()
        return self._shared[key]

    # ------------------------------------------------------------------ evaluation
    def _cached(self, run: RunDir, options: dict[str, Any]) -> tuple[dict | None, dict[str, Any]]:
        """The cached evaluation of ``run`` under ``options`` (None if missing), and the full
        keyword arguments of ``meta.evaluate`` that make it."""
        from meta.config import TrainConfig

        config = TrainConfig.from_dict(run.read_config())
        steps = options.get("inner_steps")
        kwargs = {"tasks": self.preset.eval_tasks, "freeze": tuple(options.get("freeze", ())),
                  "head": options.get("head", "maml"), "checkpoint": options.get("checkpoint"),
                  "inner_steps": config.inner_steps_test if steps is None else int(steps)}
        path = run.eval_file(config, split=config.test_split, seed=0, **kwargs)
        return run.read_eval(path, checkpoint=kwargs["checkpoint"]), kwargs

    def evaluate(self, run: RunDir, *, freeze: tuple[int, ...] = (), head: str = "maml",
                 checkpoint: int | str | None = None,
                 inner_steps: int | None = None) -> dict[str, Any]:
        """``meta.evaluate`` on the preset's test tasks; a cached ``eval*.json`` made from the
        same checkpoint is read back instead. ``inner_steps``: test-time steps (default the
        run's ``inner_steps_test``)."""
        import meta

        cached, kwargs = self._cached(run, {"freeze": freeze, "head": head,
                                            "checkpoint": checkpoint, "inner_steps": inner_steps})
        return cached if cached is not None else meta.evaluate(run.path, **kwargs)

    def prefetch(self, requests: Iterable[tuple[RunDir, dict[str, Any]]]) -> None:
        """Run the evaluations of ``requests`` (``(run, options of evaluate)``) that are not
        cached, ``preset.workers`` processes at a time, those with the most test-time steps
        first; later :meth:`evaluate` calls read them."""
        jobs: dict[tuple, tuple[str, dict[str, Any]]] = {}
        for run, options in requests:
            cached, kwargs = self._cached(run, options)
            if cached is None:                              # one job per distinct evaluation
                jobs[(str(run.path), *sorted(kwargs.items()))] = (str(run.path), kwargs)
        ordered = sorted(jobs.values(), key=lambda job: -job[1]["inner_steps"])
        run_jobs(evaluate_job, ordered, workers=self.preset.workers)

    def accuracy(self, algorithm: str, seeds: Iterable[int], **options) -> dict[str, Any]:
        """:func:`accuracy_summary` of ``algorithm`` over ``seeds`` (options as :meth:`evaluate`)."""
        return accuracy_summary([self.evaluate(self.run(algorithm, seed), **options)
                                 for seed in seeds])

    # ------------------------------------------------------------------ analyses
    @cached_property
    def tasks(self) -> list:
        """The fixed test tasks of the representation analyses, in float64."""
        from meta import TaskSampler

        config = self.preset.base
        dataset = config.load_split(config.test_split)
        tasks = TaskSampler.fixed(dataset, config.ways, config.shots, self.preset.analysis_query,
                                  self.preset.analysis_tasks, seed=12345,
                                  augment_rotations=config.augment_rotations)
        return _double_tasks(tasks)

    def load(self, run: RunDir, checkpoint: int | str | None = None) -> LoadedRun:
        """The run's model and parameters in float64, set up as at evaluation."""
        from meta import load_run
        from meta.algorithms import eval_setup

        config, model, params = load_run(run.path, checkpoint=checkpoint)
        params, trainable = eval_setup(config.algorithm, params, config.ways,
                                       adapt_norm=config.adapt_norm)
        return LoadedRun(config, model.double(),
                         {name: value.double() for name, value in params.items()}, trainable)

    def pre_post(self, run: RunDir, checkpoint: int | str | None = None):
        """``meta.analysis.pre_post_analysis`` of ``run`` on :attr:`tasks` with the chance level
        (row-shuffled "after" representations); one adaptation per task."""
        from meta.analysis import pre_post_analysis

        loaded = self.load(run, checkpoint)
        config = loaded.config
        return pre_post_analysis(loaded.model, loaded.params, self.tasks, trainable=loaded.trainable,
                                 steps=config.inner_steps_test, lr=config.inner_lr,
                                 reduction=config.inner_loss, chance=True)

    def cross(self, first: RunKey, second: RunKey,
              comparisons: tuple[str, ...] = ("pre_pre",)) -> dict[str, Any]:
        """``meta.analysis.cross_run_similarity`` of two runs over the conv layers, cached: a
        request whose comparisons an earlier one already covered reuses it."""
        key = (first, second, tuple(comparisons))
        if key not in self._similarities:
            done = next((value for known, value in self._similarities.items()
                         if known[:2] == key[:2] and set(comparisons) <= set(known[2])), None)
            self._similarities[key] = (done if done is not None
                                       else self._cross(first, second, comparisons))
        return self._similarities[key]

    def _cross(self, first: RunKey, second: RunKey, comparisons: tuple[str, ...]) -> dict:
        from meta.analysis import AdaptSpec, cross_run_similarity

        run_a, run_b = self.load(self.run(*first)), self.load(self.run(*second))

        def spec(loaded: LoadedRun):
            config = loaded.config
            return AdaptSpec(loaded.trainable, config.inner_steps_test, config.inner_lr,
                             config.inner_loss)

        return cross_run_similarity(run_a.model, run_a.params, run_b.model, run_b.params,
                                    self.tasks, adapt_a=spec(run_a), adapt_b=spec(run_b),
                                    layers=CONV_LAYERS, comparisons=comparisons)
