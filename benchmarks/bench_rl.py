"""RL benchmark: HalfCheetah sampler throughput against MuJoCo's limit, MAML vs ANIL per iteration.

    python benchmarks/bench_rl.py                        # both sections (a few minutes)
    python benchmarks/bench_rl.py --skip-iterations      # sampler only (about a minute)
    python benchmarks/bench_rl.py --cheetah-iteration    # also one full HalfCheetah meta-iteration

Sampler (one thread, HalfCheetah, 5 physics steps per environment step, random actions): the
environment steps per second of

* ``limit``: bare ``mujoco.mj_step(model, data, 5)`` calls over a list of ``MjData`` (the
  physics alone, nothing read back),
* ``meta.rl`` ``HalfCheetahTasks`` with the ``rollout`` backend (``mujoco.rollout`` over all
  trajectories at once) and the ``loop`` backend (a Python loop of ``mj_step``), observations
  and rewards included,
* the same plus the policy (``meta.rl.rollout``: a 2 x 100 tanh Gaussian policy per task),
* ``gymnasium``: ``HalfCheetah-v5``, one Python ``env.step`` call per trajectory per step.

The ratios ``limit / x`` are printed (1.0 = as fast as the bare physics).

Iterations: seconds per meta-iteration (sampling, inner step, TRPO with 10 CG iterations and
line search) of MAML and ANIL on ``nav2d-quick`` (20 tasks x 20 episodes x 100 steps),
measured alternately in one process; the ratio MAML / ANIL is printed. The machine's load
average is printed with every section: on a shared machine it explains noise.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from meta.rl.config import get_rl_preset  # noqa: E402
from meta.rl.envs import make_env  # noqa: E402
from meta.rl.maml import meta_step  # noqa: E402
from meta.rl.policy import GaussianMLP, per_task  # noqa: E402
from meta.rl.sampler import rollout  # noqa: E402
from meta.rl.train import build_policy, trainable_for  # noqa: E402

__all__ = ["main", "sampler_rates", "iteration_seconds"]


def _load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def _rate(fn, steps: int, repeats: int) -> float:
    """Best-of-``repeats`` environment steps per second of ``fn()`` (which takes ``steps``)."""
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = max(best, steps / (time.perf_counter() - t0))
    return best


def sampler_rates(*, envs: int = 400, horizon: int = 100, repeats: int = 3,
                  threads: int = 1) -> dict[str, float]:
    """Environment steps per second of each way of stepping ``envs`` HalfCheetahs (the rollout
    backend also on ``threads`` physics threads when more than one)."""
    import gymnasium
    import mujoco

    from meta.rl.cheetah import FRAME_SKIP, HalfCheetahTasks, model_path

    g = torch.Generator().manual_seed(0)
    actions = torch.rand(horizon, envs, 6, generator=g, dtype=torch.float64) * 2 - 1
    model = mujoco.MjModel.from_xml_path(model_path())
    datas = [mujoco.MjData(model) for _ in range(envs)]
    ctrl = actions.numpy()

    def bare():
        for d in datas:
            mujoco.mj_resetData(model, d)
        for h in range(horizon):
            for d, c in zip(datas, ctrl[h]):
                d.ctrl[:] = c
                mujoco.mj_step(model, d, FRAME_SKIP)

    out = {"limit (bare mj_step)": _rate(bare, envs * horizon, repeats)}
    tasks = torch.ones(envs // 20, 1, dtype=torch.float64)
    for backend in ("rollout", "loop"):
        env = HalfCheetahTasks("dir", backend=backend, dtype=torch.float64)

        def run(env=env):
            env.reset(tasks, 20, g)
            for h in range(horizon):
                env.step(actions[h].reshape(envs // 20, 20, 6))

        out[f"meta.rl {backend} backend"] = _rate(run, envs * horizon, repeats)
    if threads > 1:
        env = HalfCheetahTasks("dir", dtype=torch.float64, threads=threads)

        def run_threads(env=env):
            env.reset(tasks, 20, g)
            for h in range(horizon):
                env.step(actions[h].reshape(envs // 20, 20, 6))

        out[f"meta.rl rollout backend, {threads} threads"] = _rate(run_threads, envs * horizon, repeats)
    env = HalfCheetahTasks("dir", dtype=torch.float32)
    torch.manual_seed(0)
    policy = GaussianMLP(20, 6, hidden=(100, 100))
    params = per_task(dict(policy.named_parameters()), envs // 20)
    out["meta.rl rollout backend + policy"] = _rate(
        lambda: rollout(env, policy, params, tasks.float(), episodes=20, horizon=horizon,
                        generator=g), envs * horizon, repeats)
    gym_env = gymnasium.make("HalfCheetah-v5")
    gym_env.reset(seed=0)
    n_gym = max(horizon * 20, 2000)

    def gym():
        gym_env.reset(seed=0)
        for h in range(n_gym):
            gym_env.step(ctrl[h % horizon, h % envs])

    out["gymnasium env.step"] = _rate(gym, n_gym, repeats)
    return out


def iteration_seconds(preset: str, *, repeats: int = 3, **overrides) -> dict[str, float]:
    """Median seconds per meta-iteration of MAML and ANIL, measured alternately."""
    times: dict[str, list[float]] = {"maml": [], "anil": []}
    state = {}
    for alg in times:
        cfg = get_rl_preset(preset).replace(algorithm=alg, **overrides)
        env = make_env(cfg.env, dtype=getattr(torch, cfg.dtype), threads=cfg.threads)
        policy = build_policy(cfg, env)
        params = {k: v.detach().clone().requires_grad_(True) for k, v in policy.named_parameters()}
        state[alg] = (cfg, env, policy, params, torch.Generator().manual_seed(0))
    for _ in range(repeats):
        for alg in times:
            cfg, env, policy, params, g = state[alg]
            t0 = time.perf_counter()
            meta_step(env, policy, params, tasks=cfg.meta_batch_size, episodes=cfg.fast_batch_size,
                      horizon=cfg.horizon, generator=g, gamma=cfg.gamma, lam=cfg.gae_lambda,
                      lr=cfg.inner_lr, trainable=trainable_for(alg), first_order=cfg.first_order,
                      max_kl=cfg.max_kl, cg_iters=cfg.cg_iters, cg_damping=cfg.cg_damping,
                      ls_max_steps=cfg.ls_max_steps, ls_backtrack_ratio=cfg.ls_backtrack_ratio)
            times[alg].append(time.perf_counter() - t0)
    return {alg: statistics.median(t) for alg, t in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads, and HalfCheetah physics threads")
    parser.add_argument("--envs", type=int, default=400, help="trajectories stepped together")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-sampler", action="store_true")
    parser.add_argument("--skip-iterations", action="store_true")
    parser.add_argument("--cheetah-iteration", action="store_true",
                        help="also time one halfcheetah-dir meta-iteration (40 x 20 x 200)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s); {_load()}")
    if not args.skip_sampler:
        import mujoco
        import gymnasium

        print(f"\nHalfCheetah sampler, {args.envs} trajectories x 100 steps, env steps/s "
              f"(mujoco {mujoco.__version__}, gymnasium {gymnasium.__version__}); {_load()}")
        rates = sampler_rates(envs=args.envs, repeats=args.repeats, threads=args.threads)
        limit = rates["limit (bare mj_step)"]
        for name, rate in rates.items():
            print(f"  {name:36s} {rate:10.0f} steps/s   limit / this = {limit / rate:5.2f}")
    if not args.skip_iterations:
        print(f"\nSeconds per meta-iteration, nav2d-quick (20 tasks x 20 episodes x 100 steps); "
              f"{_load()}")
        t = iteration_seconds("nav2d-quick", repeats=args.repeats)
        print(f"  MAML {t['maml']:.2f} s, ANIL {t['anil']:.2f} s, MAML / ANIL = "
              f"{t['maml'] / t['anil']:.2f}x; {_load()}")
    if args.cheetah_iteration:
        print(f"\nSeconds per meta-iteration, halfcheetah-dir (40 tasks x 20 episodes x 200 "
              f"steps); {_load()}")
        t = iteration_seconds("halfcheetah-dir", repeats=1, threads=args.threads)
        print(f"  MAML {t['maml']:.1f} s, ANIL {t['anil']:.1f} s, MAML / ANIL = "
              f"{t['maml'] / t['anil']:.2f}x; 500 iterations: MAML {500 * t['maml'] / 3600:.1f} h, "
              f"ANIL {500 * t['anil'] / 3600:.1f} h; {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
