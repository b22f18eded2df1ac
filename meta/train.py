"""The training loop: one function, ``train(cfg, run_dir)`` — seed, build, loop, log, checkpoint.

A run directory holds::

    config.json                  the TrainConfig
    metrics.jsonl                one JSON object per logged iteration (and per validation)
    checkpoints/last.pt          rolling checkpoint (model, Adam, RNG states, iteration, config)
    checkpoints/step-010000.pt   the iterations listed in cfg.checkpoints

Calling ``train`` again on the same directory with the same config resumes from ``last.pt`` and
ends with exactly the parameters of an uninterrupted run.

>>> train(get_preset("tiny"), "runs/tiny")
PosixPath('runs/tiny')
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import random
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from meta import distributed
from meta.algorithms import multiclass_loss, predict, task_loss, eval_setup
from meta.config import TrainConfig
from meta.data import Task, TaskSampler, load_dataset
from meta.models import Conv4
from meta._config_base import check_run_dir

__all__ = ["train", "build_model", "load_body", "load_checkpoint", "torch_threads", "validate", "checkpoint_path", "atomic_save",
           "atomic_write_text", "outer_parameter_names"]

log = logging.getLogger(__name__)


def build_model(cfg: TrainConfig, image_shape: tuple[int, int, int], outputs: int) -> Conv4:
    """The Conv4 for ``cfg.dataset``: pooled MiniImageNet variant or the stride-2 Omniglot one.

    image_shape : (C, H, W) of the dataset's images
    outputs : head width (``cfg.ways``, or the number of training classes for multiclass)
    """
    pool = cfg.dataset == "miniimagenet"
    hidden = cfg.hidden if cfg.hidden is not None else (32 if pool else 64)
    channels, height, _ = image_shape
    return Conv4(outputs, in_channels=channels, hidden=hidden, image_size=height, pool=pool,
                 head_init=cfg.head_init)


def outer_parameter_names(algorithm: str, model: Conv4) -> list[str]:
    """Parameters the outer loop trains: the head only for random features, the body only for
    NIL training (it has no head), everything otherwise."""
    names = [n for n, _ in model.named_parameters()]
    if algorithm == "random":
        return [n for n in names if n.startswith("head.")]
    if algorithm == "nil":
        return [n for n in names if not n.startswith("head.")]
    return names


def load_body(model: Conv4, run_dir: str | os.PathLike) -> None:
    """Copy the body (``conv1..conv4``) of the final model of ``run_dir`` into ``model``."""
    path = checkpoint_path(run_dir)
    if not path.exists():
        raise ValueError(f"body_from: expected a trained run with {path}, got none")
    weights = load_checkpoint(path)["model"]
    body = {n: w for n, w in weights.items() if not n.startswith("head.")}
    own = {n: p for n, p in model.state_dict().items() if not n.startswith("head.")}
    if {n: tuple(w.shape) for n, w in body.items()} != {n: tuple(p.shape) for n, p in own.items()}:
        raise ValueError(f"body_from: expected a body shaped like this model's, got {path}")
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in body:
                p.copy_(body[n])


def checkpoint_path(run_dir: str | os.PathLike, checkpoint: int | str | None = None) -> Path:
    """``checkpoints/last.pt`` (None or "last") or ``checkpoints/step-XXXXXX.pt``."""
    folder = Path(run_dir) / "checkpoints"
    if checkpoint is None or checkpoint == "last":
        return folder / "last.pt"
    return folder / f"step-{int(checkpoint):06d}.pt"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file, fsync, then ``os.replace`` onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def validate(model, params, tasks, cfg: TrainConfig, device) -> dict[str, float]:
    """Mean query loss and accuracy over fixed tasks, tested as ``evaluate`` does by default."""
    head = "nil" if cfg.algorithm == "nil" else "maml"
    params, trainable = eval_setup(cfg.algorithm, params, cfg.ways, adapt_norm=cfg.adapt_norm)
    losses, accs = [], []
    for task in tasks:
        task = Task(*(t.to(device) for t in task))
        logits = predict(model, params, task, head=head, trainable=trainable,
                         steps=cfg.inner_steps_test, lr=cfg.inner_lr, reduction=cfg.inner_loss)
        losses.append(float(torch.nn.functional.cross_entropy(logits, task.query_y)))
        accs.append(float((logits.argmax(1) == task.query_y).float().mean()))
    return {"val_loss": float(np.mean(losses)), "val_accuracy": float(np.mean(accs))}


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, then restore the caller's count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint written by :func:`train`, loaded without running code from the file.

    Checkpoints hold only tensors and plain Python values, so ``torch.load(weights_only=True)``
    reads them; a file that needs more (a pickled object) is refused with a ``ValueError``.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"checkpoint: expected tensors and plain values in {path}, got a file "
                         f"that needs code to load; refusing to run it ({str(err).splitlines()[0]})"
                         ) from None


def _rng_state(sampler, batches: torch.Generator) -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)),
                      "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": random.getstate(), "sampler": sampler.generator.get_state(),
            "batches": batches.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict[str, Any], sampler, batches: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["gauss"]))
    random.setstate(state["python"])
    sampler.generator.set_state(state["sampler"])
    batches.set_state(state["batches"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _truncate_metrics(path: Path, iteration: int) -> None:
    # On resume, drop the lines logged after the checkpoint: they are logged again.
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["iteration"] <= iteration]
    atomic_write_text("".join(line + "\n" for line in kept), path)


def train(
    cfg: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    progress: bool | None = None,
    stop_after: int | None = None,
) -> Path:
    """Train ``cfg`` into ``run_dir`` (created, or resumed from ``checkpoints/last.pt``).

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
    run_dir = Path(run_dir)
    check_run_dir(run_dir, cfg)
    ctx = distributed.setup(cfg.device)
    try:
        # Threads: torch's default (all cores) collapses when other processes share them.
        with torch_threads(cfg.threads):
            return _train(cfg, run_dir, ctx, progress=progress, stop_after=stop_after)
    finally:
        distributed.teardown(ctx)


