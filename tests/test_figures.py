"""figures: report/JSON writer on synthetic results, the figure modules, and the pipeline end to end."""
from __future__ import annotations

import copy
import json
import math
import os
import random
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import meta
import repsim
from figures.constants import FREEZE_KEYS
from figures.outputs.fig7 import fit_line
from figures.outputs.table1 import PAPER_TABLE1
from figures.outputs.table2 import PAPER_TABLE2
from figures.pipeline import OUTPUTS, draw_figures, make_preset, needed_runs, parse_only, run_config
from figures.presets import run_name
from figures.report import chance_corrected, findings, read_json, render_report, write_json

LAYERS = ("conv1", "conv2", "conv3", "conv4", "head")
PNGS = ("fig2_pre_post.png", "fig3_training.png", "fig5_curves.png", "fig6_weight_change.png",
        "fig7_cross_seed_cca.png", "fig8_cross_seed_cka.png", "fig11_maml_anil.png",
        "fig_network_map.png", "fig2_rl_pre_post.png")


# ----------------------------------------------------------------- a synthetic results dict
def synthetic(reuse: bool = True) -> tuple[dict, dict]:
    """``reuse=True``: numbers agreeing with the paper's findings; ``False``: the opposite."""
    rng = random.Random(0)
    hi, lo = (0.95, 0.3) if reuse else (0.3, 0.95)
    pre_post = {m: {k: (hi if k != "head" else lo) - 0.01 * i for i, k in enumerate(LAYERS)}
                for m in ("cca", "cka")}
    steps = [100, 200, 300]
    results = {
        "preset": "synthetic", "dataset": "glyphs", "ways": 5, "shots": 1, "seeds": [0, 1, 2],
        "iterations": 300,
        "accuracy": {
            "maml": {"mean": 0.80, "ci95": 0.01, "std": 0.005},
            "anil": {"mean": 0.79 if reuse else 0.60, "ci95": 0.01, "std": 0.006},
            "nil": {"mean": 0.81 if reuse else 0.55, "ci95": 0.01, "std": 0.004},
            "fomaml": {"mean": 0.78, "ci95": 0.01, "std": 0.004},
        },
        "freezing": {"none": 0.80, "1": 0.80, "1,2": 0.79, "1,2,3": 0.79,
                     "1,2,3,4": 0.78 if reuse else 0.50},
        "freezing_ci95": {k: 0.01 for k in ("none", "1", "1,2", "1,2,3", "1,2,3,4")},
        "freezing_steps": {"steps": [1, 10, 40], "protocol": 10, "none": [0.79, 0.80, 0.81],
                           "1,2,3,4": [0.45, 0.78 if reuse else 0.50, 0.77]},
        "pre_post": pre_post,
        "weight_change": {"conv1": 0.01, "conv2": 0.02, "conv3": 0.02, "conv4": 0.03,
                          "head": 0.5 if reuse else 0.001},
        "cross_seed_r2": {"cca": 0.97 if reuse else 0.2, "cka": 0.95 if reuse else 0.1},
        "cross_seed_fit": {m: {c: ({"slope": 1.02, "intercept": -0.01, "r2": 0.97} if reuse else
                                   {"slope": 0.4, "intercept": 0.3, "r2": 0.2})
                               for c in ("pre_post", "post_pre", "post_post")} for m in ("cca", "cka")},
        "pre_post_chance": {m: dict.fromkeys(LAYERS, 0.05) for m in ("cca", "cka")},
        "rl": {"nav2d": {
            "maml": {"pre": {"mean": -42.0, "std": 0.2}, "post": {"mean": -20.5, "std": 0.7},
                     "post_ci95": [1.0], "pre_ci95": [1.0]},
            "anil": {"pre": {"mean": -42.0, "std": 0.5},
                     "post": {"mean": -21.0 if reuse else -35.0, "std": 1.0},
                     "post_ci95": [1.0], "pre_ci95": [1.0]}}},
        "maml_anil_similarity": {
            "maml-maml": {"cca": 0.52, "cka": 0.84}, "anil-anil": {"cca": 0.51, "cka": 0.86},
            "anil-maml": {"cca": 0.50 if reuse else 0.2, "cka": 0.83 if reuse else 0.3},
        },
        "regimes_nil": {"maml": 0.82, "anil": 0.81, "multiclass": 0.70 if reuse else 0.9,
                        "multitask": 0.40, "random": 0.55, "nil": 0.60},
        "regimes_maml_head": {"multiclass": 0.69 if reuse else 0.5, "multitask": 0.41, "random": 0.54},
        "regime_similarity": {"maml": {"cca": 0.5, "cka": 0.8},
                              "multiclass": {"cca": 0.45 if reuse else 0.1, "cka": 0.78},
                              "random": {"cca": 0.35, "cka": 0.7},
                              "multitask": {"cca": 0.3, "cka": 0.6}},
        "timing": {"train_speedup_anil_vs_maml": 1.8 if reuse else 0.9,
                   "inference_speedup_anil_vs_maml": 4.0 if reuse else 0.8,
                   "train_speedup_fomaml_vs_maml": 1.6 if reuse else 0.7},
        "timing_seconds": {"train": {"maml": 0.1, "fomaml": 0.06, "anil": 0.055},
                           "inference": {"maml": 0.05, "anil": 0.012}},
        "stage_seconds": {"train": 100.0, "evaluate": 50.0, "analyse": 40.0, "draw": 5.0},
        "seconds": 195.0,
    }
    xs = [rng.uniform(0.3, 0.9) for _ in range(12)]
    noise = 0.01 if reuse else 0.3
    cross = {m: {"x": xs, "layer": [LAYERS[i % 4] for i in range(12)],
                 "pre_post": [x + rng.gauss(0, noise) for x in xs],
                 "post_pre": [x + rng.gauss(0, noise) for x in xs],
                 "post_post": [x + rng.gauss(0, noise) for x in xs]} for m in ("cca", "cka")}
    acc_curve = [0.3, 0.5, 0.7, 0.8]
    details = {
        "checkpoints": {
            "steps": steps,
            "freezing": {k: [0.6, 0.7, v] for k, v in results["freezing"].items()},
            "pre_post": {m: {k: [v, v, v] for k, v in d.items()} for m, d in pre_post.items()},
            "weight_change": {k: [v * 0.5, v * 0.8, v] for k, v in results["weight_change"].items()},
        },
        "curves": {
            alg: {"step": [0, 100, 200, 300], "train_loss": [1.6, 1.0, 0.7, 0.5],
                  "train_acc": acc_curve, "val_step": [0, 100, 200, 300],
                  "val_loss": [1.6, 1.1, 0.8, 0.6],
                  "val_acc": [a - (0 if reuse or alg == "maml" else 0.2) for a in acc_curve]}
            for alg in ("maml", "anil")
        },
        "cross_seed": cross,
        "maml_anil_layers": {p: {m: {k: v[m] + 0.01 * i for i, k in enumerate(LAYERS[:4])}
                                 for m in ("cca", "cka")}
                             for p, v in results["maml_anil_similarity"].items()},
    }
    return copy.deepcopy(results), details


