"""Seed reliability of shipped entries: a tuned entry promises its reward for any seed, not one.

Slow (minutes): run with ``python -m pytest -m slow tests/test_zoo_reliability.py``. The full
multi-seed table is ``benchmarks/zoo/run.py``; this keeps the cheapest row as a regression test.
"""
from __future__ import annotations

import pytest

from rlzoo.evaluation import evaluate_policy
from rlzoo.zoo.config import build_config
from rlzoo.zoo.experiment import make_env
from rlzoo.zoo.resolve import algorithms


def _final_reward(algo: str, env_id: str, seed: int) -> float:
    """Train with the shipped entry (as ``rlzoo train`` builds it), then 10 deterministic episodes of
    the final model on a fresh env."""
    cls = algorithms()[algo]
    config = build_config(algo, cls, env_id)
    env = make_env(config, config.n_envs, seed=seed)
    model = cls(config.policy, env, seed=seed, device="cpu", **config.model_kwargs)
    model.learn(config.n_timesteps)
    eval_env = make_env(config, 1, seed=seed + 10_000)
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    env.close()
    eval_env.close()
    return float(mean)


@pytest.mark.slow
def test_dqn_cartpole_entry_reaches_450_on_4_of_5_seeds():
    # with a constant learning rate the entry reached 450 on 2 of 5 seeds (154.6, 500, 109.2, 500, 151.1)
    rewards = [_final_reward("dqn", "CartPole-v1", seed) for seed in range(5)]
    assert sum(r >= 450 for r in rewards) >= 4, rewards
