"""Trajectory sampling: all episodes of all tasks stepped together, one policy call per step.

>>> env = Navigation2D()
>>> policy = GaussianMLP(2, 2)
>>> tasks = env.sample_tasks(20, g)
>>> ep = rollout(env, policy, per_task(dict(policy.named_parameters()), 20), tasks,
...              episodes=10, horizon=100, generator=g)
>>> ep.obs.shape, ep.rewards.shape
(torch.Size([20, 10, 100, 2]), torch.Size([20, 10, 100]))
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch

from meta.rl.policy import GaussianMLP, gaussian, sample_actions
from meta.rl.returns import check_rewards

__all__ = ["Episodes", "rollout", "episode_returns", "check_policy"]


class Episodes(NamedTuple):
    """A batch of trajectories; ``obs[t, b, h]`` is the observation the action was taken in."""

    obs: torch.Tensor       # (tasks, episodes, horizon, obs_dim)
    actions: torch.Tensor   # (tasks, episodes, horizon, action_dim)
    rewards: torch.Tensor   # (tasks, episodes, horizon), 0 where masked
    mask: torch.Tensor      # (tasks, episodes, horizon), 1 on the steps taken


def check_policy(policy: GaussianMLP, env) -> None:
    """ValueError unless the policy's input/output sizes match the environment's spaces."""
    if policy.obs_dim != env.obs_dim:
        raise ValueError(f"policy: expected {env.obs_dim} inputs for {env.name} observations, "
                         f"got {policy.obs_dim}")
    if policy.action_dim != env.action_dim:
        raise ValueError(f"policy: expected {env.action_dim} outputs for the {env.name} action "
                         f"space, got {policy.action_dim}")


@torch.no_grad()
def rollout(env, policy: GaussianMLP, params: Mapping[str, torch.Tensor], tasks: torch.Tensor, *,
            episodes: int, horizon: int, generator: torch.Generator) -> Episodes:
    """Sample ``episodes`` trajectories of ``horizon`` steps for each task.

    params : {name: (tasks, *shape) tensor}, one policy per task (see ``per_task``)
    tasks : (tasks, task_dim) tensor from ``env.sample_tasks``
    """
    check_policy(policy, env)
    params = {k: v.detach() for k, v in params.items()}
    obs = env.reset(tasks, episodes, generator)                            # (T, B, obs_dim)
    alive = torch.ones(obs.shape[:2], dtype=torch.bool)
    out_obs, out_act, out_rew, out_mask = [], [], [], []
    for _ in range(horizon):
        mean, log_std = gaussian(policy, params, obs.to(_dtype_of(params)))
        actions = sample_actions(mean, log_std, generator)                 # (T, B, action_dim)
        nxt, reward, done = env.step(actions)
        m = alive.to(reward.dtype)
        out_obs.append(obs * m.unsqueeze(-1))
        out_act.append(actions * m.unsqueeze(-1).to(actions.dtype))
        out_rew.append(reward * m)
        out_mask.append(m)
        alive = alive & ~done
        obs = nxt
    ep = Episodes(torch.stack(out_obs, 2), torch.stack(out_act, 2), torch.stack(out_rew, 2),
                  torch.stack(out_mask, 2))
    check_rewards(ep.rewards)
    return ep


def _dtype_of(params: Mapping[str, torch.Tensor]) -> torch.dtype:
    return next(iter(params.values())).dtype


def episode_returns(ep: Episodes) -> torch.Tensor:
    """Undiscounted return (sum of rewards) of each episode: ``(tasks, episodes)``."""
    return (ep.rewards * ep.mask).sum(-1)
