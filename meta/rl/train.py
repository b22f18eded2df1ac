"""RL meta-training and evaluation runs: ``train_rl(cfg, run_dir)``, ``evaluate_rl(run_dir)``.

A run directory holds::

(file names: :class:`meta.run.RunDir`)

    config.json            the RLConfig (``"kind": "rl"``)
    metrics.jsonl          one JSON object per logged iteration: returns before/after adaptation,
                           TRPO loss, KL and accepted step fraction, seconds per iteration
    checkpoints/last.pt    rolling checkpoint (parameters, sampler generator, iteration, elapsed)
    checkpoints/best.pt    the parameters with the best post-adaptation training return so far
                           (the paper selects the best of its 500 iterations)
    eval.json              written by ``evaluate_rl``

Running ``train_rl`` again on the same directory resumes from ``last.pt`` and ends with exactly
the parameters of an uninterrupted run (everything random comes from one saved generator).
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tqdm.auto import tqdm

from meta._threads import torch_threads
from meta.rl.algos import get_rl_algorithm
from meta.rl.config import RLConfig
from meta.rl.envs import make_env
from meta.rl.maml import StepStats, adapt, advantages, meta_step
from meta.rl.policy import GaussianMLP, Trainable, per_task
from meta.rl.sampler import episode_returns, rollout
from meta.run import RunDir

__all__ = ["train_rl", "evaluate_rl", "prepare_rl_evaluation", "run_rl_evaluation",
           "RLEvalRequest", "build_policy", "trainable_for", "load_params", "is_rl_run",
           "load_rl_config", "adaptation_returns"]

log = logging.getLogger(__name__)
_EVAL_SEED = 100_003          # offset of the fixed test tasks' generator (independent of cfg.seed)
EVAL_BATCH = 40               # test tasks adapted and rolled out at once (the reference's batch)
_CHUNK_STRIDE = 100_003       # evaluation batch i of seed s samples from (_EVAL_SEED + s) * this + i


def _dtype(cfg: RLConfig) -> torch.dtype:
    return getattr(torch, cfg.dtype)


def build_policy(cfg: RLConfig, env) -> GaussianMLP:
    """The policy for ``env``, initialised from ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    return GaussianMLP(env.obs_dim, env.action_dim, hidden=cfg.hidden,
                       nonlinearity=cfg.nonlinearity, init_std=cfg.init_std, dtype=_dtype(cfg))


def trainable_for(algorithm: str) -> Trainable:
    """The inner-loop predicate of an RL algorithm (:data:`meta.rl.algos.RL_REGISTRY`)."""
    return get_rl_algorithm(algorithm).trainable


def is_rl_run(run_dir: str | os.PathLike) -> bool:
    """True if the run directory's config describes an RL run."""
    try:
        return RunDir(run_dir).read_config().get("kind") == "rl"
    except (OSError, ValueError):
        return False


def load_rl_config(run_dir: str | os.PathLike) -> RLConfig:
    """The :class:`RLConfig` saved in ``run_dir``."""
    return RLConfig.from_dict(RunDir(run_dir).read_config())


def load_params(run_dir: str | os.PathLike, checkpoint: str = "best") -> dict[str, torch.Tensor]:
    """Meta-parameters of the ``"best"`` or the ``"last"`` checkpoint."""
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint: expected 'best' or 'last', got {checkpoint!r}")
    return RunDir(run_dir).load(checkpoint)["params"]


def train_rl(cfg: RLConfig, run_dir: str | os.PathLike, *, progress: bool | None = None,
             stop_after: int | None = None) -> Path:
    """Meta-train ``cfg`` into ``run_dir`` (created, or resumed from its last checkpoint).

    stop_after : return right after this iteration without saving, as a crash would (tests).
    """
    if not isinstance(cfg, RLConfig):
        raise ValueError(f"cfg: expected an RLConfig, got {type(cfg).__name__}")
    run = RunDir(run_dir)
    run.check_config(cfg)
    with run.writer(), torch_threads(cfg.threads):
        _train_rl(cfg, run, progress=progress, stop_after=stop_after)
    return run.path


@dataclass
class _RLSession:
    """The state of one RL training run: what a checkpoint holds, and the fixed pieces."""

    cfg: RLConfig
    run: RunDir
    env: Any
    policy: GaussianMLP
    params: dict[str, torch.Tensor]
    generator: torch.Generator
    start: int = 0
    elapsed: float = 0.0
    best: dict = field(default_factory=lambda: {"return_post": -math.inf, "iteration": 0})

    def save(self, iteration: int) -> None:
        self.run.save({"iteration": iteration, "elapsed": self.elapsed,
                       "config": self.cfg.to_dict(),
                       "params": {k: v.detach() for k, v in self.params.items()},
                       "generator": self.generator.get_state(), "best": self.best})


