"""How big a reproduction is: the pipeline presets ``tiny``, ``quick`` and ``paper``."""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from figures.constants import REGIMES

__all__ = ["PipelinePreset", "PRESETS", "PER_RUN_FIELDS", "QUICK_SETTING", "make_preset",
           "scale_iterations", "run_name", "run_config", "head_runs"]

PRESETS = ("tiny", "quick", "paper")
# TrainConfig fields the pipeline chooses for each run, or through its own options.
PER_RUN_FIELDS = ("algorithm", "seed", "body_from", "data_root", "iterations")


@dataclass(frozen=True)
class PipelinePreset:
    """How big the whole reproduction is. ``base`` is the TrainConfig every run derives from."""

    name: str
    base: Any                       # meta.config.TrainConfig
    seeds: tuple[int, ...] = (0, 1, 2)   # MAML and ANIL seeds; regimes and FO-MAML use seeds[0]
    eval_tasks: int = 600           # fixed test tasks per evaluation
    analysis_tasks: int = 20        # fixed test tasks for the representation analyses
    analysis_query: int = 15        # query images per class on those tasks (CCA needs rows)
    timing_iterations: int = 20     # timed iterations per algorithm for Table 6
    regimes: tuple[str, ...] = REGIMES
    workers: int = 1                # training runs at once (processes); see make_preset


def _tiny_preset() -> PipelinePreset:
    from meta.config import get_preset

    # seconds: 3-way 1-shot, 8 filters, a dozen iterations
    base = get_preset("tiny").replace(iterations=4, checkpoints=(2, 4), val_every=2,
                                      log_every=1, save_every=2, eval_tasks=6, val_tasks=2)
    return PipelinePreset("tiny", base, seeds=(0, 1), eval_tasks=6, analysis_tasks=1,
                          analysis_query=6, timing_iterations=2)


QUICK_SETTING = "glyphs-miniimagenet-quick"


def _quick_preset(setting: str | None, data_root: str | None,
                  iterations: int | None) -> tuple[PipelinePreset, str | None]:
    from meta.config import get_preset

    # Glyphs 5-way 1-shot under the MiniImageNet protocol by default; at most 1500 iterations
    # (fewer where the setting has fewer), checkpoints at the thirds of the run
    base = get_preset(setting or QUICK_SETTING)
    if data_root is None and base.dataset == "omniglot":
        data_root = _default_omniglot()
    target = iterations if iterations is not None else min(1500, base.iterations)
    base = base.replace(
        iterations=1500, max_seconds=None, checkpoints=(500, 1000, 1500), save_every=250,
        log_every=25, val_every=250, val_tasks=20, eval_tasks=100, batch_size=64)
    if target != base.iterations:
        base = scale_iterations(base, target)
    return PipelinePreset("quick", base, seeds=(0, 1, 2), eval_tasks=100, analysis_tasks=6,
                          analysis_query=10, timing_iterations=10), data_root


def _paper_preset(setting: str | None, data_root: str | None) -> PipelinePreset:
    from meta.config import get_preset

    setting = setting or "omniglot-20w1s"
    base = get_preset(setting)
    if data_root is None and base.dataset == "omniglot":
        data_root = _default_omniglot()
    if data_root is None:
        raise ValueError(f"data_root: expected a folder for {setting}, got none (--data-root)")
    base = base.replace(data_root=str(data_root))
    return PipelinePreset("paper", base, seeds=(0, 1, 2), eval_tasks=600, analysis_tasks=50,
                          analysis_query=15 if base.dataset == "miniimagenet" else 5,
                          timing_iterations=20)


