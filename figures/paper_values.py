"""The numbers reported by Raghu et al. (ICLR 2020), as data.

Every value is transcribed from ``PAPER.md`` (the project's summary of the paper). Accuracies
are percentages as printed in the paper (``(mean, spread)``; the spread is a 95% CI or a std
over 3 seeds, as each table states); similarities are in ``[0, 1]``; timings are seconds per
iteration on a TitanXp. The report converts our fractions to percentages before comparing.

>>> from figures.paper_values import TABLE2
>>> TABLE2["maml"]["omniglot-20w1s"]
(93.7, 0.7)
"""
from __future__ import annotations

__all__ = [
    "LAYERS",
    "CONV_LAYERS",
    "FREEZE_KEYS",
    "TABLE1",
    "FIG2",
    "FIG3",
    "TABLE2",
    "TABLE2_RL",
    "RL_ENV",
    "TABLE3",
    "TABLE5_NIL_HEAD",
    "TABLE7_MAML_HEAD",
    "TABLE6",
    "TABLE8",
    "FIG7_R2",
    "SETTING_FOR",
]

LAYERS = ("conv1", "conv2", "conv3", "conv4", "head")
CONV_LAYERS = LAYERS[:4]
FREEZE_KEYS = ("none", "1", "1,2", "1,2,3", "1,2,3,4")

# Table 1 -- MAML on MiniImageNet, blocks frozen at test time: {frozen: {setting: (mean, ci95)}}.
TABLE1 = {
    "none": {"mini-5w1s": (46.9, 0.2), "mini-5w5s": (63.1, 0.4)},
    "1": {"mini-5w1s": (46.5, 0.3), "mini-5w5s": (63.0, 0.6)},
    "1,2": {"mini-5w1s": (46.4, 0.4), "mini-5w5s": (62.6, 0.6)},
    "1,2,3": {"mini-5w1s": (46.3, 0.4), "mini-5w5s": (61.2, 0.5)},
    "1,2,3,4": {"mini-5w1s": (46.3, 0.4), "mini-5w5s": (61.0, 0.6)},
}

# Figure 2 -- qualitative thresholds the paper states (pre vs post adaptation similarity).
FIG2 = {"conv_min": 0.9, "head_max": 0.5}

# Figure 3 / 9 -- MiniImageNet 5w5s accuracy (%) at 10k / 20k / 30k training iterations.
FIG3 = {
    "iterations": (10000, 20000, 30000),
    "none": (61.3, 63.0, 63.1),
    "1,2,3,4": (59.7, 61.3, 61.0),
}

# Table 2 / Table 4 -- accuracy (%), mean +- std over 3 seeds.
TABLE2 = {
    "maml": {
        "omniglot-20w1s": (93.7, 0.7), "omniglot-20w5s": (96.4, 0.1),
        "mini-5w1s": (46.9, 0.2), "mini-5w5s": (63.1, 0.4),
    },
    "anil": {
        "omniglot-20w1s": (96.2, 0.5), "omniglot-20w5s": (98.0, 0.3),
        "mini-5w1s": (46.7, 0.4), "mini-5w5s": (61.5, 0.5),
    },
    "nil": {
        "omniglot-20w1s": (96.7, 0.3), "omniglot-20w5s": (98.0, 0.04),
        "mini-5w1s": (48.0, 0.7), "mini-5w5s": (62.2, 0.5),
    },
}

# Table 2 (RL rows) -- average return after adaptation, mean +- std over 3 seeds.
TABLE2_RL = {
    "halfcheetah-direction": {"maml": (170.4, 21.0), "anil": (363.2, 14.8)},
    "halfcheetah-velocity": {"maml": (-139.0, 18.9), "anil": (-120.9, 6.3)},
    "2d-navigation": {"maml": (-20.3, 3.2), "anil": (-20.1, 2.3)},
}
# the environment of each RL preset
RL_ENV = {"nav2d": "2d-navigation", "nav2d-quick": "2d-navigation", "nav2d-tiny": "2d-navigation",
          "halfcheetah-dir": "halfcheetah-direction", "halfcheetah-vel": "halfcheetah-velocity"}

# Table 3 / Figure 11 -- similarity averaged over the body: {pair: (cca, cka)}.
TABLE3 = {
    "maml-maml": (0.51, 0.83),
    "anil-anil": (0.51, 0.86),
    "anil-maml": (0.50, 0.83),
}

# Table 5 -- MiniImageNet, evaluated with a NIL head: {regime: (5w1s, 5w5s)} in %.
TABLE5_NIL_HEAD = {
    "maml": (48.4, 61.5),
    "anil": (48.0, 62.2),
    "multiclass": (39.7, 54.4),
    "multitask": (26.5, 34.2),
    "random": (32.9, 43.2),
    "nil": (38.3, 43.0),
}

# Table 7 -- the same regimes evaluated with a MAML head (%).
TABLE7_MAML_HEAD = {
    "multiclass": (38.4, 54.6),
    "multitask": (26.5, 32.8),
    "random": (32.1, 43.1),
}

# Table 6 -- seconds per iteration (task batch 1, target set 1, TitanXp).
TABLE6 = {
    "train": {
        "5w1s": {"maml": 0.15, "fomaml": 0.089, "anil": 0.084},
        "5w5s": {"maml": 0.68, "fomaml": 0.40, "anil": 0.37},
    },
    "inference": {
        "5w1s": {"maml": 0.083, "anil": 0.020},
        "5w5s": {"maml": 0.37, "anil": 0.076},
    },
    # speed-ups (MAML time / other time) as the paper prints them or as they follow from it
    "train_speedup_anil_vs_maml": {"5w1s": 1.79, "5w5s": 1.84},
    "train_speedup_fomaml_vs_maml": {"5w1s": 0.15 / 0.089, "5w5s": 0.68 / 0.40},
    "inference_speedup_anil_vs_maml": {"5w1s": 4.15, "5w5s": 4.87},
}

# Table 8 -- similarity to MAML features, mean over conv1..conv3: {regime: (cca, cka)}.
TABLE8 = {
    "maml": (0.51, 0.83),
    "multiclass": (0.48, 0.79),
    "random": (0.40, 0.72),
    "multitask": (0.28, 0.65),
}

# Figures 7 / 8 -- the cross-seed regression is about y = x with R^2 about 1.
FIG7_R2 = {"cca": 1.0, "cka": 1.0}

# Which paper column to set our numbers beside, by (dataset, ways, shots).
SETTING_FOR = {
    ("omniglot", 20, 1): "omniglot-20w1s",
    ("omniglot", 20, 5): "omniglot-20w5s",
    ("miniimagenet", 5, 1): "mini-5w1s",
    ("miniimagenet", 5, 5): "mini-5w5s",
}
