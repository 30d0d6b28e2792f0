"""The RL Zoo options rlzoo users type: train --n-eval-envs/--eval-env-kwargs/--num-threads/--log-interval/
--uuid, enjoy --n-envs/--norm-reward/--load-last-checkpoint/--reward-log. Each test fails without its option."""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rlzoo.zoo.cli import app

runner = CliRunner()
BASE = ["train", "--algo", "ppo", "--env", "CartPole-v1", "--seed", "0", "--no-progress"]


def ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_eval_env_kwargs_and_n_eval_envs(workdir, monkeypatch):
    from rlzoo.zoo import experiment

    calls = []
    original = experiment.make_env

    def spy(config, n_envs, *args, **kwargs):
        calls.append((n_envs, kwargs.get("env_kwargs")))
        return original(config, n_envs, *args, **kwargs)

    monkeypatch.setattr(experiment, "make_env", spy)
    # Sutton & Barto's CartPole reward (0 per step, -1 at the end) only in the evaluation env
    ok(BASE + ["-n", "512", "--eval-freq", "256", "--eval-episodes", "4", "--n-eval-envs", "2",
               "--eval-env-kwargs", "sutton_barto_reward=True", "--hyperparams", "n_envs=1", "n_steps=128"])
    # the last two builds are the training and evaluation envs (earlier ones check that the kwargs build)
    assert calls[-2] == (1, None) and calls[-1] == (2, {"sutton_barto_reward": True})
    with open("logs/ppo/CartPole-v1_1/evaluations.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(-1.0 <= float(r["mean_reward"]) <= 0.0 for r in rows)
    with open("logs/ppo/CartPole-v1_1/monitor/0.monitor.csv") as f:
        train_rewards = [float(line.split(",")[0]) for line in f.readlines()[2:]]
    assert min(train_rewards) >= 8  # the training env keeps the usual +1 per step
    result = runner.invoke(app, BASE + ["-n", "256", "--n-eval-envs", "0"])
    assert result.exit_code == 2 and "--n-eval-envs" in result.output


def test_num_threads(workdir, monkeypatch):
    """--num-threads wins over rlzoo's per-model choice (one thread for small MLPs, torch's default for big
    networks), as RLZOO_NUM_THREADS does, and only for that run."""
    from rlzoo.common import utils

    monkeypatch.delenv("RLZOO_NUM_THREADS", raising=False)
    monkeypatch.setattr(utils, "_DEFAULT_THREADS", 3)  # a big network would otherwise get 3
    seen: list[int] = []
    original = utils.tune_threads

    def spy(small_model: bool) -> None:
        original(small_model)
        seen.append(torch.get_num_threads())

    monkeypatch.setattr("rlzoo.common.base.tune_threads", spy)
    before = torch.get_num_threads()
    try:
        ok(BASE + ["-n", "128", "--eval-freq", "0", "--num-threads", "2", "--hyperparams", "n_envs=1", "n_steps=64"])
        ok(["train", "--algo", "sac", "--env", "Pendulum-v1", "--seed", "0", "--no-progress", "-n", "64",
            "--eval-freq", "0", "--num-threads", "1", "--hyperparams", "learning_starts=32"])
        assert seen == [2, 1]  # small PPO MLP: 2, not 1; SAC's 256-wide networks: 1, not 3
        assert "RLZOO_NUM_THREADS" not in os.environ
        ok(["train", "--algo", "sac", "--env", "Pendulum-v1", "--seed", "1", "--no-progress", "-n", "64",
            "--eval-freq", "0", "--hyperparams", "learning_starts=32"])
        assert seen[-1] == 3  # without the option: rlzoo's own choice again
    finally:
        torch.set_num_threads(before)


def test_log_interval(workdir):
    args = BASE + ["-n", "512", "--eval-freq", "0", "-v", "1", "--hyperparams", "n_envs=1", "n_steps=64",
                   "n_epochs=1", "batch_size=64"]
    every = ok(args).count("total_timesteps")  # one table per logged update
    sparse = ok(args + ["--log-interval", "4"]).count("total_timesteps")
    assert every == 8 and sparse == 2


def test_uuid_run_folders(workdir):
    ok(BASE + ["-n", "128", "--eval-freq", "0", "--uuid", "--hyperparams", "n_envs=1", "n_steps=64"])
    ok(BASE + ["-n", "128", "--eval-freq", "0", "--uuid", "--hyperparams", "n_envs=1", "n_steps=64"])
    names = sorted(p.name for p in Path("logs/ppo").iterdir())
    pattern = re.compile(r"^CartPole-v1_(\d+)_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")
    assert len(names) == 2 and all(pattern.match(n) for n in names)
    assert sorted(int(pattern.match(n).group(1)) for n in names) == [1, 2]
    out = ok(["enjoy", "--algo", "ppo", "--env", "CartPole-v1", "--no-render", "-n", "50"])
    latest = next(n for n in names if pattern.match(n).group(1) == "2")
    assert latest in out  # exp-id 0 finds the latest run, uuid and all


@pytest.fixture(scope="module")
def normalized_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("enjoy")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    ok(BASE + ["-n", "768", "--eval-freq", "0", "--save-freq", "256", "--hyperparams", "n_envs=1", "n_steps=128",
               "normalize=True"])
    yield root
    mp.undo()


def _episodes(output: str) -> list[tuple[float, int]]:
    return [(float(r), int(n)) for r, n in re.findall(r"episode \d+: reward (-?[\d.]+), length (\d+)", output)]


def test_enjoy_norm_reward(normalized_run):
    enjoy = ["enjoy", "--algo", "ppo", "--env", "CartPole-v1", "--no-render", "-n", "300"]
    raw = _episodes(ok(enjoy))
    assert raw and all(r == n for r, n in raw)  # CartPole: +1 per step
    scaled = _episodes(ok(enjoy + ["--norm-reward"]))
    assert [n for _, n in scaled] == [n for _, n in raw]  # the same episodes ...
    assert all(abs(r - n) > 0.5 for r, n in scaled)  # ... with VecNormalize's scaled rewards


def test_enjoy_n_envs_reward_log_last_checkpoint(normalized_run):
    out = ok(["enjoy", "--algo", "ppo", "--env", "CartPole-v1", "--no-render", "-n", "200", "--n-envs", "3",
              "--reward-log", "rewards", "--load-last-checkpoint"])
    assert "checkpoints/768.zip" in out and "3 envs" in out
    files = sorted(Path("rewards").glob("*.monitor.csv"))
    assert [f.name for f in files] == ["0.monitor.csv", "1.monitor.csv", "2.monitor.csv"]
    logged = sum(len(f.read_text().splitlines()) - 2 for f in files)
    assert logged == len(_episodes(out)) > 3  # every finished episode of every env, in the log too
    result = runner.invoke(app, ["enjoy", "--algo", "ppo", "--env", "CartPole-v1", "--no-render",
                                 "--load-best", "--load-last-checkpoint"])
    assert result.exit_code == 2 and "not several" in result.output
