"""Figure 2: CCA and CKA similarity of each layer before vs after the inner loop."""
from __future__ import annotations

import os
from pathlib import Path

from figures import paper_values as pv
from figures._plot import LAYER_COLORS, PAPER_STYLE, new_figure, save

__all__ = ["NAME", "draw"]

NAME = "fig2"


def draw(results: dict, details: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Bar chart per layer of ``results["pre_post"]`` (CCA and CKA panels) -> ``fig2_pre_post.png``.

    The paper's statement (conv layers > 0.9, head < 0.5) is drawn as dashed reference lines;
    the chance level of each layer (``results["pre_post_chance"]``: the same measure on
    row-shuffled representations) as a black tick over its bar.
    """
    pp = results.get("pre_post") or {}
    chance = results.get("pre_post_chance") or {}
    fig, axes = new_figure(2, width=4.6, height=3.8)
    for ax, measure in zip(axes[0], ("cca", "cka")):
        vals = pp.get(measure) or {}
        layers = [k for k in pv.LAYERS if k in vals]
        bars = ax.bar(layers, [vals[k] for k in layers], color=[LAYER_COLORS[k] for k in layers])
        for b, k in zip(bars, layers):
            ax.annotate(f"{vals[k]:.2f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=8)
        floor = chance.get(measure) or {}
        marks = [i for i, k in enumerate(layers) if k in floor]
        if marks:
            ax.scatter(marks, [floor[layers[i]] for i in marks], marker="_", s=400, color="black",
                       linewidths=2, zorder=3, label="chance (rows shuffled)")
        ax.axhline(pv.FIG2["conv_min"], **PAPER_STYLE, label="paper: conv > 0.9")
        ax.axhline(pv.FIG2["head_max"], color="grey", linestyle=":", linewidth=1.2,
                   label="paper: head < 0.5")
        ax.set_ylim(0, 1.3)                   # headroom: the legend sits above the bars
        ax.set_xlabel("layer")
        ax.set_ylabel(f"{measure.upper()} similarity, pre vs post (unitless, 0–1)")
        ax.set_title(f"{measure.upper()}: representation before vs after adaptation")
        ax.legend(loc="upper center", ncol=2, fontsize=8)
    fig.suptitle(f"Figure 2 — {results.get('dataset', '?')} {results.get('ways', '?')}-way "
                 f"{results.get('shots', '?')}-shot, MAML, mean over tasks and seeds", fontsize=10)
    return [save(fig, out_dir, "fig2_pre_post")]
