"""The zoo end to end on CartPole with tiny budgets: train -> enjoy -> record-gif -> plot, resume after SIGTERM."""
from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from cli_kit import CLI, repo_env

from rlzoo.common.save_format import read_model_zip
from rlzoo.zoo.cli import app

runner = CliRunner()


def ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_train_enjoy_gif_plot(workdir):
    out = ok(["train", "--algo", "ppo", "--env", "CartPole-v1", "-n", "2048", "--seed", "1", "-f", "logs",
              "--eval-freq", "1024", "--save-freq", "1024", "--eval-episodes", "2", "--no-progress"])
    run = workdir / "logs" / "ppo" / "CartPole-v1_1"
    assert "finished: 2048 timesteps" in out
    for name in ("model.zip", "best_model.zip", "config.yml", "run.json", "evaluations.csv",
                 "checkpoints/1024.zip", "checkpoints/2048.zip"):
        assert (run / name).is_file(), name
    assert list((run / "monitor").glob("*.monitor.csv")) and list((run / "tb").rglob("events.out.tfevents*"))
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["seed"] == 1 and info["num_timesteps"] == 2048
    assert info["command"].startswith("rlzoo train --algo ppo") and "torch" in info["versions"]
    config = yaml.safe_load((run / "config.yml").read_text())
    assert config["n_timesteps"] == 2048 and config["learning_rate"] == "lin_0.001" and config["n_envs"] == 8
    with open(run / "evaluations.csv") as f:
        assert [int(row["timesteps"]) for row in csv.DictReader(f)] == [1024, 2048]
    assert read_model_zip(str(run / "checkpoints" / "1024.zip"))[0]["num_timesteps"] == 1024

    out = ok(["enjoy", "--algo", "ppo", "--env", "CartPole-v1", "-f", "logs", "--no-render", "-n", "300"])
    assert "(deterministic)" in out
    mean, std = map(float, re.search(r"mean reward ([\d.]+) ± ([\d.]+), mean length", out).groups())
    assert mean > 0 and std >= 0
    ok(["enjoy", "--algo", "ppo", "--env", "CartPole-v1", "-f", "logs", "--no-render", "-n", "100", "--load-best"])
    ok(["enjoy", "--algo", "ppo", "--env", "CartPole-v1", "-f", "logs", "--no-render", "-n", "100",
        "--load-checkpoint", "1024", "--stochastic"])

    ok(["record-gif", "--algo", "ppo", "--env", "CartPole-v1", "-f", "logs", "-n", "30", "-o", "agent.gif",
        "--fps", "25"])
    import imageio.v3 as iio

    frames = iio.imread(workdir / "agent.gif", index=None)
    assert frames.ndim == 4 and frames.shape[1:3] == (400, 600) and 1 < len(frames) <= 30
    assert frames[0].std() > 0  # a drawn scene, not a blank frame

    # a second run from the first one's config.yml (same hyperparameters), a third from its model (-i)
    ok(["train", "--algo", "ppo", "--env", "CartPole-v1", "--conf-file", str(run / "config.yml"), "-f", "logs",
        "--eval-freq", "0", "--no-progress"])
    run2 = workdir / "logs" / "ppo" / "CartPole-v1_2"
    assert yaml.safe_load((run2 / "config.yml").read_text()) == config
    assert json.loads((run2 / "run.json").read_text())["seed"] != 1  # drawn at random and recorded
    ok(["train", "--algo", "ppo", "--env", "CartPole-v1", "-i", str(run / "model.zip"), "-n", "256", "-f", "logs",
        "--eval-freq", "0", "--no-progress"])
    info3 = json.loads((workdir / "logs" / "ppo" / "CartPole-v1_3" / "run.json").read_text())
    assert info3["status"] == "finished" and info3["trained_agent"].endswith("model.zip")

    out = ok(["plot", "-f", "logs", "-o", "curves.png", "--window", "5"])
    from matplotlib.image import imread

    image = imread(workdir / "curves.png")
    assert image.shape[0] > 100 and image.shape[1] > 100 and np.ptp(image[..., :3]) > 0
    out = ok(["list"])
    assert "ppo" in out and "CartPole-v1" in out


def _finished_steps(monitor: Path) -> int:
    total = 0
    for path in monitor.glob("*.monitor.csv"):
        for line in path.read_text().splitlines()[2:]:
            parts = line.split(",")
            if len(parts) >= 3 and parts[1].isdigit():
                total += int(parts[1])
    return total


