"""What a training regime is, as one object: the base class every algorithm module subclasses.

The training loop (:mod:`meta.training`), the evaluation (:mod:`meta.evaluation`) and the
config's validation ask an :class:`Algorithm` instead of comparing names:

>>> algorithm = get_algorithm("anil")
>>> algorithm.outer_parameter_names(model)       # every parameter: the body is meta-learned
>>> algorithm.inner_trainable()("conv1.0.weight") # only the head adapts
False
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from meta.algos._functional import fresh_head
from meta.data import FewShotDataset, Task, TaskSampler
from meta.inner import Trainable, freeze_blocks, head_only, without_norm

__all__ = ["Algorithm", "TrainingData"]


class TrainingData(NamedTuple):
    """Where one training step draws its data from (built once per run by the training loop).

    train_set : the training classes (with rotations as extra classes when the algorithm asks)
    sampler : meta-batches of tasks (its generator is saved in every checkpoint)
    batches : generator of the image batches of non-episodic algorithms (also saved)
    device : where the step runs
    rank, world_size : this process's share of the step (``torchrun``)
    """

    train_set: FewShotDataset
    sampler: TaskSampler
    batches: torch.Generator
    device: torch.device
    rank: int = 0
    world_size: int = 1


class Algorithm:
    """One training regime of the paper (Sec. 5.2); subclasses set the class attributes and
    override :meth:`task_loss` (episodic regimes) or :meth:`accumulate` (the others).

    Class attributes
    ----------------
    name : registry key, the ``algorithm`` field of a TrainConfig
    trainable : what adapts in the inner loop (before removing the batch-norm offsets)
    first_order : True when the inner gradients are detached (first-order MAML)
    meta_learned : trains through an inner loop (listed in ``META_ALGORITHMS``); such runs may
        start from another run's body (``body_from``)
    test_head : default test-time head, ``"maml"`` (adapt a linear head) or ``"nil"``
    new_test_head : evaluation starts from a zero head of ``ways`` outputs (the trained head,
        if any, does not fit the test classes)
    rotations_as_classes : with ``augment_rotations`` the rotated characters become extra
        classes of the training set instead of rotating whole tasks on the fly
    """

    name: ClassVar[str] = ""
    trainable: ClassVar[Trainable] = staticmethod(head_only)  # type: ignore[assignment]
    first_order: ClassVar[bool] = False
    meta_learned: ClassVar[bool] = False
    test_head: ClassVar[str] = "maml"
    new_test_head: ClassVar[bool] = False
    rotations_as_classes: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # ------------------------------------------------------------------ building a run
    def outer_parameter_names(self, model: nn.Module) -> list[str]:
        """Parameters the outer loop trains (default: all of them)."""
        return [n for n, _ in model.named_parameters()]

    def head_width(self, cfg: Any, train_set: FewShotDataset) -> int:
        """Outputs of the trained head (default: ``cfg.ways``)."""
        return cfg.ways

    def training_set(self, dataset: FewShotDataset, cfg: Any) -> FewShotDataset:
        """The training classes: ``dataset``, plus its rotations as classes when asked."""
        if cfg.augment_rotations and self.rotations_as_classes:
            return dataset.with_rotations()
        return dataset

    def rotates_tasks(self, cfg: Any) -> bool:
        """Whether training tasks are rotated on the fly (Omniglot's augmentation)."""
        return bool(cfg.augment_rotations) and not self.rotations_as_classes

    # ------------------------------------------------------------------ the inner loop
    def inner_trainable(self, *, adapt_norm: bool = False, freeze: tuple[int, ...] = ()) -> Trainable:
        """What adapts in the inner loop: :attr:`trainable`, or everything but the ``freeze``
        blocks (1..4) when given; the batch-norm offsets only with ``adapt_norm``."""
        trainable = freeze_blocks(freeze) if freeze else type(self).trainable
        return trainable if adapt_norm else without_norm(trainable)

    # ------------------------------------------------------------------ training
    def task_loss(self, model: nn.Module, params: Mapping[str, torch.Tensor], task: Task, *,
                  steps: int, lr: float, ways: int, reduction: str = "sum",
                  adapt_norm: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The objective of one task: ``(loss with graph, float64 query accuracy)``, both 0-dim.

        ``steps``, ``lr`` and ``reduction`` set the inner loop, ``adapt_norm`` whether the
        batch-norm offsets adapt. Episodic algorithms override this.
        """
        raise ValueError(f"algorithm: {self.name!r} does not train on tasks (no per-task loss)")

    def accumulate(self, model: nn.Module, params: Mapping[str, torch.Tensor], data: TrainingData,
                   cfg: Any) -> torch.Tensor:
        """One outer step's gradients: draw this rank's share of the meta-batch, call
        ``backward`` on each task's loss divided by ``cfg.meta_batch_size``, and return the
        summed ``(loss, accuracy)`` as a float64 tensor of shape ``(2,)``.

        Every rank draws the same meta-batch and takes tasks ``rank::world_size``.
        """
        stats = torch.zeros(2, dtype=torch.float64)                   # summed loss, accuracy
        tasks = data.sampler.batch(cfg.meta_batch_size)[data.rank::data.world_size]
        for task in tasks:
            task = Task(*(t.to(data.device) for t in task))
            loss, acc = self.task_loss(model, params, task, steps=cfg.inner_steps, lr=cfg.inner_lr,
                                       ways=cfg.ways, reduction=cfg.inner_loss,
                                       adapt_norm=cfg.adapt_norm)
            (loss / cfg.meta_batch_size).backward()
            stats += torch.stack([loss.detach().cpu().double(), acc.cpu()]) / cfg.meta_batch_size
        return stats

    @property
    def episodic(self) -> bool:
        """True when the algorithm trains on tasks (it overrides :meth:`task_loss`)."""
        return type(self).task_loss is not Algorithm.task_loss

    # ------------------------------------------------------------------ evaluation
    def eval_setup(self, params: Mapping[str, torch.Tensor], ways: int, *,
                   freeze: tuple[int, ...] = (), adapt_norm: bool = False
                   ) -> tuple[dict[str, torch.Tensor], Trainable]:
        """Parameters and adaptable set for testing a model trained with this algorithm.

        A zero head of ``ways`` outputs replaces the trained one when :attr:`new_test_head` or
        when its width differs; what adapts is :meth:`inner_trainable`.
        """
        params = dict(params)
        if self.new_test_head or params["head.weight"].shape[0] != ways:
            params = fresh_head(params, ways)
        return params, self.inner_trainable(adapt_norm=adapt_norm, freeze=freeze)
