"""The peer libraries' own algorithms on the zoo rows whose entries stay below 4 of 5 seeds, with the RL Zoo's
values for the pair, to tell values that fall short from a defect of rlzoo. Prints the final deterministic
evaluation (10 episodes) of each seed, one line each. Needs the optional benchmark dependencies
stable-baselines3 and sb3-contrib.

    python benchmarks/zoo/peer_check.py a2c-lunarlander --seeds 0,1,2,3,4
    python benchmarks/zoo/peer_check.py trpo-lunarlandercontinuous --seeds 0,1,2,3,4
    python benchmarks/zoo/peer_check.py ppo-mountaincarcontinuous --seeds 0,1,2,3,4
    python benchmarks/zoo/peer_check.py ppo-hopper --seeds 0,1
    python benchmarks/zoo/peer_check.py trpo-ant --seeds 0
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch


def _a2c_lunarlander(seed: int) -> tuple[Any, Any]:
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env("LunarLander-v3", n_envs=8, seed=seed)
    model = A2C("MlpPolicy", env, gamma=0.995, n_steps=5, learning_rate=lambda p: p * 0.00083, ent_coef=1e-5,
                seed=seed, device="cpu")
    return model.learn(200_000), None


def _trpo_lunarlandercontinuous(seed: int) -> tuple[Any, Any]:
    from sb3_contrib import TRPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    env = VecNormalize(make_vec_env("LunarLanderContinuous-v3", n_envs=2, seed=seed), gamma=0.99)
    model = TRPO("MlpPolicy", env, n_steps=1024, n_critic_updates=20, seed=seed, device="cpu")
    return model.learn(200_000), env


def _ppo_mountaincarcontinuous(seed: int) -> tuple[Any, Any]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    env = VecNormalize(make_vec_env("MountainCarContinuous-v0", n_envs=1, seed=seed), gamma=0.9999)
    model = PPO("MlpPolicy", env, batch_size=256, n_steps=8, gamma=0.9999, learning_rate=7.77e-05, ent_coef=0.00429,
                clip_range=0.1, n_epochs=10, gae_lambda=0.9, max_grad_norm=5, vf_coef=0.19, use_sde=True,
                policy_kwargs=dict(log_std_init=-3.29, ortho_init=False), seed=seed, device="cpu")
    return model.learn(20_000), env


def _ppo_hopper(seed: int) -> tuple[Any, Any]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize
    from torch import nn

    env = VecNormalize(make_vec_env("Hopper-v5", n_envs=1, seed=seed), gamma=0.999)
    model = PPO("MlpPolicy", env, batch_size=32, n_steps=512, gamma=0.999, learning_rate=9.80828e-05,
                ent_coef=0.00229519, clip_range=0.2, n_epochs=5, gae_lambda=0.99, max_grad_norm=0.7,
                vf_coef=0.835671, policy_kwargs=dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU,
                                                     net_arch=dict(pi=[256, 256], vf=[256, 256])),
                seed=seed, device="cpu")
    return model.learn(1_000_000), env


def _trpo_ant(seed: int) -> tuple[Any, Any]:
    # the RL Zoo's Ant values with its default initial action noise (std 1); rlzoo's entry lowers it
    from sb3_contrib import TRPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    env = VecNormalize(make_vec_env("Ant-v5", n_envs=2, seed=seed), gamma=0.99)
    model = TRPO("MlpPolicy", env, batch_size=128, n_steps=1024, gamma=0.99, gae_lambda=0.95, sub_sampling_factor=1,
                 cg_max_steps=25, cg_damping=0.1, n_critic_updates=20, learning_rate=1e-3, seed=seed, device="cpu")
    return model.learn(1_000_000), env


CHECKS: dict[str, tuple[str, str, Callable[[int], tuple[Any, Any]]]] = {
    "a2c-lunarlander": ("SB3 A2C", "LunarLander-v3", _a2c_lunarlander),
    "trpo-lunarlandercontinuous": ("SB3-contrib TRPO", "LunarLanderContinuous-v3", _trpo_lunarlandercontinuous),
    "ppo-mountaincarcontinuous": ("SB3 PPO", "MountainCarContinuous-v0", _ppo_mountaincarcontinuous),
    "ppo-hopper": ("SB3 PPO", "Hopper-v5", _ppo_hopper),
    "trpo-ant": ("SB3-contrib TRPO", "Ant-v5", _trpo_ant),
}


def evaluate(model: Any, train_env: Any, env_id: str, seed: int) -> tuple[float, float]:
    """Mean and std of 10 deterministic episodes on a fresh env (observations normalized as in training)."""
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    if train_env is None:  # a plain env, seeded once (how the figures in hyperparams/a2c.yml were made)
        eval_env: Any = gym.make(env_id)
        eval_env.reset(seed=seed + 1000)
    else:
        eval_env = VecNormalize(make_vec_env(env_id, n_envs=1, seed=seed + 1000), training=False, norm_reward=False)
        eval_env.obs_rms = train_env.obs_rms
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    return float(mean), float(std)


def main() -> None:
    """Train and evaluate one agent per seed for the chosen check."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("check", choices=sorted(CHECKS))
    parser.add_argument("--seeds", default="0,1,2,3,4")
    args = parser.parse_args()
    torch.set_num_threads(1)
    library, env_id, train = CHECKS[args.check]
    for seed in (int(s) for s in args.seeds.split(",")):
        model, train_env = train(seed)
        mean, std = evaluate(model, train_env, env_id, seed)
        print(f"{library} {env_id} seed {seed}: {mean:.1f} ± {std:.1f}", flush=True)


if __name__ == "__main__":
    main()
