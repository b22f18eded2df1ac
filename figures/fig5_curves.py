"""Figure 5 / 10: MAML vs ANIL learning curves (loss and accuracy, train and validation)."""
from __future__ import annotations

import os
from pathlib import Path

from figures._plot import ALG_COLORS, new_figure, save

__all__ = ["NAME", "draw"]

NAME = "fig5"


def draw(results: dict, details: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Loss and accuracy vs iteration from ``details["curves"]`` -> ``fig5_curves.png``.

    ``details["curves"][alg]`` holds lists ``step``, ``train_loss``, ``train_acc`` and, when
    evaluated, ``val_step``, ``val_loss``, ``val_acc`` (means over seeds).
    """
    curves = details.get("curves") or {}
    fig, axes = new_figure(2, width=4.8, height=3.8)
    for alg in ("maml", "anil"):
        c = curves.get(alg)
        if not c:
            continue
        color = ALG_COLORS[alg]
        for ax, kind, scale in ((axes[0][0], "loss", 1.0), (axes[0][1], "acc", 100.0)):
            if c.get(f"train_{kind}"):
                ax.plot(c["step"], [scale * v for v in c[f"train_{kind}"]], color=color, alpha=0.6,
                        linewidth=1, label=f"{alg.upper()} train")
            if c.get(f"val_{kind}"):
                ax.plot(c.get("val_step") or c["step"], [scale * v for v in c[f"val_{kind}"]],
                        color=color, linestyle="--", marker="o", markersize=3, linewidth=1.8,
                        label=f"{alg.upper()} validation")
    axes[0][0].set_ylabel("query cross-entropy after adaptation (nats)")
    axes[0][0].set_title("Loss")
    axes[0][1].set_ylabel("query accuracy after adaptation (%)")
    axes[0][1].set_title("Accuracy")
    for ax in axes[0]:
        ax.set_xlabel("training iteration")
        ax.legend(fontsize=8)
    fig.suptitle(f"Figure 5 — MAML vs ANIL learning curves, {results.get('dataset', '?')} "
                 f"(paper: nearly coincide)", fontsize=10)
    return [save(fig, out_dir, "fig5_curves")]
