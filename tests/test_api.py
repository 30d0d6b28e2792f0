"""The public names of API.md exist where the contract says they are."""
from __future__ import annotations

import inspect

from typer.testing import CliRunner


def test_public_imports():
    from rlzoo import A2C, ACER, ACKTR, ALGOS, DDPG, DQN, PPO, SAC, TD3, TRPO  # noqa: F401
    from rlzoo.callbacks import (BaseCallback, CallbackList, CheckpointCallback, EvalCallback,  # noqa: F401
                                 ProgressBarCallback, StopTrainingOnRewardThreshold)
    from rlzoo.envs import (AtariWrapper, DummyVecEnv, Monitor, SubprocVecEnv, VecEnvWrapper,  # noqa: F401
                            VecFrameStack, VecNormalize, make_atari_env, make_vec_env)
    from rlzoo.evaluation import evaluate_policy  # noqa: F401
    from rlzoo.noise import AdaptiveParamNoiseSpec, NormalActionNoise, OrnsteinUhlenbeckActionNoise  # noqa: F401
    from rlzoo.results import load_results, plot_results, ts2xy  # noqa: F401
    from rlzoo.utils import linear_schedule, set_global_seeds  # noqa: F401

    assert set(ALGOS) == {"a2c", "acer", "acktr", "ddpg", "dqn", "ppo", "sac", "td3", "trpo"}
    for name, cls in ALGOS.items():
        assert cls.__name__.lower() == name
        for method in ("learn", "predict", "save", "load", "set_env", "get_env", "action_probability",
                       "get_parameters", "set_parameters"):
            assert callable(getattr(cls, method)), f"{name}.{method}"
        params = inspect.signature(cls.__init__).parameters
        for arg in ("policy", "env", "learning_rate", "policy_kwargs", "tensorboard_log", "verbose", "seed", "device"):
            assert arg in params, f"{name} lacks the constructor argument {arg}"
        assert cls.__doc__, f"{name} has no docstring"


def test_cli_commands():
    from rlzoo.zoo.cli import app

    out = CliRunner().invoke(app, ["--help"]).output
    for command in ("train", "enjoy", "record-gif", "optimize", "plot", "list"):
        assert command in out, f"rlzoo {command} is missing"


def test_threads_follow_model_size(monkeypatch):
    """One intra-op thread for small MLPs, torch's default for big networks, RLZOO_NUM_THREADS over both."""
    import torch

    from rlzoo import PPO, SAC
    from rlzoo.common import utils

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("RLZOO_NUM_THREADS", raising=False)
        monkeypatch.setattr(utils, "_DEFAULT_THREADS", 3)
        PPO("MlpPolicy", "CartPole-v1", n_steps=16)  # ~9k parameters
        assert torch.get_num_threads() == 1
        SAC("MlpPolicy", "Pendulum-v1")  # ~200k trainable parameters (targets not counted)
        assert torch.get_num_threads() == 3
        monkeypatch.setenv("RLZOO_NUM_THREADS", "2")
        PPO("MlpPolicy", "CartPole-v1", n_steps=16)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
