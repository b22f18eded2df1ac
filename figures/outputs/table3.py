"""Table 3: MAML and ANIL learn similar features (cross-seed similarity over the body)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from figures.constants import MEASURES
from figures.context import Context, mean_over
from figures.grading import (NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, TOL_SIMILARITY, Finding,
                             body_mean, lookup, similarity_table)
from figures.output import Output, RunKey
from figures.presets import PipelinePreset

__all__ = ["OUTPUT", "PAPER_TABLE3", "AlgorithmSimilarity", "algorithm_similarity"]

#: similarity averaged over the body: ``{pair: (cca, cka)}``
PAPER_TABLE3 = {
    "maml-maml": (0.51, 0.83),
    "anil-anil": (0.51, 0.86),
    "anil-maml": (0.50, 0.83),
}


@dataclass(frozen=True)
class AlgorithmSimilarity:
    """Runs of different seeds compared before adaptation: ``per_layer[pair][measure][layer]``
    (mean over seed pairs) and ``body[pair][measure]`` (its mean over ``conv1..conv4``)."""

    per_layer: dict[str, dict[str, dict[str, float]]]
    body: dict[str, dict[str, float]]

    def write(self, results: dict, details: dict) -> None:
        details["maml_anil_layers"] = self.per_layer
        results["maml_anil_similarity"] = self.body


def needs(preset: PipelinePreset) -> list[RunKey]:
    return [(algorithm, seed) for algorithm in ("maml", "anil") for seed in preset.seeds]


def _compute(context: Context) -> AlgorithmSimilarity | None:
    seeds = context.seeds
    pairs = list(itertools.combinations(seeds, 2))
    if not pairs:
        return None
    groups = {"maml-maml": [(("maml", a), ("maml", b)) for a, b in pairs],
              "anil-anil": [(("anil", a), ("anil", b)) for a, b in pairs],
              "anil-maml": [(("anil", a), ("maml", b)) for a, b in itertools.permutations(seeds, 2)]}
    per_layer = {group: mean_over([context.cross(first, second)["pre_pre"] for first, second in runs])
                 for group, runs in groups.items()}
    body = {group: {m: body_mean(values[m]) for m in MEASURES} for group, values in per_layer.items()}
    return AlgorithmSimilarity(per_layer, body)


def algorithm_similarity(context: Context) -> AlgorithmSimilarity | None:
    """MAML-MAML, ANIL-ANIL and ANIL-MAML similarity (None with a single seed); Table 3 and
    Figure 11 share it."""
    return context.shared("algorithm_similarity", lambda: _compute(context))


def grade(results: dict, details: dict) -> list[Finding]:
    """Reproduced when ANIL-MAML similarity is at least the smaller same-algorithm similarity
    minus 0.05, for CCA and CKA."""
    claim = "MAML and ANIL learn similar features (Table 3 / Figure 11)"
    similarity = results.get("maml_anil_similarity")
    if not similarity or "anil-maml" not in similarity:
        return [Finding("table3", claim, NOT_MEASURED, "fewer than two seeds or no ANIL runs")]
    reproduced, parts = True, []
    for measure in MEASURES:
        cross = lookup(similarity, "anil-maml", measure)
        same = [v for v in (lookup(similarity, "maml-maml", measure),
                            lookup(similarity, "anil-anil", measure)) if v is not None]
        if cross is None or not same:
            continue
        reproduced &= cross >= min(same) - TOL_SIMILARITY
        parts.append(f"{measure.upper()} ANIL-MAML {cross:.3f} vs same-algorithm min {min(same):.3f}")
    if not parts:
        return [Finding("table3", claim, NOT_MEASURED, "no same-algorithm pairs")]
    return [Finding("table3", claim, REPRODUCED if reproduced else NOT_REPRODUCED,
                    "; ".join(parts) + f"; rule cross >= same - {TOL_SIMILARITY}")]


def section(results: dict, details: dict) -> list[str]:
    similarity = results.get("maml_anil_similarity") or {}
    lines = ["", "## Table 3 — MAML and ANIL learn similar features", "",
             "Similarity between runs, averaged over the conv layers (the body).", ""]
    return lines + similarity_table("pair", similarity, PAPER_TABLE3)


OUTPUT = Output(name="table3", order=90, needs=needs, compute=algorithm_similarity, grade=grade,
                section=section, section_order=50,
                cost=4.5)
