"""The contract of one output (a figure or a table): what each module of
:mod:`figures.outputs` declares in its ``OUTPUT``.

An output names the runs it needs, computes a typed result from the shared
:class:`figures.context.Context`, writes that result into ``results.json`` / ``details.json``,
grades the paper's finding(s) it covers, renders its section of ``report.md`` and draws its
PNG(s). Every part but ``name`` and ``order`` is optional.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from figures.constants import RunKey

if TYPE_CHECKING:
    from figures.context import Context
    from figures.grading import Finding
    from figures.presets import PipelinePreset

__all__ = ["Output", "OutputResult", "RunKey", "STAGES"]

#: the stages whose seconds ``results.json`` reports, in the order they are listed
STAGES = ("evaluate", "analyse", "timing", "rl")


class OutputResult(Protocol):
    """A typed result: a dataclass that writes itself under its ``results.json`` keys."""

    def write(self, results: dict[str, Any], details: dict[str, Any]) -> None:
        """Store the result in ``results`` (``results.json``) and ``details`` (``details.json``)."""


def _no_runs(preset: PipelinePreset) -> list[RunKey]:
    return []


@dataclass(frozen=True)
class Output:
    """One figure or table of the reproduction.

    Parameters
    ----------
    name : the ``--only`` name (``"fig2"``, ``"table1"``, ``"map"``)
    order : position among the outputs: computation, findings in ``report.md`` and the
        listing of :data:`figures.pipeline.OUTPUTS` follow it
    aliases : other ``--only`` names (``("fig8",)`` for ``fig7``)
    stage : the ``stage_seconds`` entry its computation counts in (one of :data:`STAGES`), or
        None for work too small to time
    needs : ``preset -> [(algorithm, seed), ...]``, the runs it reads
    check : ``preset -> None``, raises ``ValueError`` before any training when it cannot run
    train : ``(preset, runs_dir) -> [(function, args), ...]``, training it needs beside the runs
        of ``needs`` (e.g. RL policies) and not yet done; each job is picklable and runs in the
        train stage's worker pool, before the classification runs
    compute : ``context -> result`` (an :class:`OutputResult`, or None when there is nothing to
        measure, e.g. a cross-seed comparison with a single seed)
    grade : ``(results, details) -> [Finding, ...]``, its findings, from saved numbers alone
    section : ``(results, details) -> [line, ...]``, its section of ``report.md``
    section_order : position of that section in ``report.md`` (default ``order``)
    draw : ``(results, details, out_dir) -> [png path, ...]``
    evaluations : ``context -> [(RunDir, options of Context.evaluate), ...]``, the evaluations
        ``compute`` reads; the pipeline runs those of every selected output in one worker pool
        before the first stage, and ``compute`` reads them back (one it did not declare would
        be evaluated there, alone)
    cost : rough relative time of ``compute`` (seconds on the quick preset); when the analyses
        run in several processes the costliest start first (:mod:`figures.analyses`)
    """

    name: str
    order: int
    aliases: tuple[str, ...] = ()
    stage: str | None = "analyse"
    needs: Callable[[PipelinePreset], list[RunKey]] = _no_runs
    check: Callable[[PipelinePreset], None] | None = None
    train: Callable[[PipelinePreset, Path], list[tuple[Callable, tuple]]] | None = None
    compute: Callable[[Context], OutputResult | None] | None = None
    grade: Callable[[dict, dict], list[Finding]] | None = None
    section: Callable[[dict, dict], list[str]] | None = None
    section_order: int | None = None
    draw: Callable[[dict, dict, str | os.PathLike], list[Path]] | None = None
    evaluations: Callable[[Context], list[tuple[Any, dict[str, Any]]]] | None = None
    cost: float = 1.0

    def __post_init__(self):
        if self.stage is not None and self.stage not in STAGES:
            raise ValueError(f"stage: expected one of {STAGES} or None, got {self.stage!r}")
        if not self.cost >= 0:
            raise ValueError(f"cost: expected a non-negative number, got {self.cost!r}")
