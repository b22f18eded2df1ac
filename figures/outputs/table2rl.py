"""Table 2's RL rows: MAML-RL and ANIL-RL average return before and after one inner step."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from figures.context import Context
from figures.grading import (NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, TOL_RL_GAIN, Finding,
                             fixed, markdown_table, paper_plus_minus)
from figures.output import Output
from figures.presets import PipelinePreset

__all__ = ["OUTPUT", "PAPER_TABLE2_RL", "RL_ENVIRONMENT", "RLResult", "rl_result", "check"]

#: average return after adaptation, mean +- std over 3 seeds
PAPER_TABLE2_RL = {
    "halfcheetah-direction": {"maml": (170.4, 21.0), "anil": (363.2, 14.8)},
    "halfcheetah-velocity": {"maml": (-139.0, 18.9), "anil": (-120.9, 6.3)},
    "2d-navigation": {"maml": (-20.3, 3.2), "anil": (-20.1, 2.3)},
}
#: the paper's environment of each RL preset
RL_ENVIRONMENT = {"nav2d": "2d-navigation", "nav2d-quick": "2d-navigation",
                  "nav2d-tiny": "2d-navigation", "halfcheetah-dir": "halfcheetah-direction",
                  "halfcheetah-vel": "halfcheetah-velocity"}


@dataclass(frozen=True)
class RLResult:
    """``returns``: ``{env: {alg: {pre, post, post_ci95, pre_ci95}}}`` (see
    :func:`figures.rl.run_rl`); ``pre_post``: ``{env: {alg: hidden-layer analysis}}``."""

    returns: dict[str, Any]
    pre_post: dict[str, Any]

    def write(self, results: dict, details: dict) -> None:
        results["rl"] = self.returns
        details["rl_pre_post"] = self.pre_post


def check(preset: PipelinePreset) -> None:
    """``ValueError`` before any training when the environments cannot be built."""
    from figures.rl import check_rl

    check_rl(preset.name)


def rl_training(preset: PipelinePreset, runs_dir) -> list[tuple]:
    """The unfinished MAML-RL / ANIL-RL runs, trained in the train stage's worker pool."""
    from figures.rl import rl_training as jobs

    return jobs(preset, runs_dir)


def rl_result(context: Context) -> RLResult:
    """Train the missing RL runs, evaluate and analyse them (once per pipeline call)."""
    from figures.rl import run_rl

    def run() -> RLResult:
        return RLResult(*run_rl(context.preset.name, context.runs_dir, workers=context.preset.workers))

    return context.shared("rl", run)


def grade(results: dict, details: dict) -> list[Finding]:
    """Reproduced when in every environment ANIL is not worse than MAML by more than a tenth of
    MAML's adaptation gain, and both improve with adaptation."""
    claim = "ANIL-RL matches MAML-RL's return after adaptation, which beats the return before (Table 2, RL)"
    rl = results.get("rl")
    if not rl:
        return [Finding("table2rl", claim, NOT_MEASURED, "no RL runs")]
    reproduced, parts = True, []
    for env, algorithms in rl.items():
        maml, anil = algorithms["maml"]["post"]["mean"], algorithms["anil"]["post"]["mean"]
        gain = maml - algorithms["maml"]["pre"]["mean"]
        reproduced &= anil >= maml - TOL_RL_GAIN * abs(gain) and gain > 0
        reproduced &= anil > algorithms["anil"]["pre"]["mean"]
        parts.append(f"{env}: MAML {algorithms['maml']['pre']['mean']:.1f} -> {maml:.1f}, "
                     f"ANIL {algorithms['anil']['pre']['mean']:.1f} -> {anil:.1f}")
    return [Finding("table2rl", claim, REPRODUCED if reproduced else NOT_REPRODUCED,
                    "; ".join(parts) + f" (pre -> post); rule: ANIL >= MAML - {TOL_RL_GAIN:g} x "
                    "MAML's gain, and post > pre for both")]


def section(results: dict, details: dict) -> list[str]:
    """Table 2's RL rows and the policies' hidden layers before vs after adaptation."""
    rl = results.get("rl") or {}
    if not rl:
        return []
    lines = ["", "## Table 2, RL rows — average return, before -> after one inner step", "",
             "Mean ± std over seeds (± 95% CI over test tasks for a single seed); paper: after "
             "adaptation, mean ± std over 3 seeds.", ""]
    rows = []
    for env, algorithms in rl.items():
        for algorithm, value in algorithms.items():
            post = value["post"]
            spread = post["std"] if post["std"] is not None else value["post_ci95"][0]
            paper = PAPER_TABLE2_RL.get(RL_ENVIRONMENT.get(env, env), {}).get(algorithm)
            rows.append([env, algorithm.upper(), fixed(value["pre"]["mean"], 1),
                         f"{post['mean']:.1f} ± {spread:.1f}", paper_plus_minus(paper)])
    lines += markdown_table(["environment", "method", "before", "after", "paper (after)"], rows)
    for env, algorithms in ((details or {}).get("rl_pre_post") or {}).items():
        lines += ["", f"Hidden layers before vs after adaptation ({env}, first seed; weight "
                      "change = Euclidean distance of the layer's parameters):", ""]
        lines += markdown_table(
            ["method", "layer", "CCA", "CKA", "weight change"],
            [[algorithm.upper(), layer, fixed(value["cca"], 3), fixed(value["cka"], 3),
              fixed(analysis["weight_change"].get(layer), 3)]
             for algorithm, analysis in algorithms.items()
             for layer, value in analysis["similarity"].items()])
    return lines


OUTPUT = Output(name="table2rl", order=70, stage="rl", check=check, train=rl_training,
                compute=rl_result, grade=grade, section=section, section_order=40)
