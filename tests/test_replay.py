"""Replay buffers: uniform, frame storage (stacked image obs rebuilt by index), prioritized, save/load."""
import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.wrappers import FrameStackObservation, TimeLimit

from rlzoo.common.prioritized_replay import PrioritizedReplayBuffer, SegmentTree
from rlzoo.common.replay import ReplayBuffer
from rlzoo.envs import DummyVecEnv, VecFrameStack


class RandomImageEnv(gym.Env):
    """Random uint8 frames; episodes of random length (1 to 12 steps) ending by termination."""

    def __init__(self, shape=(6, 5, 1), max_len=12):
        self.observation_space = spaces.Box(0, 255, shape, np.uint8)
        self.action_space = spaces.Discrete(3)
        self.max_len = max_len

    def _frame(self):
        return self.np_random.integers(0, 256, self.observation_space.shape, dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(1, self.max_len + 1))
        return self._frame(), {}

    def step(self, action):
        self.t += 1
        return self._frame(), float(action), self.t >= self.length, False, {}


def collect(env, buffer, n_steps, seed=0):
    """Run random actions, add to ``buffer`` and return the true (obs, next_obs) of every step."""
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    truth = []
    for _ in range(n_steps):
        actions = rng.integers(0, 3, env.num_envs)
        next_obs, rewards, terminated, truncated, infos = env.step(actions)
        real_next = next_obs.copy()
        for i in np.flatnonzero(terminated | truncated):
            real_next[i] = infos["final_obs"][i]
        buffer.add(obs, real_next, actions, rewards, terminated)
        truth.append((obs.copy(), real_next.copy(), actions, terminated.copy(), truncated.copy()))
        obs = next_obs
    return truth


def check_all_valid(buffer, truth):
    """Every sampleable transition rebuilds exactly the observations the env produced."""
    checked = 0
    for t in range(buffer.n_added):
        for e in range(buffer.n_envs):
            if t < buffer.oldest[e]:
                continue
            row = np.array([t % buffer.buffer_size])
            obs, next_obs = buffer._gather_obs(row, np.array([e]))
            np.testing.assert_array_equal(obs[0], truth[t][0][e])
            np.testing.assert_array_equal(next_obs[0], truth[t][1][e])
            assert buffer.actions[row[0], e] == truth[t][2][e]
            assert buffer.dones[row[0], e] == truth[t][3][e]  # terminations only, never truncations
            checked += 1
    assert checked == buffer.size()
    return checked


@pytest.mark.parametrize("channels_order", ["last", "first"])
def test_frame_buffer_rebuilds_vec_frame_stack(channels_order):
    shape = (6, 5, 1) if channels_order == "last" else (1, 6, 5)
    env = VecFrameStack(DummyVecEnv([lambda: RandomImageEnv(shape)] * 3), n_stack=4, channels_order=channels_order)
    axis = -1 if channels_order == "last" else 0
    buffer = ReplayBuffer(240, env.single_observation_space, env.single_action_space, n_envs=3,
                          optimize_memory_usage=True, frame_stack=4, stack_axis=axis, seed=0)
    truth = collect(env, buffer, 200)
    assert sum(t[3].sum() for t in truth) > 20  # many episode ends, 1-step episodes included
    assert check_all_valid(buffer, truth) > 0
    # frames of stacked obs are stored once: far less than obs + next_obs
    naive = 2 * 240 * int(np.prod(env.single_observation_space.shape))
    assert buffer.frames.nbytes < 0.4 * naive
    batch = buffer.sample(64)
    assert batch.observations.shape == (64, *env.single_observation_space.shape)
    assert batch.observations.dtype == torch.uint8


def test_frame_buffer_gymnasium_framestack_and_truncation():
    """Repeat-padding stacks (gymnasium FrameStackObservation) and time-limit truncations."""
    def make():
        return FrameStackObservation(TimeLimit(RandomImageEnv((4, 4), max_len=30), 5), 3, padding_type="reset")
    env = DummyVecEnv([make] * 2)
    buffer = ReplayBuffer(100, env.single_observation_space, env.single_action_space, n_envs=2,
                          optimize_memory_usage=True, frame_stack=3, stack_axis=0, seed=0)
    truth = collect(env, buffer, 150, seed=1)
    check_all_valid(buffer, truth)
    assert sum(t[4].sum() for t in truth[-50:]) > 3  # truncations happened among the kept transitions


