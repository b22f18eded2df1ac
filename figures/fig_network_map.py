"""Network map: every trained run's penultimate representation placed on one 2-D map.

Not a figure of the paper: it puts the MAML, ANIL and first-order MAML seeds and the training
regimes of Sec. 5.2 side by side, from the shape distance (Williams et al. 2021) between their
features on the same test images, embedded with metric MDS.
"""
from __future__ import annotations

import os
from pathlib import Path

from figures._plot import ALG_COLORS, new_figure, save

__all__ = ["NAME", "draw"]

NAME = "map"

_COLORS = {**ALG_COLORS, "multiclass": "#ff7f0e", "multitask": "#8c564b", "random": "#7f7f7f"}


def draw(results: dict, details: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Scatter of ``details["network_map"]`` (``runs``, ``xy``, ``distances``) ->
    ``fig_network_map.png``; one colour per algorithm, each point labelled with its run."""
    m = details.get("network_map") or {}
    fig, axes = new_figure(1, width=5.6, height=4.6)
    ax = axes[0][0]
    seen = set()
    for run, (x, y) in zip(m.get("runs", []), m.get("xy", [])):
        alg = run.rsplit("-s", 1)[0]
        ax.scatter([x], [y], s=60, color=_COLORS.get(alg, "black"),
                   label=None if alg in seen else alg)
        ax.annotate(run, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        seen.add(alg)
    ax.set_xlabel("MDS coordinate 1 (shape distance, radians)")
    ax.set_ylabel("MDS coordinate 2")
    if seen:
        ax.legend(fontsize=7, loc="best")
    ax.set_title(f"penultimate features, angular shape distance (alpha={m.get('alpha', 1.0)}), "
                 f"{m.get('samples', '?')} test images", fontsize=8)
    fig.suptitle("Where the training algorithms' features lie relative to each other", fontsize=10)
    return [save(fig, out_dir, "fig_network_map")]
