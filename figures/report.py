"""``results.json`` / ``details.json`` I/O and ``report.md``: the paper's tables beside ours.

The report is computed only from a results dict (the schema is in :mod:`figures.pipeline`), so
it can be regenerated without training. Each finding of the paper gets ONE line whose verdict is
computed from the numbers with a rule fixed here in advance (the ``TOL_*`` constants); nothing
is tuned to make a finding agree.

>>> from figures.report import findings
>>> [f.status for f in findings({})][:2]
['not measured', 'not measured']
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from figures import paper_values as pv

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
        return f"- **{self.key}** — {self.claim}: **{self.status}** ({self.evidence})"


# --------------------------------------------------------------------------- JSON I/O
def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON atomically (temp file + rename); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: str | os.PathLike) -> dict:
    """Read a JSON file written by :func:`write_json`; ``ValueError`` if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"expected a results file at {path}, got nothing (run the pipeline first)")
    with open(path) as f:
        return json.load(f)


# --------------------------------------------------------------------------- helpers
def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return None
        d = d[k]
    return d


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _pm(mean: float | None, spread: float | None, *, scale: float = 100.0, digits: int = 1) -> str:
    if mean is None:
        return "—"
    if spread is None:
        return f"{scale * mean:.{digits}f}"
    return f"{scale * mean:.{digits}f} ± {scale * spread:.{digits}f}"


def _paper_pm(v: tuple[float, float] | None) -> str:
    return "—" if v is None else f"{v[0]:g} ± {v[1]:g}"


