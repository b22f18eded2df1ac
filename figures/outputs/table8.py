"""Table 8: each training regime's features compared with MAML's, and the bootstrap intervals
of the Table 3 / Table 8 differences."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from figures.constants import CONV_LAYERS, MEASURES, REGIME_ORDER
from figures.context import Context
from figures.grading import (NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, Finding, body_mean, fixed,
                             lookup, markdown_table, similarity_table)
from figures.output import Output, RunKey
from figures.presets import PipelinePreset, run_name

__all__ = ["OUTPUT", "PAPER_TABLE8", "RegimeSimilarity", "cka_difference_interval"]

#: similarity to MAML features, mean over conv1..conv3: ``{regime: (cca, cka)}``
PAPER_TABLE8 = {
    "maml": (0.51, 0.83),
    "multiclass": (0.48, 0.79),
    "random": (0.40, 0.72),
    "multitask": (0.28, 0.65),
}
#: Table 8 averages over the first three conv layers, as the paper
TABLE8_LAYERS = CONV_LAYERS[:3]
#: resamples of the test images behind each difference's interval
N_BOOT = 1000


@dataclass(frozen=True)
class RegimeSimilarity:
    """``similarity[regime][measure]``: each regime (first seed) vs MAML (second seed), mean
    over ``conv1..conv3``; ``differences``: ``{name: {value, low, high}}`` with 95% bootstrap
    intervals, or None when Table 3 is not selected or there is one seed."""

    similarity: dict[str, dict[str, float]]
    differences: dict[str, dict[str, float]] | None

    def write(self, results: dict, details: dict) -> None:
        if self.differences is not None:
            results["difference_ci"] = self.differences
        results["regime_similarity"] = self.similarity


def _regimes(preset: PipelinePreset) -> list[str]:
    return [regime for regime in REGIME_ORDER if regime in preset.regimes]


def needs(preset: PipelinePreset) -> list[RunKey]:
    seeds = preset.seeds
    return ([("maml", seed) for seed in seeds]
            + [(regime, seeds[0]) for regime in preset.regimes if regime != "nil"])


def _pooled_features(context: Context, key: RunKey, images: torch.Tensor) -> list[torch.Tensor]:
    """conv1..conv4 of one run on ``images``, each averaged over positions: ``(N, C)``."""
    from meta.analysis import layer_activations

    loaded = context.load(context.run(*key))
    activations = layer_activations(loaded.model, loaded.params, images, layers=CONV_LAYERS)
    return [activations[layer].mean(dim=(2, 3)) for layer in CONV_LAYERS]


def _body_cka_resamples(a: list[torch.Tensor], b: list[torch.Tensor], n_boot: int):
    """Body-mean linear CKA of two runs' layers, on the full data and on ``n_boot`` resamples
    of the images (``repsim.bootstrap_ci`` with generator 0: the same resamples on every call,
    each weighted by its multiplicities, never pairing an image with its own copy)."""
    import repsim

    results = [repsim.bootstrap_ci(x, y, measure="linear_cka", n_boot=n_boot, generator=0)
               for x, y in zip(a, b)]
    return (torch.stack([r.value for r in results]).mean(),
            torch.stack([r.samples for r in results]).mean(dim=0))            # (), (n_boot,)


def _interval(first, second) -> dict[str, float]:
    """95% percentile interval of ``first - second``, each ``(value, samples)`` of
    :func:`_body_cka_resamples` (paired: the same resamples)."""
    (value_1, samples_1), (value_2, samples_2) = first, second
    low, high = torch.quantile(samples_1 - samples_2,
                               torch.tensor([0.025, 0.975], dtype=samples_1.dtype))
    return {"value": float(value_1 - value_2), "low": float(low), "high": float(high)}


def cka_difference_interval(features: dict[str, list[torch.Tensor]], first: tuple[str, str],
                            second: tuple[str, str], *, n_boot: int = N_BOOT) -> dict[str, float]:
    """Percentile bootstrap (test images resampled, 95%) of the body-mean linear CKA of the pair
    ``first`` minus that of ``second``, on position-averaged conv features ``(N, C)`` per layer.
    Both pairs see the same resamples (paired bootstrap)."""
    return _interval(_body_cka_resamples(*(features[name] for name in first), n_boot),
                     _body_cka_resamples(*(features[name] for name in second), n_boot))


def _differences(context: Context) -> dict[str, dict[str, float]]:
    """ANIL-MAML minus MAML-MAML (Table 3) and each step of Table 8's ranking, vs MAML."""
    seeds, regimes = context.seeds, _regimes(context.preset)
    images = torch.cat([task.query_x for task in context.tasks])
    reference = ("maml", seeds[1])
    keys = {("anil", seeds[0]), ("maml", seeds[0]), reference} | {(r, seeds[0]) for r in regimes}
    features = {run_name(*key): _pooled_features(context, key, images) for key in sorted(keys)}
    maml = features[run_name(*reference)]
    against_maml: dict[str, tuple] = {}            # each run's resamples, computed once

    def vs_maml(algorithm: str) -> tuple:
        name = run_name(algorithm, seeds[0])
        if name not in against_maml:
            against_maml[name] = _body_cka_resamples(features[name], maml, N_BOOT)
        return against_maml[name]

    differences = {"anil-maml minus maml-maml": _interval(vs_maml("anil"), vs_maml("maml"))}
    for higher, lower in zip(regimes, regimes[1:]):
        differences[f"{higher} minus {lower} (vs MAML)"] = _interval(vs_maml(higher),
                                                                     vs_maml(lower))
    return differences