# ----------------------------------------------------------------- report on synthetic results
def _row(text: str, first_cell: str) -> str:
    rows = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    assert rows, f"no table row starting with {first_cell!r}"
    return rows[0]


def test_report_tables_hold_both_paper_and_our_numbers():
    results, details = synthetic()
    text = render_report(results, details)
    # Table 2: ours (80.0 ± std 0.5) beside the paper's 20w1s Omniglot MAML 93.7 ± 0.7
    row = _row(text, "MAML")
    assert "80.0 ± 0.5" in row and "93.7 ± 0.7" in row
    # Table 1: frozen 1,2,3,4 -> ours 78.0 ± 1.0, paper mini 5w1s 46.3 ± 0.4
    row = _row(text, "1,2,3,4")
    assert "78.0 ± 1.0" in row and "46.3 ± 0.4" in row
    # Table 1's test-step series: a second table, its columns the step counts
    assert "| frozen | 1 step | 10 steps | 40 steps |" in text
    steps_rows = [line for line in text.splitlines() if line.startswith("| 1,2,3,4 |")]
    assert len(steps_rows) == 2 and steps_rows[1] == "| 1,2,3,4 | 45.0 | 78.0 | 77.0 |"
    assert "the verdict uses the protocol's 10" in text
    # Table 3 and Table 8 rows
    row = _row(text, "anil-maml")
    assert "0.500" in row and "0.50" in row and "0.83" in row
    row = _row(text, "multitask")
    assert "40.0" in row and "26.5" in row
    # preset, dataset and seeds are stated
    assert "synthetic" in text and "glyphs" in text and "0, 1, 2" in text


def test_findings_flip_when_the_numbers_flip():
    good = {f.key: f.status for f in findings(*synthetic(reuse=True))}
    bad = {f.key: f.status for f in findings(*synthetic(reuse=False))}
    assert set(good) == {"table1", "fig2", "fig3", "fig6", "fig7", "table2", "table2rl", "fig5",
                         "table3", "table5", "table7", "table6", "table8"}
    assert all(v == "reproduced" for v in good.values()), good
    assert all(v == "NOT reproduced" for v in bad.values()), bad
    # exactly one line per finding in the report
    text = render_report(*synthetic(reuse=False))
    assert sum(line.startswith("- **") for line in text.splitlines()) == len(good)


def test_findings_thresholds_are_computed_not_fixed():
    results, details = synthetic()
    results["freezing"]["1,2,3,4"] = results["freezing"]["none"] - 0.029   # 2.9 points: within 3
    assert {f.key: f.status for f in findings(results, details)}["table1"] == "reproduced"
    results["freezing"]["1,2,3,4"] = results["freezing"]["none"] - 0.031   # 3.1 points
    assert {f.key: f.status for f in findings(results, details)}["table1"] == "NOT reproduced"
    # conv above head but below the paper's 0.9: direction only -> partly
    results["pre_post"]["cca"] = {k: (0.6 if k != "head" else 0.3) for k in LAYERS}
    assert {f.key: f.status for f in findings(results, details)}["fig2"] == "partly reproduced"


def status(results, details, key):
    return {f.key: f.status for f in findings(results, details)}[key]


