"""Vector envs, Monitor + results, VecNormalize, VecFrameStack, make_vec_env."""

from __future__ import annotations

import json
import os

import gymnasium as gym
import numpy as np
import pytest
import torch  # noqa: F401  (SubprocVecEnv must work with torch imported in the parent)
from gymnasium import spaces

from rlzoo.envs import (
    DummyVecEnv,
    Monitor,
    RunningMeanStd,
    SubprocVecEnv,
    VecEnvWrapper,
    VecFrameStack,
    VecNormalize,
    episode_stats,
    final_observations,
    is_image_space,
    load_results,
    make_vec_env,
    plot_results,
    ts2xy,
    unwrap_vec_normalize,
    unwrap_vec_wrapper,
)


class CounterEnv(gym.Env):
    """obs = [t, id] for t = 0..length; reward = t after the step; terminates at t == length
    (or truncates, with ``truncate=True``). ``length`` differs per env so episodes end out of sync."""

    def __init__(self, length: int = 3, env_id: int = 0, truncate: bool = False, shape: tuple[int, ...] = (2,)):
        self.length, self.env_id, self.truncate, self.shape = length, env_id, truncate, shape
        self.observation_space = spaces.Box(-1e6, 1e6, shape=shape, dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def _obs(self):
        obs = np.zeros(self.shape, dtype=np.float32)
        obs.flat[0], obs.flat[1] = self.t, self.env_id
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        done = self.t >= self.length
        return self._obs(), float(self.t), done and not self.truncate, done and self.truncate, {}


class GaussianEnv(gym.Env):
    """i.i.d. Gaussian observations with known mean/std; episodes of 10 steps, reward 1."""

    MEAN, STD = np.array([3.0, -2.0, 0.0]), np.array([2.0, 0.5, 10.0])

    def __init__(self):
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def _obs(self):
        return (self.MEAN + self.STD * self.np_random.standard_normal(3)).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, self.t >= 10, False, {}


def counter_vec(lengths=(3, 5), **kw) -> DummyVecEnv:
    return DummyVecEnv([lambda n=n, i=i: CounterEnv(n, i, **kw) for i, n in enumerate(lengths)])


# ------------------------------------------------------------------------------------- vec env
def test_same_step_autoreset_final_obs():
    env = counter_vec((3, 5))
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs[:, 0], [0, 0])
    for _ in range(1, 3):
        obs, rew, term, trunc, infos = env.step(np.zeros(2, dtype=np.int64))
        assert "final_obs" not in infos and not term.any()
        assert episode_stats(infos) == []
    obs, rew, term, trunc, infos = env.step(np.zeros(2, dtype=np.int64))
    np.testing.assert_array_equal(term, [True, False])
    np.testing.assert_array_equal(obs[:, 0], [0, 3])  # env 0 already reset in the same step
    np.testing.assert_array_equal(infos["_final_obs"], [True, False])
    final = final_observations(infos, np.flatnonzero(term))
    np.testing.assert_array_equal(final, [[3, 0]])
    np.testing.assert_array_equal(final_observations(infos, term), [[3, 0]])  # bool mask works too
    with pytest.raises(ValueError):
        final_observations(infos, [1])  # env 1 did not finish
    env.close()


def test_final_observations_dict():
    class DictEnv(CounterEnv):
        def __init__(self, length, env_id):
            super().__init__(length, env_id)
            self.observation_space = spaces.Dict({"a": spaces.Box(-9, 9, (2,), np.float32), "b": spaces.Discrete(4)})

        def _obs(self):
            return {"a": np.full(2, self.t, np.float32), "b": self.env_id}

    env = DummyVecEnv([lambda: DictEnv(2, 0), lambda: DictEnv(2, 1)])
    env.reset(seed=0)
    env.step(np.zeros(2, np.int64))
    _, _, term, _, infos = env.step(np.zeros(2, np.int64))
    assert term.all()
    final = final_observations(infos, [0, 1])
    np.testing.assert_array_equal(final["a"], [[2, 2], [2, 2]])
    np.testing.assert_array_equal(final["b"], [0, 1])


