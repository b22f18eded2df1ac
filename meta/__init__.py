"""MAML / first-order MAML / ANIL / NIL: few-shot data, the Conv4 model, training, evaluation.

The functions ``train`` and ``evaluate`` live in :mod:`meta.training` and :mod:`meta.evaluation`;
the training regimes are objects in :mod:`meta.algos`; a run directory's files are
:class:`meta.run.RunDir`'s.

>>> from meta import get_preset, train, evaluate
>>> run = train(get_preset("tiny"), "runs/tiny")          # doctest: +SKIP
>>> evaluate(run)["accuracy"]                             # doctest: +SKIP
{'mean': ..., 'ci95': ...}
"""
from meta.algorithms import (
    ALGORITHMS,
    META_ALGORITHMS,
    eval_setup,
    fresh_head,
    meta_loss,
    nil_logits,
    predict,
    task_loss,
)
from meta.config import PRESETS, TrainConfig, get_preset
from meta.data import FewShotDataset, Glyphs, MiniImageNet, Omniglot, Task, TaskSampler, load_dataset
from meta.evaluation import evaluate, load_run
from meta.inner import adapt, all_params, freeze_blocks, head_only
from meta.models import Conv4
from meta.training import train

__all__ = [
    "ALGORITHMS",
    "META_ALGORITHMS",
    "PRESETS",
    "Conv4",
    "FewShotDataset",
    "Glyphs",
    "MiniImageNet",
    "Omniglot",
    "Task",
    "TaskSampler",
    "TrainConfig",
    "adapt",
    "all_params",
    "eval_setup",
    "evaluate",
    "freeze_blocks",
    "fresh_head",
    "get_preset",
    "head_only",
    "load_dataset",
    "load_run",
    "meta_loss",
    "nil_logits",
    "predict",
    "task_loss",
    "train",
]
