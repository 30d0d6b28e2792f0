"""TRPO: learning on a small budget, the KL bound of accepted steps, all action spaces, save/load."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from gymnasium import spaces

from toy_envs import MatchTarget
from rlzoo import ALGOS, TRPO
from rlzoo.envs import DummyVecEnv, make_vec_env
from rlzoo.evaluation import evaluate_policy


def test_trpo_learns_cartpole_small_budget():
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = TRPO("MlpPolicy", env, n_steps=512, batch_size=512, cg_damping=1e-3, learning_rate=1e-3,
                 n_critic_updates=10, seed=0)
    model.learn(16_384)
    mean, _ = evaluate_policy(model, make_vec_env("CartPole-v1", n_envs=1, seed=100), n_eval_episodes=5,
                              deterministic=True)
    assert mean > 150, mean  # a random policy scores ~20; seeds 0-2 reach 280-460 here


def _record_kl(model: TRPO) -> list:
    """Wrap ``train`` to measure, on the whole rollout, KL(old policy || new policy) of each update."""
    records = []
    train = model.train

    def wrapped() -> None:
        old = copy.deepcopy(model.policy)
        train()
        obs = model.rollout_buffer._flat().observations
        with torch.no_grad():
            kl = old.get_distribution(obs).kl(model.policy.get_distribution(obs)).mean().item()
        records.append((kl, model.last_line_search))

    model.train = wrapped
    return records


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_accepted_step_respects_kl_bound(env_id):
    target_kl = 0.01
    model = TRPO("MlpPolicy", make_vec_env(env_id, n_envs=2, seed=1), n_steps=256, target_kl=target_kl, seed=1)
    records = _record_kl(model)
    model.learn(256 * 2 * 8)
    assert len(records) == 8
    for kl, result in records:
        assert kl <= 1.5 * target_kl + 1e-6  # the line-search tolerance of the reference implementation
        if result.accepted:
            assert kl == pytest.approx(result.kl, rel=1e-4, abs=1e-8)
        else:
            assert kl == 0.0  # old parameters restored exactly
    accepted = [kl for kl, r in records if r.accepted]
    assert len(accepted) >= 6
    # the step is sized to the trust region, not vanishingly small
    assert max(accepted) > 0.3 * target_kl


def test_step_scaled_to_target_kl_without_line_search_shrinking():
    """The full step's quadratic KL model is target_kl: the measured KL is of that order."""
    target_kl = 0.002
    model = TRPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=2), n_steps=256, target_kl=target_kl,
                 line_search_max_iter=1, seed=2)
    records = _record_kl(model)
    model.learn(256 * 2 * 4)
    for kl, result in records:
        if result.accepted:
            assert result.step_fraction == 1.0
            assert 0.25 * target_kl < kl <= 1.5 * target_kl


@pytest.mark.parametrize("space", [spaces.Box(-1, 1, (2,)), spaces.Discrete(3), spaces.MultiDiscrete([2, 3]),
                                   spaces.MultiBinary(3)])
def test_all_action_spaces_and_save_load(space, tmp_path):
    env = DummyVecEnv([lambda: MatchTarget(space)] * 2)
    model = TRPO("MlpPolicy", env, n_steps=32, batch_size=32, seed=0).learn(256)
    obs = np.random.default_rng(0).uniform(-1, 1, (5, 2)).astype(np.float32)
    before, _ = model.predict(obs, deterministic=True)
    assert all(space.contains(np.asarray(a, dtype=space.dtype)) for a in before)
    model.save(tmp_path / "trpo")
    loaded = ALGOS["trpo"].load(tmp_path / "trpo", env=env)
    after, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(before, after)
    assert loaded.target_kl == model.target_kl and loaded.sub_sampling_factor == 5
    loaded.learn(64, reset_num_timesteps=False)
    assert loaded.num_timesteps >= 256 + 64


def test_critic_fit_does_not_move_the_actor():
    model = TRPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=1, seed=3), n_steps=64, batch_size=32,
                 target_kl=1e-12, line_search_max_iter=1, seed=3)
    actor_before = [p.detach().clone() for p in model.actor_params]
    critic_before = [p.detach().clone() for p in model.critic_params]
    model.learn(64)
    # tiny trust region: the step is rejected or negligible; only the critic moves
    assert all(torch.allclose(a, p, atol=1e-4) for a, p in zip(actor_before, model.actor_params, strict=True))
    assert any(not torch.equal(c, p) for c, p in zip(critic_before, model.critic_params, strict=True))
    assert {id(p) for p in model.actor_params}.isdisjoint({id(p) for p in model.critic_params})


def test_bad_arguments():
    with pytest.raises(ValueError, match="target_kl"):
        TRPO("MlpPolicy", "CartPole-v1", target_kl=0.0)
    with pytest.raises(ValueError, match="line_search_shrinking_factor"):
        TRPO("MlpPolicy", "CartPole-v1", line_search_shrinking_factor=1.5)