def test_frame_buffer_drops_oldest_when_frames_run_out():
    """With no spare frame slots and 1-step episodes, the oldest transitions become invalid, never wrong."""
    env = VecFrameStack(DummyVecEnv([lambda: RandomImageEnv(max_len=2)] * 2), n_stack=4)
    buffer = PrioritizedReplayBuffer(64, env.single_observation_space, env.single_action_space, n_envs=2,
                                     optimize_memory_usage=True, frame_stack=4, frame_margin=0.0, seed=0)
    truth = collect(env, buffer, 120)
    assert buffer.size() < 64
    check_all_valid(buffer, truth)
    # dropped transitions have zero priority and are never sampled
    live = np.zeros(buffer.buffer_size * 2, bool)
    for e in range(2):
        rows = np.arange(buffer.oldest[e], buffer.n_added) % buffer.buffer_size
        live[rows * 2 + e] = True
    assert np.all((buffer.sum_tree.leaves > 0) == live)
    assert live[buffer.sample(500).indices].all()


def test_frame_buffer_rejects_wrong_stack():
    env = DummyVecEnv([lambda: RandomImageEnv((6, 5, 4))])
    buffer = ReplayBuffer(50, env.single_observation_space, env.single_action_space,
                          optimize_memory_usage=True, frame_stack=4)
    with pytest.raises(ValueError, match="shifted"):
        collect(env, buffer, 5)


def test_atari_buffer_memory():
    """100k frame-stacked Atari transitions (84x84x4) take about 0.9 GB (goal <= 1.1 GB)."""
    space = spaces.Box(0, 255, (84, 84, 4), np.uint8)
    buffer = ReplayBuffer(100_000, space, spaces.Discrete(6), optimize_memory_usage=True, frame_stack=4)
    assert buffer.nbytes() <= 1.1e9
    assert ReplayBuffer(100_000, space, spaces.Discrete(6), optimize_memory_usage=True, frame_stack=4,
                        stack_axis=-1, n_envs=8).nbytes() <= 1.1e9


def test_uniform_buffer_ring_and_dict():
    space = spaces.Dict({"a": spaces.Box(-1, 1, (3,)), "b": spaces.Discrete(4)})
    buffer = ReplayBuffer(10, space, spaces.Box(-1, 1, (2,)), n_envs=2, seed=0)
    for t in range(8):
        obs = {"a": np.full((2, 3), t, np.float32), "b": np.array([t % 4, 0])}
        nxt = {"a": np.full((2, 3), t + 1, np.float32), "b": np.array([(t + 1) % 4, 0])}
        buffer.add(obs, nxt, np.full((2, 2), t), np.array([t, -t]), np.array([False, True]))
    assert buffer.size() == 10 and buffer.full  # 5 rows of 2 envs
    batch = buffer.sample(200)
    t = batch.rewards.abs()
    assert set(t.long().tolist()) == {3, 4, 5, 6, 7}  # only the last 5 rows survive
    torch.testing.assert_close(batch.observations["a"][:, 0], t)
    torch.testing.assert_close(batch.next_observations["a"][:, 0], t + 1)
    assert batch.observations["b"].dtype == torch.int64
    # dones are the terminations of env 1 (negative rewards)
    torch.testing.assert_close(batch.dones, (batch.rewards < 0).float())


def test_sample_is_uniform():
    buffer = ReplayBuffer(100, spaces.Box(-1, 1, (1,)), spaces.Discrete(2), n_envs=4, seed=0)
    for t in range(25):
        buffer.add(np.zeros((4, 1)), np.zeros((4, 1)), np.zeros(4), np.arange(4) + 4 * t, np.zeros(4))
    counts = np.bincount(buffer.sample(100_000).rewards.long().numpy(), minlength=100)
    assert counts.min() > 800 and counts.max() < 1200


