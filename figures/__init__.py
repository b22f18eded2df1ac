"""figures: regenerate every figure and table of Raghu et al. (ICLR 2020) from saved runs.

>>> from figures import run_pipeline
>>> results = run_pipeline("quick", "results/quick")     # doctest: +SKIP
>>> results["pre_post"]["cca"]["conv1"]                   # doctest: +SKIP

Command line: ``python -m figures --preset quick --out results/quick``. Each figure or table
is one module of :mod:`figures.outputs`; the pipeline only schedules them.
"""
from __future__ import annotations

from figures.pipeline import OUTPUTS, PRESETS, draw_figures, make_preset, run_pipeline
from figures.report import findings, read_json, render_report, write_report

__all__ = [
    "run_pipeline",
    "make_preset",
    "draw_figures",
    "render_report",
    "write_report",
    "findings",
    "read_json",
    "OUTPUTS",
    "PRESETS",
]
