"""Task families, batched: every trajectory of every task is stepped at once.

An environment holds the state of ``(tasks, episodes)`` trajectories::

    env = make_env("nav2d")
    goals = env.sample_tasks(20, generator)          # (20, 2)
    obs = env.reset(goals, 10, generator)            # (20, 10, 2)
    obs, reward, done = env.step(actions)            # actions (20, 10, 2) -> reward, done (20, 10)

``Navigation2D`` is written here in torch. The HalfCheetah families live in
:mod:`meta.rl.cheetah` (MuJoCo, optional dependency).
"""
from __future__ import annotations

import torch

from meta.rl._checks import check_actions, check_tasks

__all__ = ["Navigation2D", "make_env", "check_tasks", "check_actions"]


class Navigation2D:
    """2-D navigation (Finn et al. 2017): a point starts at the origin and moves to a goal.

    Task: a goal drawn uniformly from ``[low, high]^2``. Observation: the position. Action:
    a displacement clipped to ``[-0.1, 0.1]^2``. Reward: minus the distance to the goal after
    the move. An episode ends early once both coordinates are within 0.01 of the goal.
    """

    name = "nav2d"
    obs_dim, action_dim, task_dim = 2, 2, 2

    def __init__(self, *, low: float = -0.5, high: float = 0.5, dtype=torch.float32):
        if not low < high:
            raise ValueError(f"low, high: expected low < high, got {low}, {high}")
        self.low, self.high, self.dtype = float(low), float(high), dtype
        self._state = self._goals = None

    def sample_tasks(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``(n, 2)`` goals, uniform in ``[low, high]^2``."""
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        return (self.low + (self.high - self.low) * u).to(self.dtype)

    def reset(self, tasks: torch.Tensor, episodes: int, generator: torch.Generator) -> torch.Tensor:
        """Start ``episodes`` trajectories per task at the origin: ``(tasks, episodes, 2)``."""
        check_tasks(tasks, self.task_dim, self.name)
        self._goals = tasks.to(self.dtype)[:, None, :]                        # (T, 1, 2)
        self._state = torch.zeros(len(tasks), episodes, 2, dtype=self.dtype)  # (T, B, 2)
        return self._state.clone()

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Move by the clipped action; returns obs ``(T, B, 2)``, reward and done ``(T, B)``."""
        if self._state is None:
            raise ValueError("step: expected reset() to be called first")
        check_actions(actions, tuple(self._state.shape), self.name)
        self._state = self._state + actions.to(self.dtype).clamp(-0.1, 0.1)
        delta = self._state - self._goals
        reward = -torch.linalg.vector_norm(delta, dim=-1)
        done = (delta.abs() < 0.01).all(-1)
        return self._state.clone(), reward, done


def make_env(name: str, *, dtype=torch.float32, threads: int = 1, **kwargs):
    """The task family ``name``: ``nav2d``, ``halfcheetah-dir`` or ``halfcheetah-vel``.

    ``threads``: the HalfCheetah physics runs on that many threads (results do not depend on
    it); 2D-Navigation is torch code and follows ``torch.set_num_threads``.
    """
    if name == "nav2d":
        return Navigation2D(dtype=dtype, **kwargs)
    if name in ("halfcheetah-dir", "halfcheetah-vel"):
        from meta.rl.cheetah import HalfCheetahTasks

        return HalfCheetahTasks(name.split("-")[1], dtype=dtype, threads=threads, **kwargs)
    raise ValueError(f"env: expected one of ['nav2d', 'halfcheetah-dir', 'halfcheetah-vel'], "
                     f"got {name!r}")
