"""Tables 5 and 7: every training regime evaluated with a NIL head and with a MAML head."""
from __future__ import annotations

from dataclasses import dataclass

from figures.context import Context
from figures.grading import (NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, TOL_ACC_POINTS, Finding,
                             markdown_table, paper_column, percent)
from figures.output import Output, RunKey
from figures.presets import PipelinePreset, head_runs
from meta.run import RunDir

__all__ = ["OUTPUT", "PAPER_TABLE5_NIL_HEAD", "PAPER_TABLE7_MAML_HEAD", "RegimeAccuracy"]

#: MiniImageNet, evaluated with a NIL head: ``{regime: (5w1s, 5w5s)}`` in %
PAPER_TABLE5_NIL_HEAD = {
    "maml": (48.4, 61.5),
    "anil": (48.0, 62.2),
    "multiclass": (39.7, 54.4),
    "multitask": (26.5, 34.2),
    "random": (32.9, 43.2),
    "nil": (38.3, 43.0),
}
#: the same regimes evaluated with a MAML head (%)
PAPER_TABLE7_MAML_HEAD = {
    "multiclass": (38.4, 54.6),
    "multitask": (26.5, 32.8),
    "random": (32.1, 43.1),
}


@dataclass(frozen=True)
class RegimeAccuracy:
    """Accuracy (fraction) per regime: ``nil_head`` for MAML, ANIL (mean over seeds) and each
    regime; ``maml_head`` for each regime but ``nil`` (Table 7)."""

    nil_head: dict[str, float]
    maml_head: dict[str, float]

    def write(self, results: dict, details: dict) -> None:
        results["regimes_nil"] = self.nil_head
        results["regimes_maml_head"] = self.maml_head


def needs(preset: PipelinePreset) -> list[RunKey]:
    seeds = preset.seeds
    return ([(algorithm, seed) for algorithm in ("maml", "anil") for seed in seeds]
            + [(regime, seeds[0]) for regime in preset.regimes] + head_runs(preset))


def evaluations(context: Context) -> list[tuple[RunDir, dict]]:
    """MAML's and ANIL's runs and every regime's with the NIL head; each regime's MAML-head run
    (``random`` is one itself) as trained."""
    regimes = context.preset.regimes
    return ([(context.run(algorithm, seed), {"head": "nil"}) for algorithm in ("maml", "anil")
             for seed in context.seeds]
            + [(context.run(regime), {"head": "nil"}) for regime in regimes]
            + [(context.run(regime if regime == "random" else f"{regime}-head"), {})
               for regime in regimes if regime != "nil"])


def compute(context: Context) -> RegimeAccuracy:
    """NIL-head accuracy of every regime; MAML-head accuracy of a head meta-learned on each
    regime's frozen body (the ``random`` regime is such a run itself)."""
    nil_head = {algorithm: context.accuracy(algorithm, context.seeds, head="nil")["mean"]
                for algorithm in ("maml", "anil")}
    nil_head.update({regime: context.evaluate(context.run(regime), head="nil")["accuracy"]["mean"]
                     for regime in context.preset.regimes})
    maml_head = {regime: context.evaluate(context.run(regime if regime == "random" else f"{regime}-head"))
                 ["accuracy"]["mean"] for regime in context.preset.regimes if regime != "nil"}
    return RegimeAccuracy(nil_head, maml_head)


def _grade_table5(results: dict) -> Finding:
    claim = "MAML/ANIL features beat the other training regimes under a NIL head (Table 5)"
    nil_head = results.get("regimes_nil") or {}
    meta_learned = [nil_head[k] for k in ("maml", "anil") if nil_head.get(k) is not None]
    others = {k: nil_head[k] for k in ("multiclass", "multitask", "random", "nil")
              if nil_head.get(k) is not None}
    if not meta_learned or not others:
        return Finding("table5", claim, NOT_MEASURED, "regimes missing")
    reproduced = min(meta_learned) > max(others.values())
    return Finding("table5", claim, REPRODUCED if reproduced else NOT_REPRODUCED,
                   f"min(MAML, ANIL) {percent(min(meta_learned))}% vs "
                   + ", ".join(f"{k} {percent(v)}%" for k, v in others.items()))


def _grade_table7(results: dict) -> Finding:
    claim = "the head matters at training, not at test: NIL head ~ MAML head (Table 7)"
    nil_head, maml_head = results.get("regimes_nil") or {}, results.get("regimes_maml_head") or {}
    keys = [k for k in ("multiclass", "multitask", "random")
            if nil_head.get(k) is not None and maml_head.get(k) is not None]
    if not keys:
        return Finding("table7", claim, NOT_MEASURED, "no MAML-head evaluation of the regimes")
    gaps = {k: 100 * abs(nil_head[k] - maml_head[k]) for k in keys}
    reproduced = max(gaps.values()) <= TOL_ACC_POINTS
    return Finding("table7", claim, REPRODUCED if reproduced else NOT_REPRODUCED,
                   ", ".join(f"{k} |NIL-MAML head| {v:.1f} pts" for k, v in gaps.items())
                   + f"; rule <= {TOL_ACC_POINTS:g}")


def grade(results: dict, details: dict) -> list[Finding]:
    """Table 5: MAML and ANIL above every other regime under a NIL head. Table 7: each regime's
    NIL-head and MAML-head accuracies within 3 points."""
    return [_grade_table5(results), _grade_table7(results)]


def section(results: dict, details: dict) -> list[str]:
    mini = paper_column(results, family="mini")
    index = 0 if mini.endswith("1s") else 1
    nil_head, maml_head = results.get("regimes_nil") or {}, results.get("regimes_maml_head") or {}
    rows = []
    for regime in ("maml", "anil", "multiclass", "multitask", "random", "nil"):
        paper7 = PAPER_TABLE7_MAML_HEAD.get(regime)
        rows.append([regime, percent(nil_head.get(regime)), f"{PAPER_TABLE5_NIL_HEAD[regime][index]:g}",
                     percent(maml_head.get(regime)), "—" if paper7 is None else f"{paper7[index]:g}"])
    lines = ["", "## Table 5 / Table 7 — training regimes, NIL head and MAML head", "",
             f"Accuracy %, mean over seeds. Paper: MiniImageNet {mini}.", ""]
    return lines + markdown_table(
        ["regime", "NIL head", "paper NIL head", "MAML head", "paper MAML head"], rows)


OUTPUT = Output(name="table5", order=100, aliases=("table7",), stage="evaluate", needs=needs,
                compute=compute, grade=grade, section=section, section_order=70,
                evaluations=evaluations)
