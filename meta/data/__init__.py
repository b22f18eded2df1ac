"""Few-shot data: datasets as uint8 tensors, task sampling, and the three loaders.

>>> from meta.data import Glyphs, TaskSampler
>>> tasks = TaskSampler(Glyphs("background"), ways=5, shots=1, query=15, seed=0).batch(32)  # doctest: +SKIP
"""
from meta.data.base import FewShotDataset
from meta.data.episodes import DATASETS, Task, TaskSampler, load_dataset
from meta.data.glyphs import Glyphs
from meta.data.miniimagenet import MiniImageNet
from meta.data.omniglot import Omniglot

__all__ = [
    "DATASETS",
    "FewShotDataset",
    "Glyphs",
    "MiniImageNet",
    "Omniglot",
    "Task",
    "TaskSampler",
    "load_dataset",
]
