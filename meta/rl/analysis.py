"""What the inner step changes in a policy: representations and weights, before vs after.

* :func:`hidden_activations`: the hidden layers' activations, recorded functionally
  (``functional_call`` on :meth:`GaussianMLP.features`), for shared or per-task parameters.
* :func:`pre_post_similarity`: mean CCA and linear CKA (``repsim``) between each hidden layer
  before and after adaptation, over states the pre-adaptation policy visited.
* :func:`weight_change`: Euclidean norm of each layer's parameter change through the inner
  step (weight and bias together), averaged over tasks.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.func import functional_call

import repsim
from meta.rl.policy import GaussianMLP, layer_names, per_task
from meta.rl.sampler import Episodes

__all__ = ["hidden_activations", "visited_states", "pre_post_similarity", "weight_change",
           "analyse_run"]


def hidden_activations(policy: GaussianMLP, params: Mapping[str, torch.Tensor],
                       obs: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"fc1": ..., "fcK": ...}`` hidden activations, detached.

    params : {name: tensor} shared, with obs (n, obs_dim) -> each (n, hidden);
             or {name: (tasks, *shape)} per task, with obs (tasks, n, obs_dim) -> (tasks, n, hidden)
    """
    with torch.no_grad():
        out = _features(policy, params, obs)
    return {name: a for name, a in zip(layer_names(policy), out)}


def _features(policy: GaussianMLP, params, obs):
    # functional_call runs `forward`: a wrapper module whose forward is `features`
    return functional_call(_Features(policy), {f"p.{k}": v for k, v in params.items()}, (obs,))


class _Features(torch.nn.Module):
    def __init__(self, policy: GaussianMLP):
        super().__init__()
        self.p = policy

    def forward(self, obs):
        return self.p.features(obs)


def visited_states(ep: Episodes, *, max_per_task: int, generator: torch.Generator) -> torch.Tensor:
    """Up to ``max_per_task`` distinct-step observations per task: ``(tasks, n, obs_dim)``."""
    tasks = ep.obs.shape[0]
    obs = ep.obs.flatten(1, 2)                                            # (T, B*H, obs_dim)
    keep = ep.mask.flatten(1, 2).bool().all(0)                            # steps every task took
    idx = keep.nonzero().squeeze(1)
    idx = idx[torch.randperm(len(idx), generator=generator)[:max_per_task]]
    return obs[:, idx].reshape(tasks, len(idx), -1)


def pre_post_similarity(policy: GaussianMLP, params: Mapping[str, torch.Tensor],
                        fast: Mapping[str, torch.Tensor], states: torch.Tensor
                        ) -> dict[str, dict[str, float]]:
    """Per hidden layer: mean CCA and linear CKA of activations before vs after adaptation.

    params : meta-parameters {name: tensor}; fast : adapted {name: (tasks, *shape)}
    states : (tasks, n, obs_dim) states of each task, seen by the meta-policy and by that
    task's adapted policy. Each measure is computed per task on (n, hidden) matrices, then
    averaged over tasks.
    """
    tasks = states.shape[0]
    pre = hidden_activations(policy, per_task(params, tasks), states)
    post = hidden_activations(policy, fast, states)
    out = {}
    for name in pre:
        x, y = pre[name].double(), post[name].double()
        out[name] = {"cca": sum(float(repsim.mean_cca(x[t], y[t])) for t in range(tasks)) / tasks,
                     "cka": sum(float(repsim.linear_cka(x[t], y[t])) for t in range(tasks)) / tasks}
    return out


def weight_change(policy: GaussianMLP, params: Mapping[str, torch.Tensor],
                  fast: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """``{layer: mean over tasks of ||theta' - theta||_2}`` for fc1..fcK and head."""
    names = {"head": "head"} | {f"fc{i + 1}": f"hidden.{i}" for i in range(len(policy.hidden))}
    out = {}
    for layer in layer_names(policy):
        prefix = names[layer] + "."
        sq = 0.0
        for k, v in params.items():
            if k.startswith(prefix):
                diff = (fast[k].detach().double() - v.detach().double().unsqueeze(0))
                sq = sq + diff.flatten(1).square().sum(1)
        out[layer] = float(torch.as_tensor(sq).sqrt().mean())
    return out


def analyse_run(run_dir, *, tasks: int = 20, states_per_task: int = 500, checkpoint: str = "best",
                seed: int = 0) -> dict[str, dict]:
    """Pre/post-adaptation similarity and weight change of a trained run on fixed test tasks.

    Returns ``{"similarity": {layer: {"cca", "cka"}}, "weight_change": {layer: norm}}``.
    """
    import warnings

    from meta.rl.envs import make_env
    from meta.rl.maml import adapt, advantages
    from meta.rl.sampler import rollout
    from meta.rl.train import _EVAL_SEED, build_policy, load_params, load_rl_config, trainable_for

    cfg = load_rl_config(run_dir)
    env = make_env(cfg.env, dtype=getattr(torch, cfg.dtype), threads=cfg.threads)
    policy = build_policy(cfg, env)
    params = load_params(run_dir, checkpoint)
    generator = torch.Generator().manual_seed(_EVAL_SEED + seed)
    goals = env.sample_tasks(tasks, generator)
    ep = rollout(env, policy, per_task(params, tasks), goals, episodes=cfg.fast_batch_size,
                 horizon=cfg.horizon, generator=generator)
    adv = advantages(ep, gamma=cfg.gamma, lam=cfg.gae_lambda)
    fast = adapt(policy, params, ep, adv, lr=cfg.inner_lr, trainable=trainable_for(cfg.algorithm),
                 create_graph=False)
    states = visited_states(ep, max_per_task=states_per_task, generator=generator)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*rank")   # low-dimensional states
        similarity = pre_post_similarity(policy, params, fast, states)
    return {"similarity": similarity, "weight_change": weight_change(policy, params, fast)}
