"""Table 1: MAML with conv blocks frozen at test time — freezing the body costs little."""
from __future__ import annotations

from dataclasses import dataclass

from figures.constants import FREEZE_BLOCKS, FREEZE_KEYS, SERIES_FREEZE_KEYS
from figures.context import Context
from figures.grading import (NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, TOL_ACC_POINTS, Finding,
                             markdown_table, paper_column, paper_plus_minus, percent, plus_minus)
from figures.output import Output, RunKey
from figures.presets import PipelinePreset
from meta.run import RunDir

__all__ = ["OUTPUT", "PAPER_TABLE1", "STEP_SERIES", "FreezingResult"]

#: MAML on MiniImageNet, blocks frozen at test time: ``{frozen: {setting: (mean %, ci95)}}``
PAPER_TABLE1 = {
    "none": {"mini-5w1s": (46.9, 0.2), "mini-5w5s": (63.1, 0.4)},
    "1": {"mini-5w1s": (46.5, 0.3), "mini-5w5s": (63.0, 0.6)},
    "1,2": {"mini-5w1s": (46.4, 0.4), "mini-5w5s": (62.6, 0.6)},
    "1,2,3": {"mini-5w1s": (46.3, 0.4), "mini-5w5s": (61.2, 0.5)},
    "1,2,3,4": {"mini-5w1s": (46.3, 0.4), "mini-5w5s": (61.0, 0.6)},
}


#: Test-time step counts of the diagnostic series (the protocol's own count is added): how far
#: head-only adaptation is from converged at the protocol's steps. Not graded.
STEP_SERIES = (1, 5, 20)


@dataclass(frozen=True)
class FreezingResult:
    """Accuracy (fraction) and its 95% CI per frozen setting (keys of ``FREEZE_BLOCKS``), and
    ``by_steps = {"steps": [...], "none": [...], "1,2,3,4": [...]}``: mean accuracy with no block
    and with all four frozen, per number of test-time steps."""

    accuracy: dict[str, float]
    ci95: dict[str, float]
    by_steps: dict[str, list]

    def write(self, results: dict, details: dict) -> None:
        results["freezing"] = self.accuracy
        results["freezing_ci95"] = self.ci95
        results["freezing_steps"] = self.by_steps


def needs(preset: PipelinePreset) -> list[RunKey]:
    return [("maml", seed) for seed in preset.seeds]


def evaluations(context: Context) -> list[tuple[RunDir, dict]]:
    """Every seed's MAML run with each setting of frozen blocks and each step count."""
    settings = ([{"freeze": blocks} for blocks in FREEZE_BLOCKS.values()]
                + [{"freeze": FREEZE_BLOCKS[key], "inner_steps": n}
                   for key in SERIES_FREEZE_KEYS for n in _steps(context)])
    return [(context.run("maml", seed), options) for seed in context.seeds for options in settings]


def compute(context: Context) -> FreezingResult:
    """MAML evaluated with each setting of frozen blocks, mean over seeds, and the step series."""
    steps = _steps(context)
    summaries = {key: context.accuracy("maml", context.seeds, freeze=blocks)
                 for key, blocks in FREEZE_BLOCKS.items()}
    series: dict[str, list] = {"steps": steps, "protocol": context.preset.base.inner_steps_test}
    for key in SERIES_FREEZE_KEYS:
        series[key] = [context.accuracy("maml", context.seeds, freeze=FREEZE_BLOCKS[key],
                                        inner_steps=n)["mean"] for n in steps]
    return FreezingResult({key: value["mean"] for key, value in summaries.items()},
                          {key: value["ci95"] for key, value in summaries.items()}, series)


def _steps(context: Context) -> list[int]:
    return sorted({*STEP_SERIES, context.preset.base.inner_steps_test})


def grade(results: dict, details: dict) -> list[Finding]:
    """Reproduced when freezing all four conv blocks drops accuracy by at most 3 points."""
    claim = "freezing the body at test time costs little accuracy (Table 1)"
    frozen = results.get("freezing")
    if not frozen or frozen.get("none") is None or frozen.get("1,2,3,4") is None:
        return [Finding("table1", claim, NOT_MEASURED, "no freezing results")]
    drop = 100 * (frozen["none"] - frozen["1,2,3,4"])
    status = REPRODUCED if drop <= TOL_ACC_POINTS else NOT_REPRODUCED
    return [Finding("table1", claim, status,
                    f"none {percent(frozen['none'])}% vs all four frozen {percent(frozen['1,2,3,4'])}%: "
                    f"drop {drop:.1f} points, rule <= {TOL_ACC_POINTS:g}")]


def section(results: dict, details: dict) -> list[str]:
    mini = paper_column(results, family="mini")
    frozen, ci95 = results.get("freezing") or {}, results.get("freezing_ci95") or {}
    lines = ["## Table 1 — freezing layers at test time (MAML)", "",
             "Accuracy %, mean over seeds ± 95% CI of the mean over test tasks. "
             f"Paper: MiniImageNet {mini}.", ""]
    return lines + markdown_table(
        ["frozen", "this run", f"paper ({mini})"],
        [[key, plus_minus(frozen.get(key), ci95.get(key)), paper_plus_minus(PAPER_TABLE1[key][mini])]
         for key in FREEZE_KEYS]) + _steps_section(results.get("freezing_steps"))


def _steps_section(series: dict | None) -> list[str]:
    if not series or not series.get("steps"):
        return []
    lines = ["", "Test-time steps (not graded; the verdict uses the protocol's "
             f"{series.get('protocol')}): accuracy %, mean over seeds.", ""]
    header = ["frozen", *(f"{n} step{'' if n == 1 else 's'}" for n in series["steps"])]
    rows = [[key, *(percent(v) for v in series.get(key, []))] for key in SERIES_FREEZE_KEYS]
    return lines + markdown_table(header, rows)


OUTPUT = Output(name="table1", order=10, stage="evaluate", needs=needs, compute=compute,
                grade=grade, section=section, evaluations=evaluations)
