"""Load a trained run and measure few-shot test accuracy over fixed tasks.

>>> cfg, model, params = load_run("runs/omniglot-maml")
>>> result = evaluate("runs/omniglot-maml", freeze=(1, 2, 3))   # writes eval-freeze1,2,3.json
>>> result["accuracy"]                                            # fractions
{'mean': 0.912, 'ci95': 0.008}

:func:`evaluate` is :func:`prepare_evaluation` (reads the run and checks every option: what a
command line reports as the user's error) followed by :func:`run_evaluation` (the work).
"""
from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from meta._threads import torch_threads
from meta.algos import get_algorithm
from meta.algos._functional import HEADS, predict
from meta.config import TrainConfig
from meta.data import Task, TaskSampler, load_dataset
from meta.inner import Trainable, freeze_blocks
from meta.models import Conv4, build_model
from meta.run import RunDir

__all__ = ["load_run", "evaluate", "prepare_evaluation", "run_evaluation", "EvalRequest",
           "score_tasks"]


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
        An iteration listed in the config's ``checkpoints``, or the latest (the default).

    Returns
    -------
    cfg : TrainConfig
    model : Conv4 (eval mode, on the CPU)
    params : {name: tensor}, detached
    """
    return _from_state(RunDir(run_dir).load(checkpoint))


def _from_state(state: dict[str, Any]) -> tuple[TrainConfig, Conv4, dict[str, torch.Tensor]]:
    cfg = TrainConfig.from_dict(state["config"])
    weights = state["model"]
    model = build_model(cfg, tuple(state["image_shape"]), weights["head.weight"].shape[0])
    model.load_state_dict(weights)
    model.eval()
    return cfg, model, {n: p.detach() for n, p in model.named_parameters()}


def score_tasks(model: Conv4, params: dict[str, torch.Tensor], tasks: Sequence[Task], *, head: str,
                trainable: Trainable, steps: int, lr: float, reduction: str,
                device: torch.device | str) -> tuple[list[float], list[torch.Tensor]]:
    """Query loss and hits of each task after test-time adaptation (:func:`predict`).

    Returns ``(losses, hits)``: one float per task, and one ``(ways*query,)`` bool tensor per
    task (prediction == label).
    """
    losses, hits = [], []
    for task in tasks:
        task = Task(*(t.to(device) for t in task))
        logits = predict(model, params, task, head=head, trainable=trainable, steps=steps, lr=lr,
                         reduction=reduction)
        losses.append(float(F.cross_entropy(logits, task.query_y)))
        hits.append(logits.argmax(1) == task.query_y)
    return losses, hits


class EvalRequest(NamedTuple):
    """A checked evaluation: the run's checkpoint and every option resolved."""

    run: RunDir
    state: dict
    tasks: int
    freeze: tuple[int, ...]
    head: str
    steps: int
    checkpoint: int | str | None
    split: str
    seed: int
    device: str


