"""Table 2's RL rows and an RL Figure 2: MAML-RL and ANIL-RL trained, evaluated and analysed.

The pipeline calls :func:`run_rl` with its preset name; each environment trains MAML and ANIL
for the preset's seeds (missing runs only, in parallel processes), evaluates the best checkpoint
before and after one inner step on fixed test tasks (in parallel processes too), and analyses
the policies' hidden layers before and after adaptation. Results are plain dicts for
``results.json``.
"""
from __future__ import annotations

import logging
import statistics
from pathlib import Path

from figures.training import run_jobs
from meta.run import RunDir

__all__ = ["RL_SETTINGS", "check_rl", "run_rl", "rl_run_name", "rl_training"]

log = logging.getLogger(__name__)

#: pipeline preset -> (RL presets of the environments, seeds)
RL_SETTINGS = {
    "tiny": (("nav2d-tiny",), (0,)),
    "quick": (("nav2d-quick",), (0,)),
    "paper": (("nav2d", "halfcheetah-dir", "halfcheetah-vel"), (0, 1, 2)),
}
ALGORITHMS = ("maml", "anil")


def rl_run_name(preset: str, algorithm: str, seed: int) -> str:
    """The folder name of an RL run: ``"rl-nav2d-quick-maml-s0"``."""
    return f"rl-{preset}-{algorithm}-s{seed}"


def _train_one(cfg_dict: dict, run_dir: str) -> str:
    """Train one RL run in a worker process (module level, so it pickles)."""
    from meta.rl.config import RLConfig
    from meta.rl.train import train_rl

    return str(train_rl(RLConfig.from_dict(cfg_dict), run_dir, progress=False))


def _runs(preset: str, runs_dir: Path) -> dict[tuple, tuple]:
    """``{(env, algorithm, seed): (RLConfig, run_dir)}`` of the preset's RL runs."""
    from meta.rl.config import get_rl_preset

    envs, seeds = RL_SETTINGS[preset]
    return {(env, algorithm, seed): (get_rl_preset(env).replace(algorithm=algorithm, seed=seed),
                                     Path(runs_dir) / rl_run_name(env, algorithm, seed))
            for env in envs for algorithm in ALGORITHMS for seed in seeds}


def _evaluate_one(run_dir: str) -> dict:
    """``evaluate_rl`` of one run in a worker process (module level, so it pickles)."""
    from meta.rl.train import evaluate_rl

    return evaluate_rl(run_dir)


def _pending(jobs: list) -> list[tuple[dict, str]]:
    return [(cfg.to_dict(), str(run_dir)) for cfg, run_dir in jobs
            if not RunDir(run_dir).is_finished(cfg)]


def _train_all(jobs: list, workers: int) -> None:
    run_jobs(_train_one, _pending(jobs), workers=workers)


def rl_training(preset, runs_dir: Path) -> list[tuple]:
    """The unfinished RL runs of ``preset`` (a :class:`~figures.presets.PipelinePreset`) as
    ``(function, args)`` jobs, for the pipeline's train stage (``Output.train``)."""
    return [(_train_one, args) for args in _pending(list(_runs(preset.name, runs_dir).values()))]


def _summary(values: list[float]) -> dict:
    """``{mean, std (over seeds; None for one), per_seed}`` of ``values``."""
    return {"mean": sum(values) / len(values),
            "std": statistics.stdev(values) if len(values) > 1 else None, "per_seed": values}


def check_rl(preset: str) -> None:
    """Build each environment of ``preset`` once, so that a missing ``rl`` extra (mujoco) is a
    ``ValueError`` before any training, not after hours of it."""
    from meta.rl.config import get_rl_preset
    from meta.rl.envs import make_env

    for name in RL_SETTINGS[preset][0]:
        try:
            make_env(get_rl_preset(name).env)
        except ImportError as err:
            raise ValueError(f"RL rows: expected the rl extra for {name} (pip install -e \".[rl]\"), "
                             f"got {err}") from None


def run_rl(preset: str, runs_dir: Path, *, workers: int = 1) -> tuple[dict, dict]:
    """Train what is missing, evaluate and analyse; returns ``(results, details)``.

    results : ``{env: {alg: {"pre": summary, "post": summary, "post_ci95": [per seed]}}}``
        with summaries ``{"mean", "std" (over seeds), "per_seed"}`` of the average return.
    details : ``{env: {alg: analyse_run(first seed)}}`` (per hidden layer CCA/CKA before vs
        after adaptation, and weight change).
    """
    from meta.rl.analysis import analyse_run

    envs, seeds = RL_SETTINGS[preset]
    runs = _runs(preset, runs_dir)
    _train_all(list(runs.values()), workers)
    keys = list(runs)
    evaluated = dict(zip(keys, run_jobs(_evaluate_one, [(str(runs[key][1]),) for key in keys],
                                        workers=workers)))
    results, details = {}, {}
    for env in envs:
        results[env], details[env] = {}, {}
        for algorithm in ALGORITHMS:
            evaluations = [evaluated[(env, algorithm, seed)] for seed in seeds]
            results[env][algorithm] = {
                "pre": _summary([evaluation["pre"]["mean"] for evaluation in evaluations]),
                "post": _summary([evaluation["post"]["mean"] for evaluation in evaluations]),
                "post_ci95": [evaluation["post"]["ci95"] for evaluation in evaluations],
                "pre_ci95": [evaluation["pre"]["ci95"] for evaluation in evaluations]}
            details[env][algorithm] = analyse_run(runs[(env, algorithm, seeds[0])][1])
    return results, details