def compute(context: Context) -> RegimeSimilarity:
    """Cross-run similarity of each regime (and MAML's first seed) with MAML's second seed."""
    seeds = context.seeds
    differences = (_differences(context) if "table3" in context.selected and len(seeds) > 1
                   else None)
    reference = ("maml", seeds[1] if len(seeds) > 1 else seeds[0])
    similarity = {}
    for regime in ["maml", *_regimes(context.preset)]:
        pre_pre = context.cross((regime, seeds[0]), reference)["pre_pre"]
        similarity[regime] = {m: body_mean(pre_pre[m], TABLE8_LAYERS) for m in MEASURES}
    return RegimeSimilarity(similarity, differences)


def grade(results: dict, details: dict) -> list[Finding]:
    """Reproduced when multiclass > random > multitask in similarity to MAML, CCA and CKA."""
    claim = "similarity to MAML features: multiclass > random > multitask (Table 8)"
    similarity = results.get("regime_similarity")
    if not similarity:
        return [Finding("table8", claim, NOT_MEASURED, "no regime similarity")]
    reproduced, parts = True, []
    for measure in MEASURES:
        values = {k: lookup(similarity, k, measure) for k in REGIME_ORDER}
        if any(v is None for v in values.values()):
            continue
        reproduced &= values["multiclass"] > values["random"] > values["multitask"]
        parts.append(f"{measure.upper()} " + " / ".join(f"{k} {v:.3f}" for k, v in values.items()))
    if not parts:
        return [Finding("table8", claim, NOT_MEASURED, "regimes missing")]
    return [Finding("table8", claim, REPRODUCED if reproduced else NOT_REPRODUCED, "; ".join(parts))]


def _difference_section(results: dict) -> list[str]:
    intervals = results.get("difference_ci") or {}
    if not intervals:
        return []
    lines = ["", "## Differences with 95% bootstrap intervals", "",
             "Linear CKA on position-averaged conv features, mean over conv1..conv4, test "
             f"images resampled {N_BOOT} times (`repsim.bootstrap_ci`: a repeated image is "
             "weighted, never paired with its copy; both sides of a difference see the same "
             "resamples); an interval that excludes 0 is a difference these images resolve.", ""]
    return lines + markdown_table(
        ["difference", "value", "95% interval"],
        [[name, fixed(v["value"], 3), f"[{fixed(v['low'], 3)}, {fixed(v['high'], 3)}]"]
         for name, v in intervals.items()])


def section(results: dict, details: dict) -> list[str]:
    """The bootstrap intervals of the differences, then Table 8 beside the paper."""
    similarity = results.get("regime_similarity") or {}
    lines = _difference_section(results)
    lines += ["", "## Table 8 — training regimes compared with MAML (mean over conv1..conv3)", ""]
    return lines + similarity_table("regime", similarity, PAPER_TABLE8)


OUTPUT = Output(name="table8", order=120, needs=needs, compute=compute, grade=grade,
                section=section, section_order=90,
                cost=20)
