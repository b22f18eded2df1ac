"""Figures 7 / 8: cross-seed similarity before adaptation vs after, with fitted line and R^2."""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from figures._plot import LAYER_COLORS, PAPER_STYLE, new_figure, save
from figures.constants import CONV_LAYERS, MEASURES
from figures.context import Context
from figures.grading import (NOT_MEASURED, NOT_REPRODUCED, PARTLY, REPRODUCED, TOL_INTERCEPT,
                             TOL_R2, TOL_SLOPE, Finding, fixed, lookup, markdown_table)
from figures.output import Output, RunKey
from figures.presets import PipelinePreset

__all__ = ["OUTPUT", "COMPARISONS", "CrossSeedResult", "fit_line"]

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
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
    slope = sxy / sxx if sxx > 0 else 0.0
    intercept = mean_y - slope * mean_x
    ss_res = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - mean_y) ** 2 for y in ys)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res < 1e-24 else 0.0)
    return slope, intercept, r2


@dataclass(frozen=True)
class CrossSeedResult:
    """``points[measure]``: one point per (seed pair, conv layer) — ``x`` = sim(L1 pre, L2 pre),
    one list per key of :data:`COMPARISONS`, ``layer`` and ``pair`` labels; ``fits[measure]
    [comparison]``: ``{slope, intercept, r2}``."""

    points: dict[str, dict[str, list]]
    fits: dict[str, dict[str, dict[str, float]]]

    def write(self, results: dict, details: dict) -> None:
        details["cross_seed"] = self.points
        results["cross_seed_fit"] = self.fits
        # the weakest of the paper's three regressions
        results["cross_seed_r2"] = {m: min(fit["r2"] for fit in self.fits[m].values())
                                    for m in self.fits}


def needs(preset: PipelinePreset) -> list[RunKey]:
    return [("maml", seed) for seed in preset.seeds]


def compute(context: Context) -> CrossSeedResult | None:
    """MAML seed pairs compared before and after adaptation (None with a single seed)."""
    pairs = list(itertools.combinations(context.seeds, 2))
    if not pairs:
        return None
    points = {m: {"x": [], "pre_post": [], "post_pre": [], "post_post": [], "layer": [], "pair": []}
              for m in MEASURES}
    for seed_a, seed_b in pairs:
        similarity = context.cross(("maml", seed_a), ("maml", seed_b), ("pre_pre", *COMPARISONS))
        for measure in MEASURES:
            for layer in CONV_LAYERS:
                points[measure]["x"].append(similarity["pre_pre"][measure][layer])
                for comparison in COMPARISONS:
                    points[measure][comparison].append(similarity[comparison][measure][layer])
                points[measure]["layer"].append(layer)
                points[measure]["pair"].append(f"{seed_a}-{seed_b}")
    fits = {m: {c: dict(zip(("slope", "intercept", "r2"), fit_line(points[m]["x"], points[m][c])))
                for c in COMPARISONS} for m in MEASURES}
    return CrossSeedResult(points, fits)


def grade(results: dict, details: dict) -> list[Finding]:
    """Reproduced when every fit has |slope - 1|, |intercept| and R^2 within the tolerances;
    partly when some do."""
    claim = ("cross-seed similarity is the same before and after adaptation: "
             "slope about 1, intercept about 0, R^2 about 1 (Figures 7/8)")
    fits = results.get("cross_seed_fit")
    if not fits:
        return [Finding("fig7", claim, NOT_MEASURED, "fewer than two seeds")]
    passed, total, parts = 0, 0, []
    for measure in MEASURES:
        for comparison, fit in (fits.get(measure) or {}).items():
            if not fit or fit.get("slope") is None:
                continue
            total += 1
            passed += (abs(fit["slope"] - 1) <= TOL_SLOPE and abs(fit["intercept"]) <= TOL_INTERCEPT
                       and fit["r2"] >= TOL_R2)
            parts.append(f"{measure.upper()} {comparison}: {fit['slope']:.2f}x{fit['intercept']:+.2f}, "
                         f"R^2 {fit['r2']:.2f}")
    if not total:
        return [Finding("fig7", claim, NOT_MEASURED, "no regression")]
    status = REPRODUCED if passed == total else PARTLY if passed else NOT_REPRODUCED
    return [Finding("fig7", claim, status, "; ".join(parts) + f"; rule |slope-1| <= {TOL_SLOPE}, "
                    f"|intercept| <= {TOL_INTERCEPT}, R^2 >= {TOL_R2} for every fit ({passed}/{total})")]


