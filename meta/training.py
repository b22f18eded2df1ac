"""The training loop, ``train(cfg, run_dir)``: seed, build, loop, log, checkpoint.

The loop names no algorithm: what is trained, what adapts and how one outer step's gradients
are made come from ``meta.algos.get_algorithm(cfg.algorithm)``. Where files go is
:class:`meta.run.RunDir`'s business. Calling ``train`` again on the same directory with the same
config resumes from the last checkpoint and ends with exactly the parameters of an uninterrupted
run (every random state is saved with it).

>>> train(get_preset("tiny"), "runs/tiny")
PosixPath('runs/tiny')
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from meta import distributed
from meta._threads import torch_threads
from meta.algos import Algorithm, TrainingData, get_algorithm
from meta.config import TrainConfig
from meta.data import Task, TaskSampler
from meta.evaluation import score_tasks
from meta.models import Conv4, build_model
from meta.run import RunDir

__all__ = ["train", "load_body", "validate"]

log = logging.getLogger(__name__)


def load_body(model: Conv4, run_dir: str | os.PathLike) -> None:
    """Copy the body (``conv1..conv4``) of the final model of ``run_dir`` into ``model``."""
    run = RunDir(run_dir)
    path = run.checkpoint()
    if not path.exists():
        raise ValueError(f"body_from: expected a trained run with {path}, got none")
    weights = run.load()["model"]
    body = {n: w for n, w in weights.items() if not n.startswith("head.")}
    own = {n: p for n, p in model.state_dict().items() if not n.startswith("head.")}
    if {n: tuple(w.shape) for n, w in body.items()} != {n: tuple(p.shape) for n, p in own.items()}:
        raise ValueError(f"body_from: expected a body shaped like this model's, got {path}")
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in body:
                p.copy_(body[n])


def validate(model: Conv4, params: dict[str, torch.Tensor], tasks: list[Task], cfg: TrainConfig,
             device: torch.device | str) -> dict[str, float]:
    """Mean query loss and accuracy over fixed tasks, tested as ``evaluate`` does by default."""
    algorithm = get_algorithm(cfg.algorithm)
    params, trainable = algorithm.eval_setup(params, cfg.ways, adapt_norm=cfg.adapt_norm)
    losses, hits = score_tasks(model, params, tasks, head=algorithm.test_head, trainable=trainable,
                               steps=cfg.inner_steps_test, lr=cfg.inner_lr,
                               reduction=cfg.inner_loss, device=device)
    accs = [float(h.float().mean()) for h in hits]
    return {"val_loss": float(np.mean(losses)), "val_accuracy": float(np.mean(accs))}


def train(
    cfg: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    progress: bool | None = None,
    stop_after: int | None = None,
) -> Path:
    """Train ``cfg`` into ``run_dir`` (created, or resumed from its last checkpoint).

    Parameters
    ----------
    cfg : TrainConfig
    run_dir : path
        A new directory, or one holding a run with exactly this config (resumed).
    progress : bool or None
        tqdm progress bar; None shows it when stderr is a terminal.
    stop_after : int or None
        Return right after this iteration without a final checkpoint, as a crash would
        (for testing resume).

    Returns
    -------
    Path : ``run_dir``
    """
    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"cfg: expected a TrainConfig, got {type(cfg).__name__}")
    run = RunDir(run_dir)
    run.check_config(cfg)
    ctx = distributed.setup(cfg.device)
    try:
        # rank 0 writes the run, so rank 0 holds its lock
        with run.writer() if ctx.is_main else contextlib.nullcontext(), torch_threads(cfg.threads):
            _train(cfg, run, ctx, progress=progress, stop_after=stop_after)
    finally:
        distributed.teardown(ctx)
    return run.path


@dataclass
class _Session:
    """What one training process holds: built by :func:`_build`, advanced by the loop."""

    cfg: TrainConfig
    algorithm: Algorithm
    ctx: distributed.Context
    run: RunDir
    model: Conv4
    params: dict[str, torch.Tensor]       # the model's parameters, by name (functional calls)
    trained: list[torch.Tensor]           # those the outer loop updates
    optimizer: torch.optim.Optimizer
    data: TrainingData
    val_tasks: list[Task]
    start: int = 0                        # last iteration done (from the checkpoint)
    elapsed: float = 0.0                  # seconds of training and validation so far


def _build(cfg: TrainConfig, run: RunDir, ctx: distributed.Context) -> _Session:
    # Seed, then build data, model and optimiser (identically on every rank, in this order:
    # the random draws of a resumed run depend on it).
    algorithm = get_algorithm(cfg.algorithm)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    train_set = algorithm.training_set(cfg.load_split(cfg.train_split), cfg)
    val_set = cfg.load_split(cfg.val_split)
    model = build_model(cfg, train_set.image_shape, algorithm.head_width(cfg, train_set))
    model = model.to(ctx.device)
    if cfg.body_from is not None:
        load_body(model, cfg.body_from)
    outer = set(algorithm.outer_parameter_names(model))
    for name, p in model.named_parameters():
        p.requires_grad_(name in outer)
    trained = [p for name, p in model.named_parameters() if name in outer]
    optimizer = torch.optim.Adam(trained, lr=cfg.meta_lr)
    sampler = TaskSampler(train_set, cfg.ways, cfg.shots, cfg.query, seed=cfg.seed,
                          augment_rotations=algorithm.rotates_tasks(cfg))
    batches = torch.Generator().manual_seed(cfg.seed)
    data = TrainingData(train_set, sampler, batches, ctx.device, ctx.rank, ctx.world_size)
    val_tasks = TaskSampler.fixed(val_set, cfg.ways, cfg.shots, cfg.query, cfg.val_tasks,
                                  seed=cfg.seed + 1, augment_rotations=cfg.augment_rotations)
    return _Session(cfg, algorithm, ctx, run, model, dict(model.named_parameters()), trained,
                    optimizer, data, val_tasks)


def _rng_state(data: TrainingData) -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)),
                      "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": random.getstate(), "sampler": data.sampler.generator.get_state(),
            "batches": data.batches.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict[str, Any], data: TrainingData) -> None:
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["gauss"]))
    random.setstate(state["python"])
    data.sampler.generator.set_state(state["sampler"])
    data.batches.set_state(state["batches"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _restore(session: _Session) -> None:
    """Load the last checkpoint, if any, into ``session`` (model, Adam, random states)."""
    if not session.run.checkpoint().exists():
        return
    state = session.run.load(map_location=session.ctx.device)
    session.model.load_state_dict(state["model"])
    session.optimizer.load_state_dict(state["optimizer"])
    _set_rng_state(state["rng"], session.data)
    session.start, session.elapsed = state["iteration"], state["elapsed"]
    log.info("resuming %s from iteration %d", session.run.path, session.start)


def _save(session: _Session, iteration: int, which: int | None = None) -> None:
    if session.ctx.is_main:
        session.run.save({"iteration": iteration, "elapsed": session.elapsed,
                          "config": session.cfg.to_dict(),
                          "image_shape": list(session.data.train_set.image_shape),
                          "model": session.model.state_dict(),
                          "optimizer": session.optimizer.state_dict(),
                          "rng": _rng_state(session.data)}, which)


def _outer_step(session: _Session) -> torch.Tensor:
    """One meta-update; returns the step's ``(loss, accuracy)`` summed over ranks, ``(2,)``."""
    session.optimizer.zero_grad(set_to_none=True)
    stats = session.algorithm.accumulate(session.model, session.params, session.data, session.cfg)
    distributed.all_reduce_grads(session.ctx, session.trained)
    if session.cfg.outer_clip is not None:      # grad_clip, in the mean loss's units
        torch.nn.utils.clip_grad_value_(session.trained, session.cfg.outer_clip)
    session.optimizer.step()
    distributed.all_reduce_sum(session.ctx, stats)
    return stats


