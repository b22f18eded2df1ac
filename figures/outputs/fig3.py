"""Figure 3 / 9: freezing accuracy and pre/post CCA on MAML's checkpoints over training."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from figures._plot import LAYER_COLORS, new_figure, save
from figures.constants import (CONV_LAYERS, FREEZE_BLOCKS, FREEZE_KEYS, LAYERS, MEASURES,
                               SERIES_FREEZE_KEYS)
from figures.context import Context
from figures.grading import NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, TOL_ACC_POINTS, Finding, fixed
from figures.output import Output, RunKey
from figures.presets import PipelinePreset
from meta.run import RunDir

__all__ = ["OUTPUT", "PAPER_FIG3", "CheckpointSeries", "checkpoint_series"]

#: MiniImageNet 5w5s accuracy (%) at 10k / 20k / 30k training iterations
PAPER_FIG3 = {"iterations": (10000, 20000, 30000), "none": (61.3, 63.0, 63.1),
              "1,2,3,4": (59.7, 61.3, 61.0)}
#: the frozen settings evaluated on every checkpoint

_FREEZE_STYLE = {"none": "-", "1": "--", "1,2": "-.", "1,2,3": ":", "1,2,3,4": "-"}
_FREEZE_COLOR = {"none": "#1f77b4", "1": "#17becf", "1,2": "#2ca02c", "1,2,3": "#ff7f0e",
                 "1,2,3,4": "#d62728"}


@dataclass(frozen=True)
class CheckpointSeries:
    """One value per checkpoint of MAML's first seed.

    ``freezing`` ``{frozen key: [accuracy]}``, ``pre_post`` ``{measure: {layer: [similarity]}}``,
    ``weight_change`` ``{layer: [L2 distance]}``; ``final_weight_change`` the last checkpoint's
    weight change, written to ``results.json`` when Figure 2 does not write its own.
    """

    steps: list[int]
    freezing: dict[str, list[float]]
    pre_post: dict[str, dict[str, list[float]]]
    weight_change: dict[str, list[float]]
    final_weight_change: dict[str, float] | None

    def write(self, results: dict, details: dict) -> None:
        details["checkpoints"] = {"steps": self.steps, "freezing": self.freezing,
                                  "pre_post": self.pre_post, "weight_change": self.weight_change}
        if self.final_weight_change is not None:
            results["weight_change"] = self.final_weight_change


def needs(preset: PipelinePreset) -> list[RunKey]:
    return [("maml", preset.seeds[0])]


def evaluations(context: Context) -> list[tuple[RunDir, dict]]:
    """The first seed's MAML run at each checkpoint, with and without its body frozen."""
    return [(context.run("maml"), {"freeze": FREEZE_BLOCKS[key], "checkpoint": step})
            for step in context.preset.base.checkpoints for key in SERIES_FREEZE_KEYS]


def _series(context: Context) -> CheckpointSeries:
    run = context.run("maml")
    steps = list(context.preset.base.checkpoints)
    analyses = [context.pre_post(run, checkpoint=step) for step in steps]
    pre_post = {measure: {layer: [a.similarity[measure][layer] for a in analyses] for layer in LAYERS}
                for measure in MEASURES}
    weight_change = {layer: [a.change[layer] for a in analyses] for layer in LAYERS}
    freezing = {key: [context.evaluate(run, freeze=FREEZE_BLOCKS[key], checkpoint=step)
                      ["accuracy"]["mean"] for step in steps] for key in SERIES_FREEZE_KEYS}
    final = None if "fig2" in context.selected else {k: v[-1] for k, v in weight_change.items()}
    return CheckpointSeries(steps, freezing, pre_post, weight_change, final)


def checkpoint_series(context: Context) -> CheckpointSeries:
    """The checkpoint series (Figures 3 and 6 share it; computed once per pipeline call)."""
    return context.shared("checkpoint_series", lambda: _series(context))


def grade(results: dict, details: dict) -> list[Finding]:
    """Reproduced when at every checkpoint freezing costs at most 3 points and every conv
    layer's pre/post CCA is above the head's."""
    claim = "the body is reused at every stage of training (Figure 3)"
    series = details.get("checkpoints") if details else None
    if not series or not series.get("steps"):
        return [Finding("fig3", claim, NOT_MEASURED, "no checkpoint series")]
    frozen = series.get("freezing", {})
    cca = (series.get("pre_post") or {}).get("cca") or {}
    reproduced, parts = True, []
    for i, step in enumerate(series["steps"]):
        drop = None
        if frozen.get("none") and frozen.get("1,2,3,4"):
            drop = 100 * (frozen["none"][i] - frozen["1,2,3,4"][i])
            reproduced &= drop <= TOL_ACC_POINTS
        conv = [cca[k][i] for k in CONV_LAYERS if k in cca]
        if conv and "head" in cca:
            reproduced &= min(conv) > cca["head"][i]
        head = cca.get("head", [None] * (i + 1))[i]
        parts.append(f"step {step}: drop {fixed(drop, 1)} pts, min conv CCA "
                     f"{fixed(min(conv) if conv else None, 3)} vs head {fixed(head, 3)}")
    return [Finding("fig3", claim, REPRODUCED if reproduced else NOT_REPRODUCED, "; ".join(parts))]


def draw(results: dict, details: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Two panels from ``details["checkpoints"]`` -> ``fig3_training.png``.

    Left: test accuracy (%) with blocks frozen at test time vs training iteration. Right: CCA
    similarity pre vs post adaptation per layer vs training iteration.
    """
    series = details.get("checkpoints") or {}
    steps = series.get("steps") or []
    fig, axes = new_figure(2, width=4.8, height=3.8)
    ax = axes[0][0]
    for key in FREEZE_KEYS:
        accuracies = (series.get("freezing") or {}).get(key)
        if accuracies:
            ax.plot(steps, [100 * y for y in accuracies], _FREEZE_STYLE[key], marker="o",
                    color=_FREEZE_COLOR[key], label=f"frozen: {key}")
    ax.set_xlabel("training iteration")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Freezing blocks at test time, over training")
    ax.legend(fontsize=8)
    ax = axes[0][1]
    cca = (series.get("pre_post") or {}).get("cca") or {}
    for layer in LAYERS:
        if cca.get(layer):
            ax.plot(steps, cca[layer], marker="o", color=LAYER_COLORS[layer], label=layer)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("training iteration")
    ax.set_ylabel("CCA similarity pre vs post (0–1)")
    ax.set_title("Inner-loop representation change, over training")
    ax.legend(fontsize=8)
    paper = " vs ".join(f"{label} " + "/".join(f"{v:.1f}" for v in PAPER_FIG3[key])
                        for key, label in (("none", "none"), ("1,2,3,4", "all-frozen")))
    fig.suptitle(f"Figure 3 — MAML checkpoints, {results.get('dataset', '?')} "
                 f"(paper 5w5s MiniImageNet: {paper})", fontsize=9)
    return [save(fig, out_dir, "fig3_training")]


OUTPUT = Output(name="fig3", order=30, aliases=("fig9",), needs=needs, compute=checkpoint_series,
                grade=grade, draw=draw, evaluations=evaluations,
                cost=3)
