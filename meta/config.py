"""Training configuration: one frozen dataclass, saved as ``config.json`` in every run directory.

>>> cfg = get_preset("omniglot-20w1s").replace(algorithm="anil", seed=1)
>>> cfg.first_order, cfg.meta_batch_size
(False, 16)
"""
from __future__ import annotations

from dataclasses import dataclass

from meta._config_base import ConfigMixin
from meta.algos import get_algorithm
from meta.data import DATASETS, FewShotDataset, load_dataset
from meta.inner import REDUCTIONS
from meta.models import HEAD_INITS

__all__ = ["TrainConfig", "PRESETS", "NETWORKS", "get_preset", "DATASETS"]

# Conv4 variants (meta.models): stride-2 convs and a spatial mean (Omniglot), or 2x2 max-pool
# and flattened features (MiniImageNet)
NETWORKS = ("omniglot", "miniimagenet")


@dataclass(frozen=True)
class TrainConfig(ConfigMixin):
    """Everything that determines a training run (paper hyperparameters in :data:`PRESETS`)."""

    algorithm: str = "maml"          # a name of meta.algos.REGISTRY (maml, anil, nil, ...)
    dataset: str = "glyphs"          # glyphs (embedded) | omniglot | miniimagenet
    data_root: str | None = None     # folder of the dataset files; None = the loader's default
    train_split: str = "train"       # split meta-trained on (omniglot: "train" = MAML's 1100 chars)
    val_split: str = "val"           # split of the fixed validation tasks
    test_split: str = "test"         # default split of `evaluate`
    ways: int = 5                    # classes per task (N-way)
    shots: int = 1                   # support examples per class (K-shot)
    query: int = 5                   # query (target) examples per class
    augment_rotations: bool = False  # Omniglot's augmentation: rotations by 90 deg are new classes
    network: str | None = None       # Conv4 variant: omniglot | miniimagenet; None = the dataset's
    image_size: int | None = None    # side of the images; None = the loader's (28 chars, 84 mini)
    hidden: int | None = None        # conv filters; None = 64 (omniglot net) or 32 (miniimagenet)
    head_init: str | None = None     # normal | glorot | zero; None = the MAML code's (by network)
    inner_steps: int = 5             # inner-loop gradient steps during training
    inner_steps_test: int = 5        # inner-loop steps at validation/test (10 for MiniImageNet)
    inner_lr: float = 0.1            # inner-loop learning rate (0.1 Omniglot, 0.01 MiniImageNet)
    inner_loss: str = "sum"          # inner-loss units: "sum" (MAML code: CE summed / shots) | "mean"
    adapt_norm: bool = False         # adapt the batch-norm offsets in the inner loop (MAML code: no)
    meta_batch_size: int = 16        # tasks per outer step (16 Omniglot, 4 MiniImageNet)
    batch_size: int = 64             # images per step for multiclass pretraining
    meta_lr: float = 1e-3            # Adam learning rate of the outer loop
    grad_clip: float | None = None   # meta-gradient entry bound in the reference's loss units (mini: 10)
    body_from: str | None = None     # run directory whose trained body initialises this model
    iterations: int = 30000          # outer steps
    max_seconds: float | None = None  # stop early once the loop has run this long (wall clock)
    checkpoints: tuple[int, ...] = (10000, 20000, 30000)  # iterations kept as step-XXXXXX.pt
    save_every: int = 500            # rolling checkpoints/last.pt every this many iterations
    log_every: int = 10              # one metrics.jsonl line every this many iterations
    val_every: int = 1000            # validation on the fixed val tasks every this many iterations
    val_tasks: int = 100             # number of fixed validation tasks
    eval_tasks: int = 600            # default number of test tasks for `evaluate`
    seed: int = 0                    # seeds model init, task sampling and evaluation tasks
    threads: int = 1                 # torch intra-op threads per process (set explicitly)
    device: str = "cpu"              # cpu | cuda (torchrun: cuda:LOCAL_RANK)

    def __post_init__(self) -> None:
        algorithm = get_algorithm(self.algorithm)     # ValueError listing the names
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset: expected one of {list(DATASETS)}, got {self.dataset!r}")
        positive = ("ways", "shots", "query", "meta_batch_size", "batch_size", "iterations",
                    "save_every", "log_every", "val_every", "val_tasks", "eval_tasks", "threads")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        for name in ("inner_steps", "inner_steps_test", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name}: expected a non-negative int, got {value!r}")
        if self.ways < 2:
            raise ValueError(f"ways: expected at least 2, got {self.ways}")
        if self.hidden is not None and (not isinstance(self.hidden, int) or self.hidden < 1):
            raise ValueError(f"hidden: expected None or a positive int, got {self.hidden!r}")
        for name in ("inner_lr", "meta_lr"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"{name}: expected a positive number, got {value!r}")
        if self.network not in (None,) + NETWORKS:
            raise ValueError(f"network: expected null or one of {list(NETWORKS)}, got {self.network!r}")
        if self.image_size is not None and (isinstance(self.image_size, bool)
                                            or not isinstance(self.image_size, int)
                                            or self.image_size < 16):
            raise ValueError(f"image_size: expected null or an int >= 16, got {self.image_size!r}")
        if self.head_init not in (None,) + HEAD_INITS:
            raise ValueError(f"head_init: expected null or one of {list(HEAD_INITS)}, "
                             f"got {self.head_init!r}")
        if self.inner_loss not in REDUCTIONS:
            raise ValueError(f"inner_loss: expected one of {list(REDUCTIONS)}, got {self.inner_loss!r}")
        if not isinstance(self.adapt_norm, bool):
            raise ValueError(f"adapt_norm: expected true or false, got {self.adapt_norm!r}")
        if self.grad_clip is not None and (isinstance(self.grad_clip, bool)
                                           or not isinstance(self.grad_clip, (int, float))
                                           or not self.grad_clip > 0):
            raise ValueError(f"grad_clip: expected None or a positive number, got {self.grad_clip!r}")
        if self.body_from is not None and not algorithm.meta_learned:
            raise ValueError(f"body_from: expected a meta-learning algorithm, got {self.algorithm!r}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds: expected None or a positive number, got {self.max_seconds!r}")
        checkpoints = tuple(self.checkpoints)
        if any(not isinstance(c, int) or not 1 <= c <= self.iterations for c in checkpoints):
            raise ValueError(
                f"checkpoints: expected iterations in 1..{self.iterations}, got {list(checkpoints)}"
            )
        object.__setattr__(self, "checkpoints", tuple(sorted(set(checkpoints))))
        if self.device.split(":")[0] not in ("cpu", "cuda"):
            raise ValueError(f"device: expected 'cpu' or 'cuda', got {self.device!r}")

    @property
    def resolved_network(self) -> str:
        """The Conv4 variant that runs: ``network``, or the dataset's own."""
        return self.network or ("miniimagenet" if self.dataset == "miniimagenet" else "omniglot")

    def dataset_options(self) -> dict[str, int]:
        """Keyword arguments of :func:`meta.data.load_dataset` beyond name, split and root."""
        return {} if self.image_size is None else {"image_size": self.image_size}

    def load_split(self, split: str) -> FewShotDataset:
        """``split`` of this run's dataset: its folder (``data_root``) and image size."""
        return load_dataset(self.dataset, split, root=self.data_root, **self.dataset_options())

    @property
    def outer_clip(self) -> float | None:
        """The bound :attr:`grad_clip` puts on each entry of the gradient that training takes.

        ``grad_clip`` is quoted in the MAML reference code's outer-loss units: the query
        cross-entropies summed, divided by the shots and by the tasks, which is
        ``ways * query / shots`` times the mean differentiated here. The same bound holds for
        every algorithm of a run.

        >>> get_preset("miniimagenet-5w1s").outer_clip       # 10 / (5 * 15 / 1)
        0.13333333333333333
        """
        if self.grad_clip is None:
            return None
        return self.grad_clip * self.shots / (self.ways * self.query)

    @property
    def first_order(self) -> bool:
        """Derived from the algorithm: True only for first-order MAML."""
        return get_algorithm(self.algorithm).first_order


