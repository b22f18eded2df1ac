"""The paper pipeline: train what is missing, evaluate, analyse, write results, draw.

``run_pipeline(preset, out_dir)`` is what ``python -m figures`` calls. Training goes through
:func:`meta.train.train` only; a run whose ``checkpoints/last.pt`` already reached its final
iteration is never trained again, a half-finished one is resumed. Evaluations are cached by
:func:`meta.evaluate.evaluate` in each run directory (``eval*.json``) and reused.

Outputs in ``out_dir``:

``results.json``
    ``preset, dataset, ways, shots, seeds, iterations, accuracy{maml,anil,nil,fomaml:{mean,ci95,
    std,per_seed}}, freezing{none,1,1,2,1,2,3,1,2,3,4}, freezing_ci95, pre_post{cca,cka:{layer}},
    weight_change{layer}, cross_seed_r2{cca,cka}, cross_seed_fit, maml_anil_similarity{pair:
    {cca,cka}}, regimes_nil{regime}, regimes_maml_head{regime}, regime_similarity{regime:
    {cca,cka}}, timing{train_speedup_anil_vs_maml, inference_speedup_anil_vs_maml,
    train_speedup_fomaml_vs_maml}, timing_seconds, stage_seconds, seconds``. Accuracies are
    fractions; similarities in [0, 1]; layers ``conv1..conv4, head``. ``cross_seed_r2`` is the
    weakest R^2 of the paper's three regressions (``cross_seed_fit`` has all three);
    ``maml_anil_similarity`` compares different seeds before adaptation, averaged over
    ``conv1..conv4``; ``regime_similarity`` compares each regime (first seed) with MAML (second
    seed), averaged over ``conv1..conv3`` as Table 8.
``details.json``
    Series the figures need: ``checkpoints{steps, freezing{key: [acc]}, pre_post{cca,cka:
    {layer: [..]}}, weight_change{layer: [..]}}``, ``curves{maml,anil: {step, train_loss,
    train_acc, val_step, val_loss, val_acc}}``, ``cross_seed{cca,cka: {x, pre_post, post_pre,
    post_post, layer, pair}}``, ``maml_anil_layers{pair: {cca,cka: {layer}}}``.
``report.md`` and one PNG per figure.
"""
from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import logging
import multiprocessing
import os
import statistics
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from figures import fig2_pre_post, fig3_training, fig5_curves, fig6_weight_change
from figures import fig2_rl, fig7_cross_seed, fig11_maml_anil, fig_network_map
from figures import report as report_mod

__all__ = [
    "PipelinePreset",
    "PRESETS",
    "OUTPUTS",
    "FIGURES",
    "make_preset",
    "parse_only",
    "run_pipeline",
    "draw_figures",
    "run_is_finished",
    "run_config",
]

log = logging.getLogger(__name__)

LAYERS = ("conv1", "conv2", "conv3", "conv4", "head")
CONV = LAYERS[:4]
FREEZES = {"none": (), "1": (1,), "1,2": (1, 2), "1,2,3": (1, 2, 3), "1,2,3,4": (1, 2, 3, 4)}
REGIMES = ("multiclass", "multitask", "random", "nil")

FIGURES = {m.NAME: m for m in (fig2_pre_post, fig3_training, fig5_curves, fig6_weight_change,
                               fig7_cross_seed, fig11_maml_anil, fig_network_map, fig2_rl)}
TABLES = ("table1", "table2", "table2rl", "table3", "table5", "table6", "table8")
OUTPUTS = tuple(FIGURES) + TABLES
_ALIASES = {"fig8": "fig7", "fig9": "fig3", "fig10": "fig5", "table4": "table2", "table7": "table5"}


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


