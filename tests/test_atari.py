"""Atari preprocessing: shapes, reward clipping, episodic life, fire reset, make_atari_env."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ale_py")

from rlzoo.envs import (  # noqa: E402
    AtariWrapper,
    Monitor,
    VecFrameStack,
    episode_stats,
    is_atari_env_id,
    make_atari_env,
)
from rlzoo.envs.atari import EpisodicLifeEnv, FireResetEnv  # noqa: E402


def _wrappers(env) -> list[type]:
    out = []
    while hasattr(env, "env"):
        out.append(type(env))
        env = env.env
    return out


def test_make_atari_env_pong_shapes():
    env = make_atari_env("PongNoFrameskip-v4", n_envs=2, seed=0)
    assert env.single_observation_space.shape == (84, 84, 1)
    assert env.single_observation_space.dtype == np.uint8
    obs, _ = env.reset()
    assert obs.shape == (2, 84, 84, 1) and obs.dtype == np.uint8 and obs.max() > 0
    for _ in range(20):
        obs, rew, *_ = env.step(env.action_space.sample())
    assert obs.shape == (2, 84, 84, 1)
    # Monitor sits below AtariWrapper: episodes are whole games with raw scores
    chain = _wrappers(env.envs[0])
    assert chain.index(AtariWrapper) < chain.index(Monitor)
    stacked = VecFrameStack(env, n_stack=4)
    assert stacked.reset()[0].shape == (2, 84, 84, 4)
    env.close()


def test_is_atari_env_id():
    assert is_atari_env_id("PongNoFrameskip-v4") and is_atari_env_id("ALE/Breakout-v5")
    assert not is_atari_env_id("CartPole-v1") and not is_atari_env_id("NoSuchGame-v0")


def test_reward_clipping():
    # SpaceInvaders gives 5..30 points per alien; random play scores within a few hundred steps
    def total_rewards(clip: bool) -> np.ndarray:
        env = make_atari_env("SpaceInvadersNoFrameskip-v4", n_envs=1, seed=1,
                             wrapper_kwargs={"clip_reward": clip, "terminal_on_life_loss": False})
        rewards = [env.step(env.action_space.sample())[1][0] for _ in range(300)]
        env.close()
        return np.array(rewards)

    clipped, raw = total_rewards(True), total_rewards(False)
    assert set(np.unique(clipped)) <= {-1.0, 0.0, 1.0} and clipped.max() == 1.0
    assert raw.max() >= 5.0
    np.testing.assert_array_equal(np.sign(raw), clipped)  # same seed, same game


def test_episodic_life_and_fire_reset_breakout():
    env = make_atari_env("BreakoutNoFrameskip-v4", n_envs=1, seed=0)
    chain = _wrappers(env.envs[0])
    assert FireResetEnv in chain and EpisodicLifeEnv in chain
    ale = env.envs[0].unwrapped.ale
    env.reset()
    assert ale.lives() == 5
    # always NOOP: only FIRE launches the ball, so lives are lost only thanks to the fire reset,
    # and after every lost life the reset must fire again
    life_losses, games = [], []
    for _ in range(2500):
        frame_before = ale.getEpisodeFrameNumber()
        _, _, term, trunc, infos = env.step(np.zeros(1, np.int64))
        if term[0]:
            life_losses.append(ale.lives())
            games += episode_stats(infos)
            if not games:  # a lost life does not restart the game
                assert ale.getEpisodeFrameNumber() > frame_before
        if games:
            break
    # 5 learning episodes (lives 4, 3, 2, 1 lost, then the real game over) for one Monitor episode
    assert life_losses[:4] == [4, 3, 2, 1]
    assert len(life_losses) == 5 and len(games) == 1
    assert games[0]["r"] == 0.0 and games[0]["l"] > 5 * 4 * 10
    assert ale.lives() == 5  # the game itself was reset after the real game over
    env.close()


def test_no_fire_reset_for_games_without_fire():
    env = make_atari_env("FreewayNoFrameskip-v4", n_envs=1, seed=0)
    assert FireResetEnv not in _wrappers(env.envs[0])
    env.close()


def test_v5_ids_get_frameskip_1():
    env = make_atari_env("ALE/Breakout-v5", n_envs=1, seed=0)
    assert env.envs[0].unwrapped._frameskip == 1
    assert env.reset()[0].shape == (1, 84, 84, 1)
    env.close()
