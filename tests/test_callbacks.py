"""Callbacks, evaluate_policy and the progress bar, driven by a tiny fake model on real vector envs."""
from __future__ import annotations

import csv
import json
import os
import time
import zipfile
from collections import deque

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from rlzoo.callbacks import (BaseCallback, CallbackList, CheckpointCallback, ConvertCallback, EvalCallback,
                             EveryNTimesteps, ProgressBarCallback, StopTrainingOnMaxEpisodes,
                             StopTrainingOnNoModelImprovement, StopTrainingOnRewardThreshold, make_callback)
from rlzoo.common.logger import Logger
from rlzoo.envs import DummyVecEnv, Monitor, VecNormalize
from rlzoo.evaluation import evaluate_policy


# ------------------------------------------------------------------------------------------- envs
class FixedEpisodeEnv(gym.Env):
    """Episodes of ``length`` steps; reward = ``reward_scale * action``; obs = step counter (+ offset)."""

    def __init__(self, length: int = 5, reward_scale: float = 1.0, obs_offset: float = 0.0) -> None:
        self.length, self.reward_scale, self.obs_offset = length, reward_scale, obs_offset
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.obs_offset], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        done = self.t >= self.length
        info = {"is_success": bool(action)} if done else {}
        return self._obs(), float(self.reward_scale * int(action)), done, False, info


class LifeLossWrapper(gym.Wrapper):
    """Like Atari's EpisodicLife: reports ``terminated`` every ``life`` steps but only resets the
    inner env when its episode really ended."""

    def __init__(self, env: gym.Env, life: int = 3) -> None:
        super().__init__(env)
        self.life, self.count, self.real_done, self.last_obs = life, 0, True, None

    def reset(self, *, seed=None, options=None):
        if self.real_done:
            self.last_obs, info = self.env.reset(seed=seed, options=options)
            self.real_done = False
        else:
            info = {}
        return self.last_obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.count += 1
        self.real_done, self.last_obs = terminated or truncated, obs
        return obs, reward, terminated or truncated or self.count % self.life == 0, False, info


class FakeModel:
    """Just the interface callbacks rely on. Acts 1 once ``num_timesteps >= good_after`` (else 0)."""

    def __init__(self, env, good_after: int = 0, replay_buffer: bool = False) -> None:
        self.env = env
        self.n_envs = env.num_envs
        self.num_timesteps = 0
        self._total_timesteps = 0
        self.logger = Logger(None, [])
        self.ep_info_buffer: deque = deque(maxlen=100)
        self.good_after = good_after
        self.start_time = time.time_ns()
        self.replay_buffer = object() if replay_buffer else None
        self.saved: list = []
        self.predict_calls: list = []

    def get_env(self):
        return self.env

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        self.predict_calls.append((state, None if episode_start is None else np.array(episode_start)))
        action = 1 if self.num_timesteps >= self.good_after else 0
        new_state = 0 if state is None else state + 1
        return np.full(len(obs), action), new_state

    def save(self, path):
        path = str(path)
        if not os.path.splitext(path)[1]:
            path += ".zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("data.json", f'{{"num_timesteps": {self.num_timesteps}}}')
        self.saved.append(path)

    def save_replay_buffer(self, path):
        with open(str(path) + ".bin", "wb") as f:
            f.write(b"rb")

    def learn(self, total_timesteps: int, callback=None, n_steps: int = 4) -> FakeModel:
        """The algorithm side of the callback protocol."""
        self._total_timesteps = self.num_timesteps + total_timesteps
        callback = make_callback(callback)
        callback.init_callback(self)
        callback.on_training_start(locals(), globals())
        obs, _ = self.env.reset(seed=0)
        stop = False
        try:
            while self.num_timesteps < self._total_timesteps and not stop:
                callback.on_rollout_start()
                for _ in range(n_steps):
                    actions, _ = self.predict(obs)
                    obs, rewards, terminated, truncated, infos = self.env.step(actions)
                    self.num_timesteps += self.n_envs
                    final = infos.get("final_info", {})
                    if "episode" in final:
                        for i in np.flatnonzero(final["_episode"]):
                            self.ep_info_buffer.append({k: final["episode"][k][i] for k in ("r", "l", "t")})
                    callback.update_locals(locals())
                    if not callback.on_step():
                        stop = True
                        break
                if not stop:
                    callback.on_rollout_end()
        finally:
            callback.on_training_end()
        return self