def test_episode_stats_from_monitor():
    env = DummyVecEnv([lambda n=n: Monitor(CounterEnv(n)) for n in (2, 4)])
    env.reset(seed=0)
    seen = []
    for _ in range(4):
        seen += episode_stats(env.step(np.zeros(2, np.int64))[4])
    # env0 ends at steps 2 and 4 (return 1+2=3, length 2); env1 at step 4 (return 10, length 4)
    assert sorted((e["r"], e["l"]) for e in seen) == [(3.0, 2), (3.0, 2), (10.0, 4)]
    assert all(isinstance(e["t"], float) and e["t"] >= 0 for e in seen)
    mon = env.envs[1]
    assert mon.get_episode_rewards() == [10.0] and mon.get_episode_lengths() == [4]
    assert mon.get_total_steps() == 4


def test_monitor_csv_load_results_ts2xy(tmp_path):
    mdir = tmp_path / "monitor"
    env = make_vec_env(lambda: CounterEnv(3), n_envs=2, seed=0, monitor_dir=mdir)
    for _ in range(9):
        env.step(np.zeros(2, np.int64))
    # flushed after every episode: readable while the env is still open
    files = sorted(os.listdir(mdir))
    assert files == ["0.monitor.csv", "1.monitor.csv"]
    lines = (mdir / "0.monitor.csv").read_text().splitlines()
    assert lines[0].startswith("#") and "t_start" in json.loads(lines[0][1:])
    assert lines[1] == "r,l,t" and len(lines) == 2 + 3
    df = load_results(mdir)
    assert list(df.columns[:3]) == ["r", "l", "t"] and len(df) == 6
    assert list(df.index) == list(range(6)) and df["t"].is_monotonic_increasing
    assert (df["r"] == 6.0).all() and (df["l"] == 3).all()
    x, y = ts2xy(df, "timesteps")
    np.testing.assert_array_equal(x, np.arange(1, 7) * 3)
    np.testing.assert_array_equal(y, np.full(6, 6.0))
    assert np.array_equal(ts2xy(df, "episodes")[0], np.arange(6))
    assert ts2xy(df, "walltime_hrs")[0].max() < 1.0
    with pytest.raises(ValueError, match="x_axis"):
        ts2xy(df, "bogus")
    fig = plot_results([str(mdir)], 100, "timesteps", "Counter")
    fig.savefig(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 0
    env.close()
    with pytest.raises(FileNotFoundError, match="monitor.csv"):
        load_results(tmp_path / "empty_does_not_exist")


def test_monitor_directory_filename_and_early_reset(tmp_path):
    mon = Monitor(CounterEnv(2), filename=str(tmp_path), allow_early_resets=False)
    mon.reset(seed=0)
    mon.step(0)
    with pytest.raises(RuntimeError, match="allow_early_resets"):
        mon.reset()
    mon.step(0)
    mon.reset()
    mon.close()
    (name,) = os.listdir(tmp_path)
    assert name.endswith(".monitor.csv")
    assert len(load_results(tmp_path)) == 1


# ------------------------------------------------------------------------------------- make_vec_env
def _rollout(env, n=60):
    obs, _ = env.reset()
    out = [obs]
    for _ in range(n):
        obs = env.step(env.action_space.sample())[0]
        out.append(obs)
    return np.stack(out)


def test_make_vec_env_seeding_reproducible():
    a = _rollout(make_vec_env("CartPole-v1", n_envs=3, seed=7))
    b = _rollout(make_vec_env("CartPole-v1", n_envs=3, seed=7))
    c = _rollout(make_vec_env("CartPole-v1", n_envs=3, seed=8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a[:, 0], a[:, 1])  # sub-envs get different seeds


def test_make_vec_env_errors_and_wrappers():
    with pytest.raises(ValueError) as err:
        make_vec_env("CartPol-v1")
    assert "\n" not in str(err.value) and "CartPole" in str(err.value)
    with pytest.raises(ValueError, match="nosuchmodule"):
        make_vec_env("nosuchmodule:Foo-v0")
    env = make_vec_env("gymnasium.envs.classic_control:CartPole-v1", n_envs=2,
                       wrapper_class=gym.wrappers.TimeAwareObservation, env_kwargs={"max_episode_steps": 5})
    assert env.single_observation_space.shape == (5,)
    assert isinstance(env.envs[0].env, Monitor)
    env.reset(seed=0)
    for _ in range(5):
        *_, trunc, infos = env.step(env.action_space.sample())
    assert trunc.all() and len(episode_stats(infos)) == 2


def test_subproc_vec_env_matches_dummy():
    sub = make_vec_env("CartPole-v1", n_envs=2, seed=3, vec_env_cls=SubprocVecEnv)
    try:
        assert sub.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
        dummy = make_vec_env("CartPole-v1", n_envs=2, seed=3)
        actions = np.random.default_rng(0).integers(0, 2, size=(40, 2))
        saw_final = False
        for a in actions:
            o1, r1, te1, tr1, i1 = sub.step(a)
            o2, r2, te2, tr2, i2 = dummy.step(a)
            np.testing.assert_allclose(o1, o2)
            np.testing.assert_array_equal(te1, te2)
            if te1.any():
                saw_final = True
                np.testing.assert_allclose(final_observations(i1, te1), final_observations(i2, te2))
                assert [e["l"] for e in episode_stats(i1)] == [e["l"] for e in episode_stats(i2)]
        assert saw_final
    finally:
        sub.close()


# ------------------------------------------------------------------------------------- VecNormalize
def gaussian_vec(n=4, seed=0):
    env = DummyVecEnv([GaussianEnv for _ in range(n)])
    env.reset(seed=seed)
    return env


def test_running_mean_std_parallel_merge():
    rng = np.random.default_rng(0)
    data = rng.normal(5.0, 3.0, size=(1000, 2))
    rms = RunningMeanStd(shape=(2,))
    for chunk in np.split(data, 10):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-3)
    assert rms.mean.dtype == np.float64


def test_vec_normalize_converges_and_normalizes():
    vn = VecNormalize(gaussian_vec(), gamma=0.9)
    vn.reset()
    normed = []
    for _ in range(1500):
        obs, rew, *_ = vn.step(np.zeros(4, np.int64))
        normed.append(obs)
    assert np.all(np.abs(vn.obs_rms.mean - GaussianEnv.MEAN) < 0.1 * GaussianEnv.STD)
    np.testing.assert_allclose(np.sqrt(vn.obs_rms.var), GaussianEnv.STD, rtol=0.05)
    late = np.concatenate(normed[500:])
    np.testing.assert_allclose(late.mean(0), 0.0, atol=0.1)
    np.testing.assert_allclose(late.std(0), 1.0, atol=0.1)
    assert obs.dtype == np.float32 and vn.single_observation_space.dtype == np.float32
    # reward: raw is 1, scaled by the std of the discounted return R_k = sum_{j<k} 0.9^j, k = 1..10
    np.testing.assert_array_equal(vn.get_original_reward(), np.ones(4))
    returns = np.cumsum(0.9 ** np.arange(10))
    np.testing.assert_allclose(vn.ret_rms.var, returns.var(), rtol=0.01)
    np.testing.assert_allclose(rew, 1.0 / returns.std(), rtol=0.01)
    np.testing.assert_allclose(vn.unnormalize_obs(vn.normalize_obs(vn.get_original_obs())), vn.get_original_obs(),
                               rtol=1e-4, atol=1e-4)


def test_vec_normalize_final_obs_and_freeze():
    vn = VecNormalize(counter_vec((3, 5)), norm_reward=False)
    vn.reset(seed=0)
    for _ in range(2):
        vn.step(np.zeros(2, np.int64))
    obs, _, term, _, infos = vn.step(np.zeros(2, np.int64))
    assert term[0]
    expected = vn.normalize_obs(np.array([[3.0, 0.0]]))[0]
    np.testing.assert_allclose(infos["final_obs"][0], expected, rtol=1e-6)
    assert infos["final_obs"][0].dtype == np.float32 and abs(expected[0]) < 3.0
    # training=False freezes the statistics
    vn.training = False
    count, mean = vn.obs_rms.count, vn.obs_rms.mean.copy()
    for _ in range(5):
        vn.step(np.zeros(2, np.int64))
    assert vn.obs_rms.count == count and np.array_equal(vn.obs_rms.mean, mean)
    vn.training = True
    vn.step(np.zeros(2, np.int64))
    assert vn.obs_rms.count == count + 2


def test_vec_normalize_save_load_roundtrip(tmp_path):
    vn = VecNormalize(gaussian_vec(), clip_obs=5.0, gamma=0.95)
    vn.reset()
    for _ in range(50):
        vn.step(np.zeros(4, np.int64))
    path = tmp_path / "sub" / "vecnormalize.safetensors"
    vn.save(path)
    assert path.read_bytes()[8:9] == b"{"  # safetensors: 8-byte header length + JSON header, no pickle
    assert [p.name for p in path.parent.iterdir()] == ["vecnormalize.safetensors"]  # no temp file left
    loaded = VecNormalize.load(path, gaussian_vec(seed=1))
    assert loaded.clip_obs == 5.0 and loaded.gamma == 0.95
    for a, b in ((vn.obs_rms, loaded.obs_rms), (vn.ret_rms, loaded.ret_rms)):
        np.testing.assert_array_equal(a.mean, b.mean)
        np.testing.assert_array_equal(a.var, b.var)
        assert a.count == b.count
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(vn.normalize_obs(x), loaded.normalize_obs(x))
    # an eval env can copy the statistics of the training env
    ev = VecNormalize(gaussian_vec(), training=False, clip_obs=5.0)
    ev.copy_stats_from(vn)
    np.testing.assert_array_equal(ev.normalize_obs(x), vn.normalize_obs(x))
    assert ev.obs_rms is not vn.obs_rms
    # wrong observation shape
    with pytest.raises(ValueError, match="shape"):
        VecNormalize.load(path, counter_vec((3, 5)))


def test_vec_normalize_corrupt_file(tmp_path):
    from safetensors.numpy import save_file

    bad = tmp_path / "garbage.bin"
    bad.write_bytes(b"this is not a statistics file at all" * 3)
    other = tmp_path / "other.safetensors"
    save_file({"x": np.zeros(3)}, str(other))
    good = tmp_path / "good.safetensors"
    VecNormalize(gaussian_vec()).save(good)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-10])
    for path in (bad, other, truncated):
        with pytest.raises(ValueError, match="not a VecNormalize statistics file") as err:
            VecNormalize.load(path, gaussian_vec())
        assert "\n" not in str(err.value)