def _f(x: float | None, digits: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def paper_column(results: dict, *, family: str = "any") -> str:
    """The paper's column to set this run beside (same shots; Omniglot for character sets).

    ``family="mini"`` forces a MiniImageNet column (tables the paper gives only there).
    """
    shots = int(results.get("shots", 1))
    shots = 5 if shots >= 5 else 1
    dataset = str(results.get("dataset", "glyphs")).lower()
    if family == "mini" or dataset.startswith("mini"):
        return f"mini-5w{shots}s"
    return f"omniglot-20w{shots}s"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def chance_corrected(value: float, floor: float | None) -> float:
    """``(value - floor) / (1 - floor)``: 0 at the chance level, 1 for identical representations.

    ``floor`` is the same measure between row-shuffled representations (:mod:`figures.pipeline`);
    without one the value is returned as is.
    """
    if floor is None or floor >= 1.0:
        return value
    return (value - floor) / (1.0 - floor)


def _body_mean(per_layer: dict | None, layers=pv.CONV_LAYERS) -> float | None:
    if not per_layer:
        return None
    vals = [per_layer[k] for k in layers if per_layer.get(k) is not None]
    return sum(vals) / len(vals) if vals else None


# --------------------------------------------------------------------------- findings
def _f_table1(r: dict) -> Finding:
    claim = "freezing the body at test time costs little accuracy (Table 1)"
    fr = r.get("freezing")
    if not fr or fr.get("none") is None or fr.get("1,2,3,4") is None:
        return Finding("table1", claim, NOT_MEASURED, "no freezing results")
    drop = 100 * (fr["none"] - fr["1,2,3,4"])
    ok = drop <= TOL_ACC_POINTS
    return Finding("table1", claim, REPRODUCED if ok else NOT_REPRODUCED,
                   f"none {_pct(fr['none'])}% vs all four frozen {_pct(fr['1,2,3,4'])}%: "
                   f"drop {drop:.1f} points, rule <= {TOL_ACC_POINTS:g}")


def _f_fig2(r: dict) -> Finding:
    claim = "conv layers barely change in the inner loop, the head changes (Figure 2)"
    pp = r.get("pre_post")
    if not pp or not pp.get("cca"):
        return Finding("fig2", claim, NOT_MEASURED, "no pre/post similarity")
    floors = r.get("pre_post_chance") or {}
    parts, direction, thresholds = [], True, True
    for m in ("cca", "cka"):
        d, fl = pp.get(m) or {}, floors.get(m) or {}
        if not [k for k in pv.CONV_LAYERS if k in d] or "head" not in d:
            continue
        # Graded on chance-corrected values: 0 = as similar as row-shuffled representations.
        c = {k: chance_corrected(d[k], fl.get(k)) for k in pv.LAYERS if k in d}
        conv = min(c[k] for k in pv.CONV_LAYERS if k in c)
        direction &= conv > c["head"]
        thresholds &= conv > pv.FIG2["conv_min"] and c["head"] < pv.FIG2["head_max"]
        parts.append(f"{m.upper()} min conv {conv:.3f}, head {c['head']:.3f} (raw head "
                     f"{d['head']:.3f}, chance {_f(fl.get('head'), 3)})")
    status = REPRODUCED if direction and thresholds else PARTLY if direction else NOT_REPRODUCED
    return Finding("fig2", claim, status, "chance-corrected: " + "; ".join(parts)
                   + f" (paper: conv > {pv.FIG2['conv_min']}, head < {pv.FIG2['head_max']})")


def _f_fig3(r: dict, d: dict) -> Finding:
    claim = "the body is reused at every stage of training (Figure 3)"
    ck = d.get("checkpoints") if d else None
    if not ck or not ck.get("steps"):
        return Finding("fig3", claim, NOT_MEASURED, "no checkpoint series")
    fr = ck.get("freezing", {})
    cca = _get(ck, "pre_post", "cca") or {}
    ok_all, parts = True, []
    for i, step in enumerate(ck["steps"]):
        drop = None
        if fr.get("none") and fr.get("1,2,3,4"):
            drop = 100 * (fr["none"][i] - fr["1,2,3,4"][i])
            ok_all &= drop <= TOL_ACC_POINTS
        conv = [cca[k][i] for k in pv.CONV_LAYERS if k in cca]
        if conv and "head" in cca:
            ok_all &= min(conv) > cca["head"][i]
        parts.append(f"step {step}: drop {_f(drop, 1)} pts, min conv CCA "
                     f"{_f(min(conv) if conv else None, 3)} vs head {_f(cca.get('head', [None] * (i + 1))[i], 3)}")
    return Finding("fig3", claim, REPRODUCED if ok_all else NOT_REPRODUCED, "; ".join(parts))


def _f_fig6(r: dict) -> Finding:
    claim = "inner-loop weight change is tiny for conv layers, largest for the head (Figure 6)"
    wc = r.get("weight_change")
    if not wc or not wc.get("head"):
        return Finding("fig6", claim, NOT_MEASURED, "no weight change")
    conv = {k: wc[k] for k in pv.CONV_LAYERS if k in wc}
    if not conv:
        return Finding("fig6", claim, NOT_MEASURED, "no conv weight change")
    ratio = max(conv.values()) / wc["head"]
    status = (REPRODUCED if ratio <= TOL_WEIGHT_RATIO else PARTLY if ratio < 1.0 else NOT_REPRODUCED)
    return Finding("fig6", claim, status,
                   ", ".join(f"{k} {v:.3g}" for k, v in {**conv, "head": wc["head"]}.items())
                   + f"; largest conv / head = {ratio:.2f}, rule <= {TOL_WEIGHT_RATIO:g}")


def _f_fig7(r: dict) -> Finding:
    claim = ("cross-seed similarity is the same before and after adaptation: "
             "slope about 1, intercept about 0, R^2 about 1 (Figures 7/8)")
    fits = r.get("cross_seed_fit")
    if not fits:
        return Finding("fig7", claim, NOT_MEASURED, "fewer than two seeds")
    passed, total, parts = 0, 0, []
    for m in ("cca", "cka"):
        for comp, fit in (fits.get(m) or {}).items():
            if not fit or fit.get("slope") is None:
                continue
            total += 1
            ok = (abs(fit["slope"] - 1) <= TOL_SLOPE and abs(fit["intercept"]) <= TOL_INTERCEPT
                  and fit["r2"] >= TOL_R2)
            passed += ok
            parts.append(f"{m.upper()} {comp}: {fit['slope']:.2f}x{fit['intercept']:+.2f}, "
                         f"R^2 {fit['r2']:.2f}")
    if not total:
        return Finding("fig7", claim, NOT_MEASURED, "no regression")
    status = REPRODUCED if passed == total else PARTLY if passed else NOT_REPRODUCED
    return Finding("fig7", claim, status, "; ".join(parts) + f"; rule |slope-1| <= {TOL_SLOPE}, "
                   f"|intercept| <= {TOL_INTERCEPT}, R^2 >= {TOL_R2} for every fit ({passed}/{total})")


def _f_table2(r: dict) -> Finding:
    claim = "ANIL and NIL match MAML's accuracy (Table 2)"
    acc = r.get("accuracy") or {}
    maml = _get(acc, "maml", "mean")
    if maml is None:
        return Finding("table2", claim, NOT_MEASURED, "no MAML accuracy")
    parts, ok = [f"MAML {_pct(maml)}%"], True
    seen = False
    for name in ("anil", "nil"):
        v = _get(acc, name, "mean")
        if v is None:
            continue
        seen = True
        gap = 100 * (v - maml)
        ok &= abs(gap) <= TOL_ACC_POINTS
        parts.append(f"{name.upper()} {_pct(v)}% ({gap:+.1f})")
    if not seen:
        return Finding("table2", claim, NOT_MEASURED, "no ANIL/NIL accuracy")
    return Finding("table2", claim, REPRODUCED if ok else NOT_REPRODUCED,
                   ", ".join(parts) + f"; rule: within {TOL_ACC_POINTS:g} points of MAML either way")


def _f_table2rl(r: dict) -> Finding:
    claim = "ANIL-RL matches MAML-RL's return after adaptation, which beats the return before (Table 2, RL)"
    rl = r.get("rl")
    if not rl:
        return Finding("table2rl", claim, NOT_MEASURED, "no RL runs")
    ok, parts = True, []
    for env, algs in rl.items():
        maml, anil = algs["maml"]["post"]["mean"], algs["anil"]["post"]["mean"]
        gain = maml - algs["maml"]["pre"]["mean"]
        # ANIL not worse than MAML by more than a tenth of MAML's adaptation gain; both adapt
        ok &= anil >= maml - TOL_RL_GAIN * abs(gain) and gain > 0
        ok &= anil > algs["anil"]["pre"]["mean"]
        parts.append(f"{env}: MAML {algs['maml']['pre']['mean']:.1f} -> {maml:.1f}, "
                     f"ANIL {algs['anil']['pre']['mean']:.1f} -> {anil:.1f}")
    return Finding("table2rl", claim, REPRODUCED if ok else NOT_REPRODUCED,
                   "; ".join(parts) + f" (pre -> post); rule: ANIL >= MAML - {TOL_RL_GAIN:g} x "
                   "MAML's gain, and post > pre for both")


def _f_fig5(r: dict, d: dict) -> Finding:
    claim = "MAML and ANIL learning curves nearly coincide (Figure 5)"
    curves = d.get("curves") if d else None
    if not curves or "maml" not in curves or "anil" not in curves:
        return Finding("fig5", claim, NOT_MEASURED, "no learning curves")
    key = next((k for k in ("val_acc", "train_acc") if curves["maml"].get(k) and curves["anil"].get(k)), None)
    if key is None:
        return Finding("fig5", claim, NOT_MEASURED, "no accuracy series")
    a, b = curves["maml"][key], curves["anil"][key]
    n = min(len(a), len(b))
    gap = sum(abs(a[i] - b[i]) for i in range(n)) / n * 100
    final = 100 * abs(a[n - 1] - b[n - 1])
    ok = final <= TOL_ACC_POINTS
    return Finding("fig5", claim, REPRODUCED if ok else NOT_REPRODUCED,
                   f"{key}: final gap {final:.1f} points, mean gap {gap:.1f} over {n} points; "
                   f"rule final <= {TOL_ACC_POINTS:g}")


def _f_table3(r: dict) -> Finding:
    claim = "MAML and ANIL learn similar features (Table 3 / Figure 11)"
    s = r.get("maml_anil_similarity")
    if not s or "anil-maml" not in s:
        return Finding("table3", claim, NOT_MEASURED, "fewer than two seeds or no ANIL runs")
    ok, parts = True, []
    for m in ("cca", "cka"):
        cross = _get(s, "anil-maml", m)
        same = [v for v in (_get(s, "maml-maml", m), _get(s, "anil-anil", m)) if v is not None]
        if cross is None or not same:
            continue
        ok &= cross >= min(same) - TOL_SIMILARITY
        parts.append(f"{m.upper()} ANIL-MAML {cross:.3f} vs same-algorithm min {min(same):.3f}")
    if not parts:
        return Finding("table3", claim, NOT_MEASURED, "no same-algorithm pairs")
    return Finding("table3", claim, REPRODUCED if ok else NOT_REPRODUCED,
                   "; ".join(parts) + f"; rule cross >= same - {TOL_SIMILARITY}")


def _f_table5(r: dict) -> Finding:
    claim = "MAML/ANIL features beat the other training regimes under a NIL head (Table 5)"
    g = r.get("regimes_nil") or {}
    meta_ = [g[k] for k in ("maml", "anil") if g.get(k) is not None]
    others = {k: g[k] for k in ("multiclass", "multitask", "random", "nil") if g.get(k) is not None}
    if not meta_ or not others:
        return Finding("table5", claim, NOT_MEASURED, "regimes missing")
    ok = min(meta_) > max(others.values())
    return Finding("table5", claim, REPRODUCED if ok else NOT_REPRODUCED,
                   f"min(MAML, ANIL) {_pct(min(meta_))}% vs "
                   + ", ".join(f"{k} {_pct(v)}%" for k, v in others.items()))


def _f_table7(r: dict) -> Finding:
    claim = "the head matters at training, not at test: NIL head ~ MAML head (Table 7)"
    nil, mh = r.get("regimes_nil") or {}, r.get("regimes_maml_head") or {}
    keys = [k for k in ("multiclass", "multitask", "random") if nil.get(k) is not None and mh.get(k) is not None]
    if not keys:
        return Finding("table7", claim, NOT_MEASURED, "no MAML-head evaluation of the regimes")
    gaps = {k: 100 * abs(nil[k] - mh[k]) for k in keys}
    ok = max(gaps.values()) <= TOL_ACC_POINTS
    return Finding("table7", claim, REPRODUCED if ok else NOT_REPRODUCED,
                   ", ".join(f"{k} |NIL-MAML head| {v:.1f} pts" for k, v in gaps.items())
                   + f"; rule <= {TOL_ACC_POINTS:g}")


def _f_table6(r: dict) -> Finding:
    claim = "ANIL trains and infers faster than MAML, first-order MAML trains faster (Table 6)"
    t = r.get("timing")
    if not t:
        return Finding("table6", claim, NOT_MEASURED, "no timing")
    keys = ("train_speedup_anil_vs_maml", "inference_speedup_anil_vs_maml", "train_speedup_fomaml_vs_maml")
    vals = {k: t[k] for k in keys if t.get(k) is not None}
    ok = [v > 1.0 for v in vals.values()]
    status = REPRODUCED if ok and all(ok) else PARTLY if any(ok) else NOT_REPRODUCED
    return Finding("table6", claim, status, ", ".join(f"{k} {v:.2f}x" for k, v in vals.items()))


def _f_table8(r: dict) -> Finding:
    claim = "similarity to MAML features: multiclass > random > multitask (Table 8)"
    s = r.get("regime_similarity")
    if not s:
        return Finding("table8", claim, NOT_MEASURED, "no regime similarity")
    ok_all, parts = True, []
    for m in ("cca", "cka"):
        v = {k: _get(s, k, m) for k in ("multiclass", "random", "multitask")}
        if any(x is None for x in v.values()):
            continue
        ok_all &= v["multiclass"] > v["random"] > v["multitask"]
        parts.append(f"{m.upper()} " + " / ".join(f"{k} {x:.3f}" for k, x in v.items()))
    if not parts:
        return Finding("table8", claim, NOT_MEASURED, "regimes missing")
    return Finding("table8", claim, REPRODUCED if ok_all else NOT_REPRODUCED, "; ".join(parts))


def findings(results: dict, details: dict | None = None) -> list[Finding]:
    """Every finding of the paper, each with a verdict computed from ``results``/``details``."""
    d = details or {}
    return [
        _f_table1(results), _f_fig2(results), _f_fig3(results, d), _f_fig6(results),
        _f_fig7(results), _f_table2(results), _f_table2rl(results), _f_fig5(results, d),
        _f_table3(results),
        _f_table5(results), _f_table7(results), _f_table6(results), _f_table8(results),
    ]


# --------------------------------------------------------------------------- tables
def _acc_cell(acc: dict | None) -> str:
    if not acc or acc.get("mean") is None:
        return "—"
    spread = acc.get("std") if acc.get("std") is not None else acc.get("ci95")
    return _pm(acc["mean"], spread)


def _rl_section(r: dict, d: dict) -> list[str]:
    """Table 2's RL rows and the policies' hidden layers before vs after adaptation."""
    rl = r.get("rl") or {}
    if not rl:
        return []
    out = ["", "## Table 2, RL rows — average return, before -> after one inner step", "",
           "Mean ± std over seeds (± 95% CI over test tasks for a single seed); paper: after "
           "adaptation, mean ± std over 3 seeds.", ""]
    rows = []
    for env, algs in rl.items():
        for alg, v in algs.items():
            spread = v["post"]["std"] if v["post"]["std"] is not None else v["post_ci95"][0]
            paper = pv.TABLE2_RL.get(pv.RL_ENV.get(env, env), {}).get(alg)
            rows.append([env, alg.upper(), _f(v["pre"]["mean"], 1),
                         f"{v['post']['mean']:.1f} ± {spread:.1f}", _paper_pm(paper)])
    out += _table(["environment", "method", "before", "after", "paper (after)"], rows)
    for env, algs in ((d or {}).get("rl_pre_post") or {}).items():
        out += ["", f"Hidden layers before vs after adaptation ({env}, first seed; weight "
                    "change = Euclidean distance of the layer's parameters):", ""]
        out += _table(["method", "layer", "CCA", "CKA", "weight change"],
                      [[alg.upper(), k, _f(v["cca"], 3), _f(v["cka"], 3),
                        _f(a["weight_change"].get(k), 3)]
                       for alg, a in algs.items() for k, v in a["similarity"].items()])
    return out


def _difference_section(r: dict) -> list[str]:
    """The bootstrap intervals of the Table 3 / Table 8 differences."""
    ci = r.get("difference_ci") or {}
    if not ci:
        return []
    out = ["", "## Differences with 95% bootstrap intervals", "",
           "Linear CKA on position-averaged conv features, mean over conv1..conv4, test images "
           "resampled 1000 times (`repsim.bootstrap_ci`); an interval that excludes 0 is a "
           "difference these images resolve.", ""]
    return out + _table(["difference", "value", "95% interval"],
                        [[k, _f(v["value"], 3), f"[{_f(v['low'], 3)}, {_f(v['high'], 3)}]"]
                         for k, v in ci.items()])


def _sections(r: dict, d: dict) -> list[str]:
    col = paper_column(r)
    mini = paper_column(r, family="mini")
    out: list[str] = []

    out += ["## Table 1 — freezing layers at test time (MAML)", "",
            f"Accuracy %, mean over seeds ± 95% CI of the mean over test tasks. Paper: MiniImageNet {mini}.", ""]
    fr, frci = r.get("freezing") or {}, r.get("freezing_ci95") or {}
    out += _table(["frozen", "this run", f"paper ({mini})"],
                  [[k, _pm(fr.get(k), frci.get(k)), _paper_pm(pv.TABLE1[k][mini])] for k in pv.FREEZE_KEYS])

    out += ["", "## Figure 2 — similarity before vs after the inner loop", "",
            "Paper: CCA > 0.9 for every conv layer, < 0.5 for the head; CKA the same. Chance: the "
            "same measure between the pre-adaptation representation and the post-adaptation one "
            "with its images shuffled (what unrelated representations of this size give); the "
            "finding is graded on (value - chance) / (1 - chance).", ""]
    pp, ch = r.get("pre_post") or {}, r.get("pre_post_chance") or {}
    out += _table(["layer", "CCA", "CCA chance", "CKA", "CKA chance", "weight change (L2)"],
                  [[k, _f(_get(pp, "cca", k), 3), _f(_get(ch, "cca", k), 3), _f(_get(pp, "cka", k), 3),
                    _f(_get(ch, "cka", k), 3), _f(_get(r, "weight_change", k), 4)] for k in pv.LAYERS])

    out += ["", "## Table 2 / Table 4 — ANIL and NIL match MAML", "",
            f"Accuracy %, mean ± std over seeds (± 95% CI over tasks for a single seed; paper: mean ± std over 3 seeds, column {col}).", ""]
    acc = r.get("accuracy") or {}
    rows = []
    for k in ("maml", "anil", "nil", "fomaml"):
        paper = pv.TABLE2.get(k, {}).get(col)
        rows.append([k.upper() if k != "fomaml" else "first-order MAML", _acc_cell(acc.get(k)), _paper_pm(paper)])
    out += _table(["method", "this run", f"paper ({col})"], rows)

    out += _rl_section(r, d)
    out += ["", "## Table 3 — MAML and ANIL learn similar features", "",
            "Similarity between runs, averaged over the conv layers (the body).", ""]
    s = r.get("maml_anil_similarity") or {}
    out += _table(["pair", "CCA", "CKA", "paper CCA", "paper CKA"],
                  [[k, _f(_get(s, k, "cca"), 3), _f(_get(s, k, "cka"), 3),
                    f"{pv.TABLE3[k][0]:.2f}", f"{pv.TABLE3[k][1]:.2f}"] for k in pv.TABLE3])

    r2 = r.get("cross_seed_r2") or {}
    fits = r.get("cross_seed_fit") or {}
    out += ["", "## Figures 7/8 — cross-seed regression", "",
            "Least-squares fit of each comparison against (L1 pre, L2 pre), one point per seed pair "
            "and conv layer (paper: slope about 1, intercept about 0, R^2 about 1). The finding "
            f"uses the weakest R^2: CCA {_f(r2.get('cca'), 3)}, CKA {_f(r2.get('cka'), 3)}.", ""]
    labels = {"pre_post": "(L1 pre, L2 post)", "post_pre": "(L1 post, L2 pre)",
              "post_post": "(L1 post, L2 post)"}
    out += _table(["measure", "y", "slope", "intercept", "R^2"],
                  [[m.upper(), labels[c], _f(_get(fits, m, c, "slope"), 3),
                    _f(_get(fits, m, c, "intercept"), 3), _f(_get(fits, m, c, "r2"), 3)]
                   for m in ("cca", "cka") for c in labels])

    out += ["", "## Table 5 / Table 7 — training regimes, NIL head and MAML head", "",
            f"Accuracy %, mean over seeds. Paper: MiniImageNet {mini}.", ""]
    idx = 0 if mini.endswith("1s") else 1
    nil, mh = r.get("regimes_nil") or {}, r.get("regimes_maml_head") or {}
    rows = []
    for k in ("maml", "anil", "multiclass", "multitask", "random", "nil"):
        p7 = pv.TABLE7_MAML_HEAD.get(k)
        rows.append([k, _pct(nil.get(k)), f"{pv.TABLE5_NIL_HEAD[k][idx]:g}",
                     _pct(mh.get(k)), "—" if p7 is None else f"{p7[idx]:g}"])
    out += _table(["regime", "NIL head", "paper NIL head", "MAML head", "paper MAML head"], rows)

    out += ["", "## Table 6 — speed (seconds per iteration, same model, same process)", ""]
    t, ts = r.get("timing") or {}, r.get("timing_seconds") or {}
    shots_key = "5w5s" if mini.endswith("5s") else "5w1s"
    rows = []
    for phase in ("train", "inference"):
        for alg in ("maml", "fomaml", "anil"):
            paper = pv.TABLE6[phase][shots_key].get(alg)
            ours = _get(ts, phase, alg)
            if ours is None and paper is None:
                continue
            rows.append([phase, alg, _f(ours, 4), "—" if paper is None else f"{paper:g}"])
    out += _table(["phase", "algorithm", "this run (s)", f"paper TitanXp ({shots_key}, s)"], rows)
    out += [""]
    out += _table(["speed-up", "this run", "paper"],
                  [[k, _f(t.get(k), 2), _f(pv.TABLE6[k][shots_key], 2)]
                   for k in ("train_speedup_anil_vs_maml", "train_speedup_fomaml_vs_maml",
                             "inference_speedup_anil_vs_maml")])

    out += _difference_section(r)
    out += ["", "## Table 8 — training regimes compared with MAML (mean over conv1..conv3)", ""]
    rs = r.get("regime_similarity") or {}
    out += _table(["regime", "CCA", "CKA", "paper CCA", "paper CKA"],
                  [[k, _f(_get(rs, k, "cca"), 3), _f(_get(rs, k, "cka"), 3),
                    f"{pv.TABLE8[k][0]:.2f}", f"{pv.TABLE8[k][1]:.2f}"] for k in pv.TABLE8])
    return out


def render_report(results: dict, details: dict | None = None) -> str:
    """``report.md`` text: header, one line per finding, then every table beside the paper's."""
    r, d = results, details or {}
    seeds = ", ".join(str(s) for s in r.get("seeds", []))
    head = [
        "# Rapid Learning or Feature Reuse? — regenerated",
        "",
        f"- preset: `{r.get('preset', '?')}`; dataset: `{r.get('dataset', '?')}` "
        f"({r.get('ways', '?')}-way {r.get('shots', '?')}-shot); seeds: {seeds or '—'}",
        f"- total seconds: {_f(r.get('seconds'), 1)}"
        + ("; per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in r["stage_seconds"].items())
           if r.get("stage_seconds") else ""),
        "- our accuracies are on this run's dataset and setting; the paper's columns are the closest "
        "setting it reports (Omniglot for character sets), so compare directions, not digits.",
        "",
        "## Findings (direction reproduced? computed from the numbers below)",
        "",
    ]
    head += [f.line() for f in findings(r, d)]
    return "\n".join(head + [""] + _sections(r, d)) + "\n"


def write_report(results: dict, out_dir: str | os.PathLike, details: dict | None = None) -> Path:
    """Write ``report.md`` into ``out_dir`` and return its path."""
    path = Path(out_dir) / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(render_report(results, details))
    os.replace(tmp, path)
    return path
