"""rlzoo with ``compile=True`` against eager: whole ``learn()`` calls, alternating, on the speed workloads.

    python benchmarks/compile_speed.py                       # every workload, 2 rounds
    python benchmarks/compile_speed.py --only ppo-cartpole --rounds 3

Each round trains eager, then compiled, from the same seed, and prints env steps/s of a first ``learn()``
(compilation included) and of a second, warm one on the same model, with the ratio compiled / eager.
One intra-op thread (``RLZOO_NUM_THREADS=1``), as rlzoo picks for these small MLPs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

os.environ.setdefault("RLZOO_NUM_THREADS", "1")

WORKLOADS: dict[str, tuple[str, str, dict[str, Any], int, int]] = {
    # name: (algo, env, hyperparameters, n_envs, steps per learn())
    "ppo-cartpole": ("ppo", "CartPole-v1", dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                                                ent_coef=0.0, learning_rate=1e-3, clip_range=0.2), 8, 30_000),
    "a2c-cartpole": ("a2c", "CartPole-v1", dict(ent_coef=0.0), 8, 30_000),
    "dqn-cartpole": ("dqn", "CartPole-v1", dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                                                learning_starts=1000, gamma=0.99, target_update_interval=10,
                                                train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                                                exploration_final_eps=0.04, double_q=False, dueling=False,
                                                policy_kwargs=dict(net_arch=[256, 256])), 1, 20_000),
    "sac-pendulum": ("sac", "Pendulum-v1", dict(learning_starts=100), 1, 3_000),
    "td3-pendulum": ("td3", "Pendulum-v1", dict(learning_starts=100), 1, 3_000),
}


def run(name: str, compile_: bool) -> tuple[float, float]:
    """(first, warm) env steps/s of one model."""
    from rlzoo import ALGOS
    from rlzoo.envs import make_vec_env

    algo, env_id, kwargs, n_envs, steps = WORKLOADS[name]
    model = ALGOS[algo]("MlpPolicy", make_vec_env(env_id, n_envs=n_envs, seed=0), seed=0, compile=compile_,
                        **kwargs)
    start = time.perf_counter()
    model.learn(steps)
    first = steps / (time.perf_counter() - start)
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return first, steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        print(f"error: unknown workload {unknown[0]!r} (choose from {', '.join(WORKLOADS)})", file=sys.stderr)
        return 2
    print(f"1-minute load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    for name in names:
        for r in range(args.rounds):
            eager, compiled = run(name, False), run(name, True)
            print(f"{name} round {r + 1}: eager {eager[0]:.0f} / {eager[1]:.0f} steps/s, compiled {compiled[0]:.0f} / "
                  f"{compiled[1]:.0f} steps/s (first / warm learn): compiled/eager {compiled[0] / eager[0]:.2f}x "
                  f"first, {compiled[1] / eager[1]:.2f}x warm", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