def prepare_evaluation(
    run_dir: str | os.PathLike,
    *,
    tasks: int | None = None,
    freeze: Sequence[int] = (),
    head: str = "maml",
    inner_steps: int | None = None,
    checkpoint: int | str | None = None,
    split: str | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> EvalRequest:
    """Read the checkpoint and check the options of :func:`evaluate` (``ValueError``)."""
    run = RunDir(run_dir)
    state = run.load(checkpoint)
    cfg = TrainConfig.from_dict(state["config"])
    tasks = cfg.eval_tasks if tasks is None else tasks
    if not isinstance(tasks, int) or tasks < 1:
        raise ValueError(f"tasks: expected a positive int, got {tasks!r}")
    freeze = tuple(sorted({int(b) for b in freeze}))
    freeze_blocks(freeze)                                   # validates the block numbers
    if head not in HEADS:
        raise ValueError(f"head: expected one of {list(HEADS)}, got {head!r}")
    steps = cfg.inner_steps_test if inner_steps is None else inner_steps
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"inner_steps: expected a non-negative int, got {steps!r}")
    split = cfg.test_split if split is None else split
    return EvalRequest(run, state, tasks, freeze, head, steps, checkpoint, split, seed, device)


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
    run_dir : path of a run written by :func:`meta.train`
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
        ``RUN/<file>``, named by :meth:`meta.run.RunDir.eval_file`.
    """
    return run_evaluation(prepare_evaluation(
        run_dir, tasks=tasks, freeze=freeze, head=head, inner_steps=inner_steps,
        checkpoint=checkpoint, split=split, seed=seed, device=device))


# the variables a dataset's default folder is read from: part of the cached dataset's key
_DATA_ENV = ("REPSIM_OMNIGLOT", "REPSIM_MINIIMAGENET")


@functools.lru_cache(maxsize=2)
def _dataset(name: str, split: str, root: str | None, environment: tuple, options: tuple = ()):
    """:func:`load_dataset`, kept for the next evaluation of the same split in this process
    (a pipeline's worker evaluates dozens of runs on one test split); ``environment`` holds
    the values of :data:`_DATA_ENV`, ``options`` the loader's keyword arguments as pairs."""
    return load_dataset(name, split, root=root, **dict(options))


def run_evaluation(request: EvalRequest) -> dict[str, Any]:
    """Evaluate a request from :func:`prepare_evaluation`; see :func:`evaluate`."""
    cfg, model, params = _from_state(request.state)
    with torch_threads(cfg.threads):
        start = time.perf_counter()
        model = model.to(request.device)
        params, trainable = get_algorithm(cfg.algorithm).eval_setup(
            params, cfg.ways, freeze=request.freeze, adapt_norm=cfg.adapt_norm)
        params = {n: p.to(request.device) for n, p in params.items()}
        dataset = _dataset(cfg.dataset, request.split, cfg.data_root,
                           tuple(os.environ.get(name) for name in _DATA_ENV),
                           tuple(sorted(cfg.dataset_options().items())))
        fixed = TaskSampler.fixed(dataset, cfg.ways, cfg.shots, cfg.query, request.tasks,
                                  seed=request.seed, augment_rotations=cfg.augment_rotations)
        losses, hits = score_tasks(model, params, fixed, head=request.head, trainable=trainable,
                                   steps=request.steps, lr=cfg.inner_lr, reduction=cfg.inner_loss,
                                   device=request.device)
        accs = np.asarray([float(h.double().mean()) for h in hits])
        seconds = time.perf_counter() - start
    return _write_result(request, cfg, accs, losses, seconds)


def _write_result(request: EvalRequest, cfg: TrainConfig, accs: np.ndarray, losses: list[float],
                  seconds: float) -> dict[str, Any]:
    path = request.run.eval_file(cfg, tasks=request.tasks, freeze=request.freeze,
                                 head=request.head, inner_steps=request.steps,
                                 checkpoint=request.checkpoint, split=request.split,
                                 seed=request.seed)
    checkpoint = request.checkpoint
    result = {
        "accuracy": {"mean": float(accs.mean()),
                     "ci95": float(1.96 * accs.std() / np.sqrt(request.tasks))},
        "loss": float(np.mean(losses)),
        "tasks": request.tasks,
        "freeze": list(request.freeze),
        "head": request.head,
        "inner_steps": request.steps,
        "inner_lr": cfg.inner_lr,
        "checkpoint": "last" if checkpoint in (None, "last") else int(checkpoint),
        "iteration": int(request.state["iteration"]),
        "split": request.split,
        "seed": request.seed,
        "algorithm": cfg.algorithm,
        "dataset": cfg.dataset,
        "ways": cfg.ways,
        "shots": cfg.shots,
        "query": cfg.query,
        "seconds": seconds,
        "file": path.name,
    }
    request.run.write_eval(result, path)
    return result