def make_preset(name: str, *, data_root: str | None = None, seeds: Iterable[int] | None = None,
                setting: str | None = None) -> PipelinePreset:
    """The pipeline preset ``"tiny"``, ``"quick"`` or ``"paper"`` (see the module docs).

    ``setting``: a preset of :data:`meta.config.PRESETS` whose protocol the runs follow. Paper:
    default ``"omniglot-20w1s"``, its full budget; MiniImageNet settings need ``data_root``.
    Quick: default ``"glyphs-quick"``; any other setting (e.g. ``"omniglot-5w1s-quick"`` or
    ``"omniglot-20w1s"`` on the real Omniglot) keeps its protocol at the quick budget (1500
    iterations, 100 test tasks).
    """
    from meta.config import get_preset

    if setting is not None and name == "tiny":
        raise ValueError(f"setting: expected only with the quick or paper preset, got {setting!r} with {name!r}")
    if name == "tiny":
        # seconds: 3-way 1-shot, 8 filters, a dozen iterations
        base = get_preset("tiny").replace(iterations=4, checkpoints=(2, 4), val_every=2,
                                          log_every=1, save_every=2, eval_tasks=6, val_tasks=2)
        p = PipelinePreset("tiny", base, seeds=(0, 1), eval_tasks=6, analysis_tasks=1,
                           analysis_query=6, timing_iterations=2)
    elif name == "quick":
        # minutes on 2 CPU cores: Glyphs 5-way 1-shot, the glyphs-quick protocol, 1500 iterations
        base = get_preset(setting or "glyphs-quick")
        if data_root is None and base.dataset == "omniglot":
            data_root = _default_omniglot()
        base = base.replace(
            iterations=1500, max_seconds=None, checkpoints=(500, 1000, 1500), save_every=250,
            log_every=25, val_every=250, val_tasks=20, eval_tasks=100, batch_size=64)
        p = PipelinePreset("quick", base, seeds=(0, 1, 2), eval_tasks=100, analysis_tasks=6,
                           analysis_query=10, timing_iterations=10)
    elif name == "paper":
        setting = setting or "omniglot-20w1s"
        base = get_preset(setting)
        if data_root is None and base.dataset == "omniglot":
            data_root = _default_omniglot()
        if data_root is None:
            raise ValueError(f"data_root: expected a folder for {setting}, got none (--data-root)")
        base = base.replace(data_root=str(data_root))
        p = PipelinePreset("paper", base, seeds=(0, 1, 2), eval_tasks=600, analysis_tasks=50,
                           analysis_query=15 if base.dataset == "miniimagenet" else 5,
                           timing_iterations=20)
    else:
        raise ValueError(f"preset: expected 'tiny', 'quick' or 'paper', got {name!r}")
    if data_root is not None and name != "paper":
        p = dataclasses.replace(p, base=p.base.replace(data_root=str(data_root)))
    # One single-threaded training process per core (at least one).
    p = dataclasses.replace(p, workers=max(1, (os.cpu_count() or 1) // max(1, p.base.threads)))
    if seeds is not None:
        seeds = tuple(int(s) for s in seeds)
        if not seeds:
            raise ValueError("seeds: expected at least one seed, got none")
        p = dataclasses.replace(p, seeds=seeds)
    return p


PRESETS = ("tiny", "quick", "paper")


def _default_omniglot() -> str:
    return os.environ.get("REPSIM_OMNIGLOT") or str(
        Path(__file__).resolve().parents[2] / "shared" / "omniglot")


def parse_only(only: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"fig2,table1"`` -> ``("fig2", "table1")`` (aliases fig8->fig7, table7->table5, ...)."""
    if only is None:
        return OUTPUTS
    items = only.split(",") if isinstance(only, str) else list(only)
    out = []
    for raw in items:
        key = _ALIASES.get(raw.strip().lower(), raw.strip().lower())
        if not key:
            continue
        if key not in OUTPUTS:
            raise ValueError(f"only: expected names from {list(OUTPUTS) + list(_ALIASES)}, got {raw!r}")
        if key not in out:
            out.append(key)
    if not out:
        raise ValueError("only: expected at least one output name, got none")
    return tuple(out)


# --------------------------------------------------------------------------- training
def _run_name(algorithm: str, seed: int) -> str:
    return f"{algorithm}-s{seed}"


def run_is_finished(run_dir: str | os.PathLike, cfg) -> bool:
    """True if ``run_dir/checkpoints/last.pt`` holds this config (a ``TrainConfig`` or an
    ``RLConfig``) at its last iteration or past its ``max_seconds``."""
    last = Path(run_dir) / "checkpoints" / "last.pt"
    if not last.exists():
        return False
    from meta.train import load_checkpoint

    state = load_checkpoint(last)
    if state.get("config") != cfg.to_dict():
        return False
    done = int(state["iteration"]) >= cfg.iterations
    return done or (cfg.max_seconds is not None and float(state.get("elapsed", 0)) >= cfg.max_seconds)


def _needed_runs(preset: PipelinePreset, outputs: tuple[str, ...]) -> list[tuple[str, int]]:
    s = preset.seeds
    need: list[tuple[str, int]] = []

    def add(alg, seeds):
        need.extend((alg, x) for x in seeds if (alg, x) not in need)

    if {"table1", "fig2", "fig3", "fig6", "fig7", "table2", "fig5", "table3", "fig11",
        "table5", "table8"} & set(outputs):
        add("maml", s if set(outputs) - {"fig3", "fig6"} else s[:1])
    if {"table2", "fig5", "table3", "fig11", "table5"} & set(outputs):
        add("anil", s)
    if "table2" in outputs or "map" in outputs:
        add("fomaml", s[:1])
    if "map" in outputs:
        add("maml", s)
        add("anil", s)
    if {"table5", "table8", "map"} & set(outputs):
        for r in preset.regimes:
            if r != "nil" or {"table5", "map"} & set(outputs):
                add(r, s[:1])
    if "table5" in outputs:
        # Table 7: a new head meta-learned with MAML on each regime's frozen body (App. D.1)
        need.extend(r for r in _head_runs(preset) if r not in need)
    return need


def _head_runs(preset: PipelinePreset) -> list[tuple[str, int]]:
    # Table 7: a new head meta-learned with MAML (ANIL's inner loop) on the frozen body of each
    # regime (App. D.1); the "random" regime already is such a run.
    return [(f"{r}-head", preset.seeds[0]) for r in ("multiclass", "multitask") if r in preset.regimes]


def run_config(preset: PipelinePreset, name: str, seed: int, runs_dir: Path):
    """The TrainConfig of the pipeline's run ``name`` (an algorithm, or ``"<regime>-head"``)."""
    if name.endswith("-head"):
        body = runs_dir / _run_name(name[: -len("-head")], seed)
        return preset.base.replace(algorithm="random", seed=seed, body_from=str(body))
    return preset.base.replace(algorithm=name, seed=seed)


def _train_one(cfg_dict: dict, run_dir: str) -> str:
    """Train one run in a worker process (a module-level function, so it pickles)."""
    from meta.config import TrainConfig
    from meta.train import train

    return str(train(TrainConfig.from_dict(cfg_dict), run_dir, progress=False))


def _train_runs(preset, runs_dir: Path, needed, *, quiet: bool,
                workers: int = 1) -> dict[tuple[str, int], Path]:
    """Train every run in ``needed`` that is not finished, ``workers`` processes at a time.

    Each run is seeded and single-threaded (``cfg.threads``), so its result does not depend on
    how many run beside it; on a 2-core machine two workers halve the wall clock.
    """
    # Head runs read their regime's final body: they train after everything else.
    first = [r for r in needed if not r[0].endswith("-head")]
    dirs = _train_phase(preset, runs_dir, first, quiet=quiet, workers=workers)
    dirs.update(_train_phase(preset, runs_dir, [r for r in needed if r not in first],
                             quiet=quiet, workers=workers))
    return dirs


def _train_phase(preset, runs_dir: Path, needed, *, quiet: bool, workers: int):
    dirs, todo = {}, []
    for alg, seed in needed:
        cfg = run_config(preset, alg, seed, runs_dir)
        run_dir = runs_dir / _run_name(alg, seed)
        dirs[(alg, seed)] = run_dir
        if run_is_finished(run_dir, cfg):
            log.info("reusing finished run %s", run_dir)
        else:
            todo.append((cfg, run_dir))
    if not todo:
        return dirs
    bar = tqdm(total=len(todo), desc="train runs", disable=quiet, leave=False)
    if workers <= 1 or len(todo) == 1:
        # the module, looked up at call time (``meta.train`` the attribute is the function)
        train_mod = importlib.import_module("meta.train")
        for cfg, run_dir in todo:
            log.info("training %s", run_dir)
            train_mod.train(cfg, run_dir, progress=not quiet)
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx) as pool:
            jobs = {pool.submit(_train_one, cfg.to_dict(), str(run_dir)): run_dir
                    for cfg, run_dir in todo}
            for job in as_completed(jobs):
                job.result()             # re-raises a worker's error here
                log.info("trained %s", jobs[job])
                bar.update()
    bar.close()
    return dirs


# --------------------------------------------------------------------------- evaluation
def _eval(run_dir: Path, preset: PipelinePreset, **kw) -> dict:
    """``meta.evaluate.evaluate`` with a cache: an existing ``eval*.json`` is read back."""
    from meta.evaluate import eval_filename, evaluate

    cfg = _run_config(run_dir)
    steps = kw.get("inner_steps") or cfg.inner_steps_test
    name = eval_filename(cfg, tasks=preset.eval_tasks, freeze=tuple(kw.get("freeze", ())),
                         head=kw.get("head", "maml"), inner_steps=steps,
                         checkpoint=kw.get("checkpoint"), split=cfg.test_split, seed=0)
    path = run_dir / name
    if path.exists():
        cached = json.loads(path.read_text())
        if cached.get("iteration") == _checkpoint_iteration(run_dir, kw.get("checkpoint")):
            return cached
    return evaluate(run_dir, tasks=preset.eval_tasks, **kw)


def _run_config(run_dir: Path):
    from meta.config import TrainConfig

    return TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))


