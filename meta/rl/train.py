"""RL meta-training and evaluation runs: ``train_rl(cfg, run_dir)``, ``evaluate_rl(run_dir)``.

A run directory holds::

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
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from meta.rl.config import RLConfig
from meta.rl.envs import make_env
from meta.rl.maml import adapt, advantages, meta_step
from meta.rl.policy import GaussianMLP, all_params, head_only, per_task
from meta.rl.sampler import episode_returns, rollout
from meta.train import atomic_save, atomic_write_text, checkpoint_path, load_checkpoint, torch_threads
from meta._config_base import check_run_dir

__all__ = ["train_rl", "evaluate_rl", "build_policy", "trainable_for", "load_params",
           "is_rl_run", "load_rl_config", "adaptation_returns"]

log = logging.getLogger(__name__)
_EVAL_SEED = 100_003          # offset of the fixed test tasks' generator (independent of cfg.seed)


def _dtype(cfg: RLConfig) -> torch.dtype:
    return getattr(torch, cfg.dtype)


def build_policy(cfg: RLConfig, env) -> GaussianMLP:
    """The policy for ``env``, initialised from ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    return GaussianMLP(env.obs_dim, env.action_dim, hidden=cfg.hidden,
                       nonlinearity=cfg.nonlinearity, init_std=cfg.init_std, dtype=_dtype(cfg))


def trainable_for(algorithm: str):
    """The inner-loop predicate: :func:`head_only` for ANIL, :func:`all_params` otherwise."""
    return head_only if algorithm == "anil" else all_params


def is_rl_run(run_dir: str | os.PathLike) -> bool:
    """True if ``run_dir/config.json`` describes an RL run."""
    path = Path(run_dir) / "config.json"
    try:
        return json.loads(path.read_text()).get("kind") == "rl"
    except (OSError, ValueError):
        return False


