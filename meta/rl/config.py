"""RL run configuration: one frozen dataclass, saved as ``config.json`` in every RL run directory.

>>> cfg = get_rl_preset("halfcheetah-dir").replace(algorithm="anil", seed=1)
>>> cfg.meta_batch_size, cfg.horizon, cfg.first_order
(40, 200, False)
"""
from __future__ import annotations

from dataclasses import dataclass

from meta._config_base import ConfigMixin
from meta.rl.algos import RL_REGISTRY, get_rl_algorithm

__all__ = ["RLConfig", "RL_PRESETS", "RL_ALGORITHMS", "ENVIRONMENTS", "get_rl_preset"]

RL_ALGORITHMS = tuple(RL_REGISTRY)
ENVIRONMENTS = ("nav2d", "halfcheetah-dir", "halfcheetah-vel")
_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class RLConfig(ConfigMixin):
    """Everything that determines an RL meta-training run (paper hyperparameters in RL_PRESETS)."""

    kind: str = "rl"                 # marks an RL run directory (dispatch of `python -m meta`)
    algorithm: str = "maml"          # maml | fomaml (first-order MAML) | anil (inner loop: head only)
    env: str = "nav2d"               # nav2d | halfcheetah-dir | halfcheetah-vel
    horizon: int = 100               # steps per episode (100 navigation, 200 HalfCheetah)
    hidden: tuple[int, ...] = (100, 100)  # policy hidden layers (paper: 2 x 100 units)
    nonlinearity: str = "tanh"       # tanh | relu after each hidden layer
    init_std: float = 1.0            # initial standard deviation of the Gaussian policy
    gamma: float = 0.99              # discount factor
    gae_lambda: float = 1.0          # GAE lambda (the reference's tau)
    fast_batch_size: int = 20        # trajectories per task for the inner step (and after it)
    inner_lr: float = 0.1            # inner-loop REINFORCE step size
    meta_batch_size: int = 40        # tasks per outer TRPO step (paper: 40)
    iterations: int = 500            # outer TRPO steps (the reference's num-batches)
    max_kl: float = 1e-2             # TRPO trust region (mean KL per action dimension)
    cg_iters: int = 10               # conjugate-gradient iterations
    cg_damping: float = 1e-5         # damping added to the KL Hessian-vector product
    ls_max_steps: int = 15           # backtracking line-search steps
    ls_backtrack_ratio: float = 0.8  # step shrink factor per line-search step
    dtype: str = "float32"           # float32 (as the reference) | float64
    save_every: int = 10             # rolling checkpoints/last.pt every this many iterations
    log_every: int = 1               # one metrics.jsonl line every this many iterations
    eval_tasks: int = 400            # fixed test tasks for `evaluate` (the reference: 10 x 40)
    max_seconds: float | None = None  # stop once the loop has run this long (wall clock)
    seed: int = 0                    # seeds policy init, tasks, action noise and resets
    threads: int = 1                 # torch intra-op threads (set explicitly)

    def __post_init__(self) -> None:
        if self.kind != "rl":
            raise ValueError(f"kind: expected 'rl', got {self.kind!r}")
        get_rl_algorithm(self.algorithm)              # ValueError listing the names
        if self.env not in ENVIRONMENTS:
            raise ValueError(f"env: expected one of {list(ENVIRONMENTS)}, got {self.env!r}")
        if self.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {self.nonlinearity!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype: expected one of {list(_DTYPES)}, got {self.dtype!r}")
        hidden = tuple(self.hidden)
        if not hidden or any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in hidden):
            raise ValueError(f"hidden: expected positive ints, got {list(hidden)}")
        object.__setattr__(self, "hidden", hidden)
        for name in ("horizon", "fast_batch_size", "meta_batch_size", "iterations", "cg_iters",
                     "ls_max_steps", "save_every", "log_every", "eval_tasks", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed: expected a non-negative int, got {self.seed!r}")
        for name in ("init_std", "inner_lr", "max_kl"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name}: expected a positive number, got {value!r}")
        for name in ("gamma", "gae_lambda", "ls_backtrack_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise ValueError(f"{name}: expected a number in (0, 1], got {value!r}")
        if isinstance(self.cg_damping, bool) or not self.cg_damping >= 0:
            raise ValueError(f"cg_damping: expected a non-negative number, got {self.cg_damping!r}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds: expected None or a positive number, got {self.max_seconds!r}")

    @property
    def first_order(self) -> bool:
        """True only for first-order MAML."""
        return get_rl_algorithm(self.algorithm).first_order


# The paper's setting (App. C.4) on tristandeleu/pytorch-maml-rl: 2 x 100 tanh policy, one
# REINFORCE step at lr 0.1 on 20 trajectories, meta-batch 40, TRPO (max KL 1e-2, 10 CG
# iterations, damping 1e-5, 15 line-search steps x 0.8), gamma 0.99, GAE lambda 1, 500 iterations.
_PAPER = dict(hidden=(100, 100), nonlinearity="tanh", gamma=0.99, gae_lambda=1.0,
              fast_batch_size=20, inner_lr=0.1, meta_batch_size=40, iterations=500, max_kl=1e-2,
              cg_iters=10, cg_damping=1e-5, ls_max_steps=15, ls_backtrack_ratio=0.8)

RL_PRESETS: dict[str, RLConfig] = {
    "nav2d": RLConfig(env="nav2d", horizon=100, **_PAPER),
    "halfcheetah-dir": RLConfig(env="halfcheetah-dir", horizon=200, **_PAPER),
    "halfcheetah-vel": RLConfig(env="halfcheetah-vel", horizon=200, **_PAPER),
    # The paper's protocol with a smaller budget: 20 tasks per meta-batch (the reference's
    # navigation config), 20 iterations; under 10 minutes on one shared CPU thread (MAML), with a
    # 9.5-minute cap on the training loop as a guard.
    "nav2d-quick": RLConfig(env="nav2d", horizon=100, **{**_PAPER, "meta_batch_size": 20,
                                                          "iterations": 20}, max_seconds=570.0),
    # Seconds: for tests and smoke runs.
    "nav2d-tiny": RLConfig(env="nav2d", horizon=20, **{**_PAPER, "hidden": (16, 16),
                                                        "meta_batch_size": 4, "fast_batch_size": 5,
                                                        "iterations": 3, "cg_iters": 5},
                           save_every=2, eval_tasks=4),
}


def get_rl_preset(name: str) -> RLConfig:
    """The :class:`RLConfig` of a preset name (ValueError listing the valid names)."""
    if name not in RL_PRESETS:
        raise ValueError(f"preset: expected one of {sorted(RL_PRESETS)}, got {name!r}")
    return RL_PRESETS[name]
