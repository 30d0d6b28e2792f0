"""Reward targets of the off-policy algorithms with the shipped hyperparameters (hyperparams/*.yml).

    python benchmarks/rewards_offpolicy.py [--only dqn,sac,td3,ddpg] [--seeds 0,1]

Each run trains with the tuned entry of ``hyperparams/<algo>.yml`` (its n_timesteps, action noise
from noise_type / noise_std), then evaluates the deterministic policy over 10 episodes on a fresh
env. Targets (issue 4): DQN >= 450 on CartPole-v1 within 50k steps on two seeds; SAC and TD3
>= -200 on Pendulum-v1 within 20k steps; DDPG >= -250 on Pendulum-v1 within 20k steps.
Runs one after the other (the machine is shared).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from rlzoo import ALGOS  # noqa: E402
from rlzoo.envs import make_vec_env  # noqa: E402
from rlzoo.evaluation import evaluate_policy  # noqa: E402
from rlzoo.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise  # noqa: E402
from rlzoo.zoo.config import build_config  # noqa: E402

TARGETS = {"dqn": ("CartPole-v1", 450.0, "0,1"), "sac": ("Pendulum-v1", -200.0, "0"),
           "td3": ("Pendulum-v1", -200.0, "0"), "ddpg": ("Pendulum-v1", -250.0, "0")}


def run(algo: str, env_id: str, seed: int) -> tuple:
    cls = ALGOS[algo]
    config = build_config(algo, cls, env_id)
    env = make_vec_env(env_id, n_envs=config.n_envs, seed=seed)
    kwargs = dict(config.model_kwargs)
    if config.noise is not None:
        kind, std = config.noise
        shape = env.single_action_space.shape
        mean, sigma = np.zeros(shape), np.full(shape, std)
        kwargs["action_noise"] = (NormalActionNoise(mean, sigma) if kind == "normal"
                                  else OrnsteinUhlenbeckActionNoise(mean, sigma))
    model = cls(config.policy, env, seed=seed, **kwargs)
    start = time.perf_counter()
    model.learn(config.n_timesteps)
    elapsed = time.perf_counter() - start
    eval_env = make_vec_env(env_id, n_envs=1, seed=seed + 1000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    return config.n_timesteps, mean, std, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="dqn,sac,td3,ddpg")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: 0,1 for DQN, 0 otherwise)")
    args = parser.parse_args()
    print(f"{'algo':5s} {'env':14s} {'seed':>4s} {'steps':>7s} {'reward (10 ep.)':>18s} {'target':>7s}  "
          f"{'ok':3s} {'time':>6s}")
    for algo in args.only.split(","):
        env_id, target, seeds = TARGETS[algo]
        for seed in (args.seeds or seeds).split(","):
            steps, mean, std, elapsed = run(algo, env_id, int(seed))
            ok = "yes" if mean >= target else "NO"
            print(f"{algo:5s} {env_id:14s} {seed:>4s} {steps:7d} {mean:9.1f} +- {std:6.1f} {target:7.0f}  "
                  f"{ok:3s} {elapsed:5.0f}s", flush=True)


if __name__ == "__main__":
    main()
