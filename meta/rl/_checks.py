"""Input checks shared by the task families of :mod:`meta.rl.envs` and :mod:`meta.rl.cheetah`."""
from __future__ import annotations

import torch

__all__ = ["check_tasks", "check_actions"]


def check_tasks(tasks: torch.Tensor, task_dim: int, env: str) -> None:
    """ValueError unless ``tasks`` is a finite ``(n_tasks, task_dim)`` tensor."""
    if not isinstance(tasks, torch.Tensor) or tasks.ndim != 2 or tasks.shape[1] != task_dim:
        got = tuple(tasks.shape) if isinstance(tasks, torch.Tensor) else type(tasks).__name__
        raise ValueError(f"tasks: expected a (n_tasks, {task_dim}) tensor for {env}, got {got}")
    if not torch.isfinite(tasks).all():
        raise ValueError(f"tasks: expected finite task parameters for {env}, got NaN/Inf")


def check_actions(actions: torch.Tensor, shape: tuple[int, ...], env: str) -> None:
    """ValueError unless ``actions`` has the batch's shape ``(tasks, episodes, action_dim)``."""
    if not isinstance(actions, torch.Tensor) or tuple(actions.shape) != tuple(shape):
        got = tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__
        raise ValueError(f"actions: expected shape {tuple(shape)} (tasks, episodes, action_dim) "
                         f"for {env}, got {got}")
    if not torch.isfinite(actions).all():
        raise ValueError(f"actions: expected finite values for {env}, got NaN/Inf")
