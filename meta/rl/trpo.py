"""TRPO (Schulman et al. 2015) on a ``{name: tensor}`` parameter dict.

The step direction solves ``F x = g`` by conjugate gradient with Hessian-vector products of
the KL (``F`` its Hessian at the current parameters, plus damping), is scaled so that the
quadratic KL estimate equals ``max_kl``, and a backtracking line search keeps the first
fraction that lowers the surrogate loss with KL below ``max_kl``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import torch

__all__ = ["conjugate_gradient", "trpo_step", "TRPOInfo", "Objective"]

# objective(params, graph) -> (loss, kl), both 0-dim; graph=True keeps what second derivatives need
Objective = Callable[[Mapping[str, torch.Tensor], bool], "tuple[torch.Tensor, torch.Tensor]"]


class TRPOInfo(NamedTuple):
    loss_before: float
    loss_after: float
    kl: float
    step_fraction: float    # accepted fraction of the full step, 0.0 when none was accepted


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, *,
                       iters: int = 10, residual_tol: float = 1e-10) -> torch.Tensor:
    """Approximate ``A^{-1} b`` for symmetric positive-definite ``A`` given as ``matvec``.

    b : (n,) tensor; returns (n,), detached.
    """
    b = b.detach()
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    for _ in range(iters):
        if float(rr) < residual_tol:
            break
        ap = matvec(p).detach()
        alpha = rr / (p @ ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _unflat(vector: torch.Tensor, like: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, i = {}, 0
    for k, v in like.items():
        out[k] = vector[i:i + v.numel()].view_as(v)
        i += v.numel()
    return out


def trpo_step(objective: Objective, params: Mapping[str, torch.Tensor], *, max_kl: float,
              cg_iters: int = 10, cg_damping: float = 1e-5, ls_max_steps: int = 15,
              ls_backtrack_ratio: float = 0.8) -> tuple[dict[str, torch.Tensor], TRPOInfo]:
    """One TRPO update; returns new leaf parameters (``params`` is not modified) and stats.

    objective : ``objective(params, graph) -> (loss, kl)`` where ``kl`` is the divergence from
        the policy at ``params`` (zero there, its Hessian is the Fisher matrix).
    params : {name: tensor} requiring grad.
    """
    names = list(params)
    leaves = [params[n] for n in names]
    loss, kl = objective(params, True)
    grads = torch.autograd.grad(loss, leaves, retain_graph=True)
    grad_kl = _flat(torch.autograd.grad(kl, leaves, create_graph=True))

    def fisher_vector(v: torch.Tensor) -> torch.Tensor:
        hv = torch.autograd.grad(grad_kl @ v, leaves, retain_graph=True)
        return _flat(hv).detach() + cg_damping * v

    g = _flat(grads).detach()
    direction = conjugate_gradient(fisher_vector, g, iters=cg_iters)
    shs = 0.5 * (direction @ fisher_vector(direction))
    full = direction / torch.sqrt(shs / max_kl)
    old = _flat(leaves).detach()
    loss0 = float(loss.detach())
    fraction = 1.0
    for _ in range(ls_max_steps):
        candidate = {k: v.clone().requires_grad_(True)
                     for k, v in _unflat(old - fraction * full, params).items()}
        new_loss, new_kl = objective(candidate, False)
        new_loss, new_kl = float(new_loss.detach()), float(new_kl.detach())
        if new_loss < loss0 and new_kl < max_kl:
            return candidate, TRPOInfo(loss0, new_loss, new_kl, fraction)
        fraction *= ls_backtrack_ratio
    keep = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    return keep, TRPOInfo(loss0, loss0, 0.0, 0.0)
