"""MAML-RL / ANIL-RL: one REINFORCE inner step per task, a TRPO outer step on the meta-parameters.

All tasks are processed at once: the meta-parameters are expanded to ``(tasks, *shape)``
(:func:`~meta.rl.policy.per_task`), so one batched gradient gives every task's inner step.
``trainable`` decides what adapts (all parameters for MAML, the head for ANIL); parameters
that do not adapt stay views of the meta-parameters, bit-identical.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch

from meta.rl.policy import GaussianMLP, Trainable, gaussian, kl_normal, log_prob, per_task
from meta.rl.returns import discounted_returns, fit_baseline, gae, linear_baseline, normalize
from meta.rl.sampler import Episodes, rollout
from meta.rl.trpo import TRPOInfo, trpo_step

__all__ = ["advantages", "reinforce_loss", "adapt", "make_objective", "meta_step", "StepStats"]


def advantages(ep: Episodes, *, gamma: float, lam: float) -> torch.Tensor:
    """Normalised GAE advantages with a linear baseline fitted to these episodes, per task.

    Returns (tasks, episodes, horizon), detached.
    """
    returns = discounted_returns(ep.rewards, ep.mask, gamma=gamma)
    coef = fit_baseline(ep.obs, returns, ep.mask)
    values = linear_baseline(ep.obs, ep.mask, coef)
    return normalize(gae(ep.rewards, values, ep.mask, gamma=gamma, lam=lam), ep.mask).detach()


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # mean over time within each episode, then over episodes: (tasks,)
    return ((x * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean(-1)


def reinforce_loss(policy: GaussianMLP, params: Mapping[str, torch.Tensor], ep: Episodes,
                   adv: torch.Tensor) -> torch.Tensor:
    """Policy-gradient loss ``-E[log pi(a|s) A]`` of each task: ``(tasks,)``."""
    mean, log_std = gaussian(policy, params, ep.obs)
    return -_masked_mean(log_prob(mean, log_std, ep.actions) * adv, ep.mask)


def adapt(policy: GaussianMLP, params: Mapping[str, torch.Tensor], ep: Episodes,
          adv: torch.Tensor, *, lr: float, trainable: Trainable,
          first_order: bool = False, create_graph: bool = True) -> dict[str, torch.Tensor]:
    """One inner REINFORCE step per task; returns ``{name: (tasks, *shape)}``.

    params : {name: tensor} meta-parameters (not modified)
    ep, adv : the tasks' pre-adaptation episodes and their advantages
    first_order : drop the second-order terms (gradients are treated as constants)
    create_graph : False when only the values of the adapted parameters are needed
    """
    tasks = ep.obs.shape[0]
    expanded = per_task(params, tasks)
    names = [n for n in expanded if trainable(n)]
    if not names:
        raise ValueError("trainable: expected at least one adapted parameter, got none")
    for n in names:                       # evaluation: meta-parameters that do not require grad
        if not expanded[n].requires_grad:
            expanded[n] = expanded[n].detach().requires_grad_(True)
    with torch.enable_grad():
        loss = reinforce_loss(policy, expanded, ep, adv).sum()
        grads = torch.autograd.grad(loss, [expanded[n] for n in names],
                                    create_graph=create_graph and not first_order)
    return {**expanded, **{n: expanded[n] - lr * g for n, g in zip(names, grads)}}


def make_objective(policy: GaussianMLP, train: Episodes, train_adv: torch.Tensor,
                   valid: Episodes, valid_adv: torch.Tensor, old: tuple[torch.Tensor, torch.Tensor],
                   *, lr: float, trainable: Trainable, first_order: bool):
    """The TRPO objective of the meta-parameters: adapt on ``train``, score on ``valid``.

    ``old`` = (mean, log_std) of the post-adaptation policy that sampled ``valid`` (detached).
    Returns ``objective(params, graph) -> (surrogate loss, mean KL(new || old))``.
    """
    old_logp = log_prob(*old, valid.actions)
    kl_mask = valid.mask.unsqueeze(-1)

    def objective(params, graph):
        fast = adapt(policy, params, train, train_adv, lr=lr, trainable=trainable,
                     first_order=first_order, create_graph=graph)
        mean, log_std = gaussian(policy, fast, valid.obs)
        ratio = torch.exp(log_prob(mean, log_std, valid.actions) - old_logp)
        loss = -_masked_mean(ratio * valid_adv, valid.mask).mean()
        kl = kl_normal(mean, log_std, *old)
        kl = ((kl * kl_mask).sum(-2) / kl_mask.sum(-2).clamp(min=1)).mean()
        return loss, kl

    return objective


class StepStats(NamedTuple):
    return_pre: float       # mean undiscounted return of the pre-adaptation episodes
    return_post: float      # same, after the inner step
    trpo: TRPOInfo


def meta_step(env, policy: GaussianMLP, params: Mapping[str, torch.Tensor], *, tasks: int,
              episodes: int, horizon: int, generator: torch.Generator, gamma: float, lam: float,
              lr: float, trainable: Trainable, first_order: bool, max_kl: float, cg_iters: int,
              cg_damping: float, ls_max_steps: int, ls_backtrack_ratio: float
              ) -> tuple[dict[str, torch.Tensor], StepStats]:
    """Sample a meta-batch, adapt, sample again, take a TRPO step: new parameters and stats."""
    goals = env.sample_tasks(tasks, generator)
    train = rollout(env, policy, per_task(params, tasks), goals, episodes=episodes,
                    horizon=horizon, generator=generator)
    train_adv = advantages(train, gamma=gamma, lam=lam)
    fast = adapt(policy, params, train, train_adv, lr=lr, trainable=trainable, create_graph=False)
    fast = {k: v.detach() for k, v in fast.items()}
    valid = rollout(env, policy, fast, goals, episodes=episodes, horizon=horizon,
                    generator=generator)
    valid_adv = advantages(valid, gamma=gamma, lam=lam)
    with torch.no_grad():
        old = gaussian(policy, fast, valid.obs)
    objective = make_objective(policy, train, train_adv, valid, valid_adv, old, lr=lr,
                               trainable=trainable, first_order=first_order)
    new, info = trpo_step(objective, params, max_kl=max_kl, cg_iters=cg_iters,
                          cg_damping=cg_damping, ls_max_steps=ls_max_steps,
                          ls_backtrack_ratio=ls_backtrack_ratio)
    pre = float((train.rewards * train.mask).sum(-1).mean())
    post = float((valid.rewards * valid.mask).sum(-1).mean())
    return new, StepStats(pre, post, info)
