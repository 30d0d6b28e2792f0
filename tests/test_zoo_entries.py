"""Every entry of every shipped hyperparameter file loads, validates, and builds its env and model.

No training: the env is built the way ``rlzoo train`` builds it (Atari preprocessing, the entry's
wrappers, frame stacking, VecNormalize, action noise) with at most 2 envs, and the model is built
on it with the replay buffer capped (image buffers of 1M frames would only cost memory here).
"""
from __future__ import annotations

import importlib.util
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from rlzoo.zoo.config import build_config
from rlzoo.zoo.experiment import make_action_noise, make_env, normalize_env
from rlzoo.zoo.hyperparams_files import hyperparams_file, load_hyperparams_file
from rlzoo.zoo.resolve import algorithms, is_atari

ATARI_ID = "PongNoFrameskip-v4"  # stands for every ALE game under the `atari` entry
MUJOCO_IDS = {f"{name}-v5" for name in ("Ant", "HalfCheetah", "Hopper", "Humanoid", "HumanoidStandup",
                                        "InvertedPendulum", "InvertedDoublePendulum", "Pusher", "Reacher",
                                        "Swimmer", "Walker2d")}
BOX2D_IDS = {"LunarLander-v3", "LunarLanderContinuous-v3", "BipedalWalker-v3", "BipedalWalkerHardcore-v3",
             "CarRacing-v3"}
CLASSIC_IDS = {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"}
DISCRETE_IDS = {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3"}
ON_POLICY = ("a2c", "ppo", "trpo", "acktr")
OFF_POLICY_BOX = ("ddpg", "td3", "sac")


def _entries() -> list[tuple[str, str]]:
    out = []
    for algo in sorted(algorithms()):
        path = hyperparams_file(algo)
        if path.is_file():
            out += [(algo, str(name)) for name in load_hyperparams_file(path) if name != "default"]
    return out


def _missing_dependency(env_id: str) -> str | None:
    if env_id == ATARI_ID:
        return None if importlib.util.find_spec("ale_py") else "ale_py"
    if env_id in MUJOCO_IDS:
        return None if importlib.util.find_spec("mujoco") else "mujoco"
    if env_id in BOX2D_IDS:
        return None if importlib.util.find_spec("Box2D") else "box2d"
    return None


def _build(algo: str, env_id: str) -> Any:
    cls = algorithms()[algo]
    config = build_config(algo, cls, env_id, atari=is_atari(env_id))
    env = normalize_env(make_env(config, min(config.n_envs, 2), seed=0), config)
    kwargs = dict(config.model_kwargs)
    if "buffer_size" in kwargs:
        kwargs["buffer_size"] = min(int(kwargs["buffer_size"]), 500)
    if config.noise is not None:
        kwargs["action_noise"] = make_action_noise(config.noise, env.single_action_space)
    try:
        model = cls(config.policy, env, seed=0, device="cpu", **kwargs)
        obs, _ = env.reset(seed=0)
        action, _ = model.predict(obs, deterministic=True)
        assert env.single_action_space.contains(np.asarray(action)[0].astype(env.single_action_space.dtype))
    finally:
        env.close()
    return config


@pytest.mark.parametrize(("algo", "name"), _entries(), ids=lambda x: x)
def test_entry_builds(algo: str, name: str) -> None:
    env_id = ATARI_ID if name == "atari" else name
    missing = _missing_dependency(env_id)
    if missing:
        pytest.skip(f"{missing} is not installed")
    config = _build(algo, env_id)
    assert config.n_timesteps > 0


def test_every_gymnasium_task_has_entries() -> None:
    """The zoo covers every task Gymnasium ships, for every algorithm whose action space fits."""
    tasks = CLASSIC_IDS | BOX2D_IDS | MUJOCO_IDS
    have = set(_entries())
    missing = []
    for env_id in sorted(tasks):
        discrete = env_id in DISCRETE_IDS
        algos = ON_POLICY + (("dqn", "acer") if discrete else OFF_POLICY_BOX)
        if env_id == "CarRacing-v3":
            algos = ON_POLICY + OFF_POLICY_BOX
        missing += [f"{algo}:{env_id}" for algo in algos if (algo, env_id) not in have]
    atari_algos = ("a2c", "ppo", "trpo", "acktr", "acer", "dqn")
    missing += [f"{algo}:atari" for algo in atari_algos if (algo, "atari") not in have]
    assert not missing, f"tasks without a tuned entry: {missing}"


def test_every_entry_states_its_result() -> None:
    """Each entry carries a comment: the reward reached (seeds, budget) or 'not yet run'."""
    for algo in sorted(algorithms()):
        path = hyperparams_file(algo)
        if not path.is_file():
            continue
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if not line or line[0] in " #" or not line.rstrip().endswith(":") and "&" not in line:
                continue
            name = line.split(":", 1)[0]
            if name in ("default", "atari"):
                continue
            assert i + 1 < len(lines) and lines[i + 1].strip().startswith("#"), \
                f"{path.name} [{name}]: the entry's first line should state its result or 'not yet run'"


def test_carracing_preprocessing() -> None:
    """The CarRacing entries' wrappers give 64x64 grayscale frames, stacked by 2."""
    if _missing_dependency("CarRacing-v3"):
        pytest.skip("box2d is not installed")
    config = build_config("ppo", algorithms()["ppo"], "CarRacing-v3")
    env = make_env(config, 1, seed=0)
    try:
        assert env.single_observation_space.shape in ((64, 64, 2), (2, 64, 64))
        assert isinstance(env.single_action_space, gym.spaces.Box)
    finally:
        env.close()