def test_fig2_is_graded_against_the_chance_level():
    results, details = synthetic()
    # raw head 0.55 is above the paper's 0.5, but half of it is chance at these sizes
    results["pre_post"]["cca"]["head"] = results["pre_post"]["cka"]["head"] = 0.55
    results["pre_post_chance"] = {m: dict.fromkeys(LAYERS, 0.0) for m in ("cca", "cka")}
    assert status(results, details, "fig2") == "partly reproduced"
    results["pre_post_chance"]["cca"]["head"] = results["pre_post_chance"]["cka"]["head"] = 0.3
    assert chance_corrected(0.55, 0.3) == pytest.approx(0.25 / 0.7)
    assert status(results, details, "fig2") == "reproduced"
    # a conv layer no more similar than chance is not "barely changed"
    results["pre_post_chance"]["cca"]["conv3"] = results["pre_post"]["cca"]["conv3"] - 0.01
    assert status(results, details, "fig2") == "NOT reproduced"


def test_fig7_needs_slope_one_and_intercept_zero_not_only_r2():
    results, details = synthetic()
    fit = results["cross_seed_fit"]["cka"]["post_post"]
    fit.update(slope=0.5, intercept=0.45, r2=0.99)           # a perfect line, but not y = x
    assert status(results, details, "fig7") == "partly reproduced"
    for m in ("cca", "cka"):
        for f in results["cross_seed_fit"][m].values():
            f.update(slope=1.0, intercept=0.12, r2=0.99)   # offset beyond 0.1
    assert status(results, details, "fig7") == "NOT reproduced"
    for m in ("cca", "cka"):
        for f in results["cross_seed_fit"][m].values():
            f.update(slope=1.14, intercept=-0.09, r2=0.91)
    assert status(results, details, "fig7") == "reproduced"


def test_table2_rl_rule():
    results, details = synthetic()
    rl = results["rl"]["nav2d"]
    rl["anil"]["post"]["mean"] = -20.5 - 0.1 * 21.5 - 0.01        # just beyond a tenth of the gain
    assert status(results, details, "table2rl") == "NOT reproduced"
    rl["anil"]["post"]["mean"] = -10.0                              # better than MAML: matches or beats
    assert status(results, details, "table2rl") == "reproduced"
    rl["maml"]["post"]["mean"] = -43.0                              # MAML does not adapt
    assert status(results, details, "table2rl") == "NOT reproduced"
    text = render_report(*synthetic())
    assert "-20.5 ± 0.7" in _row(text, "nav2d | MAML") and "-20.3 ± 3.2" in _row(text, "nav2d | MAML")


def test_table2_is_two_sided_and_fig6_relative():
    results, details = synthetic()
    results["accuracy"]["anil"]["mean"] = results["accuracy"]["maml"]["mean"] + 0.031
    assert status(results, details, "table2") == "NOT reproduced"   # much better is not "matches"
    results["accuracy"]["anil"]["mean"] = results["accuracy"]["maml"]["mean"] + 0.029
    assert status(results, details, "table2") == "reproduced"
    results["weight_change"] = {"conv1": 0.1, "conv2": 0.1, "conv3": 0.1, "conv4": 0.3, "head": 0.5}
    assert status(results, details, "fig6") == "partly reproduced"   # below the head, not small
    results["weight_change"]["conv4"] = 0.25
    assert status(results, details, "fig6") == "reproduced"
    results["weight_change"]["conv4"] = 0.6
    assert status(results, details, "fig6") == "NOT reproduced"


def test_missing_results_are_reported_as_not_measured():
    assert {f.status for f in findings({})} == {"not measured"}
    assert "not measured" in render_report({"preset": "x"})


def test_json_writer_round_trip_and_rejects_nan(tmp_path):
    results, _ = synthetic()
    path = write_json(results, tmp_path / "results.json")
    assert read_json(path) == json.loads(json.dumps(results))
    with pytest.raises(ValueError):
        write_json({"x": float("nan")}, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]   # no temp file left
    with pytest.raises(ValueError, match="expected a results file"):
        read_json(tmp_path / "missing.json")


def test_paper_values_match_paper_md():
    text = (Path(os.environ.get("REPSIM_SHARED", Path(__file__).resolve().parents[2] / "shared"))
            / "PAPER.md")
    if not text.exists():
        pytest.skip("PAPER.md not found")
    paper = text.read_text()
    for alg, cols in PAPER_TABLE2.items():
        for mean, std in cols.values():
            assert f"{mean:g} ± {std:g}" in paper or f"{mean} ± {std}" in paper, (alg, mean, std)
    for key, cols in PAPER_TABLE1.items():
        assert f"| {key} | {cols['mini-5w1s'][0]} ± {cols['mini-5w1s'][1]} |" in paper


