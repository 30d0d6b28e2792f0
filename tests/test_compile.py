"""The ``compile`` option: a saved hyperparameter; compiled updates follow the eager ones."""
from __future__ import annotations

import pytest
import torch

from rlzoo import A2C, DQN, PPO, SAC, TD3


def test_compile_is_a_saved_hyperparameter(tmp_path) -> None:
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=8, batch_size=8, seed=0)
    assert model.compile is False
    model.compile = True  # set after construction: nothing compiled yet, only saved
    path = model.save(tmp_path / "m")
    assert PPO.load(path).compile is True
    assert PPO.load(path, compile=False).compile is False


@pytest.mark.slow
@pytest.mark.parametrize("algo, env, kwargs, steps", [
    (PPO, "CartPole-v1", {"n_steps": 32, "batch_size": 64, "n_epochs": 2}, 256),
    (A2C, "CartPole-v1", {}, 100),
    (DQN, "CartPole-v1", {"learning_starts": 50, "train_freq": 4, "double_q": False, "dueling": False}, 200),
    (SAC, "Pendulum-v1", {"learning_starts": 50}, 120),
    (TD3, "Pendulum-v1", {"learning_starts": 50}, 120),
])
def test_compiled_updates_follow_eager(algo, env, kwargs, steps) -> None:
    """Same seed: the compiled run's weights stay within float rounding of the eager run's."""
    params = []
    for flag in (False, True):
        model = algo("MlpPolicy", env, seed=0, compile=flag, **kwargs).learn(steps)
        params.append([p.detach().clone() for p in model.policy.parameters()])
    for eager, compiled in zip(*params):
        torch.testing.assert_close(compiled, eager, rtol=1e-3, atol=1e-4)