def _checkpoint_iteration(run_dir: Path, checkpoint) -> int | None:
    path = run_dir / "checkpoints" / ("last.pt" if checkpoint in (None, "last")
                                      else f"step-{int(checkpoint):06d}.pt")
    if not path.exists():
        return None
    from meta.train import load_checkpoint

    return int(load_checkpoint(path)["iteration"])


def _summary(evals: list[dict]) -> dict:
    means = [e["accuracy"]["mean"] for e in evals]
    cis = [e["accuracy"]["ci95"] for e in evals]
    n = len(means)
    return {"mean": sum(means) / n,
            "ci95": (sum(c * c for c in cis) ** 0.5) / n,      # CI of the mean over seeds' tasks
            "std": statistics.stdev(means) if n > 1 else None,  # over seeds, as the paper
            "per_seed": means}


# --------------------------------------------------------------------------- analysis
def _analysis_tasks(preset: PipelinePreset, cfg) -> list:
    from meta.data import TaskSampler, load_dataset

    dataset = load_dataset(cfg.dataset, cfg.test_split, root=cfg.data_root)
    return TaskSampler.fixed(dataset, cfg.ways, cfg.shots, preset.analysis_query,
                             preset.analysis_tasks, seed=12345,
                             augment_rotations=cfg.augment_rotations)


