"""ACKTR: learning on a small budget, K-FAC wiring, spaces, SubprocVecEnv example, CnnPolicy on Pong."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlzoo import ACKTR
from rlzoo.algos.acktr.kfac import KFAC
from rlzoo.envs import DummyVecEnv, SubprocVecEnv, make_vec_env
from rlzoo.evaluation import evaluate_policy
from rlzoo.utils import set_global_seeds


def test_acktr_learns_cartpole_small_budget():
    model = ACKTR("MlpPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=0), ent_coef=0.0, seed=0)
    model.learn(30_000)
    mean, _ = evaluate_policy(model, make_vec_env("CartPole-v1", n_envs=1, seed=100), n_eval_episodes=5,
                              deterministic=True)
    assert mean > 200, mean  # a random policy scores ~20; seeds 0-2 reach 470-500 here


def test_kfac_wiring_and_linear_lr_decay():
    model = ACKTR("MlpPolicy", make_vec_env("Pendulum-v1", n_envs=2, seed=1), n_steps=8, cold_iter=2, seed=1)
    opt = model.optimizer
    assert isinstance(opt, KFAC)
    linears = [m for m in model.policy.modules() if isinstance(m, torch.nn.Linear)]
    assert opt.layers == linears  # every Linear layer is K-FAC preconditioned
    assert opt.param_groups[0]["factored_damping"] is False  # damping as the ACKTR reference code
    log_std = model.policy.action_head.log_std
    model.learn(16 * 10)
    assert opt.param_groups[0]["step"] == 10
    for layer in linears:
        a, g = opt.factors(layer)
        assert a.shape == (layer.in_features + 1,) * 2 and g.shape == (layer.out_features,) * 2
        assert torch.isfinite(a).all() and torch.isfinite(g).all()
    # the trust region is active and the log std (not K-FAC) moved by plain gradient steps
    assert 0 < float(opt.last_scale) <= 1.0
    assert not torch.equal(log_std, torch.zeros_like(log_std))
    # learning rate decays linearly from 0.25 (to 0 at the end); linear_lr_decay=False keeps it constant
    assert model.lr_schedule(0.5) == pytest.approx(0.125)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25 * model._current_progress_remaining)
    const = ACKTR("MlpPolicy", "Pendulum-v1", n_steps=8, linear_lr_decay=False).learn(64)
    assert const.optimizer.param_groups[0]["lr"] == 0.25


def test_unsupported_action_space_is_value_error():
    class MultiEnv(gym.Env):
        observation_space = spaces.Box(-1, 1, (2,), np.float32)
        action_space = spaces.MultiDiscrete([2, 2])

        def reset(self, seed=None, options=None):
            return np.zeros(2, np.float32), {}

        def step(self, action):
            return np.zeros(2, np.float32), 0.0, False, False, {}

    with pytest.raises(ValueError, match="ACKTR does not support the action space MultiDiscrete"):
        ACKTR("MlpPolicy", DummyVecEnv([MultiEnv]))


def test_save_load_keeps_kfac_state(tmp_path):
    env = make_vec_env("CartPole-v1", n_envs=4, seed=2)
    model = ACKTR("MlpPolicy", env, n_steps=5, cold_iter=1, seed=2).learn(200)
    obs = env.reset(seed=5)[0]
    before, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "acktr")
    loaded = ACKTR.load(tmp_path / "acktr", env=env)
    np.testing.assert_array_equal(before, loaded.predict(obs, deterministic=True)[0])
    layer = loaded.optimizer.layers[0]
    torch.testing.assert_close(loaded.optimizer.factors(layer)[0],
                               model.optimizer.factors(model.optimizer.layers[0])[0])
    assert loaded.optimizer.param_groups[0]["step"] == model.optimizer.param_groups[0]["step"]
    loaded.learn(100, reset_num_timesteps=False)


def make_env(env_id: str, rank: int, seed: int = 0):
    """Utility for multiprocessed envs, as in the announcement example."""

    def _init() -> gym.Env:
        env = gym.make(env_id)
        env.reset(seed=seed + rank)
        return env

    set_global_seeds(seed)
    return _init


def test_subproc_multiprocessing_example():
    env_id, num_cpu = "CartPole-v1", 4
    env = SubprocVecEnv([make_env(env_id, i) for i in range(num_cpu)])
    try:
        model = ACKTR("MlpPolicy", env, verbose=0)
        model.learn(total_timesteps=2_000)
        obs, _ = env.reset()
        for _ in range(100):
            action, _states = model.predict(obs)
            obs, rewards, terminated, truncated, info = env.step(action)
        assert obs.shape == (num_cpu, 4) and rewards.shape == (num_cpu,)
    finally:
        env.close()


def test_cnn_policy_pong_short_run():
    from rlzoo.envs import VecFrameStack, make_atari_env

    env = VecFrameStack(make_atari_env("PongNoFrameskip-v4", n_envs=2, seed=0), n_stack=4)
    try:
        # factored damping (as in hyperparams/acktr.yml for Atari): Cholesky refreshes, cheaper than eigh
        model = ACKTR("CnnPolicy", env, n_steps=8, cold_iter=1, kfac_update=2, kfac_factored_damping=True, seed=0)
        opt = model.optimizer
        convs = [m for m in model.policy.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) == 3 and all(c in opt.layers for c in convs)
        model.learn(16 * 3)
        a, g = opt.factors(convs[0])
        assert a.shape == (4 * 8 * 8 + 1,) * 2 and g.shape == (32, 32)
        assert all(torch.isfinite(p).all() for p in model.policy.parameters())
        action, _ = model.predict(env.reset()[0])
        assert action.shape == (2,)
    finally:
        env.close()
