"""Load a trained run and measure few-shot test accuracy over fixed tasks.

>>> cfg, model, params = load_run("runs/omniglot-maml")
>>> result = evaluate("runs/omniglot-maml", freeze=(1, 2, 3))   # writes eval-freeze1,2,3.json
>>> result["accuracy"]                                            # fractions
{'mean': 0.912, 'ci95': 0.008}
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from meta.algorithms import predict, eval_setup
from meta.config import TrainConfig
from meta.data import Task, TaskSampler, load_dataset
from meta.inner import freeze_blocks
from meta.models import Conv4
from meta.train import atomic_write_text, build_model, checkpoint_path, load_checkpoint, torch_threads

__all__ = ["load_run", "evaluate", "eval_filename"]


def load_run(
    run_dir: str | os.PathLike,
    *,
    checkpoint: int | str | None = None,
) -> tuple[TrainConfig, Conv4, dict[str, torch.Tensor]]:
    """The config, model and parameters saved in a run directory.

    Parameters
    ----------
    run_dir : path
    checkpoint : int, "last" or None
        An iteration listed in the config's ``checkpoints`` (``step-XXXXXX.pt``), or the latest
        (``last.pt``, the default).

    Returns
    -------
    cfg : TrainConfig
    model : Conv4 (eval mode, on the CPU)
    params : {name: tensor}, detached
    """
    return _from_state(_load_state(run_dir, checkpoint))


def _load_state(run_dir, checkpoint) -> dict[str, Any]:
    path = checkpoint_path(run_dir, checkpoint)
    if not path.exists():
        folder = Path(run_dir) / "checkpoints"
        found = sorted(p.name for p in folder.glob("*.pt")) if folder.is_dir() else []
        raise ValueError(f"checkpoint: expected {path} to exist, got only {found or 'nothing'}")
    return load_checkpoint(path)


def _from_state(state: dict[str, Any]) -> tuple[TrainConfig, Conv4, dict[str, torch.Tensor]]:
    cfg = TrainConfig.from_dict(state["config"])
    weights = state["model"]
    model = build_model(cfg, tuple(state["image_shape"]), weights["head.weight"].shape[0])
    model.load_state_dict(weights)
    model.eval()
    return cfg, model, {n: p.detach() for n, p in model.named_parameters()}


def eval_filename(
    cfg: TrainConfig,
    *,
    tasks: int,
    freeze: tuple[int, ...],
    head: str,
    inner_steps: int,
    checkpoint: int | str | None,
    split: str,
    seed: int,
) -> str:
    """``eval.json`` for the default options, else e.g. ``eval-freeze1,2,3.json``."""
    parts = []
    if freeze:
        parts.append("freeze" + ",".join(str(b) for b in freeze))
    if head != "maml":
        parts.append(f"head-{head}")
    if inner_steps != cfg.inner_steps_test:
        parts.append(f"steps{inner_steps}")
    if checkpoint not in (None, "last"):
        parts.append(f"step{int(checkpoint)}")
    if tasks != cfg.eval_tasks:
        parts.append(f"tasks{tasks}")
    if split != cfg.test_split:
        parts.append(f"split-{split}")
    if seed != 0:
        parts.append(f"seed{seed}")
    return "eval.json" if not parts else "eval-" + "-".join(parts) + ".json"


def evaluate(
    run_dir: str | os.PathLike,
    *,
    tasks: int | None = None,
    freeze: tuple[int, ...] = (),
    head: str = "maml",
    inner_steps: int | None = None,
    checkpoint: int | str | None = None,
    split: str | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Mean query accuracy and its 95% confidence interval over fixed test tasks.

    Parameters
    ----------
    run_dir : path of a run written by :func:`meta.train.train`
    tasks : int or None
        Number of fixed tasks; None = ``cfg.eval_tasks`` (600 in every paper preset).
    freeze : tuple of int
        Blocks (1..4 = conv1..conv4) kept fixed in the inner loop (paper Table 1); the rest adapt.
    head : "maml" or "nil"
        Adapt a head on the support set, or the NIL rule on the body's features.
    inner_steps : int or None
        Test-time inner steps; None = ``cfg.inner_steps_test``.
    checkpoint : int, "last" or None
    split : dataset split of the tasks; None = ``cfg.test_split``.
    seed : seed of the fixed tasks (the same tasks for every run of a dataset/setting).
    device : "cpu" or "cuda".

    Returns
    -------
    dict
        ``{"accuracy": {"mean", "ci95"}, "loss", "tasks", "freeze", "head", "inner_steps",
        "inner_lr", "checkpoint", "iteration", "split", "seed", "algorithm", "dataset", "ways",
        "shots", "query", "seconds", "file"}``; accuracies are fractions, ``ci95 = 1.96 * std /
        sqrt(tasks)`` with the population std over tasks. Also written (atomically) to
        ``RUN/<file>``, see :func:`eval_filename`.
    """
    state = _load_state(run_dir, checkpoint)
    cfg, model, params = _from_state(state)
    tasks = cfg.eval_tasks if tasks is None else tasks
    split = cfg.test_split if split is None else split
    if not isinstance(tasks, int) or tasks < 1:
        raise ValueError(f"tasks: expected a positive int, got {tasks!r}")
    freeze = tuple(sorted({int(b) for b in freeze}))
    freeze_blocks(freeze)                                   # validates the block numbers
    if head not in ("maml", "nil"):
        raise ValueError(f"head: expected 'maml' or 'nil', got {head!r}")
    steps = cfg.inner_steps_test if inner_steps is None else inner_steps
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"inner_steps: expected a non-negative int, got {steps!r}")
    with torch_threads(cfg.threads):
        return _evaluate(run_dir, state, cfg, model, params, tasks=tasks, freeze=freeze, head=head,
                         steps=steps, checkpoint=checkpoint, split=split, seed=seed, device=device)


