"""train / evaluate / CLI on the tiny preset (embedded Glyphs data): files, resume, regimes."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from meta.cli import main
from meta.data import Glyphs, TaskSampler, load_dataset
from meta.config import PRESETS, TrainConfig, get_preset
from meta.evaluation import evaluate, load_run
from meta.run import RunBusyError, RunDir, load_checkpoint
from meta.training import train

ROOT = Path(__file__).resolve().parents[1]


def checkpoint_path(run, checkpoint=None):
    return RunDir(run).checkpoint(checkpoint)


def _weights(run, checkpoint=None):
    return torch.load(checkpoint_path(run, checkpoint), weights_only=False)["model"]


def _metrics(run):
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def test_run_writes_config_metrics_and_checkpoints(tmp_path):
    cfg = get_preset("tiny")
    run = train(cfg, tmp_path / "run", progress=False)
    assert TrainConfig.from_dict(json.loads((run / "config.json").read_text())) == cfg
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["last.pt", "step-000003.pt", "step-000006.pt"]
    lines = _metrics(run)
    assert [r["iteration"] for r in lines] == [1, 2, 3, 4, 5, 6]
    assert {"train_loss", "train_accuracy", "seconds_per_iteration"} <= set(lines[0])
    assert {"val_loss", "val_accuracy"} <= set(lines[2]) and "val_loss" not in lines[1]
    state = torch.load(checkpoint_path(run), weights_only=False)
    assert state["iteration"] == 6 and state["config"] == cfg.to_dict()
    assert {"torch", "numpy", "python", "sampler"} <= set(state["rng"])
    assert state["optimizer"]["state"]                     # Adam moments are saved
    # The parameters moved, and step-000006.pt is the final state.
    init = {k: v for k, v in _weights(run, 3).items()}
    final = _weights(run)
    assert any(not torch.equal(init[k], final[k]) for k in final)
    torch.testing.assert_close(_weights(run, 6), final, rtol=0, atol=0)


def test_resume_equals_uninterrupted_run(tmp_path):
    cfg = get_preset("tiny")
    straight = train(cfg, tmp_path / "a", progress=False)
    # "Crash" after iteration 5: last.pt holds iteration 4 (save_every=2), so 5 is redone.
    train(cfg, tmp_path / "b", progress=False, stop_after=5)
    assert torch.load(checkpoint_path(tmp_path / "b"), weights_only=False)["iteration"] == 4
    resumed = train(cfg, tmp_path / "b", progress=False)
    torch.testing.assert_close(_weights(resumed), _weights(straight), rtol=0, atol=0)
    a = torch.load(checkpoint_path(straight), weights_only=False)["optimizer"]["state"]
    b = torch.load(checkpoint_path(resumed), weights_only=False)["optimizer"]["state"]
    torch.testing.assert_close(b, a, rtol=0, atol=0)
    assert [r["iteration"] for r in _metrics(resumed)] == [1, 2, 3, 4, 5, 6]


def test_different_config_in_existing_run_is_an_error(tmp_path):
    cfg = get_preset("tiny").replace(iterations=2, checkpoints=(2,))
    train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="same config.*inner_lr"):
        train(cfg.replace(inner_lr=0.1), tmp_path / "run", progress=False)


def test_a_run_being_trained_elsewhere_is_refused_until_its_process_ends(tmp_path, capsys,
                                                                         run_lock_holder):
    cfg = get_preset("tiny").replace(iterations=2, checkpoints=(2,))
    run = tmp_path / "run"
    with run_lock_holder(run) as pid:
        with pytest.raises(RunBusyError, match=f"being trained by process {pid}"):
            train(cfg, run, progress=False)
        assert main(["train", "--preset", "tiny", "--set", "iterations=2", "--set",
                     "checkpoints=2", "--out", str(run), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()    # one line, no traceback
        assert len(err) == 1 and f"being trained by process {pid}" in err[0]
        assert not (run / "metrics.jsonl").exists()          # nothing written beside it
    train(cfg, run, progress=False)                          # its lock died with it
    assert [r["iteration"] for r in _metrics(run)] == [1, 2]
    with RunDir(run).writer():                               # free again after training
        pass


@pytest.mark.parametrize("algorithm", ["fomaml", "anil", "random", "nil", "multitask", "multiclass"])
def test_regimes_train_exactly_their_parameters(tmp_path, algorithm):
    cfg = get_preset("tiny").replace(algorithm=algorithm, iterations=2, checkpoints=(1, 2))
    run = train(cfg, tmp_path / algorithm, progress=False)
    # iteration 1 vs 2 (the same seed gives the same initialisation in every regime)
    before, after = _weights(run, 1), _weights(run, 2)
    for k in after:
        moved = not torch.equal(before[k], after[k])
        if algorithm == "random":
            assert moved == k.startswith("head."), k      # body frozen at initialisation
        elif algorithm == "nil":
            assert moved == (not k.startswith("head.")), k  # no head in NIL training
        elif k.endswith("weight"):
            assert moved, k
    heads = after["head.weight"].shape[0]
    assert heads == (len(Glyphs(cfg.train_split)) if algorithm == "multiclass" else cfg.ways)
    result = evaluate(run, tasks=3)
    assert 0 <= result["accuracy"]["mean"] <= 1


def test_max_seconds_stops_early_and_saves(tmp_path):
    cfg = get_preset("tiny").replace(iterations=1000, checkpoints=(1000,), max_seconds=1e-3)
    run = train(cfg, tmp_path / "run", progress=False)
    state = torch.load(checkpoint_path(run), weights_only=False)
    assert state["iteration"] == 1


def test_evaluate_options_files_and_values(tmp_path):
    run = train(get_preset("tiny"), tmp_path / "run", progress=False)
    cfg, model, params = load_run(run)
    assert cfg == get_preset("tiny") and set(params) == {n for n, _ in model.named_parameters()}
    plain = evaluate(run)
    assert plain["file"] == "eval.json" and plain["tasks"] == cfg.eval_tasks
    saved = json.loads((run / "eval.json").read_text())
    assert saved["accuracy"] == plain["accuracy"]
    assert set(saved["accuracy"]) == {"mean", "ci95"}
    assert {"tasks", "freeze", "head", "inner_steps", "checkpoint", "split", "seed"} <= set(saved)
    # Same fixed tasks: the same result again; all-frozen + 0 steps = unadapted model.
    assert evaluate(run)["accuracy"] == plain["accuracy"]
    assert evaluate(run, freeze=(1, 2, 3))["file"] == "eval-freeze1,2,3.json"
    assert evaluate(run, head="nil")["file"] == "eval-head-nil.json"
    assert evaluate(run, checkpoint=3, inner_steps=0)["file"] == "eval-steps0-step3.json"
    frozen0 = evaluate(run, freeze=(1, 2, 3, 4), inner_steps=0, tasks=4)
    # all frozen and no step: the unadapted meta-initialisation, scored by hand
    tasks = TaskSampler.fixed(load_dataset(cfg.dataset, cfg.test_split), cfg.ways, cfg.shots,
                              cfg.query, 4, seed=0, augment_rotations=cfg.augment_rotations)
    hand = [float((model(t.query_x).argmax(1) == t.query_y).double().mean()) for t in tasks]
    assert frozen0["accuracy"]["mean"] == pytest.approx(sum(hand) / 4, abs=1e-12)
    assert (run / "eval-freeze1,2,3.json").exists() and (run / "eval-head-nil.json").exists()
    with pytest.raises(ValueError, match="checkpoint: expected"):
        evaluate(run, checkpoint=4)
    with pytest.raises(ValueError, match="block numbers"):
        evaluate(run, freeze=(5,))


def test_evaluations_in_one_process_read_the_split_once(tmp_path, monkeypatch):
    import meta.evaluation as evaluation

    run = train(get_preset("tiny"), tmp_path / "run", progress=False)
    loads = []

    def counting(*args, **kwargs):
        loads.append(args)
        return load_dataset(*args, **kwargs)

    monkeypatch.setattr(evaluation, "load_dataset", counting)
    evaluation._dataset.cache_clear()
    first = evaluate(run, tasks=3)
    assert evaluate(run, tasks=3, freeze=(1,))["tasks"] == 3
    assert len(loads) == 1
    monkeypatch.setenv("REPSIM_OMNIGLOT", str(tmp_path))       # a default folder changed: read again
    again = evaluate(run, tasks=3)
    assert len(loads) == 2
    assert {**again, "seconds": 0} == {**first, "seconds": 0}
    evaluation._dataset.cache_clear()


def test_presets_are_valid_and_follow_the_paper():
    assert {"omniglot-20w1s", "omniglot-20w5s", "miniimagenet-5w1s", "miniimagenet-5w5s",
            "omniglot-5w1s-quick", "glyphs-quick", "tiny"} <= set(PRESETS)
    for name, cfg in PRESETS.items():
        assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg, name
    o, m = get_preset("omniglot-20w1s"), get_preset("miniimagenet-5w5s")
    assert (o.ways, o.shots, o.meta_batch_size, o.inner_steps, o.inner_lr) == (20, 1, 16, 5, 0.1)
    assert (m.ways, m.shots, m.meta_batch_size, m.inner_steps, m.inner_steps_test, m.inner_lr) == (
        5, 5, 4, 5, 10, 0.01)
    assert o.checkpoints == (10000, 20000, 30000) and o.iterations == 30000
    assert get_preset("omniglot-5w1s-quick").replace(algorithm="fomaml").first_order
    with pytest.raises(ValueError, match="preset: expected one of"):
        get_preset("nope")
    with pytest.raises(ValueError, match="unknown"):
        o.replace(learning_rate=1)
    with pytest.raises(ValueError, match="ways: expected"):
        o.replace(ways=0)
    with pytest.raises(ValueError, match="checkpoints: expected"):
        o.replace(checkpoints=(40000,))
    with pytest.raises(ValueError, match="algorithm: expected"):
        o.replace(algorithm="reptile")


def test_cli_train_and_evaluate(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--preset", "tiny", "--set", "iterations=3", "--set", "checkpoints=3",
                 "--out", out, "--quiet"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["iterations"] == 3
    capsys.readouterr()
    assert main(["evaluate", out, "--tasks", "4", "--freeze", "1,2,3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "accuracy" in lines[0] and "eval-freeze1,2,3-tasks4.json" in lines[0]
    assert main(["evaluate", out, "--head", "nil", "--checkpoint", "7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint: expected" in err[0]
    assert main(["train", "--preset", "tiny", "--set", "ways=1", "--out", out]) == 2


def test_cli_argument_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--preset", "nope", "--out", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'nope'" in err[0]


def test_cli_user_errors_are_one_line_and_bugs_are_not_swallowed(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "run")
    assert main(["train", "--preset", "tiny", "--set", "iterations=2", "--set", "checkpoints=2",
                 "--out", out, "--quiet"]) == 0
    capsys.readouterr()
    # A run directory holding another config is the user's error: one line, status 2.
    assert main(["train", "--preset", "tiny", "--set", "iterations=3", "--set", "checkpoints=3",
                 "--out", out, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "same config" in err[0] and err[0].startswith("python -m meta: error:")
    assert main(["evaluate", out, "--checkpoint", "x"]) == 2
    assert "--checkpoint: expected" in capsys.readouterr().err
    # A dataset that is not where the user said: one line before any work.
    missing = str(tmp_path / "no-omniglot-here")
    assert main(["train", "--preset", "omniglot-5w1s-quick", "--set", f"data_root={missing}",
                 "--out", str(tmp_path / "omni"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data_root: expected Omniglot" in err[0] and missing in err[0]
    assert not (tmp_path / "omni").exists()
    # A ValueError raised by the work itself (not by reading the input) is a bug: it propagates.
    import meta.evaluation

    def broken(request):
        raise ValueError("bug inside the evaluation")

    monkeypatch.setattr(meta.evaluation, "run_evaluation", broken)
    with pytest.raises(ValueError, match="bug inside the evaluation"):
        main(["evaluate", out, "--tasks", "2"])


def test_cli_user_errors_exit_2_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "meta", "evaluate", str(tmp_path / "missing")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "expected" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["maml", "anil"])
def test_training_beats_chance(tmp_path, algorithm):
    # 5-way 1-shot Glyphs, a small network, 150 iterations: far above the 20% of guessing on
    # held-out characters, and above the same network adapted the same way before training.
    cfg = get_preset("glyphs-quick").replace(
        algorithm=algorithm, hidden=16, iterations=150, max_seconds=None, checkpoints=(1,),
        val_every=1000, val_tasks=2, eval_tasks=100, log_every=50)
    run = train(cfg, tmp_path / algorithm, progress=False)
    trained = evaluate(run)["accuracy"]
    untrained = evaluate(run, checkpoint=1)["accuracy"]
    assert trained["mean"] - 2 * trained["ci95"] > 0.2 + 0.2, trained
    assert trained["mean"] > untrained["mean"] + 0.03, (trained, untrained)


class _RunsCode:
    """Unpickling this object would call ``os.system``: a checkpoint nobody should execute."""

    def __reduce__(self):
        import os
        return (os.system, ("echo ran > /dev/null",))


def test_checkpoints_load_without_running_code(tmp_path):
    run = train(get_preset("tiny"), tmp_path / "run", progress=False)
    state = torch.load(checkpoint_path(run), map_location="cpu", weights_only=True)  # plain data
    assert state["iteration"] == get_preset("tiny").iterations
    bad = tmp_path / "bad" / "checkpoints"
    bad.mkdir(parents=True)
    torch.save({"iteration": 1, "model": _RunsCode()}, bad / "last.pt")
    with pytest.raises(ValueError, match="refusing to run it"):
        load_checkpoint(bad / "last.pt")
    with pytest.raises(ValueError, match="refusing to run it"):
        load_run(tmp_path / "bad")


def test_train_and_evaluate_restore_the_thread_count(tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run = train(get_preset("tiny"), tmp_path / "run", progress=False)   # cfg.threads = 1
        assert torch.get_num_threads() == 2
        evaluate(run, tasks=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_grad_clip_is_in_the_reference_loss_units(tmp_path):
    # The reference clips the gradient of sum_query CE / shots / tasks, which is ways * query /
    # shots times the mean loss differentiated here: its bound c is c * shots / (ways * query).
    from meta import distributed
    from meta.training import _build, _outer_step

    cfg = get_preset("tiny").replace(grad_clip=0.05)       # 3-way 1-shot, 2 query: bound 0.05/6
    assert cfg.outer_clip == pytest.approx(0.05 * 1 / (3 * 2))
    assert get_preset("miniimagenet-5w5s").outer_clip == pytest.approx(10 * 5 / (5 * 15))
    assert get_preset("tiny").outer_clip is None

    def step_grads(config):
        session = _build(config, RunDir(tmp_path / str(config.grad_clip)),
                         distributed.Context(0, 1, torch.device("cpu")))
        _outer_step(session)
        return torch.cat([p.grad.flatten() for p in session.trained])

    free, clipped = step_grads(get_preset("tiny")), step_grads(cfg)
    bound = cfg.outer_clip
    assert float(free.abs().max()) > bound                  # the bound binds on this step
    torch.testing.assert_close(clipped, free.clamp(-bound, bound))
