"""LSTM policies for PPO and A2C: resets at episode starts, faithful replay in train(), predict's state,
save/load, the partially observable envs."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from rlzoo import A2C, PPO
from rlzoo.common.recurrent import RecurrentActorCriticPolicy, RNNStates, lstm_sequence
from rlzoo.envs import DummyVecEnv, Monitor, make_vec_env
from rlzoo.evaluation import evaluate_policy
from tests.toy_envs import TinyImage


def _step_by_step(lstm: nn.LSTM, x: torch.Tensor, state, starts: torch.Tensor):
    h, c = state
    outs = []
    for t in range(x.shape[0]):
        keep = (1.0 - starts[t]).view(1, -1, 1)
        out, (h, c) = lstm(x[t:t + 1], (h * keep, c * keep))
        outs.append(out)
    return torch.cat(outs), (h, c)


@pytest.mark.parametrize("layers", [1, 2])
def test_lstm_sequence_resets_exactly_at_episode_starts(layers):
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 5, num_layers=layers)
    x = torch.randn(9, 4, 3)
    state = (torch.randn(layers, 4, 5), torch.randn(layers, 4, 5))
    starts = torch.zeros(9, 4)
    starts[0, 1] = starts[3, 0] = starts[3, 2] = starts[6, 3] = starts[8, 0] = 1.0
    with torch.no_grad():
        out, (h, c) = lstm_sequence(lstm, x, state, starts)
        ref, (h_ref, c_ref) = _step_by_step(lstm, x, state, starts)
        no_reset, _ = lstm(x, state)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(h, h_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(c, c_ref, rtol=0, atol=1e-6)
    # a reset changes the outputs from that step on (so the comparison above can fail)
    assert not torch.allclose(out[3, 0], no_reset[3, 0], atol=1e-4)
    assert torch.allclose(out[2, 0], no_reset[2, 0], atol=1e-6)
    # after a reset the env's output is that of a fresh sequence started there from zeros
    fresh, _ = lstm(x[3:6, 2:3], (torch.zeros(layers, 1, 5), torch.zeros(layers, 1, 5)))
    torch.testing.assert_close(out[3:6, 2:3], fresh.detach(), rtol=0, atol=1e-6)


def _collect(model, reset: bool = True) -> None:
    _, callback = model._setup_learn(model.n_steps * model.n_envs, None, reset, "run", False)
    assert model.collect_rollouts(callback)


@pytest.mark.parametrize(("kwargs", "batch_size", "shape"), [
    ({}, 128, (64, 2)), ({"shared_lstm": True}, 128, (64, 2)), ({"enable_critic_lstm": False}, 32, (32, 1)),
    ({"layer_norm": True, "n_lstm_layers": 2}, 48, (32, 1)), ({}, 256, (64, 4))])
def test_first_epoch_replay_equals_collection(kwargs, batch_size, shape):
    env = make_vec_env("CartPoleNoVel-v1", n_envs=4, seed=3)
    model = PPO("MlpLstmPolicy", env, n_steps=64, batch_size=batch_size, seed=3,
                policy_kwargs={"lstm_hidden_size": 16, "ortho_init": False, **kwargs})
    _collect(model)
    buf = model.rollout_buffer
    assert buf.episode_starts[1:].sum() >= 4  # episodes end inside the sequences (random play: ~20 steps)
    n_seen, worst_without_resets = 0, 0.0
    for batch in buf.get(model.batch_size):
        assert batch.episode_starts.shape == shape  # sequences of shape[0] steps, shape[1] per minibatch
        with torch.no_grad():
            values, log_prob, _ = model._evaluate_batch(batch)
            torch.testing.assert_close(log_prob, batch.old_log_prob, rtol=0, atol=1e-5)
            torch.testing.assert_close(values, batch.old_values, rtol=0, atol=1e-5)
            # without the resets the replay would differ: the check above can fail
            _, wrong, _ = model.policy.evaluate_actions(batch.observations, batch.actions, batch.lstm_states,
                                                        torch.zeros_like(batch.episode_starts))
            worst_without_resets = max(worst_without_resets, (wrong - batch.old_log_prob).abs().max().item())
        n_seen += batch.episode_starts.numel()
    assert n_seen == 64 * 4  # every step once
    assert worst_without_resets > 1e-3


def test_replay_with_box_actions_and_state_carried_over_rollouts():
    model = PPO("MlpLstmPolicy", make_vec_env("PendulumNoVel-v1", n_envs=2, seed=0), n_steps=150, batch_size=150,
                n_epochs=1, seed=0, policy_kwargs={"lstm_hidden_size": 8})
    _collect(model)
    model.train()
    _collect(model, reset=False)
    buf = model.rollout_buffer
    assert buf.initial_states.pi[0].abs().sum() > 0  # the second rollout starts from the carried state
    assert buf.episode_starts[0].sum() == 0 and buf.episode_starts[50].all()  # Pendulum: 200-step episodes
    batch = next(buf.get(None))
    with torch.no_grad():
        values, log_prob, _ = model._evaluate_batch(batch)
    torch.testing.assert_close(log_prob, batch.old_log_prob, rtol=0, atol=1e-5)
    torch.testing.assert_close(values, batch.old_values, rtol=0, atol=1e-5)


def test_predict_returns_next_state_and_resets_it():
    model = PPO("MlpLstmPolicy", "CartPoleNoVel-v1", seed=0, policy_kwargs={"lstm_hidden_size": 8, "n_lstm_layers": 2})
    obs = np.array([[0.1, -0.02], [0.0, 0.05]], dtype=np.float32)
    _, s1 = model.predict(obs, state=None, episode_start=np.ones(2, bool))
    assert s1[0].shape == s1[1].shape == (2, 2, 8)
    _, s2 = model.predict(obs, state=s1, episode_start=np.zeros(2, bool))
    assert not np.allclose(s1[0], s2[0])
    _, s3 = model.predict(obs, state=s2, episode_start=np.array([True, False]))
    np.testing.assert_allclose(s3[0][:, 0], s1[0][:, 0], atol=1e-6)  # env 0 reset: as from zeros
    assert not np.allclose(s3[0][:, 1], s1[0][:, 1])
    action, s = model.predict(obs[0], state=None, episode_start=None)  # one unbatched observation
    assert np.ndim(action) == 0 and s[0].shape == (2, 1, 8)
    with pytest.raises(ValueError, match="state must be"):
        model.predict(obs, state=(s1[0][:, :1], s1[1][:, :1]))


def test_save_load_round_trip_gives_identical_actions(tmp_path):
    kwargs = {"lstm_hidden_size": 12, "n_lstm_layers": 2, "layer_norm": True, "shared_lstm": True,
              "net_arch": {"pi": [16], "vf": [8]}}
    model = PPO("MlpLstmPolicy", make_vec_env("CartPoleNoVel-v1", n_envs=2, seed=1), n_steps=32, batch_size=64,
                n_epochs=2, seed=1, policy_kwargs=kwargs).learn(128)
    path = model.save(tmp_path / "lstm")
    loaded = PPO.load(path)
    assert isinstance(loaded.policy, RecurrentActorCriticPolicy)
    assert loaded.policy.lstm_actor.num_layers == 2 and loaded.policy.shared_lstm and loaded.policy.layer_norm
    rng = np.random.default_rng(0)
    state_a = state_b = None
    starts = np.ones(2, bool)
    for t in range(20):
        obs = rng.normal(size=(2, 2)).astype(np.float32)
        a, state_a = model.predict(obs, state_a, starts, deterministic=True)
        b, state_b = loaded.predict(obs, state_b, starts, deterministic=True)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(state_a[0], state_b[0])
        starts = np.array([t % 7 == 6, False])


def test_a2c_recurrent_learns_and_updates_weights():
    model = A2C("MlpLstmPolicy", make_vec_env("CartPoleNoVel-v1", n_envs=4, seed=0), n_steps=8, seed=0,
                policy_kwargs={"lstm_hidden_size": 16})
    before = [p.detach().clone() for p in model.policy.lstm_actor.parameters()]
    model.learn(320)
    assert model.num_timesteps == 320
    assert any(not torch.equal(b, p) for b, p in zip(before, model.policy.lstm_actor.parameters(), strict=True))


def test_cnn_and_multi_input_lstm_policies_run():
    env = DummyVecEnv([lambda: Monitor(TinyImage()) for _ in range(2)])
    model = PPO("CnnLstmPolicy", env, n_steps=16, batch_size=16, n_epochs=1, seed=0,
                policy_kwargs={"lstm_hidden_size": 16, "features_extractor_kwargs": {"features_dim": 32}})
    model.learn(64)
    _collect(model)
    batch = next(model.rollout_buffer.get(None))
    with torch.no_grad():
        _, log_prob, _ = model._evaluate_batch(batch)
    torch.testing.assert_close(log_prob, batch.old_log_prob, rtol=0, atol=1e-5)

    class DictEnv(gym.Env):
        observation_space = spaces.Dict({"a": spaces.Box(-1, 1, (3,), np.float32), "b": spaces.Discrete(4)})
        action_space = spaces.Box(-1, 1, (2,), np.float32)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return self.observation_space.sample(), {}

        def step(self, action):
            self.t += 1
            return self.observation_space.sample(), 0.0, self.t >= 5, False, {}

    dict_model = A2C("MultiInputLstmPolicy", DummyVecEnv([lambda: Monitor(DictEnv())] * 1), n_steps=6, seed=0,
                     policy_kwargs={"lstm_hidden_size": 8}).learn(24)
    obs = {"a": np.zeros(3, np.float32), "b": 2}
    action, state = dict_model.predict(obs, episode_start=np.ones(1, bool))
    assert action.shape == (2,) and state[0].shape == (1, 1, 8)


def test_evaluate_policy_carries_the_state():
    model = PPO("MlpLstmPolicy", "CartPoleNoVel-v1", seed=0, policy_kwargs={"lstm_hidden_size": 8})
    seen = []
    original = model.policy.predict

    def spy(obs, state=None, episode_start=None, deterministic=False):
        seen.append((state is None, np.asarray(episode_start).copy()))
        return original(obs, state, episode_start, deterministic)

    model.policy.predict = spy
    rewards, _lengths = evaluate_policy(model, make_vec_env("CartPoleNoVel-v1", n_envs=2, seed=0), n_eval_episodes=4,
                                       return_episode_rewards=True)
    assert len(rewards) == 4
    assert seen[0][0] and seen[0][1].all() and all(not none for none, _ in seen[1:])
    assert sum(s.sum() for _, s in seen[1:]) >= 3  # resets passed after every finished episode


def test_recurrent_policy_unknown_to_trpo_and_states_shape():
    from rlzoo import TRPO

    with pytest.raises(ValueError, match="unknown policy"):
        TRPO("MlpLstmPolicy", "CartPoleNoVel-v1")
    policy = PPO("MlpLstmPolicy", "CartPoleNoVel-v1", policy_kwargs={"lstm_hidden_size": 4}).policy
    states = policy.initial_state(3)
    assert isinstance(states, RNNStates) and states.pi[0].shape == (1, 3, 4)


@pytest.mark.parametrize("env_id,dim", [("CartPoleNoVel-v1", 2), ("PendulumNoVel-v1", 2), ("LunarLanderNoVel-v3", 5)])
def test_no_velocity_envs_hide_velocities(env_id, dim):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (dim,) and env.observation_space.shape == (dim,)
    full = gym.make(env_id.replace("NoVel", ""))
    full_obs, _ = full.reset(seed=0)
    assert set(np.round(obs, 6)) <= set(np.round(full_obs, 6))  # same dynamics, a subset of the entries
    assert env.spec.max_episode_steps == full.spec.max_episode_steps


def test_sequence_length_divides_the_rollout():
    from rlzoo.common.recurrent_rollout import sequence_length

    assert sequence_length(1024, 64) == 64 and sequence_length(32, 256) == 32 and sequence_length(32, None) == 32
    assert sequence_length(100, 64) == 50 and sequence_length(7, 3) == 1


def test_action_probability_of_a_recurrent_model_is_from_a_fresh_state():
    model = PPO("MlpLstmPolicy", "CartPoleNoVel-v1", seed=0, policy_kwargs={"lstm_hidden_size": 8})
    obs = np.array([0.1, -0.02], dtype=np.float32)
    probs = model.action_probability(obs)
    assert probs.shape == (2,) and abs(probs.sum() - 1) < 1e-6
