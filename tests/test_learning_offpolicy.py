"""Small-budget learning tests of the continuous off-policy algorithms on Pendulum-v1.

The full-size targets (-200 / -250 within 20k steps with the shipped hyperparameters) are
checked by benchmarks/rewards_offpolicy.py; here narrower networks and 5k steps keep each test
under a minute while still separating a learned policy from a random one (about -1200).
"""
import numpy as np
import pytest

from rlzoo import DDPG, SAC, TD3
from rlzoo.envs import make_vec_env
from rlzoo.evaluation import evaluate_policy
from rlzoo.noise import NormalActionNoise


@pytest.mark.parametrize("cls", [SAC, TD3, DDPG], ids=lambda c: c.__name__)
def test_learns_pendulum_small_budget(cls):
    kwargs = dict(learning_rate=1e-3, learning_starts=1000, gamma=0.98, policy_kwargs=dict(net_arch=[64, 64]))
    if cls is not SAC:
        kwargs["action_noise"] = NormalActionNoise(np.zeros(1), 0.1 * np.ones(1))
    model = cls("MlpPolicy", "Pendulum-v1", seed=0, **kwargs).learn(5000)
    mean, _ = evaluate_policy(model, make_vec_env("Pendulum-v1", n_envs=1, seed=100), n_eval_episodes=5)
    # seed 0 and 1 reach about -200 (SAC, DDPG) and -390 (TD3, whose actor updates every other step)
    assert mean > -500, mean
