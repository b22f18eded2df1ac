"""Figure 11 / Table 3: MAML-ANIL similarity vs same-algorithm cross-seed similarity, per layer."""
from __future__ import annotations

import os
from pathlib import Path

from figures import paper_values as pv
from figures._plot import new_figure, save

__all__ = ["NAME", "draw"]

NAME = "fig11"

_PAIR_COLORS = {"maml-maml": "#1f77b4", "anil-anil": "#d62728", "anil-maml": "#9467bd"}


def draw(results: dict, details: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Grouped bars per conv layer from ``details["maml_anil_layers"]`` -> ``fig11_maml_anil.png``.

    The paper's body averages (Table 3) are drawn as dashed horizontal lines per pair.
    """
    per_layer = details.get("maml_anil_layers") or {}
    fig, axes = new_figure(2, width=4.8, height=3.9)
    width = 0.26
    for col, (ax, measure) in enumerate(zip(axes[0], ("cca", "cka"))):
        for i, (pair, color) in enumerate(_PAIR_COLORS.items()):
            vals = (per_layer.get(pair) or {}).get(measure) or {}
            layers = [k for k in pv.CONV_LAYERS if k in vals]
            xs = [pv.CONV_LAYERS.index(k) + (i - 1) * width for k in layers]
            ax.bar(xs, [vals[k] for k in layers], width=width, color=color, label=pair)
            ax.axhline(pv.TABLE3[pair][col], color=color, linestyle="--", linewidth=1,
                       label=f"paper {pair} body mean {pv.TABLE3[pair][col]:.2f}")
        ax.set_xticks(range(len(pv.CONV_LAYERS)), pv.CONV_LAYERS)
        ax.set_ylim(0, 1.3)
        ax.set_xlabel("layer")
        ax.set_ylabel(f"{measure.upper()} similarity between runs (0–1)")
        ax.set_title(f"{measure.upper()}")
        ax.legend(fontsize=6.5, ncol=2, loc="upper right")
    fig.suptitle("Figure 11 — MAML vs ANIL features compared with same-algorithm seed pairs",
                 fontsize=10)
    return [save(fig, out_dir, "fig11_maml_anil")]