def load_rl_config(run_dir: str | os.PathLike) -> RLConfig:
    """The :class:`RLConfig` saved in ``run_dir``."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise ValueError(f"run: expected {path} to exist (a trained RL run directory)")
    return RLConfig.from_dict(json.loads(path.read_text()))


def load_params(run_dir: str | os.PathLike, checkpoint: str = "best") -> dict[str, torch.Tensor]:
    """Meta-parameters of ``checkpoints/best.pt`` or ``checkpoints/last.pt``."""
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint: expected 'best' or 'last', got {checkpoint!r}")
    path = Path(run_dir) / "checkpoints" / f"{checkpoint}.pt"
    if not path.exists():
        raise ValueError(f"checkpoint: expected {path} to exist; train the run first")
    return load_checkpoint(path)["params"]


def _truncate_metrics(path: Path, iteration: int) -> None:
    if path.exists():
        kept = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line)["iteration"] <= iteration]
        atomic_write_text("".join(line + "\n" for line in kept), path)


def train_rl(cfg: RLConfig, run_dir: str | os.PathLike, *, progress: bool | None = None,
             stop_after: int | None = None) -> Path:
    """Meta-train ``cfg`` into ``run_dir`` (created, or resumed from ``checkpoints/last.pt``).

    stop_after : return right after this iteration without saving, as a crash would (tests).
    """
    if not isinstance(cfg, RLConfig):
        raise ValueError(f"cfg: expected an RLConfig, got {type(cfg).__name__}")
    run_dir = Path(run_dir)
    check_run_dir(run_dir, cfg)
    with torch_threads(cfg.threads):
        return _train_rl(cfg, run_dir, progress=progress, stop_after=stop_after)


def _train_rl(cfg: RLConfig, run_dir: Path, *, progress: bool | None, stop_after: int | None) -> Path:
    atomic_write_text(json.dumps(cfg.to_dict(), indent=2) + "\n", run_dir / "config.json")

    env = make_env(cfg.env, dtype=_dtype(cfg))
    policy = build_policy(cfg, env)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in policy.named_parameters()}
    generator = torch.Generator().manual_seed(cfg.seed)
    start, elapsed, best = 0, 0.0, {"return_post": -math.inf, "iteration": 0}
    last = checkpoint_path(run_dir)
    if last.exists():
        state = load_checkpoint(last)
        params = {k: v.clone().requires_grad_(True) for k, v in state["params"].items()}
        generator.set_state(state["generator"])
        start, elapsed, best = state["iteration"], state["elapsed"], state["best"]
        log.info("resuming %s from iteration %d", run_dir, start)
    metrics_path = run_dir / "metrics.jsonl"
    _truncate_metrics(metrics_path, start)

    def save(path: Path, iteration: int) -> None:
        atomic_save({"iteration": iteration, "elapsed": elapsed, "config": cfg.to_dict(),
                     "params": {k: v.detach() for k, v in params.items()},
                     "generator": generator.get_state(), "best": best}, path)

    if cfg.max_seconds is not None and elapsed >= cfg.max_seconds:
        return run_dir
    trainable = trainable_for(cfg.algorithm)
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=cfg.iterations, initial=start, disable=not show, desc=cfg.algorithm, unit="it")
    with open(metrics_path, "a") as metrics:
        for iteration in range(start + 1, cfg.iterations + 1):
            t0 = time.perf_counter()
            before = {k: v.detach() for k, v in params.items()}
            params, stats = meta_step(
                env, policy, params, tasks=cfg.meta_batch_size, episodes=cfg.fast_batch_size,
                horizon=cfg.horizon, generator=generator, gamma=cfg.gamma, lam=cfg.gae_lambda,
                lr=cfg.inner_lr, trainable=trainable, first_order=cfg.first_order,
                max_kl=cfg.max_kl, cg_iters=cfg.cg_iters, cg_damping=cfg.cg_damping,
                ls_max_steps=cfg.ls_max_steps, ls_backtrack_ratio=cfg.ls_backtrack_ratio)
            seconds = time.perf_counter() - t0
            elapsed += seconds
            bar.update(1)
            bar.set_postfix(pre=f"{stats.return_pre:.1f}", post=f"{stats.return_post:.1f}",
                            refresh=False)
            if stop_after is not None and iteration >= stop_after:
                return run_dir
            # `stats` measured the parameters *before* this step: they are the ones kept as best.
            if stats.return_post > best["return_post"]:
                best = {"return_post": stats.return_post, "iteration": iteration - 1}
                atomic_save({"iteration": iteration - 1, "params": before,
                             "return_post": stats.return_post, "config": cfg.to_dict()},
                            run_dir / "checkpoints" / "best.pt")
            if iteration % cfg.log_every == 0 or iteration == cfg.iterations:
                record: dict[str, Any] = {
                    "iteration": iteration, "return_pre": stats.return_pre,
                    "return_post": stats.return_post, "loss_before": stats.trpo.loss_before,
                    "loss_after": stats.trpo.loss_after, "kl": stats.trpo.kl,
                    "step_fraction": stats.trpo.step_fraction, "seconds": seconds,
                    "elapsed": elapsed}
                metrics.write(json.dumps(record) + "\n")
                metrics.flush()
            out_of_time = cfg.max_seconds is not None and elapsed >= cfg.max_seconds
            if iteration % cfg.save_every == 0 or iteration == cfg.iterations or out_of_time:
                save(last, iteration)
            if out_of_time:
                log.info("%s reached max_seconds=%s at iteration %d", run_dir, cfg.max_seconds,
                         iteration)
                break
    bar.close()
    return run_dir


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


def evaluate_rl(run_dir: str | os.PathLike, *, tasks: int | None = None, episodes: int | None = None,
                checkpoint: str = "best", seed: int = 0) -> dict[str, Any]:
    """Average return before and after adaptation on fixed test tasks; writes ``eval*.json``.

    Tasks are drawn from a generator seeded by ``seed`` alone, so every run of an environment
    is tested on the same tasks. Returns ``{"pre": {"mean", "ci95"}, "post": {...}, ...}``:
    the mean over tasks of each task's mean undiscounted episode return, 95% CI over tasks.
    """
    run_dir = Path(run_dir)
    cfg = load_rl_config(run_dir)
    tasks = cfg.eval_tasks if tasks is None else tasks
    episodes = cfg.fast_batch_size if episodes is None else episodes
    for name, value in (("tasks", tasks), ("episodes", episodes)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    env = make_env(cfg.env, dtype=_dtype(cfg))
    policy = build_policy(cfg, env)
    params = load_params(run_dir, checkpoint)
    generator = torch.Generator().manual_seed(_EVAL_SEED + seed)
    goals = env.sample_tasks(tasks, generator)
    t0 = time.perf_counter()
    with torch_threads(cfg.threads):
        pre, post, _ = adaptation_returns(cfg, env, policy, params, goals, episodes=episodes,
                                          generator=generator)
    state = load_checkpoint(run_dir / "checkpoints" / f"{checkpoint}.pt")
    name = "eval.json" if (checkpoint, seed, tasks, episodes) == (
        "best", 0, cfg.eval_tasks, cfg.fast_batch_size) else \
        f"eval-{checkpoint}-s{seed}-t{tasks}-e{episodes}.json"
    result = {"algorithm": cfg.algorithm, "env": cfg.env, "checkpoint": checkpoint,
              "iteration": state["iteration"], "tasks": tasks, "episodes": episodes,
              "seed": seed, "pre": _mean_ci(pre), "post": _mean_ci(post),
              "seconds": time.perf_counter() - t0, "file": name}
    atomic_write_text(json.dumps(result, indent=2) + "\n", run_dir / name)
    return result