# ----------------------------------------------------------------- figures
def test_fit_line_agrees_with_numpy():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 30)
    y = 0.8 * x + 0.1 + rng.normal(0, 0.05, 30)
    slope, intercept, r2 = fit_line(list(x), list(y))
    ref_slope, ref_intercept = np.polyfit(x, y, 1)
    ref_r2 = np.corrcoef(x, y)[0, 1] ** 2      # simple regression: R^2 = r^2
    assert slope == pytest.approx(ref_slope, rel=1e-10)
    assert intercept == pytest.approx(ref_intercept, rel=1e-10)
    assert r2 == pytest.approx(ref_r2, rel=1e-10)
    assert fit_line([0.0, 1.0, 2.0], [1.0, 3.0, 5.0]) == pytest.approx((2.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="expected two equal-length"):
        fit_line([1.0], [1.0])


def _check_png(path: Path) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        assert w >= 500 and h >= 400
        # not blank: many distinct colours
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50


def test_figures_draw_from_synthetic_results(tmp_path):
    results, details = synthetic()
    paths = draw_figures(results, details, tmp_path, only="fig2,fig7")
    assert sorted(p.name for p in paths) == ["fig2_pre_post.png", "fig7_cross_seed_cca.png",
                                             "fig8_cross_seed_cka.png"]
    for p in paths:
        _check_png(p)


def test_parse_only():
    assert parse_only(None) == OUTPUTS
    assert parse_only("fig2, table1,fig8,table7") == ("fig2", "table1", "fig7", "table5")
    with pytest.raises(ValueError, match="only: expected names"):
        parse_only("fig99")


# ----------------------------------------------------------------- pipeline, tiny preset
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from figures.__main__ import main

    out = tmp_path_factory.mktemp("tiny")
    assert main(["--preset", "tiny", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.slow
def test_tiny_pipeline_writes_every_output(tiny_run):
    out = tiny_run
    for name in PNGS + ("results.json", "details.json", "report.md"):
        assert (out / name).is_file(), name
    for name in PNGS:
        _check_png(out / name)
    r = read_json(out / "results.json")
    assert r["preset"] == "tiny" and r["dataset"] == "glyphs" and r["seeds"] == [0, 1]
    for alg in ("maml", "anil", "nil", "fomaml"):
        assert 0.0 <= r["accuracy"][alg]["mean"] <= 1.0
        assert r["accuracy"][alg]["ci95"] >= 0.0
    assert set(r["freezing"]) == set(FREEZE_KEYS)
    assert all(0.0 <= v <= 1.0 for v in r["freezing"].values())
    for m in ("cca", "cka"):
        assert set(r["pre_post"][m]) == set(LAYERS)
        assert all(-1e-9 <= v <= 1 + 1e-9 for v in r["pre_post"][m].values())
        # each fit is the least-squares line through the saved points (an independent polyfit)
        d = read_json(out / "details.json")["cross_seed"][m]
        for comp, fit in r["cross_seed_fit"][m].items():
            slope, intercept = np.polyfit(d["x"], d[comp], 1)
            assert fit["slope"] == pytest.approx(slope, rel=1e-8, abs=1e-10)
            assert fit["intercept"] == pytest.approx(intercept, rel=1e-8, abs=1e-10)
        assert r["cross_seed_r2"][m] == min(f["r2"] for f in r["cross_seed_fit"][m].values())
        assert set(r["pre_post_chance"][m]) == set(LAYERS)
        for pair in ("maml-maml", "anil-anil", "anil-maml"):
            assert 0.0 <= r["maml_anil_similarity"][pair][m] <= 1.0 + 1e-9
    # Table 1's step series: the protocol's column is the graded evaluation itself, and another
    # column agrees with meta.evaluate called directly on each seed's run
    series = r["freezing_steps"]
    k = series["steps"].index(series["protocol"])
    assert series["none"][k] == pytest.approx(r["freezing"]["none"], abs=1e-12)
    assert series["1,2,3,4"][k] == pytest.approx(r["freezing"]["1,2,3,4"], abs=1e-12)
    j = series["steps"].index(5)
    direct = [meta.evaluate(out / "runs" / f"maml-s{seed}", tasks=r["eval_tasks"],
                            freeze=(1, 2, 3, 4), inner_steps=5)["accuracy"]["mean"]
              for seed in r["seeds"]]
    assert series["1,2,3,4"][j] == pytest.approx(float(np.mean(direct)), abs=1e-12)
    assert set(r["weight_change"]) == set(LAYERS) and all(v >= 0 for v in r["weight_change"].values())
    assert set(r["regimes_nil"]) == {"maml", "anil", "multiclass", "multitask", "random", "nil"}
    assert set(r["regimes_maml_head"]) == {"multiclass", "multitask", "random"}
    assert all(v > 0 and math.isfinite(v) for v in r["timing"].values())
    assert r["seconds"] > 0 and set(r["stage_seconds"]) >= {"train", "evaluate", "analyse", "draw"}
    # the RL rows: nav2d-tiny MAML and ANIL, returns before and after adaptation, the analysis
    rl = r["rl"]["nav2d-tiny"]
    assert set(rl) == {"maml", "anil"}
    for v in rl.values():
        assert v["pre"]["mean"] < 0 and v["post"]["mean"] < 0 and len(v["post"]["per_seed"]) == 1
    sims = read_json(out / "details.json")["rl_pre_post"]["nav2d-tiny"]
    assert all(0 <= x["cka"] <= 1 + 1e-9 for x in sims["maml"]["similarity"].values())
    # bootstrap intervals of the Table 3 / Table 8 differences
    assert set(r["difference_ci"]) == {"anil-maml minus maml-maml", "multiclass minus random (vs MAML)",
                                       "random minus multitask (vs MAML)"}
    for v in r["difference_ci"].values():
        assert -1 <= v["low"] <= v["high"] <= 1 and -1 <= v["value"] <= 1
    assert "95% bootstrap intervals" in (out / "report.md").read_text()
    # the network map: one point per run, a symmetric distance matrix with a zero diagonal
    m = read_json(out / "details.json")["network_map"]
    assert set(m["runs"]) == {"maml-s0", "maml-s1", "anil-s0", "anil-s1", "fomaml-s0",
                              "multiclass-s0", "multitask-s0", "random-s0", "nil-s0"}
    dist = np.array(m["distances"])
    np.testing.assert_allclose(dist, dist.T, atol=1e-12)
    assert np.all(np.diag(dist) < 1e-6) and np.all(dist[~np.eye(len(dist), dtype=bool)] > 0)
    assert np.array(m["xy"]).shape == (len(m["runs"]), 2)
    text = (out / "report.md").read_text()
    assert "preset: `tiny`" in text


@pytest.mark.slow
def test_second_invocation_reuses_runs(tiny_run, monkeypatch):
    import meta
    from figures.__main__ import main

    mtimes = {p: p.stat().st_mtime_ns for p in (tiny_run / "runs").rglob("*.pt")}
    assert len(mtimes) >= 9

    def fail(*a, **k):
        raise AssertionError("a finished run was retrained")

    monkeypatch.setattr(meta, "train", fail)
    assert main(["--preset", "tiny", "--out", str(tiny_run), "--quiet", "--only", "table2,fig2"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (tiny_run / "runs").rglob("*.pt")} == mtimes


@pytest.mark.slow
def test_only_selects_outputs(tiny_run, tmp_path):
    from figures.__main__ import main

    out = tmp_path / "a"
    assert main(["--preset", "tiny", "--out", str(out), "--runs", str(tiny_run / "runs"),
                 "--only", "fig2,table1", "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["fig2_pre_post.png"]
    r = read_json(out / "results.json")
    assert "freezing" in r and "pre_post" in r
    assert "accuracy" not in r and "timing" not in r and "regimes_nil" not in r
    assert (out / "report.md").is_file()


def test_only_trains_what_the_outputs_need():
    preset = make_preset("tiny")
    assert needed_runs(preset, ("fig2", "table1")) == [("maml", 0), ("maml", 1)]
    assert needed_runs(preset, ("fig3",)) == [("maml", 0)]
    assert needed_runs(preset, ("table6",)) == []
    everything = needed_runs(preset, OUTPUTS)
    assert sorted(everything) == sorted([("maml", 0), ("maml", 1), ("anil", 0), ("anil", 1),
                                         ("fomaml", 0), ("multiclass", 0), ("multitask", 0),
                                         ("random", 0), ("nil", 0), ("multiclass-head", 0),
                                         ("multitask-head", 0)])
    # Table 7's heads are trained with MAML on the regime's frozen body, after the regime
    cfg = run_config(preset, "multitask-head", 0, Path("runs"))
    assert cfg.algorithm == "random" and cfg.body_from == str(Path("runs").resolve() / "multitask-s0")
    assert everything.index(("multitask-head", 0)) > everything.index(("multitask", 0))


def test_difference_intervals_do_not_pair_an_image_with_its_copy():
    # A resample repeats about a third of the images; counted as pairs, the copies raise the CKA
    # of an unrelated pair more than that of a related one, and the interval of the difference
    # of those resamples ([0.61, 0.70] here) misses the estimate 0.73. Weighted by
    # multiplicities (repsim.bootstrap_ci's CKA) the resamples straddle it.
    from figures.constants import CONV_LAYERS
    from figures.outputs.table8 import cka_difference_interval

    g = torch.Generator().manual_seed(0)
    ref = [torch.randn(60, 8, generator=g, dtype=torch.float64) for _ in CONV_LAYERS]
    close = [r + 0.5 * torch.randn(60, 8, generator=g, dtype=torch.float64) for r in ref]
    unrelated = [torch.randn(60, 8, generator=g, dtype=torch.float64) for _ in CONV_LAYERS]
    features = {"ref": ref, "close": close, "unrelated": unrelated}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # biased CKA of unrelated data: value vs interval
        got = cka_difference_interval(features, ("close", "ref"), ("unrelated", "ref"))
    expected = sum(float(repsim.linear_cka(c, r)) - float(repsim.linear_cka(u, r))
                   for c, r, u in zip(close, ref, unrelated)) / len(CONV_LAYERS)
    assert got["value"] == pytest.approx(expected, abs=1e-12)
    assert got["low"] < got["value"] < got["high"]
    assert abs((got["low"] + got["high"]) / 2 - got["value"]) < 0.25 * (got["high"] - got["low"])
    same = cka_difference_interval(features, ("close", "ref"), ("close", "ref"))
    assert same == {"value": 0.0, "low": 0.0, "high": 0.0}            # paired: same resamples


def test_costliest_runs_start_first():
    from figures.training import costliest_first

    order = [name for name, _ in costliest_first(needed_runs(make_preset("tiny"), OUTPUTS))]
    assert order == ["maml", "maml", "fomaml", "anil", "anil", "nil", "multitask", "multiclass",
                     "random", "multiclass-head", "multitask-head"]


def test_run_jobs_returns_each_jobs_value_in_job_order():
    from figures.training import run_jobs

    jobs = [(2, 10), (3, 2), (5, 1), (7, 0)]
    assert run_jobs(pow, jobs, workers=1) == [1024, 9, 5, 1]
    finished = []
    assert run_jobs(pow, jobs, workers=2, done=finished.append) == [1024, 9, 5, 1]
    assert sorted(finished) == sorted(jobs)
    assert run_jobs(pow, [], workers=2) == []


def test_analysis_groups_keep_shared_computations_together_costliest_first():
    from figures.analyses import groups
    from figures.outputs import discover

    analyses = [o for o in discover() if o.stage == "analyse"]
    named = [[o.name for o in group] for group in groups(analyses)]
    assert named[0] == ["table8"]                               # the costliest starts first
    assert ["fig3", "fig6"] in named and ["table3", "fig11"] in named
    assert sorted(name for group in named for name in group) == sorted(o.name for o in analyses)


@pytest.mark.slow
def test_analyses_in_worker_processes_equal_one_by_one(tiny_run):
    from figures.analyses import compute_outputs
    from figures.context import Context
    from figures.outputs import discover
    from meta.run import RunDir

    preset = make_preset("tiny")
    analyses = [o for o in discover() if o.stage == "analyse"]
    names = frozenset(o.name for o in analyses) | {"table3"}
    runs = {key: RunDir(tiny_run / "runs" / run_name(*key))
            for key in needed_runs(preset, names)}

    def written(workers):
        context = Context(preset, tiny_run / "runs", runs, names)
        computed = compute_outputs(analyses, context, workers=workers)
        assert [name for name, _ in computed] == [o.name for o in analyses]
        results, details = {}, {}
        for _, result in computed:
            if result is not None:
                result.write(results, details)
        return json.dumps([results, details], sort_keys=True)

    one_by_one = written(1)
    assert "regime_similarity" in one_by_one and "network_map" in one_by_one
    assert written(2) == one_by_one


@pytest.mark.slow
def test_each_outputs_evaluations_are_all_its_compute_reads(tiny_run, monkeypatch):
    # the pipeline runs every declared evaluation up front, in one pool; a compute that read
    # an undeclared one would evaluate it alone, one process, afterwards
    import dataclasses

    from figures.context import Context
    from figures.outputs import discover
    from meta.run import RunDir

    preset = dataclasses.replace(make_preset("tiny"), eval_tasks=3, workers=1)   # none cached
    declared = [o for o in discover() if o.evaluations is not None]
    assert {o.name for o in declared} == {"table1", "table2", "table5", "fig3", "fig6"}
    names = frozenset(o.name for o in declared)
    runs = {key: RunDir(tiny_run / "runs" / run_name(*key)) for key in needed_runs(preset, names)}
    context = Context(preset, tiny_run / "runs", runs, names)
    requests = [request for o in declared for request in o.evaluations(context)]
    assert all(context._cached(run, options)[0] is None for run, options in requests)
    context.prefetch(requests)

    def undeclared(*args, **kwargs):
        raise AssertionError(f"an evaluation no output declared: {args} {kwargs}")

    monkeypatch.setattr(meta, "evaluate", undeclared)
    for output in declared:
        assert output.compute(context) is not None


def _process_state(pid):
    """The state letter of ``/proc/PID/stat`` (``"Z"`` dead and unreaped), None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _children(pid):
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_text(errors="replace")
        except OSError:
            continue
        if int(fields[1]) == pid and "spawn_main" in cmdline:   # not spawn's resource tracker
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_pool_workers_end_with_the_pipeline_process():
    import signal
    import subprocess
    import time

    parent = subprocess.Popen([sys.executable, "-c", "import time; from figures.training import "
                               "run_jobs; run_jobs(time.sleep, [(120,), (120,)], workers=2)"])
    workers = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            workers = _children(parent.pid)
        assert len(workers) == 2
        parent.send_signal(signal.SIGKILL)                     # no clean-up code of its own runs
        parent.wait()
        deadline = time.monotonic() + 60
        while (any(_process_state(pid) not in (None, "Z") for pid in workers)
               and time.monotonic() < deadline):
            time.sleep(0.2)
        assert [_process_state(pid) for pid in workers if _process_state(pid)] in ([], ["Z"],
                                                                                    ["Z", "Z"])
    finally:
        parent.kill()
        for pid in workers:                                    # a failing run leaves none behind
            if _process_state(pid) not in (None, "Z"):
                os.kill(pid, signal.SIGKILL)


def test_runs_are_found_again_from_another_folder(tmp_path, monkeypatch):
    # trained under a relative --out, then asked for under the absolute path: nothing retrains
    from figures.training import train_runs

    preset = make_preset("tiny")
    needed = [("multitask", 0), ("multitask-head", 0)]
    monkeypatch.chdir(tmp_path)
    first = train_runs(preset, Path("out/runs"), needed, quiet=True)
    stamps = {key: (run.path / "checkpoints" / "last.pt").stat().st_mtime_ns
              for key, run in first.items()}
    monkeypatch.chdir(tmp_path / "out")
    again = train_runs(preset, tmp_path / "out" / "runs", needed, quiet=True)
    for key, run in again.items():
        assert run.is_finished(run_config(preset, key[0], key[1], tmp_path / "out" / "runs"))
        assert (run.path / "checkpoints" / "last.pt").stat().st_mtime_ns == stamps[key]


def test_a_moved_runs_folder_is_reused_with_its_head_runs(tmp_path, monkeypatch):
    # Table 7's head runs name their regime's run by absolute path; a runs folder copied
    # elsewhere (e.g. from a cluster) is still finished, and nothing trains again
    import shutil

    from figures.training import _moved_with_its_body, train_runs

    preset = make_preset("tiny")
    needed = [("multitask", 0), ("multitask-head", 0)]
    train_runs(preset, tmp_path / "a" / "runs", needed, quiet=True)
    shutil.copytree(tmp_path / "a" / "runs", tmp_path / "b" / "runs")
    shutil.rmtree(tmp_path / "a")

    def fail(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(meta, "train", fail)
    runs = train_runs(preset, tmp_path / "b" / "runs", needed, quiet=True)
    assert runs[("multitask-head", 0)].path == tmp_path / "b" / "runs" / "multitask-head-s0"
    # a head run trained on another regime's body is not taken for this one
    other = run_config(preset, "multiclass-head", 0, tmp_path / "b" / "runs")
    assert not _moved_with_its_body(runs[("multitask-head", 0)], other)


def test_rl_policies_train_in_the_train_stage_pool(tmp_path):
    from figures.pipeline import extra_training
    from figures.training import train_runs

    preset = make_preset("tiny")
    assert extra_training(preset, tmp_path, ["table1", "fig2"]) == []
    jobs = extra_training(preset, tmp_path, ["table2rl", "fig2rl"])   # the same runs, once each
    assert sorted(Path(args[1]).name for _, args in jobs) == ["rl-nav2d-tiny-anil-s0",
                                                               "rl-nav2d-tiny-maml-s0"]
    train_runs(preset, tmp_path, [], quiet=True, workers=2, extra=jobs)
    for _, args in jobs:
        assert (Path(args[1]) / "checkpoints" / "best.pt").is_file()
    assert extra_training(preset, tmp_path, ["table2rl"]) == []       # finished: nothing left


def test_iterations_scale_the_schedule_with_the_run():
    from figures.presets import scale_iterations
    from meta.config import get_preset

    paper = make_preset("paper", data_root=".", iterations=600).base
    assert (paper.iterations, paper.checkpoints) == (600, (200, 400, 600))
    assert (paper.val_every, paper.save_every, paper.log_every) == (20, 10, 1)
    assert (paper.ways, paper.inner_steps, paper.inner_lr) == (20, 5, 0.1)   # protocol kept
    quick = make_preset("quick", iterations=3000).base
    assert quick.checkpoints == (1000, 2000, 3000) and quick.val_every == 500
    assert quick.max_seconds is None
    default = make_preset("quick").base          # the MiniImageNet protocol at its own budget
    assert (default.iterations, default.checkpoints, default.val_every) == (500, (167, 333, 500), 83)
    assert (default.resolved_network, default.image_size, default.inner_steps) == (
        "miniimagenet", 56, 5)
    other = make_preset("quick", setting="glyphs-quick").base                # 1500 at most
    assert (other.iterations, other.checkpoints, other.resolved_network) == (
        1500, (500, 1000, 1500), "omniglot")
    short = scale_iterations(get_preset("tiny"), 2)
    assert short.checkpoints == (1, 2) and min(short.save_every, short.log_every) >= 1
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="iterations: expected a positive int"):
            scale_iterations(get_preset("tiny"), bad)


def test_cli_iterations_trains_that_many_steps(tmp_path):
    from figures.__main__ import main
    from meta.run import RunDir

    out = tmp_path / "out"
    assert main(["--preset", "tiny", "--out", str(out), "--only", "fig3", "--iterations", "6",
                 "--set", "head_init=glorot", "--quiet"]) == 0
    run = RunDir(out / "runs" / "maml-s0")
    assert run.read_config()["iterations"] == 6
    assert run.read_config()["head_init"] == "glorot"
    results = read_json(out / "results.json")
    assert (results["iterations"], results["head_init"]) == (6, "glorot")
    assert "6 iterations" in (out / "report.md").read_text()
    assert sorted(p.name for p in (run.path / "checkpoints").glob("step-*.pt")) == [
        "step-000003.pt", "step-000006.pt"]
    steps = read_json(out / "details.json")["checkpoints"]["steps"]
    assert steps == [3, 6]


def test_cli_stops_on_a_run_another_process_trains(tmp_path, capsys, run_lock_holder):
    from figures.__main__ import main

    run = tmp_path / "out" / "runs" / "maml-s0"
    with run_lock_holder(run) as pid:
        assert main(["--preset", "tiny", "--out", str(tmp_path / "out"), "--only", "fig3",
                     "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"being trained by process {pid}" in err[0]
        assert not (run / "metrics.jsonl").exists()


def test_cli_set_refuses_the_fields_the_pipeline_chooses(tmp_path, capsys):
    from figures.__main__ import main

    for item in ("seed=3", "algorithm=anil", "iterations=9"):
        assert main(["--preset", "tiny", "--out", str(tmp_path / "x"), "--set", item,
                     "--quiet"]) == 2
        assert "overrides: expected fields other than" in capsys.readouterr().err
    assert main(["--preset", "tiny", "--out", str(tmp_path / "x"), "--set", "ways=1",
                 "--quiet"]) == 2
    assert "ways: expected at least 2" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_rejects_bad_only(tmp_path, capsys):
    from figures.__main__ import main

    assert main(["--preset", "tiny", "--out", str(tmp_path), "--only", "fig99", "--quiet"]) == 2
    assert "only: expected names" in capsys.readouterr().err
    missing = str(tmp_path / "no-omniglot-here")
    assert main(["--preset", "quick", "--setting", "omniglot-5w1s-quick", "--data-root", missing,
                 "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data_root: expected Omniglot" in err[0]
    assert not (tmp_path / "out").exists()              # nothing trained, nothing written


def test_missing_rl_extra_fails_before_training(monkeypatch):
    import meta.rl.envs
    from figures.rl import check_rl

    real = meta.rl.envs.make_env

    def no_mujoco(name, **kw):
        if name.startswith("halfcheetah"):
            raise ModuleNotFoundError("No module named 'mujoco'")
        return real(name, **kw)

    monkeypatch.setattr(meta.rl.envs, "make_env", no_mujoco)
    check_rl("quick")                                  # 2D-Navigation needs only torch
    with pytest.raises(ValueError, match=r"expected the rl extra for halfcheetah-dir"):
        check_rl("paper")


# ----------------------------------------------------------------- a new output is one new file
NEW_OUTPUT_MODULE = '''
"""A test output: the names of the runs it was given."""
from dataclasses import dataclass

from figures._plot import new_figure, save
from figures.grading import REPRODUCED, Finding
from figures.output import Output


@dataclass(frozen=True)
class RunNames:
    names: list

    def write(self, results, details):
        results["extra_runs"] = self.names
        details["extra_series"] = [1.0, 2.0]


def needs(preset):
    return [("maml", preset.seeds[0])]


def compute(context):
    return RunNames(sorted(run.path.name for run in context.runs.values()))


def grade(results, details):
    return [Finding("extra", "the runs were read", REPRODUCED, ", ".join(results.get("extra_runs", [])))]


def section(results, details):
    return ["", "## Extra output", "", "runs: " + ", ".join(results.get("extra_runs", []))]


def draw(results, details, out_dir):
    fig, axes = new_figure(1)
    axes[0][0].plot(details.get("extra_series", []))
    return [save(fig, out_dir, "fig_extra")]


OUTPUT = Output(name="extra", order=1000, aliases=("extra-alias",), needs=needs, compute=compute,
                grade=grade, section=section, section_order=1000, draw=draw)
'''


@pytest.fixture
def dropped_output(tmp_path, monkeypatch):
    """``extra.py`` dropped into the folders of :mod:`figures.outputs` (and nothing else)."""
    import figures.outputs

    folder = tmp_path / "dropped"
    folder.mkdir()
    (folder / "extra.py").write_text(NEW_OUTPUT_MODULE)
    monkeypatch.setattr(figures.outputs, "__path__", [*figures.outputs.__path__, str(folder)])
    yield "extra"
    sys.modules.pop("figures.outputs.extra", None)


def test_a_dropped_output_module_is_discovered_and_scheduled(dropped_output):
    from figures.outputs import discover

    assert [o.name for o in discover()][-1] == "extra"
    assert parse_only("extra-alias,table1") == ("extra", "table1")
    assert "extra" in parse_only(None)
    preset = make_preset("tiny")
    assert needed_runs(preset, ("extra",)) == [("maml", 0)]
    results = {"extra_runs": ["maml-s0"]}
    assert findings(results)[-1] == ("extra", "the runs were read", "reproduced", "maml-s0")
    text = render_report(results)
    assert text.rstrip().endswith("## Extra output\n\nruns: maml-s0")
    assert "- **extra** — the runs were read: **reproduced** (maml-s0)" in text


def test_every_output_module_declares_a_valid_output():
    from figures.outputs import aliases, discover

    outputs = discover()
    assert tuple(o.name for o in outputs) == OUTPUTS
    assert aliases(outputs) == {"fig8": "fig7", "fig9": "fig3", "fig10": "fig5", "table4": "table2",
                                "table7": "table5"}
    preset = make_preset("tiny")
    for output in outputs:
        assert all(isinstance(a, str) and isinstance(s, int) for a, s in output.needs(preset))


@pytest.mark.slow
def test_a_dropped_output_runs_in_the_pipeline(dropped_output, tiny_run, tmp_path):
    from figures.__main__ import main

    out = tmp_path / "extra"
    assert main(["--preset", "tiny", "--out", str(out), "--runs", str(tiny_run / "runs"),
                 "--only", "extra", "--quiet"]) == 0
    assert read_json(out / "results.json")["extra_runs"] == ["maml-s0"]
    assert read_json(out / "details.json")["extra_series"] == [1.0, 2.0]
    assert sorted(p.name for p in out.glob("*.png")) == ["fig_extra.png"]
    assert "runs: maml-s0" in (out / "report.md").read_text()
