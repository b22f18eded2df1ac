"""Layer-by-layer similarity of two activation dicts, and its CSV / heatmap output.

Shared by ``python -m repsim compare`` and ``python -m repsim demo``:

>>> import torch
>>> a = {"conv": torch.randn(20, 4, 6, 6, dtype=torch.float64), "fc": torch.randn(20, 8, dtype=torch.float64)}
>>> compute_matrix(a, a, measure="linear_cka", flatten="pool").shape
torch.Size([2, 2])
"""
from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from repsim._hooks import flatten_conv
from repsim._io import atomic_path
from repsim._matrix import similarity_matrix

__all__ = ["compute_matrix", "format_table", "write_matrix", "two_d"]

log = logging.getLogger(__name__)

_MAX_ANNOTATED = 12  # annotate heatmap cells up to 12 x 12


def _spatial(t: torch.Tensor) -> tuple[int, ...]:
    """Spatial size of an activation: (H, W) for (N, C, H, W), (L,) for (N, L, C), () for 2-D."""
    if t.ndim == 4:
        return tuple(t.shape[2:])
    if t.ndim == 3:
        return (t.shape[1],)
    return ()


def _common_size(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    if a == b:
        return a
    if len(a) != len(b) or not a:
        return ()
    return tuple(min(p, q) for p, q in zip(a, b))


def _pool_to(t: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Average-pool the spatial positions of ``t`` down to ``size`` (``()``: the mean)."""
    if _spatial(t) == size:
        return t
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if size == ():
        return flatten_conv(t, mode="pool")
    if t.ndim == 4:
        return F.adaptive_avg_pool2d(t, size)
    return F.adaptive_avg_pool1d(t.transpose(1, 2), size[0]).transpose(1, 2)


def two_d(t: torch.Tensor, mode: str) -> torch.Tensor:
    """``(N,)`` -> ``(N, 1)``; 3-/4-D activations through :func:`repsim.flatten_conv` ``mode``."""
    return t.reshape(-1, 1) if t.ndim == 1 else flatten_conv(t, mode=mode)


def compute_matrix(
    acts_a: dict[str, Any], acts_b: dict[str, Any], *, measure: str, flatten: str
) -> torch.Tensor:
    """Similarity of every layer of A with every layer of B, flattening conv activations.

    Parameters
    ----------
    acts_a, acts_b : dict of name -> (N, ...) tensor
        2-D ``(N, C)``, 3-D ``(N, L, C)`` or 4-D ``(N, C, H, W)`` activations, the same N.
    measure : str
        A measure of :func:`repsim.similarity_matrix`.
    flatten : {"channels", "full", "pool"}
        How :func:`repsim.flatten_conv` makes 3-/4-D activations 2-D. With ``"channels"``
        two layers of different spatial sizes are compared after average-pooling both to the
        smaller size (a 2-D layer counts as 1 x 1), so that their rows are the same positions.

    Returns
    -------
    (len(acts_a), len(acts_b)) float64 tensor
    """
    names_a, names_b = list(acts_a), list(acts_b)
    if flatten != "channels":
        return similarity_matrix(
            {n: two_d(acts_a[n], flatten) for n in names_a},
            {n: two_d(acts_b[n], flatten) for n in names_b},
            measure=measure,
        )
    out = torch.empty(len(names_a), len(names_b), dtype=torch.float64)
    sizes_a = {n: _spatial(acts_a[n]) for n in names_a}
    sizes_b = {n: _spatial(acts_b[n]) for n in names_b}
    for sa in dict.fromkeys(sizes_a.values()):
        rows = [i for i, n in enumerate(names_a) if sizes_a[n] == sa]
        for sb in dict.fromkeys(sizes_b.values()):
            cols = [j for j, n in enumerate(names_b) if sizes_b[n] == sb]
            size = _common_size(sa, sb)
            if size != sa or size != sb:
                log.info("channels: comparing sizes %s and %s after pooling to %s", sa, sb, size)
            block = similarity_matrix(
                {names_a[i]: two_d(_pool_to(acts_a[names_a[i]], size), "channels") for i in rows},
                {names_b[j]: two_d(_pool_to(acts_b[names_b[j]], size), "channels") for j in cols},
                measure=measure,
            )
            out[torch.tensor(rows)[:, None], torch.tensor(cols)[None, :]] = block.to(out)
    return out


def format_table(matrix: torch.Tensor, rows: Sequence[str], cols: Sequence[str]) -> str:
    """The matrix as an aligned text table, 4 decimals."""
    width = max(8, *(len(c) for c in cols))
    first = max(5, *(len(r) for r in rows))
    lines = [" " * first + "".join(f"  {c:>{width}}" for c in cols)]
    for r, values in zip(rows, matrix.tolist()):
        lines.append(f"{r:<{first}}" + "".join(f"  {v:>{width}.4f}" for v in values))
    return "\n".join(lines)


def write_matrix(
    matrix: torch.Tensor,
    rows: Sequence[str],
    cols: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    stem: str = "similarity",
    title: str,
    xlabel: str = "B",
    ylabel: str = "A",
) -> tuple[Path, Path]:
    """Write ``stem.csv`` (full precision) and a ``stem.png`` heatmap; return both paths.

    matrix : (len(rows), len(cols)) tensor. Both files are written atomically
    (:func:`repsim._io.atomic_path`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    values = matrix.detach().to("cpu", torch.float64)
    csv_path, png_path = out / f"{stem}.csv", out / f"{stem}.png"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["layer", *cols])
        for r, row in zip(rows, values.tolist()):
            writer.writerow([r, *(repr(v) for v in row)])
    figure = _heatmap(values, rows, cols, title=title, xlabel=xlabel, ylabel=ylabel)
    with atomic_path(png_path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    return csv_path, png_path


def _heatmap(values: torch.Tensor, rows: Sequence[str], cols: Sequence[str], *, title: str,
             xlabel: str, ylabel: str) -> Any:
    """A matplotlib ``Figure`` of the (len(rows), len(cols)) float64 ``values``.

    Drawn on matplotlib's Agg canvas directly (no pyplot, no global backend change); cells are
    annotated with their values up to 12 x 12 layers.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1.6 + 0.65 * max(4, len(cols)), 1.2 + 0.55 * max(4, len(rows))))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finite = values[torch.isfinite(values)]
    in_unit = finite.numel() > 0 and bool((finite >= 0).all() and (finite <= 1).all())
    # similarities share the [0, 1] scale; a distance (procrustes) uses its own range
    lo, hi = (0.0, 1.0)
    if finite.numel() and not in_unit:
        lo, hi = float(finite.min()), float(finite.max())
    image = ax.imshow(values.numpy(), cmap="viridis", vmin=lo, vmax=hi, aspect="auto")
    ax.set_xticks(range(len(cols)), labels=list(cols), rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), labels=list(rows))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=title.split(":")[0])
    if len(rows) <= _MAX_ANNOTATED and len(cols) <= _MAX_ANNOTATED:
        middle = (lo + hi) / 2
        for i, row in enumerate(values.tolist()):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if v > middle else "white")
    fig.tight_layout()
    return fig
