"""Tests for meta.rl: MAML-RL / ANIL-RL on 2-D navigation and HalfCheetah task families."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from meta.cli import main as cli_main
from meta.rl import (GaussianMLP, Navigation2D, RLConfig, adapt, advantages, conjugate_gradient,
                     discounted_returns, evaluate_rl, fit_baseline, gae, get_rl_preset,
                     head_only, all_params, linear_baseline, make_env, make_objective, normalize,
                     per_task, rollout, train_rl, trpo_step)
from meta.rl.analysis import hidden_activations, pre_post_similarity, visited_states, weight_change
from meta.rl.policy import gaussian, kl_normal, log_prob
from meta.rl.returns import baseline_features
from meta.rl import train as rl_train
from meta.rl.train import adaptation_returns, build_policy, load_params

ROOT = Path(__file__).resolve().parents[1]
DT = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _leaves(policy):
    return {k: v.detach().clone().requires_grad_(True) for k, v in policy.named_parameters()}


def _nav_batch(tasks=3, episodes=4, horizon=12, hidden=(16, 16), seed=0):
    env = Navigation2D(dtype=DT)
    torch.manual_seed(seed)
    policy = GaussianMLP(2, 2, hidden=hidden, dtype=DT)
    g = _gen(seed)
    goals = env.sample_tasks(tasks, g)
    params = _leaves(policy)
    ep = rollout(env, policy, per_task(params, tasks), goals, episodes=episodes, horizon=horizon,
                 generator=g)
    return env, policy, params, goals, ep, g


# -- environments ------------------------------------------------------------------------------

def test_nav_dynamics_and_reward_match_hand_computation():
    env = Navigation2D(dtype=DT)
    goals = torch.tensor([[0.3, -0.2], [-0.5, 0.5]], dtype=DT)
    obs = env.reset(goals, 1, _gen())
    assert_close(obs, torch.zeros(2, 1, 2, dtype=DT))
    # First action clipped to 0.1 per coordinate; second one inside the box.
    a1 = torch.tensor([[[0.5, -0.05]], [[-0.02, 3.0]]], dtype=DT)
    obs, r, done = env.step(a1)
    pos = np.array([[0.1, -0.05], [-0.02, 0.1]])
    assert_close(obs[:, 0], torch.tensor(pos, dtype=DT))
    expected = -np.linalg.norm(pos - goals.numpy(), axis=1)
    assert_close(r[:, 0], torch.tensor(expected, dtype=DT))
    assert not done.any()
    a2 = torch.tensor([[[0.1, -0.1]], [[-0.1, 0.1]]], dtype=DT)
    obs, r, _ = env.step(a2)
    pos = pos + a2[:, 0].numpy()
    assert_close(r[:, 0], torch.tensor(-np.linalg.norm(pos - goals.numpy(), axis=1), dtype=DT))


def test_nav_done_within_001_of_goal_and_mask_stops_episode():
    env = Navigation2D(dtype=DT)
    goals = torch.tensor([[0.1, 0.1]], dtype=DT)
    env.reset(goals, 1, _gen())
    _, r, done = env.step(torch.tensor([[[0.095, 0.097]]], dtype=DT))
    assert bool(done[0, 0])
    assert_close(r[0, 0], torch.tensor(-math.hypot(0.005, 0.003), dtype=DT))


def test_nav_tasks_uniform_in_box_and_seeded():
    env = Navigation2D()
    a, b = env.sample_tasks(500, _gen(1)), env.sample_tasks(500, _gen(1))
    assert torch.equal(a, b)
    assert a.min() >= -0.5 and a.max() <= 0.5 and a.shape == (500, 2)
    assert abs(float(a.mean())) < 0.05


def test_rollout_masks_after_done_and_shapes():
    env, policy, params, goals, ep, _ = _nav_batch()
    assert ep.obs.shape == (3, 4, 12, 2) and ep.actions.shape == (3, 4, 12, 2)
    assert ep.rewards.shape == ep.mask.shape == (3, 4, 12)
    assert torch.equal(ep.mask, torch.ones_like(ep.mask))        # no episode reaches its goal
    # obs[h] is the position before action h: the next obs is obs + clipped action.
    assert_close(ep.obs[:, :, 1:], ep.obs[:, :, :-1] + ep.actions[:, :, :-1].clamp(-0.1, 0.1))
    dist = torch.linalg.vector_norm(ep.obs[:, :, 1:] - goals[:, None, None], dim=-1)
    assert_close(ep.rewards[:, :, :-1], -dist)


# -- returns, GAE, baseline ----------------------------------------------------------------------

def test_discounted_returns_and_gae_hand_computed():
    r = torch.tensor([[[1.0, 2.0, 3.0, 5.0]]], dtype=DT)
    m = torch.tensor([[[1.0, 1.0, 1.0, 0.0]]], dtype=DT)            # episode ended after 3 steps
    g = discounted_returns(r, m, gamma=0.5)
    assert_close(g, torch.tensor([[[1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0, 0.0]]], dtype=DT))
    v = torch.tensor([[[0.5, 1.0, -1.0, 9.0]]], dtype=DT)
    gamma, lam = 0.9, 0.8
    d0 = 1 + gamma * 1.0 - 0.5
    d1 = 2 + gamma * -1.0 - 1.0
    d2 = 3 + gamma * 0.0 - -1.0                                       # value 0 after the end
    expected = [d0 + gamma * lam * (d1 + gamma * lam * d2), d1 + gamma * lam * d2, d2, 0.0]
    assert_close(gae(r, v, m, gamma=gamma, lam=lam), torch.tensor([[expected]], dtype=DT))
    # lambda = 1 with zero values: the advantages are the discounted returns.
    assert_close(gae(r, torch.zeros_like(r), m, gamma=0.5, lam=1.0), g)


def test_normalize_masked_mean_zero_std_one():
    x = torch.randn(2, 5, 7, generator=_gen(), dtype=DT) * 3 + 2
    m = (torch.rand(2, 5, 7, generator=_gen(1)) > 0.3).to(DT)
    y = normalize(x, m)
    for t in range(2):
        vals = y[t][m[t].bool()]
        assert_close(vals.mean(), torch.tensor(0.0, dtype=DT), atol=1e-12, rtol=0)
        assert_close(vals.std(unbiased=False), torch.tensor(1.0, dtype=DT), atol=1e-6, rtol=0)
    assert torch.equal(y[m == 0], torch.zeros_like(y[m == 0]))


def test_linear_baseline_fit_recovers_coefficients_and_matches_numpy():
    g = _gen(3)
    obs = torch.randn(2, 6, 10, 3, generator=g, dtype=DT)
    mask = torch.ones(2, 6, 10, dtype=DT)
    mask[1, 2, 7:] = 0
    feats = baseline_features(obs, mask)
    assert feats.shape == (2, 6, 10, 2 * 3 + 4)
    assert_close(feats[0, 0, 4, 6], torch.tensor(0.05, dtype=DT))           # t = (4 + 1) / 100
    true = torch.randn(2, 10, generator=g, dtype=DT)
    returns = torch.einsum("tbhf,tf->tbh", feats, true)
    coef = fit_baseline(obs, returns, mask, reg=0.0)
    assert_close(coef, true, atol=1e-6, rtol=1e-6)
    noisy = returns + 0.1 * torch.randn(returns.shape, generator=g, dtype=DT)
    coef = fit_baseline(obs, noisy, mask, reg=1e-5)
    for t in range(2):
        a = feats[t].reshape(-1, 10).numpy()
        ref = np.linalg.solve(a.T @ a + 1e-5 * np.eye(10), a.T @ noisy[t].reshape(-1).numpy())
        assert_close(coef[t], torch.tensor(ref), atol=1e-8, rtol=1e-8)
    assert_close(linear_baseline(obs, mask, true), returns)


# -- conjugate gradient, TRPO ---------------------------------------------------------------------

def test_conjugate_gradient_solves_spd_system():
    g = _gen(4)
    q = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=DT))[0]
    a = q @ torch.diag(torch.linspace(0.5, 4.0, 8, dtype=DT)) @ q.T
    b = torch.randn(8, generator=g, dtype=DT)
    x = conjugate_gradient(lambda v: a @ v, b, iters=8, residual_tol=1e-30)
    assert_close(x, torch.tensor(np.linalg.solve(a.numpy(), b.numpy())), atol=1e-10, rtol=1e-10)
    few = conjugate_gradient(lambda v: a @ v, b, iters=2)
    assert float(torch.linalg.norm(a @ few - b)) > 1e-6                      # 2 < 8 iterations


def _objective(algorithm="maml"):
    env, policy, params, goals, train, g = _nav_batch(hidden=(8, 8))
    trainable = head_only if algorithm == "anil" else all_params
    adv = advantages(train, gamma=0.99, lam=1.0)
    fast = {k: v.detach() for k, v in adapt(policy, params, train, adv, lr=0.1,
                                            trainable=trainable, create_graph=False).items()}
    valid = rollout(env, policy, fast, goals, episodes=4, horizon=12, generator=g)
    vadv = advantages(valid, gamma=0.99, lam=1.0)
    with torch.no_grad():
        old = gaussian(policy, fast, valid.obs)
    obj = make_objective(policy, train, adv, valid, vadv, old, lr=0.1, trainable=trainable,
                         first_order=False)
    return policy, params, obj, (train, adv, valid, old, trainable)


@pytest.mark.parametrize("algorithm", ["maml", "anil"])
def test_trpo_step_respects_kl_constraint_and_lowers_loss(algorithm):
    policy, params, obj, (train, adv, valid, old, trainable) = _objective(algorithm)
    max_kl = 1e-3
    new, info = trpo_step(obj, params, max_kl=max_kl, cg_iters=10, cg_damping=1e-5)
    assert 0 < info.step_fraction <= 1
    assert info.loss_after < info.loss_before
    # Independent KL: adapt with the new parameters, compare with the sampling policy.
    fast = adapt(policy, new, train, adv, lr=0.1, trainable=trainable, create_graph=False)
    mean, log_std = gaussian(policy, fast, valid.obs)
    sd, sd_old = torch.exp(log_std), torch.exp(old[1])
    kl = torch.log(sd_old / sd) + (sd ** 2 + (mean - old[0]) ** 2) / (2 * sd_old ** 2) - 0.5
    assert 0 < float(kl.mean().detach()) < max_kl
    assert_close(torch.tensor(info.kl, dtype=DT), kl.mean().detach(), rtol=1e-6, atol=1e-12)
    for k in params:                                                  # the input is untouched
        assert not torch.equal(new[k], params[k]) or k == "log_std" and algorithm == "anil"


def test_kl_normal_and_log_prob_match_torch_distributions():
    g = _gen(5)
    m1, m2 = torch.randn(4, 3, generator=g, dtype=DT), torch.randn(4, 3, generator=g, dtype=DT)
    s1, s2 = torch.randn(4, 3, generator=g, dtype=DT) * 0.3, torch.randn(4, 3, generator=g, dtype=DT) * 0.3
    p, q = torch.distributions.Normal(m1, s1.exp()), torch.distributions.Normal(m2, s2.exp())
    assert_close(kl_normal(m1, s1, m2, s2), torch.distributions.kl_divergence(p, q))
    a = torch.randn(4, 3, generator=g, dtype=DT)
    assert_close(log_prob(m1, s1, a), p.log_prob(a).sum(-1))


# -- adaptation ----------------------------------------------------------------------------------

def test_batched_policy_equals_per_task_functional_call():
    env, policy, params, goals, ep, _ = _nav_batch()
    adv = advantages(ep, gamma=0.99, lam=1.0)
    fast = adapt(policy, params, ep, adv, lr=0.1, trainable=all_params, create_graph=False)
    mean, log_std = gaussian(policy, fast, ep.obs)
    for t in range(3):
        single = {k: v[t] for k, v in fast.items()}
        m, s = torch.func.functional_call(policy, single, (ep.obs[t],))
        assert_close(mean[t], m)
        assert_close(log_std[t], s)


def test_inner_step_equals_per_task_reinforce_gradient():
    env, policy, params, goals, ep, _ = _nav_batch()
    adv = advantages(ep, gamma=0.99, lam=1.0)
    fast = adapt(policy, params, ep, adv, lr=0.1, trainable=all_params, create_graph=False)
    for t in range(3):
        m, s = torch.func.functional_call(policy, params, (ep.obs[t],))
        lp = log_prob(m, s, ep.actions[t])
        loss = -((lp * adv[t] * ep.mask[t]).sum(-1) / ep.mask[t].sum(-1)).mean()
        grads = torch.autograd.grad(loss, list(params.values()))
        for (k, p), gr in zip(params.items(), grads):
            assert_close(fast[k][t], p - 0.1 * gr)


def test_anil_leaves_body_bit_identical_through_adaptation():
    env, policy, params, goals, ep, _ = _nav_batch()
    adv = advantages(ep, gamma=0.99, lam=1.0)
    fast = adapt(policy, params, ep, adv, lr=0.1, trainable=head_only)
    for k, v in params.items():
        same = all(torch.equal(fast[k][t], v) for t in range(3))
        assert same == (not k.startswith("head.")), k


def test_second_order_meta_gradient_differs_from_first_order():
    env, policy, params, goals, ep, _ = _nav_batch()
    adv = advantages(ep, gamma=0.99, lam=1.0)
    grads = {}
    for first_order in (False, True):
        fast = adapt(policy, params, ep, adv, lr=0.5, trainable=all_params, first_order=first_order)
        m, s = gaussian(policy, fast, ep.obs)
        outer = -(log_prob(m, s, ep.actions) * adv).mean()
        grads[first_order] = torch.autograd.grad(outer, params["hidden.0.weight"])[0]
    assert torch.isfinite(grads[False]).all()
    assert float((grads[False] - grads[True]).abs().max()) > 1e-6


# -- analysis ------------------------------------------------------------------------------------

def test_analysis_anil_body_similarity_one_and_weight_change():
    env, policy, params, goals, ep, g = _nav_batch(tasks=3, episodes=10, horizon=20)
    adv = advantages(ep, gamma=0.99, lam=1.0)
    states = visited_states(ep, max_per_task=150, generator=g)
    assert states.shape == (3, 150, 2)
    fast = adapt(policy, params, ep, adv, lr=0.1, trainable=head_only, create_graph=False)
    with pytest.warns(UserWarning, match="rank"):             # 2-D states: low-rank activations
        sim = pre_post_similarity(policy, params, fast, states)
    assert set(sim) == {"fc1", "fc2"}
    for layer in sim.values():
        assert layer["cca"] == pytest.approx(1.0, abs=1e-4) and layer["cka"] == pytest.approx(1.0, abs=1e-9)
    change = weight_change(policy, params, fast)
    assert change["fc1"] == 0.0 and change["fc2"] == 0.0 and change["head"] > 0
    fast = adapt(policy, params, ep, adv, lr=0.1, trainable=all_params, create_graph=False)
    hand = torch.stack([torch.cat([(fast["hidden.0.weight"][t] - params["hidden.0.weight"]).flatten(),
                                   fast["hidden.0.bias"][t] - params["hidden.0.bias"]]).norm()
                        for t in range(3)]).mean()
    assert weight_change(policy, params, fast)["fc1"] == pytest.approx(float(hand.detach()), rel=1e-9)
    acts = hidden_activations(policy, params, states[0])
    assert_close(acts["fc1"], torch.tanh(states[0] @ params["hidden.0.weight"].T + params["hidden.0.bias"]))


# -- bad input -----------------------------------------------------------------------------------

def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="env: expected one of"):
        make_env("pong")
    with pytest.raises(ValueError, match="env: expected one of"):
        RLConfig(env="pong")
    with pytest.raises(ValueError, match="algorithm: expected one of"):
        RLConfig(algorithm="nil")
    with pytest.raises(ValueError, match="preset: expected one of"):
        get_rl_preset("nav3d")
    env = Navigation2D()
    with pytest.raises(ValueError, match=r"tasks: expected a \(n_tasks, 2\) tensor"):
        env.reset(torch.zeros(3, 3), 2, _gen())
    with pytest.raises(ValueError, match="tasks: expected finite"):
        env.reset(torch.tensor([[float("nan"), 0.0]]), 2, _gen())
    env.reset(torch.zeros(3, 2), 2, _gen())
    with pytest.raises(ValueError, match=r"actions: expected shape \(3, 2, 2\)"):
        env.step(torch.zeros(3, 2, 3))
    wrong = GaussianMLP(2, 3)
    with pytest.raises(ValueError, match="policy: expected 2 outputs for the nav2d action space, got 3"):
        rollout(env, wrong, per_task(dict(wrong.named_parameters()), 3), torch.zeros(3, 2),
                episodes=2, horizon=3, generator=_gen())
    r = torch.zeros(1, 2, 3)
    r[0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="rewards: expected finite returns, got 1 NaN"):
        discounted_returns(r, torch.ones_like(r), gamma=0.99)
    with pytest.raises(ValueError, match="rewards: expected finite returns"):
        gae(r, torch.zeros_like(r), torch.ones_like(r), gamma=0.99, lam=1.0)
    with pytest.raises(ValueError, match="gamma: expected a number in"):
        RLConfig(gamma=1.5)


# -- runs ----------------------------------------------------------------------------------------

def _final(run):
    state = torch.load(Path(run) / "checkpoints" / "last.pt", weights_only=False)
    return state["params"], state["generator"]


def test_resume_is_bit_identical(tmp_path):
    cfg = get_rl_preset("nav2d-tiny").replace(iterations=4, save_every=2, algorithm="maml")
    train_rl(cfg, tmp_path / "full", progress=False)
    train_rl(cfg, tmp_path / "cut", progress=False, stop_after=3)       # crash after iteration 3
    train_rl(cfg, tmp_path / "cut", progress=False)                     # resumes from iteration 2
    (pa, ga), (pb, gb) = _final(tmp_path / "full"), _final(tmp_path / "cut")
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k
    assert torch.equal(ga, gb)
    lines = lambda p: [{k: v for k, v in json.loads(l).items() if k not in ("seconds", "elapsed")}
                       for l in (p / "metrics.jsonl").read_text().splitlines()]
    assert lines(tmp_path / "full") == lines(tmp_path / "cut")
    assert [d["iteration"] for d in lines(tmp_path / "cut")] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="same config"):
        train_rl(cfg.replace(seed=1), tmp_path / "full", progress=False)


def test_cli_train_and_evaluate_smoke(tmp_path, capsys):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "meta", "train", "--preset", "nav2d-tiny", "--algorithm", "anil",
           "--set", "iterations=2", "--out", str(run), "--quiet"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "rl" and config["algorithm"] == "anil" and config["iterations"] == 2
    assert (run / "checkpoints" / "last.pt").exists() and (run / "checkpoints" / "best.pt").exists()
    # The rest in-process (same entry point, no second interpreter start-up).
    assert cli_main(["evaluate", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "post-adaptation" in printed and len(printed.strip().splitlines()) == 1
    result = json.loads((run / "eval.json").read_text())
    assert result["tasks"] == 4 and result["episodes"] == 5 and result["env"] == "nav2d"
    assert -200 < result["post"]["mean"] < 0 and result["post"]["ci95"] > 0
    assert cli_main(["evaluate", str(run), "--head", "nil"]) == 2
    assert "--head" in capsys.readouterr().err
    assert cli_main(["train", "--preset", "nav2d-tiny", "--algorithm", "nil", "--out",
                     str(tmp_path / "x")]) == 2
    assert "expected one of ['maml', 'fomaml', 'anil']" in capsys.readouterr().err


def test_evaluation_batches_nest_and_per_task_returns_match_the_summary(tmp_path, monkeypatch):
    cfg = get_rl_preset("nav2d-tiny").replace(iterations=1)
    run = train_rl(cfg, tmp_path / "run", progress=False)
    monkeypatch.setattr(rl_train, "EVAL_BATCH", 3)
    short = evaluate_rl(run, tasks=6, checkpoint="last")
    long = evaluate_rl(run, tasks=7, checkpoint="last")              # batches of 3, 3, 1
    for key in ("pre", "post"):
        values = torch.tensor(long["per_task"][key], dtype=torch.float64)
        assert len(values) == 7
        assert long["per_task"][key][:6] == short["per_task"][key]   # two whole batches shared
        assert long[key]["mean"] == pytest.approx(float(values.mean()), rel=1e-12)
        assert long[key]["ci95"] == pytest.approx(1.96 * float(values.std()) / 7 ** 0.5, rel=1e-12)
    assert get_rl_preset("nav2d").eval_tasks == 400                  # the reference: 10 x 40


def test_nav2d_learning_improves_post_adaptation_return(tmp_path):
    # A short ANIL run: 12 TRPO steps on 10 tasks x 10 episodes (the paper's inner step).
    cfg = get_rl_preset("nav2d").replace(algorithm="anil", hidden=(32, 32), meta_batch_size=10,
                                         fast_batch_size=10, iterations=12, eval_tasks=20)
    run = train_rl(cfg, tmp_path / "nav", progress=False)
    env = make_env("nav2d")
    policy = build_policy(cfg, env)
    init = {k: v.detach() for k, v in policy.named_parameters()}
    goals = env.sample_tasks(20, _gen(7))
    _, before, _ = adaptation_returns(cfg, env, policy, init, goals, episodes=10, generator=_gen(8))
    _, after, _ = adaptation_returns(cfg, env, policy, load_params(run, "last"), goals,
                                     episodes=10, generator=_gen(8))
    assert float(after.mean()) > float(before.mean()) + 15              # about -70 -> -35
    result = evaluate_rl(run, checkpoint="last")
    assert result["post"]["mean"] > result["pre"]["mean"]


# -- HalfCheetah (optional 'rl' extra) -----------------------------------------------------------

def _cheetah(kind, backend="rollout"):
    pytest.importorskip("mujoco")
    pytest.importorskip("gymnasium")
    return make_env(f"halfcheetah-{kind}", dtype=DT) if backend == "rollout" else \
        __import__("meta.rl.cheetah", fromlist=["x"]).HalfCheetahTasks(kind, backend=backend, dtype=DT)


@pytest.mark.parametrize("kind", ["dir", "vel"])
def test_cheetah_reward_matches_direct_mujoco_steps(kind):
    import mujoco

    env = _cheetah(kind)
    tasks = torch.tensor([[1.0], [-1.0]] if kind == "dir" else [[0.5], [1.7]], dtype=DT)
    obs = env.reset(tasks, 2, _gen(2))
    assert obs.shape == (2, 2, 20)
    state = env._state.copy()
    actions = torch.randn(2, 2, 6, generator=_gen(3), dtype=DT) * 0.7
    obs2, reward, done = env.step(actions)
    model = mujoco.MjModel.from_xml_path(__import__("meta.rl.cheetah", fromlist=["x"]).model_path())
    for i in range(4):
        d = mujoco.MjData(model)
        d.qpos[:], d.qvel[:] = state[i, 1:10], state[i, 10:]
        a = actions.reshape(4, 6)[i].numpy()
        d.ctrl[:] = a
        x0 = d.qpos[0]
        for _ in range(5):
            mujoco.mj_step(model, d)
        v = (d.qpos[0] - x0) / 0.05
        goal = float(tasks[i // 2, 0])
        expected = goal * v if kind == "dir" else -abs(v - goal)
        expected -= 0.05 * float(np.square(a).sum())
        assert reward.reshape(4)[i].item() == pytest.approx(expected, rel=1e-6, abs=1e-6)
        ob = np.concatenate([d.qpos[1:], d.qvel, [d.qpos[0], 0.0, 0.7 + d.qpos[1]]])
        assert_close(obs2.reshape(4, 20)[i], torch.tensor(ob), rtol=1e-6, atol=1e-6)
    assert not done.any()


def test_cheetah_loop_backend_matches_rollout_backend_and_bad_tasks():
    a, b = _cheetah("vel"), _cheetah("vel", backend="loop")
    tasks = torch.tensor([[0.3], [1.1], [1.9]], dtype=DT)
    a.reset(tasks, 2, _gen(4))
    b.reset(tasks, 2, _gen(4))
    g = _gen(5)
    for _ in range(10):
        act = torch.randn(3, 2, 6, generator=g, dtype=DT)
        oa, ra, _ = a.step(act)
        ob, rb, _ = b.step(act)
        assert_close(oa, ob, rtol=1e-6, atol=1e-6)
        assert_close(ra, rb, rtol=1e-6, atol=1e-6)
    d = _cheetah("dir")
    dirs = d.sample_tasks(200, _gen())
    assert set(dirs.flatten().tolist()) == {-1.0, 1.0}
    vel = a.sample_tasks(200, _gen())
    assert vel.min() >= 0 and vel.max() <= 2
    with pytest.raises(ValueError, match="tasks: expected directions -1 or \\+1"):
        d.reset(torch.tensor([[0.5]], dtype=DT), 1, _gen())
    with pytest.raises(ValueError, match=r"tasks: expected a \(n_tasks, 1\) tensor"):
        d.reset(torch.zeros(2, 2, dtype=DT), 1, _gen())
    d.reset(torch.ones(1, 1, dtype=DT), 1, _gen())
    with pytest.raises(ValueError, match=r"actions: expected shape \(1, 1, 6\)"):
        d.step(torch.zeros(1, 1, 2, dtype=DT))


def test_cheetah_physics_threads_give_identical_trajectories():
    one = _cheetah("dir")
    three = make_env("halfcheetah-dir", dtype=DT, threads=3)
    tasks = torch.tensor([[1.0], [-1.0], [1.0], [-1.0], [1.0]], dtype=DT)
    one.reset(tasks, 7, _gen(6))
    three.reset(tasks, 7, _gen(6))
    g = _gen(7)
    for _ in range(8):
        act = torch.randn(5, 7, 6, generator=g, dtype=DT)
        o1, r1, _ = one.step(act)
        o3, r3, _ = three.step(act)
        assert torch.equal(o1, o3) and torch.equal(r1, r3)
    with pytest.raises(ValueError, match="threads: expected a positive int, got 0"):
        make_env("halfcheetah-vel", threads=0)


def test_cheetah_meta_step_runs():
    pytest.importorskip("mujoco")
    cfg = get_rl_preset("halfcheetah-dir").replace(hidden=(16, 16), meta_batch_size=2,
                                                   fast_batch_size=2, horizon=10, iterations=1,
                                                   cg_iters=3, eval_tasks=2)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        run = train_rl(cfg, tmp, progress=False)
        result = evaluate_rl(run, checkpoint="last")
    assert math.isfinite(result["pre"]["mean"]) and math.isfinite(result["post"]["mean"])
