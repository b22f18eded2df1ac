"""MAML-RL and ANIL-RL (Table 2's RL rows): 2-D navigation and HalfCheetah task families,
a Gaussian MLP policy used functionally, one REINFORCE inner step, a TRPO outer step.

>>> from meta.rl import get_rl_preset, train_rl, evaluate_rl
>>> run = train_rl(get_rl_preset("nav2d-tiny").replace(algorithm="anil"), "runs/nav-tiny")
>>> evaluate_rl(run)["post"]            # {'mean': ..., 'ci95': ...}

HalfCheetah needs the ``rl`` extra (``gymnasium[mujoco]``); navigation needs only torch.
"""
from meta.rl.algos import RL_REGISTRY, RLAlgorithm, get_rl_algorithm
from meta.rl.config import ENVIRONMENTS, RL_ALGORITHMS, RL_PRESETS, RLConfig, get_rl_preset
from meta.rl.envs import Navigation2D, make_env
from meta.rl.maml import adapt, advantages, make_objective, meta_step, reinforce_loss
from meta.rl.policy import GaussianMLP, all_params, gaussian, head_only, per_task
from meta.rl.returns import discounted_returns, fit_baseline, gae, linear_baseline, normalize
from meta.rl.sampler import Episodes, episode_returns, rollout
from meta.rl.train import evaluate_rl, is_rl_run, load_params, train_rl
from meta.rl.trpo import conjugate_gradient, trpo_step

__all__ = [
    "RLConfig", "RL_PRESETS", "RL_ALGORITHMS", "ENVIRONMENTS", "get_rl_preset",
    "RLAlgorithm", "RL_REGISTRY", "get_rl_algorithm",
    "Navigation2D", "make_env", "GaussianMLP", "per_task", "gaussian", "all_params", "head_only",
    "Episodes", "rollout", "episode_returns", "discounted_returns", "gae", "normalize",
    "fit_baseline", "linear_baseline", "reinforce_loss", "adapt", "advantages", "make_objective",
    "meta_step", "conjugate_gradient", "trpo_step", "train_rl", "evaluate_rl", "load_params",
    "is_rl_run",
]