def _train(cfg, run_dir, ctx, *, progress, stop_after) -> Path:
    device = ctx.device
    if ctx.is_main:
        atomic_write_text(json.dumps(cfg.to_dict(), indent=2) + "\n", run_dir / "config.json")

    # Seed, then build data, model and optimiser (identically on every rank).
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    train_set = load_dataset(cfg.dataset, cfg.train_split, root=cfg.data_root)
    if cfg.augment_rotations and cfg.algorithm == "multiclass":
        train_set = train_set.with_rotations()                 # tasks rotate on the fly instead
    val_set = load_dataset(cfg.dataset, cfg.val_split, root=cfg.data_root)
    outputs = len(train_set) if cfg.algorithm == "multiclass" else cfg.ways
    model = build_model(cfg, train_set.image_shape, outputs).to(device)
    if cfg.body_from is not None:
        load_body(model, cfg.body_from)
    outer = set(outer_parameter_names(cfg.algorithm, model))
    for name, p in model.named_parameters():
        p.requires_grad_(name in outer)
    trained = [p for name, p in model.named_parameters() if name in outer]
    optimizer = torch.optim.Adam(trained, lr=cfg.meta_lr)
    sampler = TaskSampler(train_set, cfg.ways, cfg.shots, cfg.query, seed=cfg.seed,
                          augment_rotations=cfg.augment_rotations and cfg.algorithm != "multiclass")
    batches = torch.Generator().manual_seed(cfg.seed)          # multiclass image batches
    val_tasks = TaskSampler.fixed(val_set, cfg.ways, cfg.shots, cfg.query, cfg.val_tasks,
                                  seed=cfg.seed + 1, augment_rotations=cfg.augment_rotations)

    start, elapsed = 0, 0.0
    last = checkpoint_path(run_dir)
    if last.exists():
        state = load_checkpoint(last, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"], sampler, batches)
        start, elapsed = state["iteration"], state["elapsed"]
        log.info("resuming %s from iteration %d", run_dir, start)
    metrics_path = run_dir / "metrics.jsonl"
    if ctx.is_main:
        _truncate_metrics(metrics_path, start)
    if cfg.max_seconds is not None and elapsed >= cfg.max_seconds:
        log.info("%s already used its max_seconds=%s", run_dir, cfg.max_seconds)
        return run_dir

    def save(path: Path, iteration: int) -> None:
        if ctx.is_main:
            atomic_save({"iteration": iteration, "elapsed": elapsed, "config": cfg.to_dict(),
                         "image_shape": list(train_set.image_shape), "model": model.state_dict(),
                         "optimizer": optimizer.state_dict(),
                         "rng": _rng_state(sampler, batches)}, path)

    show = ctx.is_main and (sys.stderr.isatty() if progress is None else progress)
    bar = tqdm(total=cfg.iterations, initial=start, disable=not show, desc=cfg.algorithm,
               unit="it", dynamic_ncols=True)
    params = dict(model.named_parameters())
    window = torch.zeros(3, dtype=torch.float64)               # loss, accuracy, iterations
    window_start = time.perf_counter()
    iteration = start
    with open(metrics_path, "a") if ctx.is_main else open(os.devnull, "w") as metrics:
        for iteration in range(start + 1, cfg.iterations + 1):
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            stats = torch.zeros(2, dtype=torch.float64)          # summed loss, accuracy
            if cfg.algorithm == "multiclass":
                # Standard classification: a batch of images from all training classes.
                n_classes, n_per = train_set.images.shape[:2]
                cls = torch.randint(n_classes, (cfg.batch_size,), generator=batches)
                idx = torch.randint(n_per, (cfg.batch_size,), generator=batches)
                cls, idx = cls[ctx.rank::ctx.world_size], idx[ctx.rank::ctx.world_size]
                x = (train_set.images[cls, idx].to(torch.float32) / 255).to(device)
                loss, acc = multiclass_loss(model, params, x, cls.to(device))
                weight = len(cls) / cfg.batch_size
                (loss * weight).backward()
                stats += torch.stack([loss.detach().cpu().double(), acc.cpu()]) * weight
            else:
                # Every rank draws the same meta-batch and takes tasks rank::world_size.
                tasks = sampler.batch(cfg.meta_batch_size)[ctx.rank::ctx.world_size]
                for task in tasks:
                    task = Task(*(t.to(device) for t in task))
                    loss, acc = task_loss(model, params, task, algorithm=cfg.algorithm,
                                          steps=cfg.inner_steps, lr=cfg.inner_lr, ways=cfg.ways,
                                          reduction=cfg.inner_loss, adapt_norm=cfg.adapt_norm)
                    (loss / cfg.meta_batch_size).backward()
                    stats += torch.stack([loss.detach().cpu().double(), acc.cpu()]) / cfg.meta_batch_size
            distributed.all_reduce_grads(ctx, trained)
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_value_(trained, cfg.grad_clip)
            optimizer.step()
            distributed.all_reduce_sum(ctx, stats)
            elapsed += time.perf_counter() - t0
            window += torch.cat([stats, torch.ones(1, dtype=torch.float64)])

            bar.update(1)
            bar.set_postfix(loss=f"{stats[0]:.3f}", acc=f"{stats[1]:.3f}", refresh=False)
            record: dict[str, Any] = {}
            if iteration % cfg.log_every == 0 or iteration == cfg.iterations:
                now = time.perf_counter()
                record.update(train_loss=float(window[0] / window[2]),
                              train_accuracy=float(window[1] / window[2]),
                              seconds_per_iteration=(now - window_start) / float(window[2]))
                window.zero_()
            if ctx.is_main and (iteration % cfg.val_every == 0 or iteration == cfg.iterations):
                t_val = time.perf_counter()
                record.update(validate(model, {n: p.detach() for n, p in params.items()},
                                       val_tasks, cfg, device))
                record["val_seconds"] = time.perf_counter() - t_val
                elapsed += record["val_seconds"]
            if record:
                metrics.write(json.dumps({"iteration": iteration, **record}) + "\n")
                metrics.flush()
            if "train_loss" in record:
                window_start = time.perf_counter()            # validation time is not training
            out_of_time = torch.tensor(
                [cfg.max_seconds is not None and elapsed >= cfg.max_seconds], dtype=torch.float64)
            distributed.all_reduce_sum(ctx, out_of_time)        # every rank stops together
            if stop_after is not None and iteration >= stop_after:
                bar.close()
                return run_dir
            if iteration in cfg.checkpoints:
                save(checkpoint_path(run_dir, iteration), iteration)
            if iteration % cfg.save_every == 0 or iteration == cfg.iterations or out_of_time.item():
                save(last, iteration)
            if out_of_time.item():
                log.info("max_seconds=%s reached at iteration %d", cfg.max_seconds, iteration)
                break
    bar.close()
    distributed.barrier(ctx)
    return run_dir
