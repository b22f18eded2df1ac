"""Figure 11 / Table 3: MAML-ANIL similarity vs same-algorithm cross-seed similarity, per layer."""
from __future__ import annotations

import os
from pathlib import Path

from figures._plot import new_figure, save
from figures.constants import CONV_LAYERS, MEASURES
from figures.output import Output
from figures.outputs.table3 import PAPER_TABLE3, algorithm_similarity, needs

__all__ = ["OUTPUT"]

_PAIR_COLORS = {"maml-maml": "#1f77b4", "anil-anil": "#d62728", "anil-maml": "#9467bd"}


def draw(results: dict, details: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Grouped bars per conv layer from ``details["maml_anil_layers"]`` -> ``fig11_maml_anil.png``.

    The paper's body averages (Table 3) are drawn as dashed horizontal lines per pair.
    """
    per_layer = details.get("maml_anil_layers") or {}
    fig, axes = new_figure(2, width=4.8, height=3.9)
    width = 0.26
    for column, (ax, measure) in enumerate(zip(axes[0], MEASURES)):
        for i, (pair, color) in enumerate(_PAIR_COLORS.items()):
            values = (per_layer.get(pair) or {}).get(measure) or {}
            layers = [k for k in CONV_LAYERS if k in values]
            xs = [CONV_LAYERS.index(k) + (i - 1) * width for k in layers]
            ax.bar(xs, [values[k] for k in layers], width=width, color=color, label=pair)
            paper = PAPER_TABLE3[pair][column]
            ax.axhline(paper, color=color, linestyle="--", linewidth=1,
                       label=f"paper {pair} body mean {paper:.2f}")
        ax.set_xticks(range(len(CONV_LAYERS)), CONV_LAYERS)
        ax.set_ylim(0, 1.3)
        ax.set_xlabel("layer")
        ax.set_ylabel(f"{measure.upper()} similarity between runs (0–1)")
        ax.set_title(f"{measure.upper()}")
        ax.legend(fontsize=6.5, ncol=2, loc="upper right")
    fig.suptitle("Figure 11 — MAML vs ANIL features compared with same-algorithm seed pairs",
                 fontsize=10)
    return [save(fig, out_dir, "fig11_maml_anil")]


OUTPUT = Output(name="fig11", order=95, needs=needs, compute=algorithm_similarity, draw=draw,
                cost=0)
