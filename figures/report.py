"""``results.json`` / ``details.json`` I/O and ``report.md``: the paper's tables beside ours.

The report is computed only from the saved results, so it can be regenerated without
training: a header, one line per finding of the paper (each graded by the output module that
computes its numbers, with a rule fixed in advance — see :mod:`figures.grading`), then each
output's section, in the order the outputs declare.

>>> from figures.report import findings
>>> [f.status for f in findings({})][:2]
['not measured', 'not measured']
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from figures.grading import (TOL_ACC_POINTS, TOL_INTERCEPT, TOL_R2, TOL_RL_GAIN, TOL_SIMILARITY,
                             TOL_SLOPE, TOL_WEIGHT_RATIO, Finding, chance_corrected, fixed,
                             paper_column)
from figures.outputs import discover
from repsim._io import atomic_write_text

__all__ = [
    "Finding",
    "findings",
    "render_report",
    "write_report",
    "write_json",
    "read_json",
    "paper_column",
    "TOL_ACC_POINTS",
    "TOL_R2",
    "TOL_SLOPE",
    "TOL_INTERCEPT",
    "TOL_SIMILARITY",
    "TOL_WEIGHT_RATIO",
    "TOL_RL_GAIN",
    "chance_corrected",
]


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON atomically; return the path. NaN is a ``ValueError``."""
    return atomic_write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", path)


def read_json(path: str | os.PathLike) -> dict:
    """Read a JSON file written by :func:`write_json`; ``ValueError`` if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"expected a results file at {path}, got nothing (run the pipeline first)")
    with open(path) as f:
        return json.load(f)


def findings(results: dict, details: dict | None = None) -> list[Finding]:
    """Every finding of the paper, each with a verdict computed from ``results``/``details``."""
    details = details or {}
    return [finding for output in discover() if output.grade is not None
            for finding in output.grade(results, details)]


def _sections(results: dict, details: dict) -> list[str]:
    with_section = [output for output in discover() if output.section is not None]
    with_section.sort(key=lambda output: output.order if output.section_order is None
                      else output.section_order)
    lines: list[str] = []
    for output in with_section:
        lines += output.section(results, details)
    return lines


def render_report(results: dict, details: dict | None = None) -> str:
    """``report.md`` text: header, one line per finding, then every table beside the paper's."""
    details = details or {}
    seeds = ", ".join(str(seed) for seed in results.get("seeds", []))
    stages = results.get("stage_seconds")
    head = [
        "# Rapid Learning or Feature Reuse? — regenerated",
        "",
        f"- preset: `{results.get('preset', '?')}`; dataset: `{results.get('dataset', '?')}` "
        f"({results.get('ways', '?')}-way {results.get('shots', '?')}-shot); seeds: {seeds or '—'}",
        f"- protocol: {results.get('iterations', '?')} iterations of meta-batch "
        f"{results.get('meta_batch_size', '?')}; inner steps {results.get('inner_steps', '?')} "
        f"at lr {results.get('inner_lr', '?')} ({results.get('inner_steps_test', '?')} at "
        f"test); head init: {results.get('head_init') or 'as the reference'}; "
        f"network: {results.get('network') or '?'}"
        + (f" at {results['image_size']} px" if results.get("image_size") else "")
        + f"; {results.get('query', '?')} query images per class; "
        f"{results.get('eval_tasks', '?')} test tasks per evaluation",
        f"- total seconds: {fixed(results.get('seconds'), 1)}"
        + ("; per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()) if stages else ""),
        "- our accuracies are on this run's dataset and setting; the paper's columns are the closest "
        "setting it reports (Omniglot for character sets), so compare directions, not digits.",
        "",
        "## Findings (direction reproduced? computed from the numbers below)",
        "",
    ]
    head += [finding.line() for finding in findings(results, details)]
    return "\n".join(head + [""] + _sections(results, details)) + "\n"


def write_report(results: dict, out_dir: str | os.PathLike, details: dict | None = None) -> Path:
    """Write ``report.md`` into ``out_dir`` and return its path."""
    return atomic_write_text(render_report(results, details), Path(out_dir) / "report.md")