# The paper's settings (PAPER.md, App. A/B.1); where the paper is silent, the MAML reference
# code's: inner loss in its units (summed over the examples / shots), batch-norm offsets not
# adapted, Omniglot split 1100/100/423 after a seeded character shuffle, class rotations in
# training and test tasks, 10 test-time steps, MiniImageNet meta-gradients clipped to [-10, 10].
_OMNIGLOT = dict(dataset="omniglot", augment_rotations=True, inner_steps=5, inner_steps_test=10,
                 inner_lr=0.1, meta_batch_size=16, meta_lr=1e-3, iterations=30000,
                 checkpoints=(10000, 20000, 30000))
_MINI = dict(dataset="miniimagenet", ways=5, query=15, inner_steps=5, inner_steps_test=10,
             inner_lr=0.01, meta_batch_size=4, meta_lr=1e-3, grad_clip=10.0, iterations=30000,
             checkpoints=(10000, 20000, 30000))
# The fast 5-way 1-shot setting: the reference code's Omniglot 5-way protocol (one inner step at
# lr 0.4 in its loss units, 10 steps at test), scaled down in budget: meta-batch
# 4 instead of 32, 6000 iterations. One deviation, measured (README): the head starts
# Glorot-uniform (the reference's MiniImageNet head) instead of standard normal, which a short
# run cannot unlearn (1500 iterations: 86% vs 96% test accuracy, head-only adaptation 38% vs 90%).
_QUICK = dict(augment_rotations=True, ways=5, shots=1, query=5, inner_steps=1,
              inner_steps_test=10, inner_lr=0.4, head_init="glorot", meta_batch_size=4,
              meta_lr=1e-3, iterations=6000, max_seconds=290.0, checkpoints=(2000, 4000, 6000),
              save_every=500, val_every=2000, val_tasks=50)