def _build_rl(cfg: RLConfig, run: RunDir) -> _RLSession:
    env = make_env(cfg.env, dtype=_dtype(cfg), threads=cfg.threads)
    policy = build_policy(cfg, env)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in policy.named_parameters()}
    session = _RLSession(cfg, run, env, policy, params, torch.Generator().manual_seed(cfg.seed))
    if run.checkpoint().exists():
        state = run.load()
        session.params = {k: v.clone().requires_grad_(True) for k, v in state["params"].items()}
        session.generator.set_state(state["generator"])
        session.start, session.elapsed, session.best = (state["iteration"], state["elapsed"],
                                                        state["best"])
        log.info("resuming %s from iteration %d", run.path, session.start)
    return session


def _rl_step(session: _RLSession, trainable: Trainable) -> StepStats:
    cfg = session.cfg
    session.params, stats = meta_step(
        session.env, session.policy, session.params, tasks=cfg.meta_batch_size,
        episodes=cfg.fast_batch_size, horizon=cfg.horizon, generator=session.generator,
        gamma=cfg.gamma, lam=cfg.gae_lambda, lr=cfg.inner_lr, trainable=trainable,
        first_order=cfg.first_order, max_kl=cfg.max_kl, cg_iters=cfg.cg_iters,
        cg_damping=cfg.cg_damping, ls_max_steps=cfg.ls_max_steps,
        ls_backtrack_ratio=cfg.ls_backtrack_ratio)
    return stats


def _keep_best(session: _RLSession, iteration: int, before: dict[str, torch.Tensor],
               stats: StepStats) -> None:
    # `stats` measured the parameters *before* this step: they are the ones kept as best.
    if stats.return_post > session.best["return_post"]:
        session.best = {"return_post": stats.return_post, "iteration": iteration - 1}
        session.run.save({"iteration": iteration - 1, "params": before,
                          "return_post": stats.return_post, "config": session.cfg.to_dict()},
                         "best")


def _rl_record(iteration: int, stats: StepStats, seconds: float, elapsed: float) -> dict[str, Any]:
    return {"iteration": iteration, "return_pre": stats.return_pre,
            "return_post": stats.return_post, "loss_before": stats.trpo.loss_before,
            "loss_after": stats.trpo.loss_after, "kl": stats.trpo.kl,
            "step_fraction": stats.trpo.step_fraction, "seconds": seconds, "elapsed": elapsed}


def _rl_loop(session: _RLSession, bar: tqdm, metrics, stop_after: int | None) -> None:
    cfg, trainable = session.cfg, trainable_for(session.cfg.algorithm)
    for iteration in range(session.start + 1, cfg.iterations + 1):
        t0 = time.perf_counter()
        before = {k: v.detach() for k, v in session.params.items()}
        stats = _rl_step(session, trainable)
        seconds = time.perf_counter() - t0
        session.elapsed += seconds
        bar.update(1)
        bar.set_postfix(pre=f"{stats.return_pre:.1f}", post=f"{stats.return_post:.1f}",
                        refresh=False)
        if stop_after is not None and iteration >= stop_after:
            return
        _keep_best(session, iteration, before, stats)
        if iteration % cfg.log_every == 0 or iteration == cfg.iterations:
            metrics.write(json.dumps(_rl_record(iteration, stats, seconds, session.elapsed)) + "\n")
            metrics.flush()
        out_of_time = cfg.max_seconds is not None and session.elapsed >= cfg.max_seconds
        if iteration % cfg.save_every == 0 or iteration == cfg.iterations or out_of_time:
            session.save(iteration)
        if out_of_time:
            log.info("%s reached max_seconds=%s at iteration %d", session.run.path,
                     cfg.max_seconds, iteration)
            return


def _train_rl(cfg: RLConfig, run: RunDir, *, progress: bool | None, stop_after: int | None) -> None:
    run.write_config(cfg)
    session = _build_rl(cfg, run)
    run.truncate_metrics(session.start)
    if cfg.max_seconds is not None and session.elapsed >= cfg.max_seconds:
        return
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=cfg.iterations, initial=session.start, disable=not show, desc=cfg.algorithm,
               unit="it")
    with open(run.metrics_file, "a") as metrics:
        _rl_loop(session, bar, metrics, stop_after)
    bar.close()


def _mean_ci(per_task: torch.Tensor) -> dict[str, float]:
    n = per_task.numel()
    std = float(per_task.double().std()) if n > 1 else 0.0
    return {"mean": float(per_task.double().mean()), "ci95": 1.96 * std / math.sqrt(n)}