def make_venv(n_envs=2, length=5, monitor=True, normalize=False):
    def make(i):
        def _init():
            env = FixedEpisodeEnv(length=length, obs_offset=float(i))
            return Monitor(env) if monitor else env
        return _init
    venv = DummyVecEnv([make(i) for i in range(n_envs)])
    return VecNormalize(venv, norm_reward=False) if normalize else venv


# ------------------------------------------------------------------------------- base protocol
class Recorder(BaseCallback):
    def __init__(self):
        super().__init__()
        self.events = []

    def _init_callback(self):
        self.events.append("init")

    def _on_training_start(self):
        self.events.append("start")

    def _on_rollout_start(self):
        self.events.append("rollout_start")

    def _on_step(self):
        assert "rewards" in self.locals and self.locals["self"] is self.model
        return True

    def _on_rollout_end(self):
        self.events.append("rollout_end")

    def _on_training_end(self):
        self.events.append("end")


def test_base_callback_hooks_and_counters():
    model = FakeModel(make_venv(n_envs=2))
    rec = Recorder()
    model.learn(16, callback=rec, n_steps=4)
    assert rec.n_calls == 8 and rec.num_timesteps == 16
    assert rec.events == ["init", "start"] + ["rollout_start", "rollout_end"] * 2 + ["end"]
    assert rec.training_env is model.env and rec.logger is model.logger and rec.model is model


def test_convert_callback_stops_on_false_and_continues_on_none():
    calls = []

    def stop_at_third(locals_, globals_):
        calls.append(locals_["self"].num_timesteps)
        return False if len(calls) == 3 else None

    model = FakeModel(make_venv(n_envs=2))
    model.learn(100, callback=stop_at_third)
    assert calls == [2, 4, 6] and model.num_timesteps == 6

    seen = []
    model2 = FakeModel(make_venv(n_envs=1))
    # a list mixing a function and a callback
    model2.learn(10, callback=[lambda locals_, globals_: seen.append(1), Recorder()], n_steps=5)
    assert len(seen) == 10


def test_make_callback_kinds():
    rec = Recorder()
    assert make_callback(rec) is rec
    assert isinstance(make_callback(None), CallbackList)
    assert isinstance(make_callback(lambda locals_, globals_: None), ConvertCallback)
    combo = make_callback([rec, lambda locals_, globals_: None], progress_bar=True)
    assert isinstance(combo, CallbackList) and isinstance(combo.callbacks[-1], ProgressBarCallback)
    with pytest.raises(TypeError):
        make_callback(42)


def test_callback_list_runs_every_callback_even_after_a_stop():
    counts = {"a": 0, "b": 0}

    def a(locals_, globals_):
        counts["a"] += 1
        return False

    def b(locals_, globals_):
        counts["b"] += 1

    FakeModel(make_venv(n_envs=1)).learn(10, callback=CallbackList([ConvertCallback(a), ConvertCallback(b)]))
    assert counts == {"a": 1, "b": 1}


# ------------------------------------------------------------------------------------- checkpoint
def test_checkpoint_callback_files_with_vecnormalize(tmp_path):
    venv = make_venv(n_envs=2, normalize=True)
    model = FakeModel(venv, replay_buffer=True)
    ckpt = CheckpointCallback(save_freq=5, save_path=str(tmp_path / "ckpt"), save_replay_buffer=True,
                              keep_replay_buffers=0)
    model.learn(40, callback=ckpt, n_steps=4)  # 20 calls -> checkpoints at calls 5, 10, 15, 20
    files = sorted(os.listdir(tmp_path / "ckpt"))
    zips = sorted(f for f in files if f.endswith(".zip"))
    assert zips == sorted(f"rl_model_{s}_steps.zip" for s in (10, 20, 30, 40))
    for s in (10, 20, 30, 40):
        assert f"rl_model_{s}_steps.vecnormalize.safetensors" in files
        assert f"rl_model_{s}_steps_replay_buffer.bin" in files
    assert ckpt.last_save_path.endswith("rl_model_40_steps.zip")
    # each checkpoint has its own statistics: the observation count grows with the checkpoint step
    from safetensors import safe_open

    def obs_count(step):  # read the file's metadata directly (format of rlzoo.envs.VecNormalize.save)
        path = str(tmp_path / "ckpt" / f"rl_model_{step}_steps.vecnormalize.safetensors")
        with safe_open(path, "numpy") as f:
            return max(json.loads(f.metadata()["counts"]).values())
    assert obs_count(10) < obs_count(40)


