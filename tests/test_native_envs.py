"""Native vector envs (rlzoo/envs/native.py) against the Python stack (DummyVecEnv of Monitor-wrapped envs)."""
from __future__ import annotations

import numpy as np
import pytest

from rlzoo.envs import (
    DummyVecEnv,
    VecFrameStack,
    VecNormalize,
    episode_stats,
    final_observations,
    load_results,
    make_atari_env,
    make_vec_env,
)
from rlzoo.envs.native import AtariNativeVecEnv, CartPoleNativeVecEnv, EnvPoolVecEnv


def _rollout(venv, actions: np.ndarray, seed: int):
    obs, _ = venv.reset(seed=seed)
    all_obs, rewards, dones, episodes, finals = [obs], [], [], [], []
    for a in actions:
        obs, r, term, trunc, infos = venv.step(a)
        all_obs.append(obs)
        rewards.append(r)
        dones.append(term | trunc)
        episodes += [(e["r"], e["l"]) for e in episode_stats(infos)]
        done = term | trunc
        if done.any():
            finals.append(final_observations(infos, done))
    return np.array(all_obs), np.array(rewards), np.array(dones), episodes, finals


@pytest.mark.parametrize("n_envs", [1, 8])
def test_cartpole_native_is_the_python_stack(n_envs: int) -> None:
    """Same seed, same actions: bit-identical observations, rewards, dones, final obs and episode returns."""
    actions = np.random.default_rng(1).integers(0, 2, size=(1500, n_envs))
    python = make_vec_env("CartPole-v1", n_envs=n_envs, seed=5, vec_env_cls="dummy")
    native = make_vec_env("CartPole-v1", n_envs=n_envs, seed=5)  # auto picks the native env
    assert isinstance(python, DummyVecEnv) and isinstance(native, CartPoleNativeVecEnv)
    assert native.single_observation_space == python.single_observation_space
    a, b = _rollout(python, actions, seed=5), _rollout(native, actions, seed=5)
    for x, y in zip(a[:3], b[:3], strict=True):
        np.testing.assert_array_equal(x, y)
    assert len(a[3]) > 50 and a[3] == b[3]  # episode returns and lengths
    for x, y in zip(a[4], b[4], strict=True):
        np.testing.assert_array_equal(x, y)


def test_cartpole_native_time_limit_monitor_files_and_reseed(tmp_path) -> None:
    native = make_vec_env("CartPole-v1", n_envs=2, seed=0, monitor_dir=tmp_path, start_index=3,
                          env_kwargs={}, vec_env_cls="native")
    python = make_vec_env("CartPole-v1", n_envs=2, seed=0, vec_env_cls="dummy",
                          env_kwargs={"max_episode_steps": 10})
    short = make_vec_env("CartPole-v1", n_envs=2, seed=0, vec_env_cls="native", env_kwargs={})
    short.max_episode_steps = 10
    actions = np.array([[i % 2, (i + 1) % 2] for i in range(60)])
    a, b = _rollout(python, actions, 0), _rollout(short, actions, 0)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[3] == b[3] and all(length == 10 for _, length in b[3])  # truncated at the time limit
    obs, *_ = _rollout(native, np.ones((200, 2), dtype=np.int64), seed=0)
    native.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["3.monitor.csv", "4.monitor.csv"]
    df = load_results(tmp_path)
    assert len(df) > 5 and set(df["l"]) == set(df["r"].astype(int))  # CartPole: return == length
    # reset(seed=s) restarts the same initial states; reset() continues each env's RNG stream
    again = make_vec_env("CartPole-v1", n_envs=2, seed=0, vec_env_cls="native")
    first, _ = again.reset(seed=0)
    np.testing.assert_array_equal(first, obs[0])
    assert not np.array_equal(again.reset()[0], first)


def test_auto_falls_back_and_native_refuses() -> None:
    assert isinstance(make_vec_env("Pendulum-v1", n_envs=2), DummyVecEnv)
    assert isinstance(make_vec_env("CartPole-v1", n_envs=2, env_kwargs={"render_mode": "human"}), DummyVecEnv)
    assert isinstance(make_vec_env("CartPole-v1", n_envs=2, monitor_kwargs={"info_keywords": ("x",)}), DummyVecEnv)
    with pytest.raises(ValueError, match="no native vector env"):
        make_vec_env("Pendulum-v1", n_envs=2, vec_env_cls="native")
    with pytest.raises(ValueError, match="unknown vec_env_cls"):
        make_vec_env("CartPole-v1", vec_env_cls="threads")


def test_native_with_vecnormalize_framestack_and_ppo() -> None:
    from rlzoo import PPO

    env = VecNormalize(VecFrameStack(make_vec_env("CartPole-v1", n_envs=4, seed=0), 2))
    assert env.observation_space.shape == (4, 8)
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=32, n_epochs=1, seed=0).learn(256)
    assert model.num_timesteps == 256 and len(model.ep_info_buffer) > 0


