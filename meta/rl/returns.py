"""Returns, advantages and the linear feature baseline, batched over ``(tasks, episodes)``.

Shapes: rewards, values and masks are ``(tasks, episodes, horizon)``; the mask is 1 on the
steps an episode really took (it ends early on ``done``) and 0 after.

>>> r = torch.tensor([[[1.0, 1.0, 1.0]]]); m = torch.ones_like(r)
>>> discounted_returns(r, m, gamma=0.5)
tensor([[[1.7500, 1.5000, 1.0000]]])
"""
from __future__ import annotations

import torch

__all__ = ["discounted_returns", "gae", "normalize", "baseline_features", "fit_baseline",
           "linear_baseline", "check_rewards"]


def check_rewards(rewards: torch.Tensor) -> None:
    """ValueError on NaN/Inf rewards (a diverged environment or policy)."""
    if not torch.isfinite(rewards).all():
        bad = int((~torch.isfinite(rewards)).sum())
        raise ValueError(f"rewards: expected finite returns, got {bad} NaN/Inf rewards")


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, *, gamma: float) -> torch.Tensor:
    """``G_t = sum_k gamma^k r_{t+k}`` within each episode: ``(tasks, episodes, horizon)``."""
    check_rewards(rewards)
    rewards = rewards * mask
    out = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = rewards[..., t] + gamma * running
        out[..., t] = running
    return out * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, *, gamma: float,
        lam: float) -> torch.Tensor:
    """Generalized advantage estimation (Schulman et al. 2016), value 0 after the last step.

    ``delta_t = r_t + gamma V_{t+1} - V_t``; ``A_t = delta_t + gamma lam A_{t+1}``.
    """
    check_rewards(rewards)
    values = values * mask
    nxt = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], dim=-1)  # V_{t+1}
    deltas = rewards * mask + gamma * nxt - values
    out = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[..., 0])
    for t in range(deltas.shape[-1] - 1, -1, -1):
        running = deltas[..., t] + gamma * lam * running
        out[..., t] = running
    return out * mask


def normalize(x: torch.Tensor, mask: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """Per task: subtract the masked mean, divide by the masked std (+ eps); 0 where masked."""
    dims = tuple(range(1, x.ndim))
    count = mask.sum(dims, keepdim=True)
    mean = (x * mask).sum(dims, keepdim=True) / count
    centred = (x - mean) * mask
    std = torch.sqrt(centred.square().sum(dims, keepdim=True) / count)
    return centred / (std + eps)


def baseline_features(obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[o, o^2, t, t^2, t^3, 1]`` with ``t = (step + 1) / 100``, zero where masked.

    obs : (tasks, episodes, horizon, obs_dim) -> (tasks, episodes, horizon, 2 * obs_dim + 4)
    """
    m = mask.unsqueeze(-1).to(obs.dtype)
    o = obs * m
    t = torch.cumsum(m, dim=-2) * m / 100.0
    return torch.cat([o, o.square(), t, t.square(), t ** 3, m], dim=-1)


def fit_baseline(obs: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, *,
                 reg: float = 1e-5) -> torch.Tensor:
    """Per-task ridge regression of the returns on :func:`baseline_features`.

    Returns the coefficients ``(tasks, n_features)``. Solved in float64 from the normal
    equations; the ridge grows (x10 per try, 5 tries) if the system is singular.
    """
    feats = baseline_features(obs, mask).flatten(1, 2).double()       # (T, B*H, F)
    y = returns.flatten(1, 2).double().unsqueeze(-1)                  # (T, B*H, 1)
    gram = feats.transpose(1, 2) @ feats                              # (T, F, F)
    rhs = feats.transpose(1, 2) @ y
    eye = torch.eye(gram.shape[-1], dtype=torch.float64)
    for _ in range(5):
        coef, info = torch.linalg.solve_ex(gram + reg * eye, rhs)
        if int(info.abs().max()) == 0 and torch.isfinite(coef).all():
            return coef.squeeze(-1).to(obs.dtype)
        reg *= 10
    raise ValueError(f"baseline: expected a solvable least-squares fit, got a singular system "
                     f"up to ridge {reg / 10:g}")


def linear_baseline(obs: torch.Tensor, mask: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """Baseline values ``(tasks, episodes, horizon)`` from coefficients ``(tasks, n_features)``."""
    feats = baseline_features(obs, mask)
    return torch.einsum("tbhf,tf->tbh", feats, coef.to(feats.dtype))