def section(results: dict, details: dict) -> list[str]:
    weakest = results.get("cross_seed_r2") or {}
    fits = results.get("cross_seed_fit") or {}
    lines = ["", "## Figures 7/8 — cross-seed regression", "",
             "Least-squares fit of each comparison against (L1 pre, L2 pre), one point per seed pair "
             "and conv layer (paper: slope about 1, intercept about 0, R^2 about 1). The finding "
             f"uses the weakest R^2: CCA {fixed(weakest.get('cca'), 3)}, "
             f"CKA {fixed(weakest.get('cka'), 3)}.", ""]
    return lines + markdown_table(
        ["measure", "y", "slope", "intercept", "R^2"],
        [[m.upper(), label, fixed(lookup(fits, m, c, "slope"), 3),
          fixed(lookup(fits, m, c, "intercept"), 3), fixed(lookup(fits, m, c, "r2"), 3)]
         for m in MEASURES for c, label in COMPARISONS.items()])


def _draw_panel(ax, measure: str, xs: list, ys: list, layers: list, label: str) -> None:
    for layer in dict.fromkeys(layers):
        index = [i for i, name in enumerate(layers) if name == layer]
        ax.scatter([xs[i] for i in index], [ys[i] for i in index], s=22, alpha=0.8,
                   color=LAYER_COLORS.get(layer, "grey"), label=layer or None)
    low = min(xs + ys + [1.0]) - 0.03
    high = max(xs + ys + [0.0]) + 0.03
    ax.plot([low, high], [low, high], **PAPER_STYLE, label="y = x (paper: fit ≈ this)")
    if len(xs) >= 2 and len(ys) == len(xs):
        slope, intercept, r2 = fit_line(xs, ys)
        ax.plot([low, high], [slope * low + intercept, slope * high + intercept], color="black",
                linewidth=1.6, label=f"fit y = {slope:.2f}x {intercept:+.2f}\nR² = {r2:.3f}")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.set_xlabel(f"{measure.upper()} (L1 pre, L2 pre), 0–1")
    ax.set_ylabel(f"{measure.upper()} {label}, 0–1")
    ax.set_title(f"(pre, pre) vs {label}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")


def draw(results: dict, details: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Three regressions per measure -> ``fig7_cross_seed_cca.png`` and ``fig8_cross_seed_cka.png``.

    ``details["cross_seed"][measure]`` holds one point per (seed pair, conv layer): ``x`` =
    sim(L1 pre, L2 pre), one list per key of :data:`COMPARISONS`, and ``layer`` labels.
    """
    paths = []
    cross_seed = details.get("cross_seed") or {}
    for fig_number, measure in ((7, "cca"), (8, "cka")):
        points = cross_seed.get(measure) or {}
        fig, axes = new_figure(3, width=4.3, height=4.8)
        xs = points.get("x") or []
        layers = points.get("layer") or [""] * len(xs)
        for ax, (key, label) in zip(axes[0], COMPARISONS.items()):
            _draw_panel(ax, measure, xs, points.get(key) or [], layers, label)
        fig.suptitle(f"Figure {fig_number} — cross-seed {measure.upper()} before vs after adaptation, "
                     f"one point per seed pair and conv layer (paper: R² ≈ 1)", fontsize=10)
        paths.append(save(fig, out_dir, f"fig{fig_number}_cross_seed_{measure}"))
    return paths


OUTPUT = Output(name="fig7", order=50, aliases=("fig8",), needs=needs, compute=compute,
                grade=grade, section=section, section_order=60, draw=draw,
                cost=6)