def test_same_learning_with_native_and_python_stack() -> None:
    from rlzoo import A2C

    params = []
    for kind in ("dummy", "native"):
        env = make_vec_env("CartPole-v1", n_envs=4, seed=3, vec_env_cls=kind)
        model = A2C("MlpPolicy", env, seed=3).learn(600)
        params.append([p.detach().clone() for p in model.policy.parameters()])
    for x, y in zip(*params, strict=True):
        assert np.array_equal(x.numpy(), y.numpy())


def test_atari_native_matches_preprocessing_up_to_resize(tmp_path) -> None:
    """ale-py's C++ AtariVectorEnv: same spaces, frames within the resize interpolation's difference
    (not bit-identical, hence not picked by "auto"), same-step contract, whole-game Monitor records."""
    kwargs = {"noop_max": 0}
    python = make_atari_env("BreakoutNoFrameskip-v4", n_envs=2, seed=0, wrapper_kwargs=kwargs)
    native = make_atari_env("BreakoutNoFrameskip-v4", n_envs=2, seed=0, wrapper_kwargs=kwargs,
                            vec_env_cls="native", monitor_dir=tmp_path)
    assert isinstance(python, DummyVecEnv) and isinstance(native, AtariNativeVecEnv)
    assert native.single_observation_space == python.single_observation_space
    assert native.single_action_space == python.single_action_space
    first_py, _ = python.reset(seed=0)
    first_nat, _ = native.reset(seed=0)
    diff = np.abs(first_py.astype(np.int16) - first_nat)
    assert diff.mean() < 2.0 and (diff > 0).mean() < 0.05  # same frame, another resize interpolation
    # fire every step and move: games end; clipped rewards, a lost life is terminal, finals are given
    stacked = VecFrameStack(native, 4)
    stacked.reset(seed=0)
    rng = np.random.default_rng(0)
    games, life_ends = [], 0
    for _ in range(1500):
        obs, rewards, term, _trunc, infos = stacked.step(rng.integers(0, 4, size=2))
        assert obs.shape == (2, 84, 84, 4) and set(np.unique(rewards)) <= {-1.0, 0.0, 1.0}
        life_ends += int(term.sum())
        games += episode_stats(infos)
        if "final_obs" in infos:
            finals = final_observations(infos, infos["_final_obs"])
            assert finals.shape[1:] == (84, 84, 4)
    native.close()
    assert len(games) >= 2 and life_ends >= 5 * len(games)  # Breakout: 5 lives per game
    assert len(load_results(tmp_path)) == len(games)


def test_envpool_adapter_contract() -> None:
    pytest.importorskip("envpool")
    env = make_vec_env("CartPole-v1", n_envs=4, seed=0, vec_env_cls="envpool")
    assert isinstance(env, EnvPoolVecEnv)
    env.reset(seed=0)
    total, episodes = np.zeros(4), []
    for _ in range(300):
        obs, rewards, _term, _trunc, infos = env.step(np.random.randint(0, 2, size=4))
        total += rewards
        for i, e in zip(np.flatnonzero(infos.get("_final_obs", np.zeros(4, bool))), episode_stats(infos), strict=True):
            assert e["r"] == total[i] and final_observations(infos, [i]).shape == (1, 4)
            assert np.abs(obs[i]).max() <= 0.05  # the restarted env's first observation, this step
            total[i] = 0
            episodes.append(e)
    assert len(episodes) > 10


def test_cli_vec_env_native_and_refusal(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from rlzoo.zoo.cli import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(app, ["train", "--algo", "a2c", "--env", "CartPole-v1", "-n", "400", "--vec-env", "native",
                             "--eval-freq", "0", "--no-progress", "--seed", "0"])
    assert ok.exit_code == 0, ok.output
    monitors = sorted(p.name for p in tmp_path.rglob("*.monitor.csv"))
    assert monitors == [f"{i}.monitor.csv" for i in range(8)]  # zoo: 8 envs, one file each
    bad = runner.invoke(app, ["train", "--algo", "a2c", "--env", "Pendulum-v1", "-n", "100", "--vec-env", "native",
                              "--eval-freq", "0", "--no-progress"])
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.exit_code == 2 and len(lines) == 1 and "--vec-env native" in lines[0], bad.output


def test_evaluate_policy_counts_native_episodes() -> None:
    from rlzoo.common.evaluation import evaluate_policy, is_monitored

    class Always:
        def predict(self, obs, state=None, episode_start=None, deterministic=True):
            return np.ones(len(obs), dtype=np.int64), None

    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    assert is_monitored(VecNormalize(env)) is True
    rewards, lengths = evaluate_policy(Always(), env, n_eval_episodes=4, return_episode_rewards=True)
    assert len(rewards) == 4 and rewards == [float(n) for n in lengths] and all(8 <= n <= 12 for n in lengths)