@pytest.mark.parametrize("prefix", ["rl_model", ""])
def test_checkpoint_callback_keeps_only_the_newest_replay_buffers(tmp_path, prefix):
    # replay buffers are gigabytes: a long run must not keep one per checkpoint (a 200k-step run with
    # 1M-transition buffers filled a 100 GB disk); buffers left by an earlier process count too
    folder = tmp_path / "ckpt"
    folder.mkdir()
    stem = (lambda s: f"{prefix}_{s}_steps") if prefix else str
    (folder / f"{stem(2)}_replay_buffer.bin").write_bytes(b"from an earlier process")
    (folder / "notes_replay_buffer.bin").write_bytes(b"not a checkpoint's")
    model = FakeModel(make_venv(n_envs=2), replay_buffer=True)
    model.learn(40, callback=CheckpointCallback(5, str(folder), name_prefix=prefix, save_replay_buffer=True),
                n_steps=4)
    files = sorted(os.listdir(folder))
    assert sorted(f for f in files if "_replay_buffer" in f) == sorted(
        [f"{stem(30)}_replay_buffer.bin", f"{stem(40)}_replay_buffer.bin", "notes_replay_buffer.bin"])
    assert sorted(f for f in files if f.endswith(".zip")) == sorted(f"{stem(s)}.zip" for s in (10, 20, 30, 40))
    with pytest.raises(ValueError):
        CheckpointCallback(5, str(folder), keep_replay_buffers=-1)


def test_checkpoint_callback_empty_prefix_without_vecnormalize(tmp_path):
    model = FakeModel(make_venv(n_envs=1))
    model.learn(9, callback=CheckpointCallback(3, str(tmp_path), name_prefix=""), n_steps=3)
    assert sorted(os.listdir(tmp_path)) == ["3.zip", "6.zip", "9.zip"]
    with pytest.raises(ValueError):
        CheckpointCallback(0, str(tmp_path))


# ------------------------------------------------------------------------------------------ eval
def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_eval_callback_csv_best_model_and_stop(tmp_path):
    train_env = make_venv(n_envs=2, normalize=True)
    eval_env = make_venv(n_envs=1, normalize=True)
    model = FakeModel(train_env, good_after=40)  # acts 0 (reward 0) until 40 steps, then 1 (reward 5/episode)
    stop = StopTrainingOnRewardThreshold(reward_threshold=4.5, verbose=1)
    eval_cb = EvalCallback(eval_env, callback_on_new_best=stop, n_eval_episodes=3, eval_freq=10,
                           log_path=str(tmp_path / "logs"), best_model_save_path=str(tmp_path / "best"), verbose=0)
    model.learn(1000, callback=eval_cb, n_steps=5)
    # evaluations at calls 10 (20 steps, reward 0), 20 (40 steps, reward 5 -> new best >= 4.5 -> stop)
    assert model.num_timesteps == 40
    rows = _read_csv(tmp_path / "logs" / "evaluations.csv")
    assert [int(r["timesteps"]) for r in rows] == [20, 40]
    assert [float(r["mean_reward"]) for r in rows] == [0.0, 5.0]
    assert list(rows[0]) == ["timesteps", "mean_reward", "std_reward", "mean_ep_length", "success_rate",
                             "reward_0", "reward_1", "reward_2"]
    assert [float(r["success_rate"]) for r in rows] == [0.0, 1.0]  # the env reports info["is_success"]
    assert float(rows[1]["mean_ep_length"]) == 5.0 and float(rows[1]["reward_2"]) == 5.0
    assert eval_cb.best_mean_reward == 5.0 and eval_cb.last_mean_reward == 5.0
    best = sorted(os.listdir(tmp_path / "best"))
    assert best == ["best_model.vecnormalize.safetensors", "best_model.zip"]
    # statistics were synced train -> eval, and the eval copy is frozen
    assert eval_env.training is False
    np.testing.assert_allclose(eval_env.obs_rms.mean, train_env.obs_rms.mean)
    assert eval_env.obs_rms is not train_env.obs_rms


