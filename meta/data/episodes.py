"""N-way K-shot tasks drawn from a :class:`FewShotDataset`.

>>> ds = FewShotDataset(torch.zeros(10, 20, 1, 28, 28, dtype=torch.uint8), name="toy", split="x")
>>> task = TaskSampler(ds, ways=5, shots=1, query=15, seed=0).sample()
>>> task.support_x.shape, task.support_y.shape, task.query_x.shape, task.query_y.shape
(torch.Size([5, 1, 28, 28]), torch.Size([5]), torch.Size([75, 1, 28, 28]), torch.Size([75]))
"""
from __future__ import annotations

import logging
import os
from typing import NamedTuple

import torch

from meta.data.base import FewShotDataset

__all__ = ["Task", "TaskSampler", "load_dataset", "check_data_root", "DATASETS"]

logger = logging.getLogger(__name__)

DATASETS = ("glyphs", "omniglot", "miniimagenet")


class Task(NamedTuple):
    """One episode; labels are ``0..ways-1`` in a random class order.

    support_x : (ways*shots, C, H, W) float32 tensor in [0, 1]
    support_y : (ways*shots,) int64 tensor, class-major (``shots`` of label 0, then of 1, ...)
    query_x : (ways*query, C, H, W) float32 tensor in [0, 1]
    query_y : (ways*query,) int64 tensor, class-major
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")


class TaskSampler:
    """Draws tasks from a dataset held as one uint8 tensor.

    Parameters
    ----------
    dataset : FewShotDataset
        ``images`` of shape ``(n_classes, n_per_class, C, H, W)``, uint8.
    ways, shots, query : int
        Classes per task, support and query examples per class (all positive).
    seed : int
        Seeds the sampler's own ``torch.Generator``; global RNG state is never used.
    augment_rotations : bool
        Omniglot's augmentation on the fly: each class rotated by 0/90/180/270 degrees is its
        own class (``4 * n_classes`` classes), as :meth:`FewShotDataset.with_rotations`.

    Raises
    ------
    ValueError
        ``ways`` above the number of classes, ``shots + query`` above ``n_per_class``, or a
        non-positive count, with the numbers.
    """

    def __init__(
        self,
        dataset: FewShotDataset,
        ways: int,
        shots: int,
        query: int,
        *,
        seed: int = 0,
        augment_rotations: bool = False,
    ) -> None:
        if not isinstance(dataset, FewShotDataset):
            raise ValueError(f"dataset: expected a FewShotDataset, got {type(dataset).__name__}")
        _check_positive(ways=ways, shots=shots, query=query)
        n_classes = len(dataset) * (4 if augment_rotations else 1)
        if ways > n_classes:
            raise ValueError(
                f"ways: expected at most {n_classes} (classes in {dataset.name}/{dataset.split}"
                f"{', with rotations' if augment_rotations else ''}), got {ways}"
            )
        if shots + query > dataset.n_per_class:
            raise ValueError(
                f"shots + query: expected at most {dataset.n_per_class} (examples per class in "
                f"{dataset.name}/{dataset.split}), got {shots} + {query} = {shots + query}"
            )
        self.dataset = dataset
        self.ways, self.shots, self.query = ways, shots, query
        self.seed = seed
        self.augment_rotations = augment_rotations
        self.generator = torch.Generator().manual_seed(int(seed))
        self._images = dataset.images                               # (n, per, C, H, W) uint8
        self._n_classes = n_classes

    def sample(self) -> Task:
        """One task (advances the sampler's generator); the same as ``batch(1)[0]``."""
        return self.batch(1)[0]

    def batch(self, k: int) -> list[Task]:
        """``k`` tasks (a meta-batch), gathered from the uint8 tensor in one indexing step."""
        _check_positive(k=k)
        g, ways, shots, n = self.generator, self.ways, self.shots, self.shots + self.query
        n_base, per = self._images.shape[:2]
        classes = torch.stack([torch.randperm(self._n_classes, generator=g)[:ways]
                               for _ in range(k)])                          # (k, ways)
        picks = torch.rand(k, ways, per, generator=g).argsort(dim=2)[..., :n]  # (k, ways, n)
        x = self._images[(classes % n_base)[..., None], picks]     # (k, ways, n, C, H, W) uint8
        if self.augment_rotations:
            turns = classes // n_base
            for t in turns.unique().tolist():
                if t:
                    sel = turns == t
                    x[sel] = torch.rot90(x[sel], k=t, dims=(-2, -1))
        x = x.to(torch.float32).div_(255.0)
        shape = x.shape[3:]
        support_y = torch.arange(ways).repeat_interleave(shots)
        query_y = torch.arange(ways).repeat_interleave(self.query)
        return [
            Task(x[i, :, :shots].reshape(ways * shots, *shape), support_y.clone(),
                 x[i, :, shots:].reshape(ways * self.query, *shape), query_y.clone())
            for i in range(k)
        ]

    @classmethod
    def fixed(
        cls,
        dataset: FewShotDataset,
        ways: int,
        shots: int,
        query: int,
        n_tasks: int,
        *,
        seed: int,
        augment_rotations: bool = False,
    ) -> list[Task]:
        """``n_tasks`` evaluation tasks, identical on every call with the same arguments."""
        _check_positive(n_tasks=n_tasks)
        sampler = cls(dataset, ways, shots, query, seed=seed, augment_rotations=augment_rotations)
        return sampler.batch(n_tasks)


def check_data_root(name: str, root: str | os.PathLike | None = None) -> None:
    """``ValueError`` unless the data of ``name`` can be found from ``root`` (without loading
    it): a quick check of what the user gave, before any work."""
    if name == "omniglot":
        from meta.data.omniglot import OFFICIAL_SPLITS, _has_split, resolve_omniglot_root

        found = resolve_omniglot_root(root)
        if not any(_has_split(found, split) for split in OFFICIAL_SPLITS):
            raise ValueError(f"data_root: expected Omniglot (images_background/ or "
                             f"images_background.npz) in {found}, got none")
    elif name == "miniimagenet":
        root = root if root is not None else os.environ.get("REPSIM_MINIIMAGENET")
        if root is None or not os.path.isdir(root):
            raise ValueError(f"data_root: expected a MiniImageNet folder (root=... or "
                             f"$REPSIM_MINIIMAGENET), got {root!r}")


def load_dataset(
    name: str, split: str, *, root: str | os.PathLike | None = None, **kw
) -> FewShotDataset:
    """A dataset by name.

    Parameters
    ----------
    name : {"glyphs", "omniglot", "miniimagenet"}
    split : str
        ``"train"``, ``"val"``, ``"test"`` for all three; also ``"background"`` /
        ``"evaluation"`` for glyphs and omniglot.
    root : path, optional
        Data folder (omniglot: default as :func:`~meta.data.omniglot.resolve_omniglot_root`;
        miniimagenet: required, or ``$REPSIM_MINIIMAGENET``). Glyphs are rendered, so ``root``
        is not used for them.
    **kw
        Passed to the loader (``seed``, ``cache_dir``, ``image_size``, ...).
    """
    if name == "glyphs":
        from meta.data.glyphs import Glyphs
        if root is not None:
            logger.debug("load_dataset: glyphs are rendered; ignoring root=%s", root)
        return Glyphs(split, **kw)
    if name == "omniglot":
        from meta.data.omniglot import Omniglot
        return Omniglot(root, split, **kw)
    if name == "miniimagenet":
        from meta.data.miniimagenet import MiniImageNet
        root = root if root is not None else os.environ.get("REPSIM_MINIIMAGENET")
        if root is None:
            raise ValueError("miniimagenet: expected root=... or $REPSIM_MINIIMAGENET, got neither")
        return MiniImageNet(root, split, **kw)
    raise ValueError(f"name: expected one of {DATASETS}, got {name!r}")
