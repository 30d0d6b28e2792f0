"""generalized State-Dependent Exploration (gSDE, Raffin, Kober, Stulp 2021) for A2C, PPO and TRPO."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlzoo import A2C, PPO, TRPO
from rlzoo.common.distributions import DistributionHead, StateDependentGaussian
from rlzoo.common.policies import ActorCriticPolicy
from rlzoo.envs import make_vec_env
from rlzoo.evaluation import evaluate_policy

BOX = spaces.Box(-1.0, 1.0, (2,), np.float32)


class ConstantObs(gym.Env):
    """The same observation at every step, wide Box actions (nothing clipped), 50-step episodes."""

    observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = spaces.Box(-100.0, 100.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.3, -0.5, 0.8], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([0.3, -0.5, 0.8], np.float32), 0.0, False, self.t >= 50, {}


def _sigma(log_std: np.ndarray, use_expln: bool) -> np.ndarray:
    """gSDE's sigma written out: exp, or expln (exp below 0, log(1 + x) + 1 above)."""
    if not use_expln:
        return np.exp(log_std)
    return np.where(log_std <= 0, np.exp(np.minimum(log_std, 0)), np.log1p(np.maximum(log_std, 0)) + 1)


@pytest.mark.parametrize("full_std,use_expln", [(True, False), (False, False), (True, True)])
def test_log_prob_and_entropy_are_the_gaussian_with_state_dependent_std(full_std, use_expln):
    torch.manual_seed(0)
    head = DistributionHead(BOX, latent_dim=3, use_sde=True, full_std=full_std, use_expln=use_expln)
    assert head.log_std is not None and head.log_std.shape == (3, 2 if full_std else 1)
    with torch.no_grad():
        head.log_std.copy_(torch.randn(head.log_std.shape))
    latent, actions = torch.randn(5, 3), torch.randn(5, 2)
    dist = head(latent)
    assert isinstance(dist, StateDependentGaussian)
    # by hand, in float64: std_k(s) = sqrt(sum_j z_j(s)^2 sigma_jk^2 + eps) (paper Eq. 4)
    z, a, mu = latent.double().numpy(), actions.double().numpy(), dist.mean.detach().double().numpy()
    sigma = np.broadcast_to(_sigma(head.log_std.detach().double().numpy(), use_expln), (3, 2))
    std = np.sqrt(np.einsum("bj,jk->bk", z**2, sigma**2) + StateDependentGaussian.EPS)
    log_density = (-0.5 * ((a - mu) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)).sum(1)
    np.testing.assert_allclose(dist.log_prob(actions).detach().numpy(), log_density, rtol=1e-5)
    np.testing.assert_allclose(dist.entropy().detach().numpy(), np.log(std * np.sqrt(2 * np.pi * np.e)).sum(1),
                               rtol=1e-5)
    # the log-std matrix gets gradients; the features only through the mean (learn_features is off)
    latent.requires_grad_(True)
    dist = head(latent)
    dist.log_prob(actions).sum().backward()
    assert head.log_std.grad is not None and head.log_std.grad.abs().sum() > 0
    with torch.no_grad():
        through_mean = ((actions - dist.mean) / dist.std**2) @ head.linear.weight
    assert torch.allclose(latent.grad, through_mean, atol=1e-5)


def test_kl_is_the_closed_form_between_the_state_dependent_gaussians():
    torch.manual_seed(1)
    head = DistributionHead(BOX, latent_dim=4, use_sde=True)
    latent = torch.randn(6, 4)
    old = head(latent)
    with torch.no_grad():
        head.log_std.add_(0.3 * torch.randn_like(head.log_std))
        head.linear.bias.add_(0.2)
    new = head(latent)
    s0, s1, m0, m1 = old.std, new.std, old.mean, new.mean
    expected = (torch.log(s1 / s0) + (s0**2 + (m0 - m1) ** 2) / (2 * s1**2) - 0.5).sum(-1)
    assert torch.allclose(old.kl(new), expected, atol=1e-5)
    assert torch.allclose(old.kl(old), torch.zeros(6), atol=1e-6)


