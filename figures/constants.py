"""Names shared by every output: layers, measures, frozen-block settings, training regimes.

Layer names come from :mod:`meta.models` and measures from :mod:`meta.analysis`, so the figures
name exactly what the models and analyses produce.
"""
from __future__ import annotations

from types import MappingProxyType

from meta.analysis import MEASURES
from meta.models import BODY_NAMES, LAYER_NAMES

__all__ = ["RunKey", "LAYERS", "CONV_LAYERS", "MEASURES", "FREEZE_BLOCKS", "FREEZE_KEYS",
           "SERIES_FREEZE_KEYS", "REGIMES", "REGIME_ORDER"]

#: ``(algorithm or "<regime>-head", seed)``: one training run of the pipeline
RunKey = tuple[str, int]
#: every analysed layer: ``conv1..conv4, head``
LAYERS: tuple[str, ...] = tuple(LAYER_NAMES)
#: the body: ``conv1..conv4``
CONV_LAYERS: tuple[str, ...] = tuple(BODY_NAMES)
#: Table 1's settings: key in ``results.json`` -> conv blocks frozen at test time
FREEZE_BLOCKS = MappingProxyType({
    "none": (), "1": (1,), "1,2": (1, 2), "1,2,3": (1, 2, 3), "1,2,3,4": (1, 2, 3, 4)})
FREEZE_KEYS: tuple[str, ...] = tuple(FREEZE_BLOCKS)
#: the two settings the series (over checkpoints, over test-time steps) follow
SERIES_FREEZE_KEYS: tuple[str, ...] = ("none", "1,2,3,4")
#: the training regimes of Sec. 5.2 a preset trains by default
REGIMES: tuple[str, ...] = ("multiclass", "multitask", "random", "nil")
#: the regimes Table 8 ranks by similarity to MAML, in the paper's expected order
REGIME_ORDER: tuple[str, ...] = ("multiclass", "random", "multitask")