def make_preset(name: str, *, data_root: str | None = None, seeds: Iterable[int] | None = None,
                setting: str | None = None, iterations: int | None = None,
                overrides: Mapping[str, Any] | None = None) -> PipelinePreset:
    """The pipeline preset ``"tiny"``, ``"quick"`` or ``"paper"``.

    ``setting``: a preset of :data:`meta.config.PRESETS` whose protocol the runs follow. Paper:
    default ``"omniglot-20w1s"``, its full budget; MiniImageNet settings need ``data_root``.
    Quick: default :data:`QUICK_SETTING` (Glyphs at 56 px, the MiniImageNet network and
    protocol, 500 iterations); any other setting (e.g. ``"glyphs-quick"``,
    ``"omniglot-5w1s-quick"`` or ``"omniglot-20w1s"`` on the real Omniglot) keeps its protocol
    at the quick budget (1500 iterations, or the setting's own if fewer; 100 test tasks).
    ``iterations``: train every run this many outer steps instead (e.g. fewer iterations of the
    paper preset); checkpoints, validation, logging and saving
    keep their places as fractions of the run (:func:`scale_iterations`). ``overrides``: other
    fields of the runs' common TrainConfig (e.g. ``{"head_init": "glorot"}``); the fields the
    pipeline sets per run (:data:`PER_RUN_FIELDS`) are refused. ``workers`` is one
    single-threaded training process per core.
    """
    if data_root is not None:                  # absolute: runs are found again from any folder
        data_root = str(Path(data_root).expanduser().resolve())
    if setting is not None and name == "tiny":
        raise ValueError(f"setting: expected only with the quick or paper preset, "
                         f"got {setting!r} with {name!r}")
    if name == "tiny":
        preset = _tiny_preset()
    elif name == "quick":
        preset, data_root = _quick_preset(setting, data_root, iterations)
    elif name == "paper":
        preset = _paper_preset(setting, data_root)
    else:
        raise ValueError(f"preset: expected 'tiny', 'quick' or 'paper', got {name!r}")
    if data_root is not None and name != "paper":
        preset = dataclasses.replace(preset, base=preset.base.replace(data_root=str(data_root)))
    if iterations is not None and name != "quick":      # the quick preset scales its own
        preset = dataclasses.replace(preset, base=scale_iterations(preset.base, iterations))
    if overrides:
        refused = sorted(set(overrides) & set(PER_RUN_FIELDS))
        if refused:
            raise ValueError(f"overrides: expected fields other than {list(PER_RUN_FIELDS)} (the "
                             f"pipeline sets those; use --iterations/--seeds/--data-root), "
                             f"got {refused}")
        preset = dataclasses.replace(preset, base=preset.base.replace(**overrides))
    preset = dataclasses.replace(
        preset, workers=max(1, (os.cpu_count() or 1) // max(1, preset.base.threads)))
    if seeds is not None:
        seeds = tuple(int(seed) for seed in seeds)
        if not seeds:
            raise ValueError("seeds: expected at least one seed, got none")
        preset = dataclasses.replace(preset, seeds=seeds)
    return preset


def scale_iterations(base: Any, iterations: int) -> Any:
    """``base`` (a TrainConfig) shortened or lengthened to ``iterations`` outer steps.

    Checkpoints, ``save_every``, ``val_every`` and ``log_every`` keep their fraction of the run
    (the paper's 10k / 20k / 30k of 30000 become 200 / 400 / 600 of 600), at least 1 each;
    ``max_seconds`` is dropped so that every run reaches its last checkpoint.

    >>> from meta.config import get_preset
    >>> cfg = scale_iterations(get_preset("omniglot-20w1s"), 600)
    >>> cfg.iterations, cfg.checkpoints, cfg.val_every
    (600, (200, 400, 600), 20)
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations: expected a positive int, got {iterations!r}")
    ratio = iterations / base.iterations

    def scaled(value: int) -> int:
        return min(iterations, max(1, round(value * ratio)))

    return base.replace(iterations=iterations, max_seconds=None,
                        checkpoints=tuple(sorted({scaled(c) for c in base.checkpoints})),
                        save_every=scaled(base.save_every), val_every=scaled(base.val_every),
                        log_every=scaled(base.log_every))


def _default_omniglot() -> str:
    return os.environ.get("REPSIM_OMNIGLOT") or str(
        Path(__file__).resolve().parents[2] / "shared" / "omniglot")


def run_name(algorithm: str, seed: int) -> str:
    """The folder name of a run: ``"maml-s0"``, ``"multitask-head-s0"``."""
    return f"{algorithm}-s{seed}"


def head_runs(preset: PipelinePreset) -> list[tuple[str, int]]:
    """Table 7's runs: a new head meta-learned with MAML (ANIL's inner loop) on the frozen body
    of each regime (App. D.1); the ``random`` regime already is such a run."""
    return [(f"{regime}-head", preset.seeds[0]) for regime in ("multiclass", "multitask")
            if regime in preset.regimes]


def run_config(preset: PipelinePreset, name: str, seed: int, runs_dir: Path):
    """The TrainConfig of the pipeline's run ``name`` (an algorithm, or ``"<regime>-head"``,
    whose ``body_from`` is the regime's run as an absolute path)."""
    if name.endswith("-head"):
        # absolute, so the same runs are found again from any working directory
        body = Path(runs_dir).resolve() / run_name(name[: -len("-head")], seed)
        return preset.base.replace(algorithm="random", seed=seed, body_from=str(body))
    return preset.base.replace(algorithm=name, seed=seed)
