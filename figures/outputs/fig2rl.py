"""An RL Figure 2: the policy's hidden layers before vs after one inner step (MAML and ANIL)."""
from __future__ import annotations

import os
from pathlib import Path

from figures._plot import ALG_COLORS, new_figure, save
from figures.constants import MEASURES
from figures.output import Output
from figures.outputs.table2rl import check, rl_result, rl_training

__all__ = ["OUTPUT"]


def draw(results: dict, details: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Bars per hidden layer of ``details["rl_pre_post"][env][alg]["similarity"]`` for CCA and
    CKA, MAML and ANIL side by side, for the first environment -> ``fig2_rl_pre_post.png``."""
    per_env = details.get("rl_pre_post") or {}
    env = next(iter(per_env), None)
    fig, axes = new_figure(2, width=4.4, height=3.6)
    for ax, measure in zip(axes[0], MEASURES):
        for i, algorithm in enumerate(("maml", "anil")):
            similarity = ((per_env.get(env) or {}).get(algorithm) or {}).get("similarity") or {}
            layers = list(similarity)
            ax.bar([j + (i - 0.5) * 0.38 for j in range(len(layers))],
                   [similarity[k][measure] for k in layers], width=0.38,
                   color=ALG_COLORS[algorithm], label=algorithm)
            ax.set_xticks(range(len(layers)), layers)
        ax.set_ylim(0, 1.15)
        ax.set_xlabel("hidden layer of the policy")
        ax.set_ylabel(f"{measure.upper()}, pre vs post adaptation (0–1)")
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"RL Figure 2 — {env or '?'}: hidden representations over visited states "
                 "before vs after the inner step", fontsize=9)
    return [save(fig, out_dir, "fig2_rl_pre_post")]


OUTPUT = Output(name="fig2rl", order=75, stage="rl", check=check, train=rl_training,
                compute=rl_result, draw=draw)