def adaptation_returns(cfg: RLConfig, env, policy: GaussianMLP, params: dict[str, torch.Tensor],
                       tasks: torch.Tensor, *, episodes: int, generator: torch.Generator
                       ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Per-task mean returns before and after one inner step, and the post-adaptation params."""
    n = len(tasks)
    pre = rollout(env, policy, per_task(params, n), tasks, episodes=episodes, horizon=cfg.horizon,
                  generator=generator)
    adv = advantages(pre, gamma=cfg.gamma, lam=cfg.gae_lambda)
    fast = adapt(policy, params, pre, adv, lr=cfg.inner_lr, trainable=trainable_for(cfg.algorithm),
                 create_graph=False)
    fast = {k: v.detach() for k, v in fast.items()}
    post = rollout(env, policy, fast, tasks, episodes=episodes, horizon=cfg.horizon,
                   generator=generator)
    return episode_returns(pre).mean(1), episode_returns(post).mean(1), fast


def _chunked_returns(cfg: RLConfig, env, policy: GaussianMLP, params: dict[str, torch.Tensor],
                     tasks: torch.Tensor, *, episodes: int, seed: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`adaptation_returns` over batches of :data:`EVAL_BATCH` tasks (bounded memory).

    Batch ``i`` samples its episodes from its own generator, seeded by ``(seed, i)``: the
    first ``k * EVAL_BATCH`` tasks of a longer evaluation give the same returns as a shorter one.
    """
    pre, post = [], []
    for i, chunk in enumerate(torch.split(tasks, EVAL_BATCH)):
        generator = torch.Generator().manual_seed((_EVAL_SEED + seed) * _CHUNK_STRIDE + i)
        chunk_pre, chunk_post, _ = adaptation_returns(cfg, env, policy, params, chunk,
                                                      episodes=episodes, generator=generator)
        pre.append(chunk_pre)
        post.append(chunk_post)
    return torch.cat(pre), torch.cat(post)


def evaluate_rl(run_dir: str | os.PathLike, *, tasks: int | None = None, episodes: int | None = None,
                checkpoint: str = "best", seed: int = 0) -> dict[str, Any]:
    """Average return before and after adaptation on fixed test tasks; writes ``eval*.json``.

    Tasks are drawn from a generator seeded by ``seed`` alone, so every run of an environment
    is tested on the same tasks, in batches of :data:`EVAL_BATCH`. Returns ``{"pre": {"mean",
    "ci95"}, "post": {...}, "per_task": {"pre": [...], "post": [...]}, ...}``:
    the mean over tasks of each task's mean undiscounted episode return, 95% CI over tasks.
    """
    return run_rl_evaluation(prepare_rl_evaluation(run_dir, tasks=tasks, episodes=episodes,
                                                   checkpoint=checkpoint, seed=seed))


class RLEvalRequest(NamedTuple):
    """A checked RL evaluation: the run, its config and checkpoint, and the options resolved."""

    run: RunDir
    cfg: RLConfig
    state: dict
    checkpoint: str
    tasks: int
    episodes: int
    seed: int


def prepare_rl_evaluation(run_dir: str | os.PathLike, *, tasks: int | None = None,
                          episodes: int | None = None, checkpoint: str = "best",
                          seed: int = 0) -> RLEvalRequest:
    """Read the run and check the options of :func:`evaluate_rl` (``ValueError``)."""
    run = RunDir(run_dir)
    cfg = load_rl_config(run_dir)
    tasks = cfg.eval_tasks if tasks is None else tasks
    episodes = cfg.fast_batch_size if episodes is None else episodes
    for name, value in (("tasks", tasks), ("episodes", episodes)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint: expected 'best' or 'last', got {checkpoint!r}")
    return RLEvalRequest(run, cfg, run.load(checkpoint), checkpoint, tasks, episodes, seed)


def run_rl_evaluation(request: RLEvalRequest) -> dict[str, Any]:
    """Evaluate a request from :func:`prepare_rl_evaluation`; see :func:`evaluate_rl`."""
    cfg, run = request.cfg, request.run
    env = make_env(cfg.env, dtype=_dtype(cfg), threads=cfg.threads)
    policy = build_policy(cfg, env)
    goals = env.sample_tasks(request.tasks, torch.Generator().manual_seed(_EVAL_SEED + request.seed))
    t0 = time.perf_counter()
    with torch_threads(cfg.threads):
        pre, post = _chunked_returns(cfg, env, policy, request.state["params"], goals,
                                     episodes=request.episodes, seed=request.seed)
    default = (request.checkpoint, request.seed, request.tasks, request.episodes) == (
        "best", 0, cfg.eval_tasks, cfg.fast_batch_size)
    path = run.eval_named([] if default else [request.checkpoint, f"s{request.seed}",
                                              f"t{request.tasks}", f"e{request.episodes}"])
    result = {"algorithm": cfg.algorithm, "env": cfg.env, "checkpoint": request.checkpoint,
              "iteration": request.state["iteration"], "tasks": request.tasks,
              "episodes": request.episodes, "seed": request.seed, "pre": _mean_ci(pre),
              "post": _mean_ci(post), "per_task": {"pre": pre.tolist(), "post": post.tolist()},
              "seconds": time.perf_counter() - t0, "file": path.name}
    run.write_eval(result, path)
    return result