class _Window:
    """Sums of (loss, accuracy, iterations) since the last logged line, and when it began."""

    def __init__(self) -> None:
        self.sums = torch.zeros(3, dtype=torch.float64)
        self.start = time.perf_counter()

    def add(self, stats: torch.Tensor) -> None:
        self.sums += torch.cat([stats, torch.ones(1, dtype=torch.float64)])

    def flush(self) -> dict[str, float]:
        now = time.perf_counter()
        record = {"train_loss": float(self.sums[0] / self.sums[2]),
                  "train_accuracy": float(self.sums[1] / self.sums[2]),
                  "seconds_per_iteration": (now - self.start) / float(self.sums[2])}
        self.sums.zero_()
        return record


def _record(session: _Session, iteration: int, window: _Window) -> dict[str, Any]:
    """The metrics line of ``iteration`` (empty when nothing is due); validation time counts
    as elapsed."""
    cfg, last = session.cfg, iteration == session.cfg.iterations
    record: dict[str, Any] = {}
    if iteration % cfg.log_every == 0 or last:
        record.update(window.flush())
    if session.ctx.is_main and (iteration % cfg.val_every == 0 or last):
        t_val = time.perf_counter()
        params = {n: p.detach() for n, p in session.params.items()}
        record.update(validate(session.model, params, session.val_tasks, cfg, session.ctx.device))
        record["val_seconds"] = time.perf_counter() - t_val
        session.elapsed += record["val_seconds"]
    return record


