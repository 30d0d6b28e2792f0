"""DDPG: action noise, adaptive parameter noise, and the Stable Baselines callback example."""
import os

import gymnasium as gym
import numpy as np
import torch
from toy_envs import Target, target_score

from rlzoo import DDPG
from rlzoo.envs import DummyVecEnv, Monitor
from rlzoo.evaluation import evaluate_policy
from rlzoo.noise import AdaptiveParamNoiseSpec, OrnsteinUhlenbeckActionNoise
from rlzoo.results import load_results, ts2xy

FAST = dict(learning_rate=3e-3, learning_starts=200, batch_size=64, policy_kwargs=dict(net_arch=[32, 32]))


def test_ddpg_learns_target_with_ou_noise():
    noise = OrnsteinUhlenbeckActionNoise(np.zeros(1), 0.3 * np.ones(1))
    model = DDPG("MlpPolicy", DummyVecEnv([Target]), action_noise=noise, seed=0, **FAST).learn(1500)
    assert target_score(model) > -0.02  # random actions: about -0.67
    assert len(model.critic.q_networks) == 1  # DDPG: a single critic


def test_ddpg_param_noise_learns_and_adapts():
    spec = AdaptiveParamNoiseSpec(initial_stddev=0.5, desired_action_stddev=0.05, adoption_coefficient=1.05)
    model = DDPG("MlpPolicy", DummyVecEnv([Target]), param_noise=spec, param_noise_adaption_interval=10,
                 seed=0, **FAST).learn(1500)
    assert target_score(model) > -0.02
    # a perturbation of 0.5 moves the actions far more than 0.05: the scale must have shrunk
    assert spec.current_stddev < 0.5 / 1.05 ** 10
    # the exploring actor is the actor plus noise of the current scale
    diffs = torch.cat([(p - q).flatten() for p, q in zip(model.actor_perturbed.parameters(),
                                                         model.actor.parameters(), strict=True)])
    assert 0 < diffs.std().item() < 3 * spec.current_stddev


def test_param_noise_scale_grows_when_actions_barely_move():
    spec = AdaptiveParamNoiseSpec(initial_stddev=1e-4, desired_action_stddev=0.2)
    DDPG("MlpPolicy", DummyVecEnv([Target]), param_noise=spec, param_noise_adaption_interval=1,
                 seed=0, **FAST).learn(260)
    assert spec.current_stddev > 1e-4 * 1.01 ** 50


def test_stable_baselines_callback_example(tmp_path):
    """DDPG + adaptive parameter noise on LunarLanderContinuous inside a Monitor; a function callback
    reads the monitor file with load_results / ts2xy and saves the best model (small budget)."""
    log_dir = str(tmp_path) + "/"
    state = {"n_steps": 0, "best_mean_reward": -np.inf, "saves": 0}

    def callback(_locals, _globals):
        if (state["n_steps"] + 1) % 200 == 0:
            x, y = ts2xy(load_results(log_dir), "timesteps")
            if len(x) > 0:
                mean_reward = np.mean(y[-100:])
                if mean_reward > state["best_mean_reward"]:
                    state["best_mean_reward"] = mean_reward
                    _locals["self"].save(log_dir + "best_model")
                    state["saves"] += 1
        state["n_steps"] += 1
        return True

    env = Monitor(gym.make("LunarLanderContinuous-v3"), log_dir, allow_early_resets=True)
    env = DummyVecEnv([lambda: env])
    param_noise = AdaptiveParamNoiseSpec(initial_stddev=0.1, desired_action_stddev=0.1)
    model = DDPG("MlpPolicy", env, param_noise=param_noise, seed=0, learning_starts=300, batch_size=64,
                 policy_kwargs=dict(net_arch=[64, 64]))
    model.learn(total_timesteps=1200, callback=callback)
    assert state["n_steps"] == 1200 and state["saves"] >= 1
    assert os.path.exists(log_dir + "best_model.zip")
    x, y = ts2xy(load_results(log_dir), "timesteps")
    assert len(x) >= 3 and x[-1] <= 1200
    best = DDPG.load(log_dir + "best_model")
    assert best.param_noise is not None and best.param_noise.desired_action_stddev == 0.1
    mean, _ = evaluate_policy(best, env, n_eval_episodes=1)
    assert np.isfinite(mean)


def test_callback_can_stop_training():
    model = DDPG("MlpPolicy", DummyVecEnv([Target]), seed=0, **FAST)
    model.learn(1000, callback=lambda locals_, globals_: locals_["self"].num_timesteps < 50)
    assert model.num_timesteps == 50
    assert model.replay_buffer.size() == 50  # the step that stopped training is stored too