def _load(run_dir: Path, checkpoint=None):
    from meta.algorithms import eval_setup
    from meta.evaluate import load_run

    cfg, model, params = load_run(run_dir, checkpoint=checkpoint)
    params, trainable = eval_setup(cfg.algorithm, params, cfg.ways, adapt_norm=cfg.adapt_norm)
    model = model.double()
    params = {n: p.double() for n, p in params.items()}
    return cfg, model, params, trainable


def _double_tasks(tasks):
    return [type(t)(t.support_x.double(), t.support_y, t.query_x.double(), t.query_y) for t in tasks]


def _mean_over(dicts: list[dict]) -> dict:
    """Element-wise mean of nested dicts of floats with identical structure."""
    first = dicts[0]
    if isinstance(first, dict):
        return {k: _mean_over([d[k] for d in dicts]) for k in first}
    return sum(dicts) / len(dicts)


def _pre_post(run_dir, tasks, checkpoint=None):
    from meta.analysis import pre_post_analysis

    cfg, model, params, trainable = _load(run_dir, checkpoint)
    # one adaptation per task; the chance level from row-shuffled "after" representations
    return pre_post_analysis(model, params, tasks, trainable=trainable, steps=cfg.inner_steps_test,
                             lr=cfg.inner_lr, reduction=cfg.inner_loss, chance=True)


def _cross(dir_a, dir_b, tasks, *, comparisons, layers=CONV) -> dict:
    from meta.analysis import AdaptSpec, cross_run_similarity

    cfg_a, model_a, params_a, tr_a = _load(dir_a)
    cfg_b, model_b, params_b, tr_b = _load(dir_b)
    return cross_run_similarity(
        model_a, params_a, model_b, params_b, tasks,
        adapt_a=AdaptSpec(tr_a, cfg_a.inner_steps_test, cfg_a.inner_lr, cfg_a.inner_loss),
        adapt_b=AdaptSpec(tr_b, cfg_b.inner_steps_test, cfg_b.inner_lr, cfg_b.inner_loss), layers=layers,
        comparisons=comparisons)


