"""Small-budget learning checks for PPO and A2C with the shipped (zoo) settings; full runs live in benchmarks/."""
from __future__ import annotations

import pytest

from rlzoo import A2C, PPO
from rlzoo.envs import make_vec_env
from rlzoo.evaluation import evaluate_policy
from rlzoo.utils import linear_schedule


def _eval(model, env_id: str, n: int = 10) -> float:
    mean, _ = evaluate_policy(model, make_vec_env(env_id, n_envs=1, seed=123), n_eval_episodes=n, deterministic=True)
    return mean


def test_ppo_learns_cartpole():
    env = make_vec_env("CartPole-v1", n_envs=8, seed=0)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                learning_rate=linear_schedule(1e-3), clip_range=linear_schedule(0.2), seed=0)
    model.learn(30_000)
    assert _eval(model, "CartPole-v1") >= 200  # random play scores ~22


def test_a2c_learns_cartpole():
    model = A2C("MlpPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=0), ent_coef=0.0, seed=0)
    model.learn(60_000)
    assert _eval(model, "CartPole-v1") >= 150


def test_ppo_learns_pendulum():
    env = make_vec_env("Pendulum-v1", n_envs=4, seed=0)
    model = PPO("MlpPolicy", env, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, learning_rate=1e-3,
                batch_size=64, seed=0)
    before = _eval(model, "Pendulum-v1", n=5)
    model.learn(40_000)
    after = _eval(model, "Pendulum-v1", n=5)
    assert after > before + 200, (before, after)  # random play scores ~-1200


@pytest.mark.slow
def test_full_ppo_cartpole_100k():
    env = make_vec_env("CartPole-v1", n_envs=8, seed=0)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                learning_rate=linear_schedule(1e-3), clip_range=linear_schedule(0.2), seed=0)
    model.learn(100_000)
    assert _eval(model, "CartPole-v1") >= 475
