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