# The MiniImageNet protocol (network and optimisation; PAPER.md's Table 1, Figures 3 and 6 and
# Tables 5, 7 and 8 are MiniImageNet experiments) on Glyphs drawn at 56 px, scaled down in budget:
# 5 query images per class instead of 15, 500 iterations. 56 px gives the max-pool network a
# 3x3 map (288 features) where MiniImageNet's 84 px give 5x5 (800).
_MINI_QUICK = dict(_MINI, dataset="glyphs", network="miniimagenet", image_size=56, query=5,
                   iterations=500, checkpoints=(250, 500), save_every=250, val_every=250,
                   val_tasks=50)

PRESETS: dict[str, TrainConfig] = {
    # Paper settings (PAPER.md, Appendix A/B.1): Omniglot query = shots as in the MAML code.
    "omniglot-20w1s": TrainConfig(**_OMNIGLOT, ways=20, shots=1, query=1),
    "omniglot-20w5s": TrainConfig(**_OMNIGLOT, ways=20, shots=5, query=5),
    "miniimagenet-5w1s": TrainConfig(**_MINI, shots=1),
    "miniimagenet-5w5s": TrainConfig(**_MINI, shots=5),
    "omniglot-5w1s-quick": TrainConfig(dataset="omniglot", **_QUICK),
    "glyphs-quick": TrainConfig(dataset="glyphs", **_QUICK),
    "glyphs-miniimagenet-quick": TrainConfig(**_MINI_QUICK),
    # Seconds, for tests: small network, a handful of iterations.
    "tiny": TrainConfig(dataset="glyphs", ways=3, shots=1, query=2, hidden=8, inner_steps=1,
                        inner_steps_test=2, inner_lr=0.4, meta_batch_size=4, batch_size=16,
                        iterations=6, checkpoints=(3, 6), save_every=2, log_every=1, val_every=3,
                        val_tasks=4, eval_tasks=10),
}


def get_preset(name: str) -> TrainConfig:
    """The preset called ``name`` (see :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {name!r}")
    return PRESETS[name]