def test_eval_callback_logs_and_success_rate_and_gym_env(tmp_path):
    model = FakeModel(make_venv(n_envs=2), good_after=0)
    records = {}

    class Spy(Logger):
        def dump(self, step=0):
            records.update(self.name_to_value, step=step)
            super().dump(step)

    model.logger = Spy(None, [])
    eval_cb = EvalCallback(Monitor(FixedEpisodeEnv(length=4)), n_eval_episodes=2, eval_freq=3, verbose=0)
    model.learn(6, callback=eval_cb, n_steps=3)
    assert eval_cb.eval_env.num_envs == 1  # a gym.Env was wrapped in a DummyVecEnv
    assert records["eval/mean_reward"] == 4.0 and records["eval/mean_ep_length"] == 4.0
    assert records["eval/success_rate"] == 1.0 and records["step"] == 6


def test_eval_callback_no_improvement_stops_and_resume_keeps_history(tmp_path):
    model = FakeModel(make_venv(n_envs=1), good_after=10**9)  # never improves
    after = StopTrainingOnNoModelImprovement(max_no_improvement_evals=2)
    eval_cb = EvalCallback(make_venv(n_envs=1), callback_after_eval=after, n_eval_episodes=1, eval_freq=2,
                           log_path=str(tmp_path), verbose=0)
    model.learn(100, callback=eval_cb, n_steps=2)
    assert model.num_timesteps == 8  # evals at 2 (best), 4, 6, 8 -> third eval without improvement stops
    assert len(_read_csv(tmp_path / "evaluations.csv")) == 4
    # a resumed run at 4 steps keeps the rows up to 4 and continues from there
    model2 = FakeModel(make_venv(n_envs=1), good_after=0)
    model2.num_timesteps = 4
    eval2 = EvalCallback(make_venv(n_envs=1), n_eval_episodes=1, eval_freq=2, log_path=str(tmp_path), verbose=0)
    model2.learn(2, callback=eval2, n_steps=2)
    assert [int(r["timesteps"]) for r in _read_csv(tmp_path / "evaluations.csv")] == [2, 4, 6]


# ----------------------------------------------------------------------------- other callbacks
def test_stop_on_max_episodes_and_every_n_timesteps():
    model = FakeModel(make_venv(n_envs=2, length=5))
    stop = StopTrainingOnMaxEpisodes(max_episodes=3)
    model.learn(1000, callback=stop, n_steps=4)
    assert stop.n_episodes == 6 and stop.n_calls == 15

    child = Recorder()
    every = EveryNTimesteps(n_steps=10, callback=child)
    FakeModel(make_venv(n_envs=2)).learn(40, callback=every, n_steps=4)
    assert child.n_calls == 4 and child.parent is every


def test_stop_on_reward_threshold_needs_parent():
    cb = StopTrainingOnRewardThreshold(1.0)
    cb.init_callback(FakeModel(make_venv(n_envs=1)))
    with pytest.raises(ValueError):
        cb.on_step()


# ------------------------------------------------------------------------------------- progress
def test_progress_bar_plain_lines_when_not_a_tty(capsys):
    model = FakeModel(make_venv(n_envs=2, length=5))
    model.learn(100, callback=ProgressBarCallback(), n_steps=10)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("steps ")]
    assert len(lines) == 11  # 10 %, 20 %, ... 100 %, then the final summary
    assert lines[0].startswith("steps 10/100 (10%) | ") and "steps/s" in lines[0] and "ETA" in lines[0]
    assert "mean reward 5" in lines[3]
    assert lines[-1].startswith("steps 100/100 (100%)") and "done in" in lines[-1]


def test_progress_bar_rich_mode_runs(capsys):
    model = FakeModel(make_venv(n_envs=2))
    bar = ProgressBarCallback(plain=False)
    model.learn(40, callback=bar, n_steps=4)
    assert bar._progress is None  # stopped at training end
    assert "40/40" in capsys.readouterr().out


# ------------------------------------------------------------------------------ evaluate_policy
def test_evaluate_policy_spreads_episodes_over_envs():
    lengths = [2, 10]
    venv = DummyVecEnv([lambda L=L: Monitor(FixedEpisodeEnv(length=L)) for L in lengths])
    model = FakeModel(venv, good_after=0)  # reward 1 per step: return = episode length
    rewards, ep_lengths = evaluate_policy(model, venv, n_eval_episodes=4, return_episode_rewards=True)
    assert sorted(rewards) == [2.0, 2.0, 10.0, 10.0] and sorted(ep_lengths) == [2, 2, 10, 10]
    mean, std = evaluate_policy(model, venv, n_eval_episodes=4)
    assert mean == 6.0 and std == 4.0
    mean, _ = evaluate_policy(model, venv, n_eval_episodes=3)  # 2 episodes on env 0, 1 on env 1
    assert mean == pytest.approx(14.0 / 3)


