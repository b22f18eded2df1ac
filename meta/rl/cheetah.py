"""HalfCheetah-Direction and HalfCheetah-Velocity on MuJoCo, many trajectories at once.

One ``mujoco.MjModel`` (gymnasium's ``half_cheetah.xml``, frame skip 5, dt 0.05 s) and the
physics state of every ``(task, episode)`` trajectory as rows of one array. A step is one
``mujoco.rollout.rollout`` call over all rows (``backend="rollout"``, the default: the physics
loop runs in C, over ``threads`` threads), or a Python loop of ``mujoco.mj_step`` over ``MjData`` objects
(``backend="loop"``). Observations and rewards are computed vectorised in numpy.

Tasks and rewards follow the reference MAML-RL environments:

* ``dir``: a direction ``d`` in {-1, +1}; reward ``d * v_x - 0.05 * |a|^2``
* ``vel``: a goal velocity ``g ~ U[0, 2]``; reward ``-|v_x - g| - 0.05 * |a|^2``

with ``v_x`` the torso's forward velocity over the step. Observation (20): ``qpos[1:]``,
``qvel``, and the torso position ``(x, 0, 0.7 + z)``. Resets add ``U(-0.1, 0.1)`` to the joint
positions and ``0.1 * N(0, 1)`` to the velocities.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from meta.rl._checks import check_actions, check_tasks

__all__ = ["HalfCheetahTasks", "model_path"]

FRAME_SKIP = 5
_TORSO_HEIGHT = 0.7


def model_path() -> str:
    """Path of gymnasium's ``half_cheetah.xml``."""
    try:
        import gymnasium
    except ImportError as err:  # pragma: no cover - depends on the optional extra
        raise ValueError("env: HalfCheetah needs the 'rl' extra: pip install 'gymnasium[mujoco]'") from err
    return os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets",
                        "half_cheetah.xml")


class HalfCheetahTasks:
    """Batched HalfCheetah task family, ``kind`` ``"dir"`` or ``"vel"``."""

    obs_dim, action_dim, task_dim = 20, 6, 1

    def __init__(self, kind: str, *, backend: str = "rollout", dtype=torch.float32,
                 low: float = 0.0, high: float = 2.0, threads: int = 1):
        if kind not in ("dir", "vel"):
            raise ValueError(f"kind: expected 'dir' or 'vel', got {kind!r}")
        if backend not in ("rollout", "loop"):
            raise ValueError(f"backend: expected 'rollout' or 'loop', got {backend!r}")
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads: expected a positive int, got {threads!r}")
        import mujoco
        import mujoco.rollout

        self._mujoco = mujoco
        self.kind, self.backend, self.dtype, self.threads = kind, backend, dtype, threads
        self.name = f"halfcheetah-{kind}"
        self.low, self.high = float(low), float(high)
        self.model = mujoco.MjModel.from_xml_path(model_path())
        self.dt = self.model.opt.timestep * FRAME_SKIP
        self._spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        self._nq, self._nv = self.model.nq, self.model.nv
        self._data: list = []
        self._state = self._tasks = None

    # -- tasks --------------------------------------------------------------------------
    def sample_tasks(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``(n, 1)``: directions in {-1, +1} (dir) or velocities uniform in [low, high] (vel)."""
        if self.kind == "dir":
            bits = torch.randint(0, 2, (n, 1), generator=generator)
            return (2 * bits - 1).to(self.dtype)
        u = torch.rand(n, 1, generator=generator, dtype=torch.float64)
        return (self.low + (self.high - self.low) * u).to(self.dtype)

    # -- dynamics -----------------------------------------------------------------------
    def reset(self, tasks: torch.Tensor, episodes: int, generator: torch.Generator) -> torch.Tensor:
        """Noisy initial states for ``episodes`` trajectories per task: obs ``(T, B, 20)``."""
        check_tasks(tasks, self.task_dim, self.name)
        if self.kind == "dir" and not bool((tasks.abs() == 1).all()):
            raise ValueError(f"tasks: expected directions -1 or +1 for {self.name}, "
                             f"got {tasks.flatten().tolist()[:4]}...")
        self._tasks = tasks.double().numpy()[:, None, 0]                       # (T, 1)
        n = len(tasks) * episodes
        self._shape = (len(tasks), episodes)
        qpos = torch.rand(n, self._nq, generator=generator, dtype=torch.float64) * 0.2 - 0.1
        qvel = 0.1 * torch.randn(n, self._nv, generator=generator, dtype=torch.float64)
        self._state = np.zeros((n, 1 + self._nq + self._nv))                   # time, qpos, qvel
        self._state[:, 1:1 + self._nq] = self.model.qpos0 + qpos.numpy()
        self._state[:, 1 + self._nq:] = qvel.numpy()
        if self.backend == "loop":
            mj = self._mujoco
            while len(self._data) < n:
                self._data.append(mj.MjData(self.model))
            for d, s in zip(self._data, self._state):
                mj.mj_resetData(self.model, d)
                mj.mj_setState(self.model, d, s, self._spec)
        return self._obs()

    def _obs(self) -> torch.Tensor:
        qpos = self._state[:, 1:1 + self._nq]
        qvel = self._state[:, 1 + self._nq:]
        torso = np.stack([qpos[:, 0], np.zeros(len(qpos)), _TORSO_HEIGHT + qpos[:, 1]], axis=1)
        obs = np.concatenate([qpos[:, 1:], qvel, torso], axis=1)
        return torch.from_numpy(obs).to(self.dtype).reshape(*self._shape, self.obs_dim)

    def _physics(self, ctrl: np.ndarray) -> None:
        mj = self._mujoco
        if self.backend == "rollout":
            controls = np.repeat(ctrl[:, None, :], FRAME_SKIP, axis=1)        # (N, skip, nu)
            while len(self._data) < self.threads:
                self._data.append(mj.MjData(self.model))
            # one MjData per thread: the rows are split over a pool of ``threads`` threads;
            # each row's physics is independent of the split, so results do not depend on it
            data = self._data[0] if self.threads == 1 else self._data[:self.threads]
            states, _ = mj.rollout.rollout(self.model, data, self._state, controls,
                                           nstep=FRAME_SKIP, persistent_pool=self.threads > 1)
            self._state = np.ascontiguousarray(states[:, -1])
            return
        for d, c, row in zip(self._data, ctrl, self._state):
            d.ctrl[:] = c
            mj.mj_step(self.model, d, FRAME_SKIP)
            row[1:1 + self._nq] = d.qpos
            row[1 + self._nq:] = d.qvel

    def step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Apply ``actions`` ``(T, B, 6)`` for 5 physics steps: obs, reward, done ``(T, B)``."""
        if self._state is None:
            raise ValueError("step: expected reset() to be called first")
        check_actions(actions, (*self._shape, self.action_dim), self.name)
        a = actions.detach().double().reshape(-1, self.action_dim).numpy()
        x_before = self._state[:, 1].copy()
        self._physics(a)                       # MuJoCo clamps ctrl to [-1, 1]; the cost does not
        velocity = ((self._state[:, 1] - x_before) / self.dt).reshape(self._shape)
        ctrl_cost = 0.05 * np.square(a).sum(1).reshape(self._shape)
        if self.kind == "dir":
            reward = self._tasks * velocity - ctrl_cost
        else:
            reward = -np.abs(velocity - self._tasks) - ctrl_cost
        reward = torch.from_numpy(reward).to(self.dtype)
        return self._obs(), reward, torch.zeros(self._shape, dtype=torch.bool)