def test_actions_are_mean_plus_latent_times_the_exploration_matrix():
    torch.manual_seed(2)
    policy = ActorCriticPolicy(ConstantObs.observation_space, BOX, use_sde=True)
    obs = torch.randn(3, 3)
    policy.reset_noise(3)
    with torch.no_grad():
        latent = policy.mlp_extractor.policy_net(policy.extract_features(obs))
        dist = policy.get_distribution(obs)
        w = policy.action_head.exploration_mat
        assert w.shape == (3, 64, 2)
        expected = dist.mean + torch.einsum("bj,bjk->bk", latent, w)  # row i uses env i's matrix
        assert torch.allclose(dist.sample(), expected, atol=1e-6)
        assert torch.equal(dist.get_actions(deterministic=True), dist.mean)
        assert torch.equal(policy._predict(obs), dist.sample())  # same W: same actions until a reset
        policy.reset_noise(3)
        assert not torch.allclose(policy._predict(obs), expected)
    assert policy.numpy_actor() is None  # gSDE acts in torch


@pytest.mark.parametrize("freq", [4, -1])
def test_rollouts_resample_the_noise_every_sde_sample_freq_steps(freq):
    env = make_vec_env(ConstantObs, n_envs=2, seed=0)
    model = PPO("MlpPolicy", env, n_steps=12, batch_size=24, use_sde=True, sde_sample_freq=freq, seed=0)
    model.learn(24)  # one rollout, from one observation: actions change only when W is redrawn
    actions = model.rollout_buffer.actions.cpu().numpy()  # (n_steps, n_envs, 2)
    block = freq if freq > 0 else 12
    for start in range(0, 12, block):
        assert np.array_equal(actions[start:start + block], np.broadcast_to(actions[start], (block, 2, 2)))
        if start:
            assert not np.allclose(actions[start], actions[start - 1])
    assert not np.allclose(actions[0, 0], actions[0, 1])  # one matrix per env


def test_save_load_acts_identically(tmp_path):
    model = PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=64, use_sde=True, sde_sample_freq=8, seed=0,
                policy_kwargs=dict(log_std_init=-1.0, full_std=False, use_expln=True))
    model.learn(128)
    model.save(tmp_path / "gsde")
    loaded = PPO.load(tmp_path / "gsde")
    assert (loaded.use_sde, loaded.sde_sample_freq) == (True, 8)
    assert loaded.policy.action_head.log_std.shape == (64, 1)
    obs = np.random.default_rng(0).uniform(-1, 1, (4, 3)).astype(np.float32)
    for m in (model, loaded):
        torch.manual_seed(7)
        m.policy.reset_noise(4)
    for deterministic in (True, False):
        a, _ = model.predict(obs, deterministic=deterministic)
        b, _ = loaded.predict(obs, deterministic=deterministic)
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.action_probability(obs)[1], loaded.action_probability(obs)[1])


@pytest.mark.parametrize("cls", [A2C, PPO, TRPO])
def test_short_learn_with_gsde(cls):
    kwargs = {} if cls is A2C else {"batch_size": 64}
    model = cls("MlpPolicy", "Pendulum-v1", n_steps=64, use_sde=True, sde_sample_freq=4, seed=0, **kwargs)
    before = model.policy.action_head.log_std.detach().clone()
    model.learn(512)
    after = model.policy.action_head.log_std.detach()
    assert after.shape == (64, 1) and torch.isfinite(after).all() and not torch.equal(before, after)
    if cls is TRPO:  # the line search measures KL(old || new) between the state-dependent Gaussians
        assert model.last_line_search.accepted and 0 < model.last_line_search.kl <= 1.5 * model.target_kl


def test_use_sde_needs_a_box_action_space_and_a_feedforward_policy():
    with pytest.raises(ValueError, match="use_sde .*Box action space, not Discrete"):
        PPO("MlpPolicy", "CartPole-v1", use_sde=True)
    with pytest.raises(ValueError, match="recurrent"):
        A2C("MlpLstmPolicy", "Pendulum-v1", use_sde=True)
    with pytest.raises(ValueError, match="not a policy_kwargs key"):
        TRPO("MlpPolicy", "Pendulum-v1", policy_kwargs={"use_sde": True})


def test_ppo_with_gsde_learns_pendulum():
    env = make_vec_env("Pendulum-v1", n_envs=4, seed=0)
    model = PPO("MlpPolicy", env, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, learning_rate=1e-3,
                batch_size=64, use_sde=True, sde_sample_freq=4, seed=0, policy_kwargs=dict(log_std_init=-2.0))
    model.learn(40_000)
    mean, _ = evaluate_policy(model, make_vec_env("Pendulum-v1", n_envs=1, seed=123), n_eval_episodes=5,
                              deterministic=True)
    assert mean >= -900, mean  # random play scores ~-1200; this run reaches ~-650