def test_evaluate_policy_uses_monitor_through_life_losses():
    model = FakeModel(make_venv(n_envs=1), good_after=0)
    monitored = DummyVecEnv([lambda: LifeLossWrapper(Monitor(FixedEpisodeEnv(length=9)), life=3)])
    rewards, lengths = evaluate_policy(model, monitored, n_eval_episodes=2, return_episode_rewards=True)
    assert rewards == [9.0, 9.0] and lengths == [9, 9]
    plain = DummyVecEnv([lambda: LifeLossWrapper(FixedEpisodeEnv(length=9), life=3)])
    with pytest.warns(UserWarning, match="Monitor"):
        rewards, lengths = evaluate_policy(model, plain, n_eval_episodes=2, return_episode_rewards=True)
    assert rewards == [3.0, 3.0] and lengths == [3, 3]


def test_evaluate_policy_single_env_state_threshold_and_callback():
    env = Monitor(FixedEpisodeEnv(length=3, reward_scale=2.0))
    model = FakeModel(make_venv(n_envs=1), good_after=0)
    seen = []
    mean, std = evaluate_policy(model, env, n_eval_episodes=2,
                                callback=lambda locals_, globals_: seen.append(locals_["done"]))
    assert (mean, std) == (6.0, 0.0) and seen == [False, False, True] * 2
    # recurrent state is threaded through predict and episode_start marks episode starts
    states = [s for s, _ in model.predict_calls]
    starts = [bool(e[0]) for _, e in model.predict_calls]
    assert states == [None, 0, 1, 2, 3, 4]
    assert starts == [True, False, False, True, False, False]
    with pytest.raises(AssertionError, match="below the threshold"):
        evaluate_policy(model, env, n_eval_episodes=1, reward_threshold=100.0)
    with pytest.raises(ValueError):
        evaluate_policy(model, env, n_eval_episodes=0)


def test_eval_callback_on_timesteps_resumes_on_schedule_and_evaluates_the_final_model(tmp_path):
    """A run resumed at 5 steps evaluates where an uninterrupted one would (6, 8, ...), and the last row is
    always the final model, also when the budget is not a multiple of eval_freq."""
    model = FakeModel(make_venv(n_envs=1))
    cb = EvalCallback(make_venv(n_envs=1), n_eval_episodes=1, eval_freq=2, log_path=str(tmp_path), verbose=0,
                      on_timesteps=True, eval_at_end=True)
    model.learn(5, callback=cb, n_steps=1)
    assert [int(r["timesteps"]) for r in _read_csv(tmp_path / "evaluations.csv")] == [2, 4, 5]
    resumed = FakeModel(make_venv(n_envs=1))
    resumed.num_timesteps = 5
    cb2 = EvalCallback(make_venv(n_envs=1), n_eval_episodes=1, eval_freq=2, log_path=str(tmp_path), verbose=0,
                       on_timesteps=True, eval_at_end=True)
    resumed.learn(4, callback=cb2, n_steps=1)
    assert [int(r["timesteps"]) for r in _read_csv(tmp_path / "evaluations.csv")] == [2, 4, 5, 6, 8, 9]
    # the defaults count from the learn() call, as SB3's EvalCallback, and add no final evaluation
    plain = FakeModel(make_venv(n_envs=1))
    plain.num_timesteps = 5
    cb3 = EvalCallback(make_venv(n_envs=1), n_eval_episodes=1, eval_freq=2, verbose=0)
    plain.learn(4, callback=cb3, n_steps=1)
    assert cb3.evaluations_timesteps == [7, 9]


def test_eval_at_end_skips_runs_that_stopped_early(tmp_path):
    model = FakeModel(make_venv(n_envs=1), good_after=10**9)
    stop = StopTrainingOnNoModelImprovement(max_no_improvement_evals=1)
    cb = EvalCallback(make_venv(n_envs=1), callback_after_eval=stop, n_eval_episodes=1, eval_freq=3,
                      log_path=str(tmp_path), verbose=0, on_timesteps=True, eval_at_end=True)
    model.learn(100, callback=cb, n_steps=1)
    assert model.num_timesteps < 100
    assert [int(r["timesteps"]) for r in _read_csv(tmp_path / "evaluations.csv")][-1] == model.num_timesteps
    assert len(cb.evaluations_timesteps) == len(set(cb.evaluations_timesteps))  # no second evaluation at the end
