"""Network map: every trained run's penultimate representation placed on one 2-D map.

Not a figure of the paper: it puts the MAML, ANIL and first-order MAML seeds and the training
regimes of Sec. 5.2 side by side, from the shape distance (Williams et al. 2021) between their
features on the same test images, embedded with metric MDS.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from figures._plot import ALG_COLORS, new_figure, save
from figures.context import Context
from figures.output import Output, RunKey
from figures.presets import PipelinePreset, run_name

__all__ = ["OUTPUT", "NetworkMap"]

_COLORS = {**ALG_COLORS, "multiclass": "#ff7f0e", "multitask": "#8c564b", "random": "#7f7f7f"}


@dataclass(frozen=True)
class NetworkMap:
    """``runs`` (names), their ``distances`` (angular shape distance, ``(runs, runs)``) and
    2-D ``xy`` coordinates ``(runs, 2)``, from ``samples`` test images at shape ``alpha``."""

    runs: list[str]
    alpha: float
    samples: int
    distances: list[list[float]]
    xy: list[list[float]]

    def write(self, results: dict, details: dict) -> None:
        details["network_map"] = {"runs": self.runs, "alpha": self.alpha, "samples": self.samples,
                                  "distances": self.distances, "xy": self.xy}


def needs(preset: PipelinePreset) -> list[RunKey]:
    seeds = preset.seeds
    return ([("fomaml", seeds[0])]
            + [(algorithm, seed) for algorithm in ("maml", "anil") for seed in seeds]
            + [(regime, seeds[0]) for regime in preset.regimes])


def compute(context: Context, *, alpha: float = 1.0) -> NetworkMap:
    """Penultimate features of every trained run (head runs aside) on the same test images,
    their pairwise angular shape distances and a 2-D metric-MDS embedding."""
    import repsim
    from meta.algorithms import body_features

    images = torch.cat([task.query_x for task in context.tasks])     # (tasks*ways*query, C, H, W)
    names = {run_name(*key): run for key, run in context.runs.items() if not key[0].endswith("-head")}
    features = {}
    for name, run in sorted(names.items()):
        loaded = context.load(run)
        with torch.no_grad():
            features[name] = body_features(loaded.model, loaded.params, images)  # (N, feature_dim)
    distances = repsim.pairwise_distances(features, measure="shape", alpha=alpha, score="angular")
    xy = repsim.embed_distances(distances, n_components=2, seed=0)
    return NetworkMap(list(features), alpha, int(images.shape[0]), distances.tolist(),
                      [[float(a), float(b)] for a, b in xy])


def draw(results: dict, details: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Scatter of ``details["network_map"]`` (``runs``, ``xy``, ``distances``) ->
    ``fig_network_map.png``; one colour per algorithm, each point labelled with its run."""
    network_map = details.get("network_map") or {}
    fig, axes = new_figure(1, width=5.6, height=4.6)
    ax = axes[0][0]
    seen = set()
    for run, (x, y) in zip(network_map.get("runs", []), network_map.get("xy", [])):
        algorithm = run.rsplit("-s", 1)[0]
        ax.scatter([x], [y], s=60, color=_COLORS.get(algorithm, "black"),
                   label=None if algorithm in seen else algorithm)
        ax.annotate(run, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        seen.add(algorithm)
    ax.set_xlabel("MDS coordinate 1 (shape distance, radians)")
    ax.set_ylabel("MDS coordinate 2")
    if seen:
        ax.legend(fontsize=7, loc="best")
    ax.set_title(f"penultimate features, angular shape distance (alpha={network_map.get('alpha', 1.0)}), "
                 f"{network_map.get('samples', '?')} test images", fontsize=8)
    fig.suptitle("Where the training algorithms' features lie relative to each other", fontsize=10)
    return [save(fig, out_dir, "fig_network_map")]


OUTPUT = Output(name="map", order=130, needs=needs, compute=compute, draw=draw,
                cost=3.5)
