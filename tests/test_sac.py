"""SAC: learns a continuous task, entropy tuning, squashed-Gaussian log-probabilities, save/load."""
import math

import numpy as np
import pytest
import torch
from toy_envs import Target, target_score

from rlzoo import SAC, TD3
from rlzoo.algos.sac.policies import SquashedGaussianActor
from rlzoo.common.policies import FlattenExtractor
from rlzoo.envs import DummyVecEnv, VecNormalize

FAST = dict(learning_rate=3e-3, learning_starts=200, batch_size=64, policy_kwargs=dict(net_arch=[32, 32]))


def test_sac_learns_target():
    model = SAC("MlpPolicy", DummyVecEnv([Target] * 2), seed=0, **FAST).learn(2000)
    assert target_score(model) > -0.02  # random actions: about -0.67
    ent_coef = math.exp(model.log_ent_coef.log_ent_coef.item())
    assert ent_coef < 0.5  # tuned down from 1 towards the entropy target


def test_squashed_gaussian_log_prob_matches_change_of_variables():
    torch.manual_seed(0)
    space = Target(dim=2).observation_space
    actor = SquashedGaussianActor(space, 2, FlattenExtractor(space), [16], torch.nn.ReLU)
    obs = torch.rand(4096, 2) * 2 - 1
    torch.manual_seed(1)
    actions, log_prob = actor.action_log_prob(obs)
    torch.manual_seed(1)
    mean, log_std = actor.mean_log_std(obs)
    u = mean + log_std.exp() * torch.randn_like(mean)
    reference = (torch.distributions.Normal(mean, log_std.exp()).log_prob(u)
                 - torch.log(1 - torch.tanh(u) ** 2 + 1e-12)).sum(1)
    torch.testing.assert_close(actions, torch.tanh(u))
    torch.testing.assert_close(log_prob, reference, atol=1e-3, rtol=1e-4)
    assert actions.abs().max() < 1


def test_sac_fixed_ent_coef_and_bad_values():
    model = SAC("MlpPolicy", DummyVecEnv([Target]), ent_coef=0.05, seed=0, **FAST)
    assert model.ent_coef_optimizer is None
    model.learn(300)
    assert math.exp(model.log_ent_coef.log_ent_coef.item()) == pytest.approx(0.05)
    assert SAC("MlpPolicy", DummyVecEnv([Target]), ent_coef="auto_0.2").log_ent_coef.log_ent_coef.exp().item() \
        == pytest.approx(0.2)
    with pytest.raises(ValueError, match="ent_coef"):
        SAC("MlpPolicy", DummyVecEnv([Target]), ent_coef="automatic")
    with pytest.raises(ValueError, match="Box"):
        SAC("MlpPolicy", "CartPole-v1")


def test_sac_save_load_and_replay_buffer(tmp_path):
    env = DummyVecEnv([Target])
    model = SAC("MlpPolicy", env, seed=0, **FAST).learn(400)
    obs = np.linspace(-1, 1, 7, dtype=np.float32)[:, None]
    before = model.predict(obs, deterministic=True)[0]
    mean, std = model.action_probability(obs)
    assert mean.shape == std.shape == (7, 1)
    model.save(tmp_path / "sac")
    path = model.save_replay_buffer(tmp_path / "rb")
    loaded = SAC.load(tmp_path / "sac", env=env)
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], before)
    assert loaded.log_ent_coef.log_ent_coef.item() == model.log_ent_coef.log_ent_coef.item()
    step = model.actor_optimizer.state_dict()["state"][0]["step"]
    assert loaded.actor_optimizer.state_dict()["state"][0]["step"] == step > 0
    loaded.load_replay_buffer(path)
    np.testing.assert_array_equal(loaded.replay_buffer.observations, model.replay_buffer.observations)
    loaded.learn(100, reset_num_timesteps=False)
    assert loaded.num_timesteps == 500
    with pytest.raises(ValueError):
        TD3.load(tmp_path / "sac")


def test_sac_vecnormalize_stores_raw_observations():
    env = VecNormalize(DummyVecEnv([Target] * 2), norm_reward=False)
    model = SAC("MlpPolicy", env, seed=0, **FAST).learn(300)
    stored = model.replay_buffer.observations[:150].reshape(-1)
    assert np.abs(stored).max() <= 1.0  # raw targets in [-1, 1], not normalized values
    assert stored.std() > 0.4
