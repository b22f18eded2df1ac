"""Figure 3 / 9: freezing accuracy and pre/post CCA on checkpoints over training."""
from __future__ import annotations

import os
from pathlib import Path

from figures import paper_values as pv
from figures._plot import LAYER_COLORS, new_figure, save

__all__ = ["NAME", "draw"]

NAME = "fig3"

_FREEZE_STYLE = {"none": "-", "1": "--", "1,2": "-.", "1,2,3": ":", "1,2,3,4": "-"}
_FREEZE_COLOR = {"none": "#1f77b4", "1": "#17becf", "1,2": "#2ca02c", "1,2,3": "#ff7f0e",
                 "1,2,3,4": "#d62728"}


def draw(results: dict, details: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Two panels from ``details["checkpoints"]`` -> ``fig3_training.png``.

    Left: test accuracy (%) with blocks frozen at test time vs training iteration. Right: CCA
    similarity pre vs post adaptation per layer vs training iteration.
    """
    ck = details.get("checkpoints") or {}
    steps = ck.get("steps") or []
    fig, axes = new_figure(2, width=4.8, height=3.8)
    ax = axes[0][0]
    for key in pv.FREEZE_KEYS:
        ys = (ck.get("freezing") or {}).get(key)
        if ys:
            ax.plot(steps, [100 * y for y in ys], _FREEZE_STYLE[key], marker="o",
                    color=_FREEZE_COLOR[key], label=f"frozen: {key}")
    ax.set_xlabel("training iteration")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Freezing blocks at test time, over training")
    ax.legend(fontsize=8)
    ax = axes[0][1]
    cca = (ck.get("pre_post") or {}).get("cca") or {}
    for layer in pv.LAYERS:
        if cca.get(layer):
            ax.plot(steps, cca[layer], marker="o", color=LAYER_COLORS[layer], label=layer)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("training iteration")
    ax.set_ylabel("CCA similarity pre vs post (0–1)")
    ax.set_title("Inner-loop representation change, over training")
    ax.legend(fontsize=8)
    fig.suptitle(f"Figure 3 — MAML checkpoints, {results.get('dataset', '?')} "
                 f"(paper 5w5s MiniImageNet: none 61.3/63.0/63.1 vs all-frozen 59.7/61.3/61.0)",
                 fontsize=9)
    return [save(fig, out_dir, "fig3_training")]
