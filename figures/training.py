"""Training the runs the selected outputs need: missing ones only, in parallel processes."""
from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from figures.output import RunKey
from figures.presets import PipelinePreset, run_config, run_name
from meta.run import RunDir

__all__ = ["run_is_finished", "train_runs"]

log = logging.getLogger(__name__)


def run_is_finished(run_dir: str | os.PathLike, cfg) -> bool:
    """True if ``run_dir/checkpoints/last.pt`` holds this config (a ``TrainConfig`` or an
    ``RLConfig``) at its last iteration or past its ``max_seconds``."""
    return RunDir(run_dir).is_finished(cfg)


def _train_one(cfg_dict: dict, run_dir: str) -> str:
    """Train one run in a worker process (a module-level function, so it pickles)."""
    import meta
    from meta.config import TrainConfig

    return str(meta.train(TrainConfig.from_dict(cfg_dict), run_dir, progress=False))


def train_runs(preset: PipelinePreset, runs_dir: Path, needed: list[RunKey], *, quiet: bool,
               workers: int = 1) -> dict[RunKey, RunDir]:
    """Train every run in ``needed`` that is not finished, ``workers`` processes at a time;
    return ``{(algorithm, seed): RunDir}`` of every needed run.

    Each run is seeded and single-threaded (``cfg.threads``), so its result does not depend on
    how many run beside it. Head runs read their regime's final body: they train after the rest.
    """
    first = [key for key in needed if not key[0].endswith("-head")]
    run_dirs = _train_phase(preset, runs_dir, first, quiet=quiet, workers=workers)
    run_dirs.update(_train_phase(preset, runs_dir, [key for key in needed if key not in first],
                                 quiet=quiet, workers=workers))
    return run_dirs


def _train_phase(preset: PipelinePreset, runs_dir: Path, needed: list[RunKey], *, quiet: bool,
                 workers: int) -> dict[RunKey, RunDir]:
    run_dirs, todo = {}, []
    for algorithm, seed in needed:
        cfg = run_config(preset, algorithm, seed, runs_dir)
        run = RunDir(Path(runs_dir) / run_name(algorithm, seed))
        run_dirs[(algorithm, seed)] = run
        if run.is_finished(cfg):
            log.info("reusing finished run %s", run.path)
        else:
            todo.append((cfg, run))
    if not todo:
        return run_dirs
    bar = tqdm(total=len(todo), desc="train runs", disable=quiet, leave=False)
    if workers <= 1 or len(todo) == 1:
        import meta                                  # looked up at call time

        for cfg, run in todo:
            log.info("training %s", run.path)
            meta.train(cfg, run.path, progress=not quiet)
            bar.update()
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context) as pool:
            jobs = {pool.submit(_train_one, cfg.to_dict(), str(run.path)): run for cfg, run in todo}
            for job in as_completed(jobs):
                job.result()             # re-raises a worker's error here
                log.info("trained %s", jobs[job].path)
                bar.update()
    bar.close()
    return run_dirs
