"""What every output's finding and report section share: the verdicts, the tolerances fixed
before any run, and the number formatting of ``report.md``.

Each finding of the paper gets ONE line whose verdict is computed from the numbers with a rule
fixed here in advance (the ``TOL_*`` constants); nothing is tuned to make a finding agree.

>>> Finding("table1", "a claim", NOT_MEASURED, "no freezing results").line()
'- **table1** — a claim: **not measured** (no freezing results)'
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from figures.constants import CONV_LAYERS

__all__ = [
    "Finding",
    "REPRODUCED",
    "PARTLY",
    "NOT_REPRODUCED",
    "NOT_MEASURED",
    "TOL_ACC_POINTS",
    "TOL_R2",
    "TOL_SLOPE",
    "TOL_INTERCEPT",
    "TOL_SIMILARITY",
    "TOL_WEIGHT_RATIO",
    "TOL_RL_GAIN",
    "chance_corrected",
    "paper_column",
    "lookup",
    "percent",
    "plus_minus",
    "paper_plus_minus",
    "fixed",
    "markdown_table",
    "similarity_table",
    "body_mean",
]

# Verdict rules, fixed before looking at any run (from the paper's own spreads):
TOL_ACC_POINTS = 3.0   # "matches" / "costs little": within 3 accuracy points (paper's gaps <= 2.5)
TOL_R2 = 0.9           # "R^2 about 1"
TOL_SLOPE = 0.15       # "slope about 1": |slope - 1| <= 0.15
TOL_INTERCEPT = 0.1    # "intercept about 0": |intercept| <= 0.1 (similarities are in [0, 1])
TOL_SIMILARITY = 0.05  # "about as similar": within 0.05 (paper: 0.50 vs 0.51)
TOL_WEIGHT_RATIO = 0.5  # "tiny for the body": every conv layer moves at most half as far as the head
TOL_RL_GAIN = 0.1      # RL "matches or beats": ANIL within a tenth of MAML's adaptation gain, or above

REPRODUCED = "reproduced"
PARTLY = "partly reproduced"
NOT_REPRODUCED = "NOT reproduced"
NOT_MEASURED = "not measured"


class Finding(NamedTuple):
    """One finding of the paper and whether this run reproduced its direction."""

    key: str      # e.g. "table1"
    claim: str    # the paper's claim in one phrase
    status: str   # REPRODUCED / PARTLY / NOT_REPRODUCED / NOT_MEASURED
    evidence: str  # the numbers the verdict was computed from

    def line(self) -> str:
        """The finding as one Markdown list item."""
        return f"- **{self.key}** — {self.claim}: **{self.status}** ({self.evidence})"


def chance_corrected(value: float, floor: float | None) -> float:
    """``(value - floor) / (1 - floor)``: 0 at the chance level, 1 for identical representations.

    ``floor`` is the same measure between row-shuffled representations; without one the value
    is returned as is.
    """
    if floor is None or floor >= 1.0:
        return value
    return (value - floor) / (1.0 - floor)


def paper_column(results: Mapping[str, Any], *, family: str = "any") -> str:
    """The paper's column to set this run beside (same shots; MiniImageNet for the MiniImageNet
    data or network, else Omniglot).

    ``family="mini"`` forces a MiniImageNet column (tables the paper gives only there).
    """
    shots = int(results.get("shots", 1))
    shots = 5 if shots >= 5 else 1
    dataset = str(results.get("dataset", "glyphs")).lower()
    if family == "mini" or dataset.startswith("mini") or results.get("network") == "miniimagenet":
        return f"mini-5w{shots}s"
    return f"omniglot-20w{shots}s"


def lookup(tree: Any, *keys: str) -> Any:
    """``tree[k1][k2]...``, or None where a level is missing, None or not a dict."""
    for key in keys:
        if not isinstance(tree, dict) or tree.get(key) is None:
            return None
        tree = tree[key]
    return tree


def percent(fraction: float | None) -> str:
    """A fraction as a percentage with one decimal (``"—"`` for None)."""
    return "—" if fraction is None else f"{100 * fraction:.1f}"


def plus_minus(mean: float | None, spread: float | None, *, scale: float = 100.0,
               digits: int = 1) -> str:
    """``"mean ± spread"`` scaled (percent by default); the mean alone without a spread."""
    if mean is None:
        return "—"
    if spread is None:
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {scale * spread:.{digits}f}"


def paper_plus_minus(value: tuple[float, float] | None) -> str:
    """A paper value ``(mean, spread)`` as printed in the paper."""
    return "—" if value is None else f"{value[0]:g} ± {value[1]:g}"


def fixed(value: float | None, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals (``"—"`` for None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def markdown_table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    """A Markdown table as lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def body_mean(per_layer: Mapping[str, float], layers: tuple[str, ...] = CONV_LAYERS) -> float:
    """Mean of ``per_layer`` over ``layers`` (the body by default)."""
    return sum(per_layer[layer] for layer in layers) / len(layers)


def similarity_table(label: str, similarity: Mapping[str, Any],
                     paper: Mapping[str, tuple[float, float]]) -> list[str]:
    """Markdown rows ``label | CCA | CKA | paper CCA | paper CKA``, one per key of ``paper``
    (``similarity[key]["cca"|"cka"]`` measured, ``paper[key] = (cca, cka)``)."""
    return markdown_table(
        [label, "CCA", "CKA", "paper CCA", "paper CKA"],
        [[key, fixed(lookup(similarity, key, "cca"), 3), fixed(lookup(similarity, key, "cka"), 3),
          f"{cca:.2f}", f"{cka:.2f}"] for key, (cca, cka) in paper.items()])
