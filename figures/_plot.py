"""Shared matplotlib helpers: a headless backend, one style, atomic PNG saving."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from repsim._io import atomic_path  # noqa: E402

__all__ = ["plt", "new_figure", "save", "LAYER_COLORS", "ALG_COLORS", "PAPER_STYLE"]

LAYER_COLORS = {"conv1": "#1f77b4", "conv2": "#ff7f0e", "conv3": "#2ca02c", "conv4": "#9467bd",
                "head": "#d62728"}
ALG_COLORS = {"maml": "#1f77b4", "anil": "#d62728", "fomaml": "#2ca02c", "nil": "#9467bd"}
# how the paper's numbers are drawn: black open markers / dashed lines
PAPER_STYLE = {"color": "black", "linestyle": "--", "linewidth": 1.2}


def new_figure(ncols: int = 1, nrows: int = 1, *, width: float = 5.0, height: float = 4.0):
    """A figure with ``nrows x ncols`` axes of ``width x height`` inches each, squeezed."""
    plt.rcParams.update({"font.size": 10, "axes.grid": True, "grid.alpha": 0.3})
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, axes


def save(fig, out_dir: str | os.PathLike, name: str) -> Path:
    """Save ``fig`` as ``out_dir/name.png`` (atomic rename) at 120 dpi, close it, return the path."""
    path = Path(out_dir) / f"{name}.png"
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return path