def _train_then_sigterm(tmp_path: Path, base: list[str], total: int, run: Path, after_steps: int) -> str:
    """Start ``rlzoo train`` in a subprocess, SIGTERM it once the monitor files show ``after_steps``
    finished steps, and return its output (it must exit as killed by SIGTERM)."""
    proc = subprocess.Popen(base + ["-n", str(total), "--seed", "0"], cwd=tmp_path, env=repo_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    try:
        while _finished_steps(run / "monitor") < after_steps:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.time() < deadline, "training did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, out
    return out


def test_sigterm_then_resume_reaches_the_total(tmp_path):
    env = repo_env()
    total, rollout = 8_000, 8 * 32  # PPO CartPole: 8 envs x n_steps 32 per rollout
    base = [*CLI, "train", "--algo", "ppo", "--env", "CartPole-v1", "-f", "logs",
            "--eval-freq", "2000", "--eval-episodes", "2", "--no-progress"]
    run = tmp_path / "logs" / "ppo" / "CartPole-v1_1"
    out = _train_then_sigterm(tmp_path, base, total, run, after_steps=2000)
    assert "Traceback" not in out and f"--resume {Path('logs/ppo/CartPole-v1_1')}" in out
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "interrupted"
    stopped = info["num_timesteps"]
    assert 0 < stopped < total and stopped % rollout == 0  # counted from the last complete rollout
    assert read_model_zip(str(run / "model.zip"))[0]["num_timesteps"] == stopped

    result = subprocess.run(base + ["--resume", str(Path("logs/ppo/CartPole-v1_1"))], cwd=tmp_path, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert result.returncode == 0, result.stdout
    assert f"{stopped}/{total} timesteps" in result.stdout
    info = json.loads((run / "run.json").read_text())
    expected = -(-total // rollout) * rollout  # what an uninterrupted run reaches: 32 rollouts = 8192
    assert info["status"] == "finished" and info["num_timesteps"] == expected
    assert read_model_zip(str(run / "model.zip"))[0]["num_timesteps"] == expected
    assert [s["from_timesteps"] for s in info["segments"]] == [0, stopped]
    # the same logs, continued: evaluations.csv, TensorBoard folder, monitor folder
    with open(run / "evaluations.csv") as f:
        steps = [int(row["timesteps"]) for row in csv.DictReader(f)]
    assert steps == sorted(set(steps)) and steps[-1] > stopped
    assert [p.name for p in (run / "tb").iterdir()] == ["run_1"]
    assert len(list((run / "monitor").glob("*.monitor.csv"))) == 16
    assert _finished_steps(run / "monitor") > stopped


def test_custom_env_from_a_user_package(workdir, monkeypatch):
    (workdir / "my_zoo_envs.py").write_text(
        "import gymnasium\n"
        "gymnasium.register('ShortCartPole-v0', entry_point='gymnasium.envs.classic_control.cartpole:CartPoleEnv',"
        " max_episode_steps=40)\n")
    monkeypatch.syspath_prepend(str(workdir))
    common = ["-n", "128", "--hyperparams", "n_steps=32", "--n-envs", "2", "-f", "logs",
              "--eval-freq", "0", "--no-progress"]
    ok(["train", "--algo", "a2c", "--env", "my_zoo_envs:ShortCartPole-v0"] + common)
    ok(["train", "--algo", "a2c", "--env", "ShortCartPole-v0", "--gym-packages", "my_zoo_envs", "--vec-env",
        "subproc"] + common)
    runs = sorted(p.name for p in (workdir / "logs" / "a2c").iterdir())
    assert runs == ["ShortCartPole-v0_1", "ShortCartPole-v0_2"]
    info = json.loads((workdir / "logs" / "a2c" / "ShortCartPole-v0_2" / "run.json").read_text())
    assert info["gym_packages"] == ["my_zoo_envs"] and info["status"] == "finished"
    out = ok(["enjoy", "--algo", "a2c", "--env", "ShortCartPole-v0", "-f", "logs", "--no-render", "-n", "100"])
    assert 0 < float(re.search(r"mean length ([\d.]+)", out).group(1)) <= 40  # the custom time limit


def test_sigterm_then_resume_keeps_the_replay_buffer(tmp_path):
    """Off-policy runs save their replay buffer when interrupted and continue with it on --resume."""
    env = repo_env()
    total = 6_000
    base = [*CLI, "train", "--algo", "dqn", "--env", "CartPole-v1", "-f", "logs",
            "--eval-freq", "0", "--no-progress"]
    run = tmp_path / "logs" / "dqn" / "CartPole-v1_1"
    _train_then_sigterm(tmp_path, base, total, run, after_steps=1500)

    def buffer_meta() -> dict:
        with np.load(run / "replay_buffer.npz", allow_pickle=False) as data:  # numpy arrays only, no pickle
            return json.loads(data["__meta__"].tobytes().decode())

    stopped = json.loads((run / "run.json").read_text())["num_timesteps"]
    assert 1500 <= stopped < total
    assert buffer_meta()["n_added"] == stopped  # every step taken is in the saved buffer

    result = subprocess.run(base + ["--resume", str(Path("logs/dqn/CartPole-v1_1"))], cwd=tmp_path, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert result.returncode == 0, result.stdout
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["num_timesteps"] == total
    assert buffer_meta()["n_added"] == total  # the resumed run appended to the saved buffer
