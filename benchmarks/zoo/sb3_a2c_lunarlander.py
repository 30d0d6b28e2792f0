"""SB3's own A2C with the RL Zoo's LunarLander-v3 values (the entry in hyperparams/a2c.yml), one seed after
another: the final deterministic evaluation (10 episodes) after 200k steps, to tell a budget that falls short
from a defect of rlzoo's A2C. Needs the optional benchmark dependency stable-baselines3.

    python benchmarks/zoo/sb3_a2c_lunarlander.py 0,1,2,3,4
"""
from __future__ import annotations

import sys

import gymnasium as gym
import torch
from stable_baselines3 import A2C
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy


def main(seeds: list[int], steps: int = 200_000) -> None:
    """Train and evaluate one agent per seed, printing one line each."""
    torch.set_num_threads(1)
    for seed in seeds:
        env = make_vec_env("LunarLander-v3", n_envs=8, seed=seed)
        model = A2C("MlpPolicy", env, gamma=0.995, n_steps=5, learning_rate=lambda p: p * 0.00083, ent_coef=1e-5,
                    seed=seed, device="cpu")
        model.learn(steps)
        eval_env = gym.make("LunarLander-v3")
        eval_env.reset(seed=seed + 1000)
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
        print(f"SB3 A2C LunarLander-v3 seed {seed}: {mean:.1f} ± {std:.1f}", flush=True)


if __name__ == "__main__":
    main([int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "0,1,2,3,4").split(",")])
