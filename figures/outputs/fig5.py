"""Figure 5 / 10: MAML vs ANIL learning curves (loss and accuracy, train and validation)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from figures._plot import ALG_COLORS, new_figure, save
from figures.context import Context
from figures.grading import NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, TOL_ACC_POINTS, Finding
from figures.output import Output, RunKey
from figures.presets import PipelinePreset
from meta.run import RunDir

__all__ = ["OUTPUT", "CurvesResult", "mean_curves"]

@dataclass(frozen=True)
class CurvesResult:
    """``{algorithm: {step, train_loss, train_acc, val_step, val_loss, val_acc}}`` (means over
    seeds)."""

    curves: dict[str, dict[str, list]]

    def write(self, results: dict, details: dict) -> None:
        details["curves"] = self.curves


def mean_curves(runs: list[RunDir]) -> dict[str, list]:
    """Mean over runs of each ``metrics.jsonl`` series, at the iterations every run logged."""
    logs = [run.metrics() for run in runs]

    def series(column: str) -> tuple[list[int], list[float]]:
        by_iteration: dict[int, list[float]] = {}
        for rows in logs:
            for row in rows:
                if row.get(column) is not None:
                    by_iteration.setdefault(int(row["iteration"]), []).append(float(row[column]))
        iterations = sorted(i for i, values in by_iteration.items() if len(values) == len(logs))
        return iterations, [sum(by_iteration[i]) / len(by_iteration[i]) for i in iterations]

    step, train_loss = series("train_loss")
    _, train_acc = series("train_accuracy")
    val_step, val_loss = series("val_loss")
    _, val_acc = series("val_accuracy")
    return {"step": step, "train_loss": train_loss, "train_acc": train_acc,
            "val_step": val_step, "val_loss": val_loss, "val_acc": val_acc}


def needs(preset: PipelinePreset) -> list[RunKey]:
    return [(algorithm, seed) for algorithm in ("maml", "anil") for seed in preset.seeds]


def compute(context: Context) -> CurvesResult:
    return CurvesResult({algorithm: mean_curves([context.run(algorithm, seed) for seed in context.seeds])
                         for algorithm in ("maml", "anil")})


def grade(results: dict, details: dict) -> list[Finding]:
    """Reproduced when the final accuracy gap (validation, else training) is at most 3 points."""
    claim = "MAML and ANIL learning curves nearly coincide (Figure 5)"
    curves = details.get("curves") if details else None
    if not curves or "maml" not in curves or "anil" not in curves:
        return [Finding("fig5", claim, NOT_MEASURED, "no learning curves")]
    key = next((k for k in ("val_acc", "train_acc") if curves["maml"].get(k) and curves["anil"].get(k)),
               None)
    if key is None:
        return [Finding("fig5", claim, NOT_MEASURED, "no accuracy series")]
    maml, anil = curves["maml"][key], curves["anil"][key]
    count = min(len(maml), len(anil))
    mean_gap = sum(abs(maml[i] - anil[i]) for i in range(count)) / count * 100
    final = 100 * abs(maml[count - 1] - anil[count - 1])
    return [Finding("fig5", claim, REPRODUCED if final <= TOL_ACC_POINTS else NOT_REPRODUCED,
                    f"{key}: final gap {final:.1f} points, mean gap {mean_gap:.1f} over {count} points; "
                    f"rule final <= {TOL_ACC_POINTS:g}")]


def draw(results: dict, details: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Loss and accuracy vs iteration from ``details["curves"]`` -> ``fig5_curves.png``.

    ``details["curves"][alg]`` holds lists ``step``, ``train_loss``, ``train_acc`` and, when
    evaluated, ``val_step``, ``val_loss``, ``val_acc`` (means over seeds).
    """
    curves = details.get("curves") or {}
    fig, axes = new_figure(2, width=4.8, height=3.8)
    for algorithm in ("maml", "anil"):
        curve = curves.get(algorithm)
        if not curve:
            continue
        color = ALG_COLORS[algorithm]
        for ax, kind, scale in ((axes[0][0], "loss", 1.0), (axes[0][1], "acc", 100.0)):
            if curve.get(f"train_{kind}"):
                ax.plot(curve["step"], [scale * v for v in curve[f"train_{kind}"]], color=color,
                        alpha=0.6, linewidth=1, label=f"{algorithm.upper()} train")
            if curve.get(f"val_{kind}"):
                ax.plot(curve.get("val_step") or curve["step"], [scale * v for v in curve[f"val_{kind}"]],
                        color=color, linestyle="--", marker="o", markersize=3, linewidth=1.8,
                        label=f"{algorithm.upper()} validation")
    axes[0][0].set_ylabel("query cross-entropy after adaptation (nats)")
    axes[0][0].set_title("Loss")
    axes[0][1].set_ylabel("query accuracy after adaptation (%)")
    axes[0][1].set_title("Accuracy")
    for ax in axes[0]:
        ax.set_xlabel("training iteration")
        ax.legend(fontsize=8)
    fig.suptitle(f"Figure 5 — MAML vs ANIL learning curves, {results.get('dataset', '?')} "
                 f"(paper: nearly coincide)", fontsize=10)
    return [save(fig, out_dir, "fig5_curves")]


OUTPUT = Output(name="fig5", order=80, aliases=("fig10",), stage=None, needs=needs,
                compute=compute, grade=grade, draw=draw)
