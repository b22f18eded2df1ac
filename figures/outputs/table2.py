"""Table 2 / Table 4: ANIL and NIL (and first-order MAML) match MAML's accuracy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from figures.context import Context
from figures.grading import (NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, TOL_ACC_POINTS, Finding,
                             lookup, markdown_table, paper_column, paper_plus_minus, percent,
                             plus_minus)
from figures.output import Output, RunKey
from figures.presets import PipelinePreset
from meta.run import RunDir

__all__ = ["OUTPUT", "PAPER_TABLE2", "AccuracyResult"]

#: accuracy (%), mean +- std over 3 seeds: ``{method: {setting: (mean, std)}}``
PAPER_TABLE2 = {
    "maml": {
        "omniglot-20w1s": (93.7, 0.7), "omniglot-20w5s": (96.4, 0.1),
        "mini-5w1s": (46.9, 0.2), "mini-5w5s": (63.1, 0.4),
    },
    "anil": {
        "omniglot-20w1s": (96.2, 0.5), "omniglot-20w5s": (98.0, 0.3),
        "mini-5w1s": (46.7, 0.4), "mini-5w5s": (61.5, 0.5),
    },
    "nil": {
        "omniglot-20w1s": (96.7, 0.3), "omniglot-20w5s": (98.0, 0.04),
        "mini-5w1s": (48.0, 0.7), "mini-5w5s": (62.2, 0.5),
    },
}
METHODS = ("maml", "anil", "nil", "fomaml")


@dataclass(frozen=True)
class AccuracyResult:
    """``{method: {mean, ci95, std, per_seed}}`` (fractions) for MAML, ANIL, FO-MAML and NIL
    (ANIL's body with a NIL head)."""

    accuracy: dict[str, dict[str, Any]]

    def write(self, results: dict, details: dict) -> None:
        results["accuracy"] = self.accuracy


def needs(preset: PipelinePreset) -> list[RunKey]:
    seeds = preset.seeds
    return ([("maml", seed) for seed in seeds] + [("anil", seed) for seed in seeds]
            + [("fomaml", seeds[0])])


def evaluations(context: Context) -> list[tuple[RunDir, dict]]:
    """Each run of :func:`needs` as trained, and ANIL's runs with the NIL head."""
    return ([(context.run(key[0], key[1]), {}) for key in needs(context.preset)]
            + [(context.run("anil", seed), {"head": "nil"}) for seed in context.seeds])


def compute(context: Context) -> AccuracyResult:
    """MAML and ANIL over every seed, first-order MAML on the first seed, NIL on ANIL's runs."""
    seeds = context.seeds
    accuracy = {algorithm: context.accuracy(algorithm, seeds if algorithm != "fomaml" else seeds[:1])
                for algorithm in ("maml", "anil", "fomaml")}
    accuracy["nil"] = context.accuracy("anil", seeds, head="nil")
    return AccuracyResult(accuracy)


def grade(results: dict, details: dict) -> list[Finding]:
    """Reproduced when ANIL and NIL are within 3 points of MAML, either way."""
    claim = "ANIL and NIL match MAML's accuracy (Table 2)"
    accuracy = results.get("accuracy") or {}
    maml = lookup(accuracy, "maml", "mean")
    if maml is None:
        return [Finding("table2", claim, NOT_MEASURED, "no MAML accuracy")]
    parts, reproduced, seen = [f"MAML {percent(maml)}%"], True, False
    for name in ("anil", "nil"):
        value = lookup(accuracy, name, "mean")
        if value is None:
            continue
        seen = True
        gap = 100 * (value - maml)
        reproduced &= abs(gap) <= TOL_ACC_POINTS
        parts.append(f"{name.upper()} {percent(value)}% ({gap:+.1f})")
    if not seen:
        return [Finding("table2", claim, NOT_MEASURED, "no ANIL/NIL accuracy")]
    return [Finding("table2", claim, REPRODUCED if reproduced else NOT_REPRODUCED,
                    ", ".join(parts) + f"; rule: within {TOL_ACC_POINTS:g} points of MAML either way")]


def _accuracy_cell(summary: dict | None) -> str:
    if not summary or summary.get("mean") is None:
        return "—"
    spread = summary.get("std") if summary.get("std") is not None else summary.get("ci95")
    return plus_minus(summary["mean"], spread)


def section(results: dict, details: dict) -> list[str]:
    column = paper_column(results)
    accuracy = results.get("accuracy") or {}
    lines = ["", "## Table 2 / Table 4 — ANIL and NIL match MAML", "",
             "Accuracy %, mean ± std over seeds (± 95% CI over tasks for a single seed; paper: "
             f"mean ± std over 3 seeds, column {column}).", ""]
    return lines + markdown_table(
        ["method", "this run", f"paper ({column})"],
        [[method.upper() if method != "fomaml" else "first-order MAML",
          _accuracy_cell(accuracy.get(method)),
          paper_plus_minus(PAPER_TABLE2.get(method, {}).get(column))] for method in METHODS])


OUTPUT = Output(name="table2", order=60, aliases=("table4",), stage="evaluate", needs=needs,
                compute=compute, grade=grade, section=section, section_order=30,
                evaluations=evaluations)