def test_vec_normalize_dict_obs_keys():
    class DictEnv(GaussianEnv):
        def __init__(self):
            super().__init__()
            self.observation_space = spaces.Dict({
                "vec": spaces.Box(-np.inf, np.inf, (3,), np.float32),
                "img": spaces.Box(0, 255, (4, 4, 1), np.uint8),
            })

        def _obs(self):
            return {"vec": super()._obs(), "img": np.full((4, 4, 1), 7, np.uint8)}

    env = DummyVecEnv([DictEnv, DictEnv])
    vn = VecNormalize(env, norm_reward=False)
    assert vn.norm_obs_keys == ["vec"]
    obs, _ = vn.reset(seed=0)
    for _ in range(30):
        obs, _, term, _, infos = vn.step(np.zeros(2, np.int64))
    assert obs["img"].dtype == np.uint8 and (obs["img"] == 7).all()
    assert obs["vec"].dtype == np.float32 and np.abs(obs["vec"]).max() < 5
    assert "final_obs" in infos and infos["final_obs"][0]["vec"].dtype == np.float32


# ------------------------------------------------------------------------------------- VecFrameStack
def test_frame_stack_vector_obs_and_episode_end():
    fs = VecFrameStack(counter_vec((3, 5)), n_stack=3)
    assert fs.single_observation_space.shape == (6,) and fs.observation_space.shape == (2, 6)
    obs, _ = fs.reset(seed=0)
    np.testing.assert_array_equal(obs[0], [0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(obs[1], [0, 0, 0, 0, 0, 1])
    fs.step(np.zeros(2, np.int64))
    fs.step(np.zeros(2, np.int64))
    obs, _, term, _, infos = fs.step(np.zeros(2, np.int64))
    assert term[0]
    np.testing.assert_array_equal(infos["final_obs"][0], [1, 0, 2, 0, 3, 0])  # stacked final obs
    np.testing.assert_array_equal(obs[0], [0, 0, 0, 0, 0, 0])  # stack restarted (zeros + t=0)
    np.testing.assert_array_equal(obs[1], [1, 1, 2, 1, 3, 1])  # env 1 keeps going
    obs, *_ = fs.step(np.zeros(2, np.int64))
    np.testing.assert_array_equal(obs[0], [0, 0, 0, 0, 1, 0])
    assert unwrap_vec_wrapper(fs, VecFrameStack) is fs and unwrap_vec_normalize(fs) is None


@pytest.mark.parametrize("shape,order,expected", [
    ((6, 5, 1), None, (6, 5, 4)),    # channels-last image
    ((1, 6, 5), None, (4, 6, 5)),    # channels-first image (detected)
    ((6, 5, 3), "last", (6, 5, 12)),
])
def test_frame_stack_images(shape, order, expected):
    class ImageEnv(CounterEnv):
        def __init__(self):
            super().__init__(length=2, shape=shape)
            self.observation_space = spaces.Box(0, 255, shape, np.uint8)

        def _obs(self):
            return np.full(shape, self.t + 1, np.uint8)

    assert is_image_space(ImageEnv().observation_space)
    fs = VecFrameStack(DummyVecEnv([ImageEnv, ImageEnv]), n_stack=4, channels_order=order)
    assert fs.single_observation_space.shape == expected and fs.single_observation_space.dtype == np.uint8
    obs, _ = fs.reset(seed=0)
    assert obs.shape == (2, *expected)
    axis = 0 if expected[0] == 4 else -1  # stacking axis of one observation
    fs.step(np.zeros(2, np.int64))
    obs, _, term, _, infos = fs.step(np.zeros(2, np.int64))
    assert term.all()
    # frames hold t + 1: the finished episode saw 1, 2, 3; the new one starts with 1
    assert [int(f.max()) for f in np.split(infos["final_obs"][0], 4, axis=axis)] == [0, 1, 2, 3]
    assert [int(f.max()) for f in np.split(obs[0], 4, axis=axis)] == [0, 0, 0, 1]


def test_wrapper_chain_and_is_image_space():
    vn = VecNormalize(counter_vec((3, 5)))
    fs = VecFrameStack(vn, 2)
    assert isinstance(fs, VecEnvWrapper) and fs.venv is vn and vn.venv.num_envs == 2
    assert unwrap_vec_normalize(fs) is vn and unwrap_vec_wrapper(fs, DummyVecEnv) is vn.venv
    assert fs.get_attr("length") == (3, 5)
    assert not is_image_space(spaces.Box(0, 1, (4, 4, 1), np.float32))
    assert not is_image_space(spaces.Box(0, 255, (4, 4), np.uint8))
    assert is_image_space(spaces.Box(0, 255, (84, 84, 4), np.uint8), check_channels=True)