def _out_of_time(session: _Session) -> bool:
    cfg = session.cfg
    flag = torch.tensor([cfg.max_seconds is not None and session.elapsed >= cfg.max_seconds],
                        dtype=torch.float64)
    distributed.all_reduce_sum(session.ctx, flag)              # every rank stops together
    return bool(flag.item())


def _loop(session: _Session, bar: tqdm, metrics, stop_after: int | None) -> bool:
    """Run the remaining iterations; False when stopped by ``stop_after`` (no final save)."""
    cfg, window = session.cfg, _Window()
    for iteration in range(session.start + 1, cfg.iterations + 1):
        t0 = time.perf_counter()
        stats = _outer_step(session)
        session.elapsed += time.perf_counter() - t0
        window.add(stats)
        bar.update(1)
        bar.set_postfix(loss=f"{stats[0]:.3f}", acc=f"{stats[1]:.3f}", refresh=False)
        record = _record(session, iteration, window)
        if record:
            metrics.write(json.dumps({"iteration": iteration, **record}) + "\n")
            metrics.flush()
        if "train_loss" in record:
            window.start = time.perf_counter()                 # validation time is not training
        out_of_time = _out_of_time(session)
        if stop_after is not None and iteration >= stop_after:
            return False
        if iteration in cfg.checkpoints:
            _save(session, iteration, iteration)
        if iteration % cfg.save_every == 0 or iteration == cfg.iterations or out_of_time:
            _save(session, iteration)
        if out_of_time:
            log.info("max_seconds=%s reached at iteration %d", cfg.max_seconds, iteration)
            break
    return True


def _train(cfg: TrainConfig, run: RunDir, ctx: distributed.Context, *, progress: bool | None,
           stop_after: int | None) -> None:
    if ctx.is_main:
        run.write_config(cfg)
    session = _build(cfg, run, ctx)
    _restore(session)
    if ctx.is_main:
        run.truncate_metrics(session.start)
    if cfg.max_seconds is not None and session.elapsed >= cfg.max_seconds:
        log.info("%s already used its max_seconds=%s", run.path, cfg.max_seconds)
        return
    show = ctx.is_main and (sys.stderr.isatty() if progress is None else progress)
    bar = tqdm(total=cfg.iterations, initial=session.start, disable=not show, desc=cfg.algorithm,
               unit="it", dynamic_ncols=True)
    with open(run.metrics_file, "a") if ctx.is_main else open(os.devnull, "w") as metrics:
        finished = _loop(session, bar, metrics, stop_after)
    bar.close()
    if finished:
        distributed.barrier(ctx)
