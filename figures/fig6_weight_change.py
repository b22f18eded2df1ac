"""Figure 6: Euclidean weight change per layer through the inner loop, over training."""
from __future__ import annotations

import os
from pathlib import Path

from matplotlib.ticker import FormatStrFormatter

from figures import paper_values as pv
from figures._plot import LAYER_COLORS, new_figure, save

__all__ = ["NAME", "draw"]

NAME = "fig6"


def draw(results: dict, details: dict, out_dir: str | os.PathLike) -> list[Path]:
    """``details["checkpoints"]["weight_change"]`` vs iteration, log scale -> ``fig6_weight_change.png``.

    Falls back to the final ``results["weight_change"]`` as a single point when no checkpoint
    series exists.
    """
    ck = details.get("checkpoints") or {}
    steps = ck.get("steps") or []
    wc = ck.get("weight_change") or {}
    if not steps and results.get("weight_change"):
        steps, wc = [results.get("iterations", 0)], {k: [v] for k, v in results["weight_change"].items()}
    fig, axes = new_figure(1, width=6.8, height=4.2)
    ax = axes[0][0]
    for layer in pv.LAYERS:
        ys = wc.get(layer)
        if ys:
            ax.plot(steps, [max(y, 1e-12) for y in ys], marker="o", color=LAYER_COLORS[layer], label=layer)
    ax.set_yscale("log")
    plain = FormatStrFormatter("%g")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xlabel("training iteration")
    ax.set_ylabel("‖θ_layer − θ_layer adapted‖₂ (log scale)")
    ax.set_title(f"Figure 6 — inner-loop weight change per layer, MAML, {results.get('dataset', '?')}\n"
                 "(paper: tiny for every layer but the head)", fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), title="layer")
    return [save(fig, out_dir, "fig6_weight_change")]
