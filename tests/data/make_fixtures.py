"""Write the regression fixtures of tests/test_safe_files.py (model files as the 0.x release saves them).

Run once with the release whose files must keep loading: ``python tests/data/make_fixtures.py``.
Each model is tiny (one hidden layer of 8 units) and untrained or trained for a few steps; the
actions it predicts for fixed observations are stored in ``expected_actions.json``.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch

from rlzoo import A2C, ACER, ACKTR, DDPG, DQN, PPO, SAC, TD3, TRPO
from rlzoo.common.policies import ActorCriticPolicy
from rlzoo.envs import DummyVecEnv, VecNormalize, make_vec_env
from rlzoo.noise import AdaptiveParamNoiseSpec, NormalActionNoise, OrnsteinUhlenbeckActionNoise
from rlzoo.utils import linear_schedule

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = {"net_arch": [8]}
DISCRETE_OBS = np.array([[0.01, -0.02, 0.03, 0.04], [0.1, 0.2, -0.1, -0.2]], dtype=np.float32)
BOX_OBS = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]], dtype=np.float32)


def models() -> dict:
    """name -> (model, observations) of every fixture model."""
    cp, pend = "CartPole-v1", "Pendulum-v1"
    out = {
        "a2c": (A2C("MlpPolicy", cp, n_steps=4, policy_kwargs=TINY, seed=1), DISCRETE_OBS),
        "ppo": (PPO("MlpPolicy", cp, n_steps=16, batch_size=8, policy_kwargs=TINY, seed=1), DISCRETE_OBS),
        "trpo": (TRPO("MlpPolicy", cp, n_steps=16, policy_kwargs=TINY, seed=1), DISCRETE_OBS),
        "acktr": (ACKTR("MlpPolicy", cp, n_steps=4, policy_kwargs=TINY, seed=1), DISCRETE_OBS),
        "acer": (ACER("MlpPolicy", cp, n_steps=4, buffer_size=16, replay_start=8, policy_kwargs=TINY, seed=1),
                 DISCRETE_OBS),
        "dqn": (DQN("MlpPolicy", cp, buffer_size=64, learning_starts=16, policy_kwargs=TINY, seed=1), DISCRETE_OBS),
        "ddpg": (DDPG("MlpPolicy", pend, buffer_size=64, learning_starts=16, policy_kwargs=TINY, seed=1), BOX_OBS),
        "td3": (TD3("MlpPolicy", pend, buffer_size=64, learning_starts=16, policy_kwargs=TINY, seed=1), BOX_OBS),
        "sac": (SAC("MlpPolicy", pend, buffer_size=64, learning_starts=16, policy_kwargs=TINY, seed=1), BOX_OBS),
        # a schedule, a policy class instead of an alias, noise objects, a custom architecture
        "ppo_linear_schedule": (PPO(ActorCriticPolicy, cp, n_steps=16, batch_size=8, policy_kwargs=TINY,
                                    learning_rate=linear_schedule(3e-4), clip_range=linear_schedule(0.2, 0.1),
                                    seed=2), DISCRETE_OBS),
        "ddpg_action_noise": (DDPG("MlpPolicy", pend, buffer_size=64, learning_starts=16, policy_kwargs=TINY,
                                   action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)),
                                   param_noise=AdaptiveParamNoiseSpec(0.2, 0.2), seed=3), BOX_OBS),
        "td3_ou_noise_2envs": (TD3("MlpPolicy", make_vec_env(pend, n_envs=2, seed=0), buffer_size=64,
                                   learning_starts=16, policy_kwargs=TINY,
                                   action_noise=OrnsteinUhlenbeckActionNoise(np.zeros(1), 0.2 * np.ones(1)),
                                   seed=4), BOX_OBS),
        "a2c_custom_arch": (A2C("MlpPolicy", cp, n_steps=4, seed=5,
                                policy_kwargs={"net_arch": {"pi": [8, 4], "vf": [6]},
                                               "activation_fn": torch.nn.ReLU}), DISCRETE_OBS),
    }
    return out


def main() -> None:
    expected: dict = {}
    for name, (model, obs) in models().items():
        if name in ("dqn", "acer", "sac"):
            model.learn(32)  # a few steps: a replay buffer with content, optimizer state
        model.save(os.path.join(HERE, f"{name}.zip"))
        actions, _ = model.predict(obs, deterministic=True)
        expected[name] = {"algo": type(model).__name__, "obs": obs.tolist(), "actions": actions.tolist()}
        if name == "dqn":
            model.save_replay_buffer(os.path.join(HERE, "dqn_replay.npz"))
        if name == "acer":
            model.save_replay_buffer(os.path.join(HERE, "acer_replay.npz"))
    venv = VecNormalize(DummyVecEnv([lambda: __import__("gymnasium").make("Pendulum-v1")]))
    venv.reset(seed=0)
    for _ in range(20):
        venv.step(np.zeros((1, 1), dtype=np.float32))
    venv.save(os.path.join(HERE, "pendulum.vecnormalize.safetensors"))
    expected["__vecnormalize__"] = {"obs_mean": venv.obs_rms.mean.tolist(), "ret_count": float(venv.ret_rms.count)}
    with open(os.path.join(HERE, "expected_actions.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print("wrote", len(expected), "entries to", HERE, file=sys.stderr)


if __name__ == "__main__":
    main()
