"""Figures 7 / 8: cross-seed similarity before adaptation vs after, with fitted line and R^2."""
from __future__ import annotations

import os
from pathlib import Path

from figures._plot import LAYER_COLORS, PAPER_STYLE, new_figure, save

__all__ = ["NAME", "COMPARISONS", "draw", "fit_line"]

NAME = "fig7"

# y-axis comparisons of the paper's three plots (App. B.4); x is always sim(L1 pre, L2 pre).
COMPARISONS = {"pre_post": "(L1 pre, L2 post)", "post_pre": "(L1 post, L2 pre)",
               "post_post": "(L1 post, L2 post)"}


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least-squares ``y = slope * x + intercept``; returns ``(slope, intercept, r2)``.

    ``r2`` is ``1 - SS_res / SS_tot`` of the fit; with constant ``ys`` it is 1 if the fit is
    exact and 0 otherwise.
    """
    n = len(xs)
    if n != len(ys) or n < 2:
        raise ValueError(f"expected two equal-length lists of >= 2 points, got {len(xs)} and {len(ys)}")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope = sxy / sxx if sxx > 0 else 0.0
    intercept = my - slope * mx
    ss_res = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res < 1e-24 else 0.0)
    return slope, intercept, r2


def draw(results: dict, details: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Three regressions per measure -> ``fig7_cross_seed_cca.png`` and ``fig8_cross_seed_cka.png``.

    ``details["cross_seed"][measure]`` holds one point per (seed pair, conv layer): ``x`` =
    sim(L1 pre, L2 pre), one list per key of :data:`COMPARISONS`, and ``layer`` labels.
    """
    paths = []
    cs = details.get("cross_seed") or {}
    for fig_no, measure in ((7, "cca"), (8, "cka")):
        pts = cs.get(measure) or {}
        fig, axes = new_figure(3, width=4.3, height=4.8)
        xs = pts.get("x") or []
        layers = pts.get("layer") or [""] * len(xs)
        for ax, (key, label) in zip(axes[0], COMPARISONS.items()):
            ys = pts.get(key) or []
            for layer in dict.fromkeys(layers):
                idx = [i for i, lay in enumerate(layers) if lay == layer]
                ax.scatter([xs[i] for i in idx], [ys[i] for i in idx], s=22, alpha=0.8,
                           color=LAYER_COLORS.get(layer, "grey"), label=layer or None)
            lo = min(xs + ys + [1.0]) - 0.03
            hi = max(xs + ys + [0.0]) + 0.03
            ax.plot([lo, hi], [lo, hi], **PAPER_STYLE, label="y = x (paper: fit ≈ this)")
            if len(xs) >= 2 and len(ys) == len(xs):
                slope, intercept, r2 = fit_line(xs, ys)
                ax.plot([lo, hi], [slope * lo + intercept, slope * hi + intercept], color="black",
                        linewidth=1.6, label=f"fit y = {slope:.2f}x {intercept:+.2f}\nR² = {r2:.3f}")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_aspect("equal")
            ax.set_xlabel(f"{measure.upper()} (L1 pre, L2 pre), 0–1")
            ax.set_ylabel(f"{measure.upper()} {label}, 0–1")
            ax.set_title(f"(pre, pre) vs {label}", fontsize=10)
            ax.legend(fontsize=7, loc="upper left")
        fig.suptitle(f"Figure {fig_no} — cross-seed {measure.upper()} before vs after adaptation, "
                     f"one point per seed pair and conv layer (paper: R² ≈ 1)", fontsize=10)
        paths.append(save(fig, out_dir, f"fig{fig_no}_cross_seed_{measure}"))
    return paths
