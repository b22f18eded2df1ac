"""Figure 6: Euclidean weight change per layer through the inner loop, over training."""
from __future__ import annotations

import os
from pathlib import Path

from matplotlib.ticker import FormatStrFormatter

from figures._plot import LAYER_COLORS, new_figure, save
from figures.constants import CONV_LAYERS, LAYERS
from figures.grading import (NOT_MEASURED, NOT_REPRODUCED, PARTLY, REPRODUCED, TOL_WEIGHT_RATIO,
                             Finding)
from figures.output import Output
from figures.outputs.fig3 import checkpoint_series, evaluations, needs

__all__ = ["OUTPUT"]


def grade(results: dict, details: dict) -> list[Finding]:
    """Reproduced when every conv layer moves at most half as far as the head; partly when
    every conv layer moves less than the head."""
    claim = "inner-loop weight change is tiny for conv layers, largest for the head (Figure 6)"
    change = results.get("weight_change")
    if not change or not change.get("head"):
        return [Finding("fig6", claim, NOT_MEASURED, "no weight change")]
    conv = {k: change[k] for k in CONV_LAYERS if k in change}
    if not conv:
        return [Finding("fig6", claim, NOT_MEASURED, "no conv weight change")]
    ratio = max(conv.values()) / change["head"]
    status = REPRODUCED if ratio <= TOL_WEIGHT_RATIO else PARTLY if ratio < 1.0 else NOT_REPRODUCED
    return [Finding("fig6", claim, status,
                    ", ".join(f"{k} {v:.3g}" for k, v in {**conv, "head": change["head"]}.items())
                    + f"; largest conv / head = {ratio:.2f}, rule <= {TOL_WEIGHT_RATIO:g}")]


def draw(results: dict, details: dict, out_dir: str | os.PathLike) -> list[Path]:
    """``details["checkpoints"]["weight_change"]`` vs iteration, log scale -> ``fig6_weight_change.png``.

    Falls back to the final ``results["weight_change"]`` as a single point when no checkpoint
    series exists.
    """
    series = details.get("checkpoints") or {}
    steps = series.get("steps") or []
    change = series.get("weight_change") or {}
    if not steps and results.get("weight_change"):
        steps = [results.get("iterations", 0)]
        change = {k: [v] for k, v in results["weight_change"].items()}
    fig, axes = new_figure(1, width=6.8, height=4.2)
    ax = axes[0][0]
    for layer in LAYERS:
        values = change.get(layer)
        if values:
            ax.plot(steps, [max(y, 1e-12) for y in values], marker="o", color=LAYER_COLORS[layer],
                    label=layer)
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


OUTPUT = Output(name="fig6", order=40, needs=needs, compute=checkpoint_series, grade=grade,
                draw=draw, evaluations=evaluations,
                cost=0)