def _network_map(run_dirs: dict[str, Path], tasks, *, alpha: float = 1.0) -> dict:
    """Penultimate features of every run on the same test images, their pairwise angular shape
    distances and a 2-D metric-MDS embedding (the network map)."""
    import repsim
    from meta.algorithms import body_features

    images = torch.cat([t.query_x for t in tasks])                    # (tasks*ways*query, C, H, W)
    feats = {}
    for name, run_dir in sorted(run_dirs.items()):
        _, model, params, _ = _load(run_dir)
        with torch.no_grad():
            feats[name] = body_features(model, params, images)          # (N, feature_dim)
    dist = repsim.pairwise_distances(feats, measure="shape", alpha=alpha, score="angular")
    xy = repsim.embed_distances(dist, n_components=2, seed=0)
    return {"runs": list(feats), "alpha": alpha, "samples": int(images.shape[0]),
            "distances": dist.tolist(), "xy": [[float(a), float(b)] for a, b in xy]}


def _pooled_features(run_dir: Path, images: torch.Tensor) -> list[torch.Tensor]:
    """conv1..conv4 of one run on ``images``, each averaged over positions: ``(N, C)``."""
    from meta.analysis import layer_activations

    _, model, params, _ = _load(run_dir)
    acts = layer_activations(model, params, images, layers=CONV)
    return [acts[k].mean(dim=(2, 3)) for k in CONV]


def _cka_difference_ci(feats: dict[str, list[torch.Tensor]], first: tuple[str, str],
                       second: tuple[str, str], *, n_boot: int = 1000) -> dict[str, float]:
    """Percentile bootstrap (test images resampled, 95%) of the body-mean linear CKA of the pair
    ``first`` minus that of ``second``, on position-averaged conv features."""
    import repsim

    names = sorted(set(first) | set(second))
    blocks = [(n, i, f) for n in names for i, f in enumerate(feats[n])]
    cols, start = {}, 0
    for n, i, f in blocks:
        cols[(n, i)] = slice(start, start + f.shape[1])
        start += f.shape[1]
    x = torch.cat([f for _, _, f in blocks], 1)                       # (N, sum of widths)

    def body_cka(xb, a, b):
        return sum(repsim.linear_cka(xb[:, cols[(a, i)]], xb[:, cols[(b, i)]])
                   for i in range(len(CONV))) / len(CONV)

    def difference(xb, _):
        return body_cka(xb, *first) - body_cka(xb, *second)

    r = repsim.bootstrap_ci(x, x[:, :1], measure=difference, n_boot=n_boot, generator=0)
    return {"value": float(r.value), "low": float(r.low), "high": float(r.high)}


def _difference_intervals(dirs, s, regimes, tasks) -> dict[str, dict[str, float]]:
    """Table 3 and Table 8 differences with bootstrap intervals (see :func:`_cka_difference_ci`)."""
    images = torch.cat([t.query_x for t in tasks])
    ref = ("maml", s[1])
    runs = {("anil", s[0]), ("maml", s[0]), ref} | {(r, s[0]) for r in regimes}
    feats = {_run_name(*k): _pooled_features(dirs[k], images) for k in sorted(runs)}
    m = _run_name(*ref)
    out = {"anil-maml minus maml-maml": _cka_difference_ci(
        feats, (_run_name("anil", s[0]), m), (_run_name("maml", s[0]), m))}
    order = [r for r in ("multiclass", "random", "multitask") if r in regimes]
    for hi, lo in zip(order, order[1:]):
        out[f"{hi} minus {lo} (vs MAML)"] = _cka_difference_ci(
            feats, (_run_name(hi, s[0]), m), (_run_name(lo, s[0]), m))
    return out