def test_segment_tree_consistent_after_updates():
    rng = np.random.default_rng(0)
    tree = SegmentTree(1000, np.add, 0.0)
    mins = SegmentTree(1000, np.minimum, np.inf)
    values = np.zeros(1000)
    for _ in range(50):
        idx = rng.integers(0, 1000, 64)  # duplicates included
        val = rng.random(64) * 10
        tree.update(idx, val)
        mins.update(idx, val)
        for i, v in zip(idx, val, strict=True):  # reference: last write wins
            values[i] = v
        np.testing.assert_array_equal(tree.leaves, values)
        assert tree.root == pytest.approx(values.sum(), rel=1e-12)
        assert mins.root == values[values > 0].min()
    # every internal node equals the sum of its children
    internal = np.arange(1, tree.size)
    np.testing.assert_allclose(tree.tree[internal], tree.tree[2 * internal] + tree.tree[2 * internal + 1])
    # prefix-sum search agrees with searchsorted on the cumulative sums
    queries = rng.random(10_000) * values.sum()
    np.testing.assert_array_equal(tree.find_prefixsum(queries), np.searchsorted(np.cumsum(values), queries, "right"))


def test_prioritized_sampling_follows_priorities():
    buffer = PrioritizedReplayBuffer(8, spaces.Box(-1, 1, (1,)), spaces.Discrete(2), alpha=1.0, eps=0.0, seed=0)
    for t in range(8):
        buffer.add(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(1), np.array([t]), np.zeros(1))
    priorities = np.array([1, 2, 3, 4, 0.5, 0.5, 8, 1.0])
    buffer.update_priorities(np.arange(8), torch.tensor(priorities))
    n = 200_000
    counts = np.bincount(np.concatenate([buffer.sample(250).indices for _ in range(n // 250)]), minlength=8)
    expected = n * priorities / priorities.sum()
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 24.3  # 99.9% quantile of chi-square with 7 degrees of freedom
    # importance weights (p_i / p_min)^-beta, max weight 1 at the lowest priority
    batch = buffer.sample(64, beta=0.5)
    np.testing.assert_allclose(batch.weights.numpy(), (priorities[batch.indices] / 0.5) ** -0.5, rtol=1e-6)
    # alpha shapes the distribution: alpha = 0 is uniform
    buffer.alpha = 0.0
    buffer.update_priorities(np.arange(8), priorities)
    counts = np.bincount(np.concatenate([buffer.sample(256).indices for _ in range(200)]), minlength=8)
    assert counts.min() > 0.8 * counts.mean()


def test_prioritized_new_transitions_get_max_priority():
    buffer = PrioritizedReplayBuffer(16, spaces.Box(-1, 1, (1,)), spaces.Discrete(2), n_envs=2, seed=0)
    for _ in range(3):
        buffer.add(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(2), np.zeros(2), np.zeros(2))
    buffer.update_priorities(np.array([0, 1]), np.array([10.0, 0.0]))
    buffer.add(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(2), np.zeros(2), np.zeros(2))
    leaves = buffer.sum_tree.leaves
    assert leaves[6] == leaves[7] == pytest.approx((10 + buffer.eps) ** buffer.alpha)
    assert leaves[8:].sum() == 0


@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
def test_save_load_roundtrip(tmp_path, cls):
    env = VecFrameStack(DummyVecEnv([lambda: RandomImageEnv()] * 2), n_stack=2)
    kwargs = dict(n_envs=2, optimize_memory_usage=True, frame_stack=2, seed=0)
    buffer = cls(60, env.single_observation_space, env.single_action_space, **kwargs)
    truth = collect(env, buffer, 45)
    if cls is PrioritizedReplayBuffer:
        buffer.update_priorities(np.arange(10), np.arange(10.0))
    path = buffer.save(tmp_path / "buf")
    assert path.endswith(".npz")
    with np.load(path, allow_pickle=False) as data:  # a plain npz: no pickled objects inside
        assert "frames" in data.files
    loaded = cls(60, env.single_observation_space, env.single_action_space, **kwargs)
    loaded.load(path)
    check_all_valid(loaded, truth)
    assert loaded.size() == buffer.size() and loaded.pos == buffer.pos
    if cls is PrioritizedReplayBuffer:
        np.testing.assert_array_equal(loaded.sum_tree.tree, buffer.sum_tree.tree)
        assert loaded.max_priority == buffer.max_priority
    # adding continues seamlessly after loading
    truth += collect(env, loaded, 10, seed=5)
    check_all_valid(loaded, truth)
    other = ReplayBuffer(60, spaces.Box(-1, 1, (3,)), spaces.Discrete(2))
    with pytest.raises(ValueError):
        other.load(path)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        loaded.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("cls, frames", [(ReplayBuffer, False), (ReplayBuffer, True), (PrioritizedReplayBuffer, True)])
def test_partly_filled_buffer_saves_only_its_filled_rows(tmp_path, cls, frames):
    env = VecFrameStack(DummyVecEnv([lambda: RandomImageEnv()] * 2), n_stack=2)
    kwargs = dict(n_envs=2, optimize_memory_usage=frames, frame_stack=2 if frames else 1, seed=0)
    buffer = cls(400, env.single_observation_space, env.single_action_space, **kwargs)  # 200 rows
    truth = collect(env, buffer, 30)
    path = buffer.save(tmp_path / "buf")
    with np.load(path, allow_pickle=False) as data:
        assert data["actions"].shape[0] == data["rewards"].shape[0] == 30
        if frames:
            assert data["frames"].shape[0] == buffer.frames_written.max() < buffer.n_frames
        else:
            assert data["observations"].shape[0] == data["next_observations"].shape[0] == 30
        if cls is PrioritizedReplayBuffer:
            assert data["priorities"].shape == (60,)
    loaded = cls(400, env.single_observation_space, env.single_action_space, **kwargs)
    loaded.load(path)
    for key, arr in buffer._arrays().items():  # back at full size, equal to the original
        np.testing.assert_array_equal(loaded._arrays()[key], arr)
    check_all_valid(loaded, truth)
    truth += collect(env, loaded, 200, seed=5)  # fills and wraps around after loading
    assert loaded.full
    check_all_valid(loaded, truth)
    full_path = loaded.save(tmp_path / "full")
    with np.load(full_path, allow_pickle=False) as data:
        assert data["actions"].shape[0] == 200


def test_buffer_file_claiming_fewer_rows_than_it_holds_is_refused(tmp_path):
    import json
    buffer = ReplayBuffer(20, spaces.Box(-1, 1, (2,)), spaces.Discrete(2), seed=0)
    for t in range(5):
        buffer.add(np.full((1, 2), t), np.full((1, 2), t + 1), np.array([1]), np.array([t]), np.array([False]))
    path = buffer.save(tmp_path / "b")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != "__meta__"}
    for rows in (3, -1, 21, True):
        meta = {**buffer._meta(), "rows_saved": rows}
        bad = tmp_path / f"bad{rows}.npz"
        np.savez(bad, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
        with pytest.raises(ValueError, match="rows"):
            ReplayBuffer(20, spaces.Box(-1, 1, (2,)), spaces.Discrete(2)).load(bad)


def test_plain_save_load_dict(tmp_path):
    space = spaces.Dict({"a": spaces.Box(-1, 1, (3,)), "b": spaces.Discrete(4)})
    buffer = ReplayBuffer(10, space, spaces.Discrete(2), seed=0)
    for t in range(4):
        buffer.add({"a": np.full((1, 3), t), "b": np.array([t])}, {"a": np.full((1, 3), t + 1), "b": np.array([t])},
                   np.array([1]), np.array([t]), np.array([False]))
    buffer.save(tmp_path / "d.npz")
    loaded = ReplayBuffer(10, space, spaces.Discrete(2))
    loaded.load(tmp_path / "d.npz")
    np.testing.assert_array_equal(loaded.observations["a"], buffer.observations["a"])
    assert loaded.size() == 4


def test_bad_arguments():
    with pytest.raises(ValueError):
        ReplayBuffer(0, spaces.Box(-1, 1, (3,)), spaces.Discrete(2))
    with pytest.raises(ValueError, match="cannot hold"):
        ReplayBuffer(10, spaces.Box(0, 255, (84, 84, 3), np.uint8), spaces.Discrete(2),
                     optimize_memory_usage=True, frame_stack=4)
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(10, spaces.Box(-1, 1, (3,)), spaces.Discrete(2)).sample(4)
    with pytest.raises(ValueError):
        PrioritizedReplayBuffer(10, spaces.Box(-1, 1, (3,)), spaces.Discrete(2), beta=2.0)
