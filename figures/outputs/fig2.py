"""Figure 2: CCA and CKA similarity of each layer before vs after the inner loop (MAML)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from figures._plot import LAYER_COLORS, PAPER_STYLE, new_figure, save
from figures.constants import CONV_LAYERS, LAYERS, MEASURES
from figures.context import Context, mean_over
from figures.grading import (NOT_MEASURED, NOT_REPRODUCED, PARTLY, REPRODUCED, Finding,
                             chance_corrected, fixed, lookup, markdown_table)
from figures.output import Output, RunKey
from figures.presets import PipelinePreset

__all__ = ["OUTPUT", "PAPER_FIG2", "PrePostResult"]

#: the thresholds the paper states: conv layers above, the head below (CCA and CKA)
PAPER_FIG2 = {"conv_min": 0.9, "head_max": 0.5}


@dataclass(frozen=True)
class PrePostResult:
    """Means over seeds and tasks: ``similarity`` and ``chance`` ``{measure: {layer: value}}``
    (value in [0, 1]) and ``weight_change`` ``{layer: L2 distance}``."""

    similarity: dict[str, dict[str, float]]
    chance: dict[str, dict[str, float]]
    weight_change: dict[str, float]

    def write(self, results: dict, details: dict) -> None:
        results["pre_post"] = self.similarity
        results["pre_post_chance"] = self.chance
        results["weight_change"] = self.weight_change


def needs(preset: PipelinePreset) -> list[RunKey]:
    return [("maml", seed) for seed in preset.seeds]


def compute(context: Context) -> PrePostResult:
    """The final MAML runs' pre/post analysis on the analysis tasks, mean over seeds."""
    analyses = [context.pre_post(context.run("maml", seed)) for seed in context.seeds]
    return PrePostResult(mean_over([a.similarity for a in analyses]),
                         mean_over([a.chance for a in analyses]),
                         mean_over([a.change for a in analyses]))


def grade(results: dict, details: dict) -> list[Finding]:
    """Graded on chance-corrected values (0 = as similar as row-shuffled representations):
    reproduced when every conv layer is above the head and beyond the paper's thresholds,
    partly when only the direction holds."""
    claim = "conv layers barely change in the inner loop, the head changes (Figure 2)"
    pre_post = results.get("pre_post")
    if not pre_post or not pre_post.get("cca"):
        return [Finding("fig2", claim, NOT_MEASURED, "no pre/post similarity")]
    floors = results.get("pre_post_chance") or {}
    parts, direction, thresholds = [], True, True
    for measure in MEASURES:
        values, floor = pre_post.get(measure) or {}, floors.get(measure) or {}
        if not [k for k in CONV_LAYERS if k in values] or "head" not in values:
            continue
        corrected = {k: chance_corrected(values[k], floor.get(k)) for k in LAYERS if k in values}
        conv = min(corrected[k] for k in CONV_LAYERS if k in corrected)
        direction &= conv > corrected["head"]
        thresholds &= conv > PAPER_FIG2["conv_min"] and corrected["head"] < PAPER_FIG2["head_max"]
        parts.append(f"{measure.upper()} min conv {conv:.3f}, head {corrected['head']:.3f} (raw head "
                     f"{values['head']:.3f}, chance {fixed(floor.get('head'), 3)})")
    status = REPRODUCED if direction and thresholds else PARTLY if direction else NOT_REPRODUCED
    return [Finding("fig2", claim, status, "chance-corrected: " + "; ".join(parts)
                    + f" (paper: conv > {PAPER_FIG2['conv_min']}, head < {PAPER_FIG2['head_max']})")]


def section(results: dict, details: dict) -> list[str]:
    lines = ["", "## Figure 2 — similarity before vs after the inner loop", "",
             "Paper: CCA > 0.9 for every conv layer, < 0.5 for the head; CKA the same. Chance: the "
             "same measure between the pre-adaptation representation and the post-adaptation one "
             "with its images shuffled (what unrelated representations of this size give); the "
             "finding is graded on (value - chance) / (1 - chance).", ""]
    pre_post, chance = results.get("pre_post") or {}, results.get("pre_post_chance") or {}
    return lines + markdown_table(
        ["layer", "CCA", "CCA chance", "CKA", "CKA chance", "weight change (L2)"],
        [[layer, fixed(lookup(pre_post, "cca", layer), 3), fixed(lookup(chance, "cca", layer), 3),
          fixed(lookup(pre_post, "cka", layer), 3), fixed(lookup(chance, "cka", layer), 3),
          fixed(lookup(results, "weight_change", layer), 4)] for layer in LAYERS])


def draw(results: dict, details: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Bar chart per layer of ``results["pre_post"]`` (CCA and CKA panels) -> ``fig2_pre_post.png``.

    The paper's statement (conv layers > 0.9, head < 0.5) is drawn as dashed reference lines;
    the chance level of each layer (``results["pre_post_chance"]``: the same measure on
    row-shuffled representations) as a black tick over its bar.
    """
    pre_post = results.get("pre_post") or {}
    chance = results.get("pre_post_chance") or {}
    fig, axes = new_figure(2, width=4.6, height=3.8)
    for ax, measure in zip(axes[0], MEASURES):
        values = pre_post.get(measure) or {}
        layers = [k for k in LAYERS if k in values]
        bars = ax.bar(layers, [values[k] for k in layers], color=[LAYER_COLORS[k] for k in layers])
        for bar, layer in zip(bars, layers):
            ax.annotate(f"{values[layer]:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)
        floor = chance.get(measure) or {}
        marks = [i for i, layer in enumerate(layers) if layer in floor]
        if marks:
            ax.scatter(marks, [floor[layers[i]] for i in marks], marker="_", s=400, color="black",
                       linewidths=2, zorder=3, label="chance (rows shuffled)")
        ax.axhline(PAPER_FIG2["conv_min"], **PAPER_STYLE, label="paper: conv > 0.9")
        ax.axhline(PAPER_FIG2["head_max"], color="grey", linestyle=":", linewidth=1.2,
                   label="paper: head < 0.5")
        ax.set_ylim(0, 1.3)                   # headroom: the legend sits above the bars
        ax.set_xlabel("layer")
        ax.set_ylabel(f"{measure.upper()} similarity, pre vs post (unitless, 0–1)")
        ax.set_title(f"{measure.upper()}: representation before vs after adaptation")
        ax.legend(loc="upper center", ncol=2, fontsize=8)
    fig.suptitle(f"Figure 2 — {results.get('dataset', '?')} {results.get('ways', '?')}-way "
                 f"{results.get('shots', '?')}-shot, MAML, mean over tasks and seeds", fontsize=10)
    return [save(fig, out_dir, "fig2_pre_post")]


OUTPUT = Output(name="fig2", order=20, needs=needs, compute=compute, grade=grade,
                section=section, section_order=20, draw=draw,
                cost=3.5)