def _evaluate(run_dir, state, cfg, model, params, *, tasks, freeze, head, steps, checkpoint, split,
              seed, device) -> dict[str, Any]:
    start = time.perf_counter()
    model = model.to(device)
    params, trainable = eval_setup(cfg.algorithm, params, cfg.ways, freeze=freeze,
                                   adapt_norm=cfg.adapt_norm)
    params = {n: p.to(device) for n, p in params.items()}
    dataset = load_dataset(cfg.dataset, split, root=cfg.data_root)
    losses, accs = [], []
    fixed = TaskSampler.fixed(dataset, cfg.ways, cfg.shots, cfg.query, tasks, seed=seed,
                              augment_rotations=cfg.augment_rotations)
    for task in fixed:
        task = Task(*(t.to(device) for t in task))
        logits = predict(model, params, task, head=head, trainable=trainable, steps=steps,
                         lr=cfg.inner_lr, reduction=cfg.inner_loss)
        losses.append(float(F.cross_entropy(logits, task.query_y)))
        accs.append(float((logits.argmax(1) == task.query_y).double().mean()))
    accs = np.asarray(accs)
    name = eval_filename(cfg, tasks=tasks, freeze=freeze, head=head, inner_steps=steps,
                         checkpoint=checkpoint, split=split, seed=seed)
    result = {
        "accuracy": {"mean": float(accs.mean()), "ci95": float(1.96 * accs.std() / np.sqrt(tasks))},
        "loss": float(np.mean(losses)),
        "tasks": tasks,
        "freeze": list(freeze),
        "head": head,
        "inner_steps": steps,
        "inner_lr": cfg.inner_lr,
        "checkpoint": "last" if checkpoint in (None, "last") else int(checkpoint),
        "iteration": int(state["iteration"]),
        "split": split,
        "seed": seed,
        "algorithm": cfg.algorithm,
        "dataset": cfg.dataset,
        "ways": cfg.ways,
        "shots": cfg.shots,
        "query": cfg.query,
        "seconds": time.perf_counter() - start,
        "file": name,
    }
    atomic_write_text(json.dumps(result, indent=2) + "\n", Path(run_dir) / name)
    return result
