"""Training the runs the selected outputs need: missing ones only, in parallel processes."""
from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from figures.constants import RunKey
from figures.presets import PipelinePreset, run_config, run_name
from meta.run import RunDir

__all__ = ["run_is_finished", "train_runs", "run_jobs", "evaluate_job", "costliest_first"]

log = logging.getLogger(__name__)

# The algorithms from the costliest iteration to the cheapest (second-order inner loop through
# the whole network first, the frozen random body last): runs start in this order, so that the
# long runs are not left for the end of a pool while the other workers idle.
_COSTLIEST_FIRST = ("maml", "fomaml", "anil", "nil", "multitask", "multiclass", "random")


def costliest_first(keys: list[RunKey]) -> list[RunKey]:
    """``keys`` ordered by :data:`_COSTLIEST_FIRST` (unknown algorithms last), stable.

    >>> costliest_first([("random", 0), ("nil", 0), ("maml", 1), ("anil", 0), ("maml", 0)])
    [('maml', 1), ('maml', 0), ('anil', 0), ('nil', 0), ('random', 0)]
    """
    def rank(key: RunKey) -> int:
        name = key[0]
        return _COSTLIEST_FIRST.index(name) if name in _COSTLIEST_FIRST else len(_COSTLIEST_FIRST)

    return sorted(keys, key=rank)


def run_is_finished(run_dir: str | os.PathLike, cfg) -> bool:
    """True if ``run_dir/checkpoints/last.pt`` holds this config (a ``TrainConfig`` or an
    ``RLConfig``) at its last iteration or past its ``max_seconds``."""
    return RunDir(run_dir).is_finished(cfg)


def _train_one(cfg_dict: dict, run_dir: str, progress: bool = False) -> str:
    """Train one run (a module-level function, so it pickles into a worker process)."""
    import meta                                  # looked up at call time
    from meta.config import TrainConfig

    return str(meta.train(TrainConfig.from_dict(cfg_dict), run_dir, progress=progress))


def evaluate_job(run_path: str, kwargs: dict[str, Any]) -> None:
    """``meta.evaluate(run_path, **kwargs)``, writing its ``eval*.json`` (a picklable job)."""
    import meta

    meta.evaluate(run_path, **kwargs)


def _die_with_parent(parent: int) -> None:
    """In a worker on Linux: be sent SIGTERM when the process ``parent`` that started it dies,
    so that killing the pipeline does not leave its training runs going on without it."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1                                       # <linux/prctl.h>
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(signal.SIGTERM))
    if os.getppid() != parent:               # it died while this worker was starting
        os.kill(os.getpid(), signal.SIGTERM)


def run_jobs(function: Callable[..., Any], jobs: list[tuple], *, workers: int,
             done: Callable[[tuple], None] | None = None) -> list[Any]:
    """``function(*job)`` for every job, its return values in ``jobs``' order: in this process
    when ``workers <= 1`` or there is one job, else in up to ``workers`` spawned processes
    (``function`` must be module-level, so it pickles). ``done(job)`` follows each finished
    job; a worker's error is re-raised here."""
    if not jobs:
        return []
    if workers <= 1 or len(jobs) == 1:
        values = []
        for job in jobs:
            values.append(function(*job))
            if done is not None:
                done(job)
        return values
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context,
                             initializer=_die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(function, *job): i for i, job in enumerate(jobs)}
        values = [None] * len(jobs)
        for future in as_completed(futures):
            values[futures[future]] = future.result()
            if done is not None:
                done(jobs[futures[future]])
    return values


def train_runs(preset: PipelinePreset, runs_dir: Path, needed: list[RunKey], *, quiet: bool,
               workers: int = 1, extra: list[tuple[Callable, tuple]] = ()) -> dict[RunKey, RunDir]:
    """Train every run in ``needed`` that is not finished, ``workers`` processes at a time;
    return ``{(algorithm, seed): RunDir}`` of every needed run.

    ``extra``: other ``(function, args)`` training jobs (``Output.train``, e.g. RL policies);
    they share the first phase's pool and are submitted first. Each run is seeded and
    single-threaded (``cfg.threads``), so its result does not depend on how many run beside it.
    Head runs read their regime's final body: they train after the rest.
    """
    first = [key for key in needed if not key[0].endswith("-head")]
    run_dirs = _train_phase(preset, runs_dir, first, quiet=quiet, workers=workers, extra=extra)
    run_dirs.update(_train_phase(preset, runs_dir, [key for key in needed if key not in first],
                                 quiet=quiet, workers=workers))
    return run_dirs


def _moved_with_its_body(run: RunDir, cfg) -> bool:
    """True for a finished head run (``body_from`` set) whose runs folder was moved or copied:
    its saved config differs from ``cfg`` only in ``body_from``, which named a run of the same
    name (the regime's run, now beside it)."""
    if cfg.body_from is None or not run.config_file.exists():
        return False
    saved = run.read_config().get("body_from")
    if saved is None or Path(saved).name != Path(cfg.body_from).name:
        return False
    return run.is_finished(cfg.replace(body_from=saved))


def _call(function: Callable, args: tuple) -> Any:
    return function(*args)


def _train_phase(preset: PipelinePreset, runs_dir: Path, needed: list[RunKey], *, quiet: bool,
                 workers: int, extra: list[tuple[Callable, tuple]] = ()) -> dict[RunKey, RunDir]:
    run_dirs, todo = {}, []
    for algorithm, seed in costliest_first(needed):
        cfg = run_config(preset, algorithm, seed, runs_dir)
        run = RunDir(Path(runs_dir) / run_name(algorithm, seed))
        run_dirs[(algorithm, seed)] = run
        if run.is_finished(cfg) or _moved_with_its_body(run, cfg):
            log.info("reusing finished run %s", run.path)
        else:
            todo.append((cfg, run))
    if not todo and not extra:
        return run_dirs
    bar = tqdm(total=len(todo) + len(extra), desc="train runs", disable=quiet, leave=False)
    progress = not quiet and (workers <= 1 or len(todo) + len(extra) == 1)  # a bar per run here

    def done(job: tuple) -> None:
        log.info("trained %s", job[1][1])
        bar.update()

    jobs = list(extra) + [(_train_one, (cfg.to_dict(), str(run.path), progress)) for cfg, run in todo]
    run_jobs(_call, jobs, workers=workers, done=done)
    bar.close()
    return run_dirs