# --------------------------------------------------------------------------- timing (Table 6)
def _timing(preset: PipelinePreset) -> tuple[dict, dict]:
    """Seconds per training iteration (task batch 1) of MAML / FO-MAML / ANIL and per inference
    of MAML vs ANIL, on the same freshly built model, in this process, one thread."""
    from meta.algorithms import inner_trainable, predict, task_loss
    from meta.data import TaskSampler, load_dataset
    from meta.train import build_model

    cfg = preset.base
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dataset = load_dataset(cfg.dataset, cfg.train_split, root=cfg.data_root)
        tasks = TaskSampler.fixed(dataset, cfg.ways, cfg.shots, cfg.query,
                                  preset.timing_iterations + 2, seed=7)
        torch.manual_seed(0)
        model = build_model(cfg, dataset.image_shape, cfg.ways)
        init = {n: p.detach().clone() for n, p in model.named_parameters()}

        def time_train(alg):
            params = {n: p.clone().requires_grad_() for n, p in init.items()}
            opt = torch.optim.Adam(params.values(), lr=cfg.meta_lr)
            times = []
            for i, task in enumerate(tasks):
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                loss, _ = task_loss(model, params, task, algorithm=alg, steps=cfg.inner_steps,
                                    lr=cfg.inner_lr, ways=cfg.ways, reduction=cfg.inner_loss,
                                    adapt_norm=cfg.adapt_norm)
                loss.backward()
                opt.step()
                if i >= 2:                                          # two warm-up iterations
                    times.append(time.perf_counter() - t0)
            return statistics.median(times)

        def time_infer(alg):
            trainable = inner_trainable(alg, adapt_norm=cfg.adapt_norm)
            times = []
            for i, task in enumerate(tasks):
                t0 = time.perf_counter()
                predict(model, init, task, head="maml", trainable=trainable,
                        steps=cfg.inner_steps_test, lr=cfg.inner_lr, reduction=cfg.inner_loss)
                if i >= 2:
                    times.append(time.perf_counter() - t0)
            return statistics.median(times)

        train_s = {a: time_train(a) for a in ("maml", "fomaml", "anil")}
        infer_s = {a: time_infer(a) for a in ("maml", "anil")}
    finally:
        torch.set_num_threads(threads)
    speed = {"train_speedup_anil_vs_maml": train_s["maml"] / train_s["anil"],
             "inference_speedup_anil_vs_maml": infer_s["maml"] / infer_s["anil"],
             "train_speedup_fomaml_vs_maml": train_s["maml"] / train_s["fomaml"]}
    return speed, {"train": train_s, "inference": infer_s}


# --------------------------------------------------------------------------- learning curves
def _curves(run_dirs: list[Path]) -> dict:
    """Mean over seeds of each metrics.jsonl series, aligned by iteration."""
    per = []
    for d in run_dirs:
        rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
        per.append(rows)

    def series(key):
        by_it: dict[int, list[float]] = {}
        for rows in per:
            for r in rows:
                if r.get(key) is not None:
                    by_it.setdefault(int(r["iteration"]), []).append(float(r[key]))
        its = sorted(i for i, v in by_it.items() if len(v) == len(per))
        return its, [sum(by_it[i]) / len(by_it[i]) for i in its]

    step, train_loss = series("train_loss")
    _, train_acc = series("train_accuracy")
    val_step, val_loss = series("val_loss")
    _, val_acc = series("val_accuracy")
    return {"step": step, "train_loss": train_loss, "train_acc": train_acc,
            "val_step": val_step, "val_loss": val_loss, "val_acc": val_acc}


# --------------------------------------------------------------------------- drawing
def draw_figures(results: dict, details: dict, out_dir: str | os.PathLike,
                 *, only: Iterable[str] | None = None) -> list[Path]:
    """Draw the selected figures (default all) from saved results; returns the PNG paths."""
    keys = [k for k in parse_only(only if only is None or isinstance(only, str) else list(only))
            if k in FIGURES]
    paths = []
    for k in keys:
        paths += FIGURES[k].draw(results, details, out_dir)
    return paths


# --------------------------------------------------------------------------- the pipeline
def _read_or_empty(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def run_pipeline(
    preset: str | PipelinePreset,
    out_dir: str | os.PathLike,
    *,
    only: str | Iterable[str] | None = None,
    runs_dir: str | os.PathLike | None = None,
    data_root: str | None = None,
    seeds: Iterable[int] | None = None,
    quiet: bool = False,
) -> dict:
    """Train (what is missing), evaluate, analyse, write ``results.json``/``details.json``/
    ``report.md`` and draw the PNGs into ``out_dir``. Returns the results dict.

    ``only`` selects outputs (names in :data:`OUTPUTS`); the results of a previous call in the
    same ``out_dir`` are kept and updated.
    """
    if isinstance(preset, str):
        preset = make_preset(preset, data_root=data_root, seeds=seeds)
    outputs = parse_only(only)
    threads = torch.get_num_threads()
    # Small linear algebra collapses when its threads fight over shared cores: use the
    # runs' own thread count (1 by default) for the analyses too, as training does.
    torch.set_num_threads(preset.base.threads)
    try:
        return _run(preset, out_dir, outputs, runs_dir, quiet)
    finally:
        torch.set_num_threads(threads)


def _evaluate_outputs(preset: PipelinePreset, want: set[str], D) -> dict:
    """Accuracies of Tables 1, 2, 5 and 7 (``D(algorithm, seed)`` is a run directory)."""
    s, out = preset.seeds, {}
    if "table2" in want:
        acc = {a: _summary([_eval(D(a, x), preset) for x in (s if a != "fomaml" else s[:1])])
               for a in ("maml", "anil", "fomaml")}
        acc["nil"] = _summary([_eval(D("anil", x), preset, head="nil") for x in s])
        out["accuracy"] = acc
    if "table1" in want:
        fr = {k: _summary([_eval(D("maml", x), preset, freeze=v) for x in s])
              for k, v in FREEZES.items()}
        out["freezing"] = {k: v["mean"] for k, v in fr.items()}
        out["freezing_ci95"] = {k: v["ci95"] for k, v in fr.items()}
    if "table5" in want:
        nil = {a: _summary([_eval(D(a, x), preset, head="nil") for x in s])["mean"]
               for a in ("maml", "anil")}
        nil.update({r: _eval(D(r), preset, head="nil")["accuracy"]["mean"] for r in preset.regimes})
        out["regimes_nil"] = nil
        out["regimes_maml_head"] = {
            r: _eval(D(r if r == "random" else f"{r}-head"), preset)["accuracy"]["mean"]
            for r in preset.regimes if r != "nil"}
    return out


def _run(preset: PipelinePreset, out_dir, outputs: tuple[str, ...], runs_dir, quiet: bool) -> dict:
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(runs_dir) if runs_dir is not None else out / "runs"
    stage: dict[str, float] = {}
    base = preset.base
    s = preset.seeds

    results = _read_or_empty(out / "results.json")
    details = _read_or_empty(out / "details.json")
    results.update(preset=preset.name, dataset=base.dataset, ways=base.ways, shots=base.shots,
                   seeds=list(s), iterations=base.iterations, inner_steps=base.inner_steps,
                   inner_steps_test=base.inner_steps_test, eval_tasks=preset.eval_tasks,
                   analysis_tasks=preset.analysis_tasks)

    if {"table2rl", "fig2rl"} & set(outputs):
        from figures.rl import check_rl

        check_rl(preset.name)                        # fail before training, not after it
    t = time.perf_counter()
    dirs = _train_runs(preset, runs, _needed_runs(preset, outputs), quiet=quiet,
                       workers=preset.workers)
    stage["train"] = time.perf_counter() - t

    def D(alg, seed=s[0]):
        return dirs[(alg, seed)]

    want = set(outputs)
    # ---------------------------------------------------------------- evaluate
    t = time.perf_counter()
    results.update(_evaluate_outputs(preset, want, D))  # cached eval*.json are reused
    stage["evaluate"] = time.perf_counter() - t

    # ------------------------------------------------------------ analyse
    t = time.perf_counter()
    tasks = _double_tasks(_analysis_tasks(preset, base)) if want & {
        "fig2", "fig3", "fig6", "fig7", "table3", "fig11", "table8", "map"} else []
    if "fig2" in want or ("fig6" in want and "fig3" not in want):
        pp = [_pre_post(D("maml", x), tasks) for x in s]
        results["pre_post"] = _mean_over([p.similarity for p in pp])
        results["pre_post_chance"] = _mean_over([p.chance for p in pp])
        results["weight_change"] = _mean_over([p.change for p in pp])
    if want & {"fig3", "fig6"}:
        steps = list(base.checkpoints)
        ck: dict[str, Any] = {"steps": steps, "freezing": {}, "pre_post": {}, "weight_change": {}}
        series = [_pre_post(D("maml"), tasks, checkpoint=c) for c in steps]
        ck["pre_post"] = {m: {k: [p[0][m][k] for p in series] for k in LAYERS} for m in ("cca", "cka")}
        ck["weight_change"] = {k: [p[1][k] for p in series] for k in LAYERS}
        for key in ("none", "1,2,3,4"):
            ck["freezing"][key] = [_eval(D("maml"), preset, freeze=FREEZES[key], checkpoint=c)
                                   ["accuracy"]["mean"] for c in steps]
        details["checkpoints"] = ck
        if "fig2" not in want:
            results["weight_change"] = {k: v[-1] for k, v in ck["weight_change"].items()}
    cross_cache: dict[tuple, dict] = {}

    def cross(a, b, comparisons=("pre_pre",)):
        key = (a, b, tuple(comparisons))
        if key not in cross_cache:
            done = next((v for k, v in cross_cache.items()
                         if k[:2] == (a, b) and set(comparisons) <= set(k[2])), None)
            cross_cache[key] = done or _cross(D(*a), D(*b), tasks, comparisons=comparisons)
        return cross_cache[key]

    pairs = list(itertools.combinations(s, 2))
    if "fig7" in want and pairs:
        pts = {m: {"x": [], "pre_post": [], "post_pre": [], "post_post": [], "layer": [], "pair": []}
               for m in ("cca", "cka")}
        for a, b in pairs:
            c = cross(("maml", a), ("maml", b), ("pre_pre", "pre_post", "post_pre", "post_post"))
            for m in ("cca", "cka"):
                for k in CONV:
                    pts[m]["x"].append(c["pre_pre"][m][k])
                    for comp in ("pre_post", "post_pre", "post_post"):
                        pts[m][comp].append(c[comp][m][k])
                    pts[m]["layer"].append(k)
                    pts[m]["pair"].append(f"{a}-{b}")
        details["cross_seed"] = pts
        fits = {m: {comp: dict(zip(("slope", "intercept", "r2"),
                                   fig7_cross_seed.fit_line(pts[m]["x"], pts[m][comp])))
                    for comp in ("pre_post", "post_pre", "post_post")} for m in ("cca", "cka")}
        results["cross_seed_fit"] = fits
        # the weakest of the paper's three regressions
        results["cross_seed_r2"] = {m: min(f["r2"] for f in fits[m].values()) for m in fits}
    if want & {"table3", "fig11"} and pairs:
        groups = {"maml-maml": [(("maml", a), ("maml", b)) for a, b in pairs],
                  "anil-anil": [(("anil", a), ("anil", b)) for a, b in pairs],
                  "anil-maml": [(("anil", a), ("maml", b)) for a, b in itertools.permutations(s, 2)]}
        layers = {g: _mean_over([cross(a, b)["pre_pre"] for a, b in ps]) for g, ps in groups.items()}
        details["maml_anil_layers"] = layers
        results["maml_anil_similarity"] = {
            g: {m: sum(v[m][k] for k in CONV) / len(CONV) for m in ("cca", "cka")}
            for g, v in layers.items()}
    if {"table3", "table8"} <= want and len(s) > 1:
        regimes = [r for r in ("multiclass", "random", "multitask") if r in preset.regimes]
        results["difference_ci"] = _difference_intervals(dirs, s, regimes, tasks)
    if "map" in want:
        details["network_map"] = _network_map(
            {_run_name(*k): v for k, v in dirs.items() if not k[0].endswith("-head")}, tasks)
    if "table8" in want:
        ref = ("maml", s[1] if len(s) > 1 else s[0])
        regimes = ["maml"] + [r for r in ("multiclass", "random", "multitask") if r in preset.regimes]
        sim = {}
        for r in regimes:
            c = cross((r, s[0]), ref)["pre_pre"]
            sim[r] = {m: sum(c[m][k] for k in CONV[:3]) / 3 for m in ("cca", "cka")}
        results["regime_similarity"] = sim
    stage["analyse"] = time.perf_counter() - t

    t = time.perf_counter()
    if "table6" in want:
        results["timing"], results["timing_seconds"] = _timing(preset)
    stage["timing"] = time.perf_counter() - t

    t = time.perf_counter()
    if want & {"table2rl", "fig2rl"}:
        from figures.rl import run_rl

        results["rl"], details["rl_pre_post"] = run_rl(preset.name, runs, workers=preset.workers)
    stage["rl"] = time.perf_counter() - t

    if "fig5" in want:
        details["curves"] = {a: _curves([D(a, x) for x in s]) for a in ("maml", "anil")}

    t = time.perf_counter()
    results["stage_seconds"] = stage
    results["seconds"] = time.perf_counter() - t_start
    report_mod.write_json(details, out / "details.json")
    report_mod.write_json(results, out / "results.json")
    draw_figures(results, details, out, only=outputs)
    stage["draw"] = time.perf_counter() - t
    results["seconds"] = time.perf_counter() - t_start
    report_mod.write_json(results, out / "results.json")
    report_mod.write_report(results, out, details)
    return results
