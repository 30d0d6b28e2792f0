"""Issue 13, defects 1, 2, 3 and 9: one writer per run folder, signals from the first instant, no hangs.

Signals are sent by the test process to itself at a chosen point of the run (a wrapped function),
so every test is deterministic. A SIGTERM handler raising an exception guards the test process in
case a run leaves a signal unhandled.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli_kit import repo_env

from rlzoo.zoo.cli import app

runner = CliRunner()
TINY = ["--algo", "a2c", "--env", "CartPole-v1", "--hyperparams", "n_steps=8", "--n-envs", "2", "-f", "logs",
        "--seed", "3", "--no-progress"]


class SigtermReachedTest(Exception):
    """A SIGTERM that no rlzoo handler took."""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    previous = signal.signal(signal.SIGTERM, _raise)
    yield tmp_path
    signal.signal(signal.SIGTERM, previous)


def _raise(signum, frame):
    raise SigtermReachedTest()


def invoke(args: list[str]):
    return runner.invoke(app, args)


def _info(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


# ----------------------------------------------------------------------------- defect 1
def test_a_second_writer_is_refused_naming_the_holder(workdir):
    assert invoke(["train", *TINY, "-n", "32", "--eval-freq", "0"]).exit_code == 0
    run = workdir / "logs" / "a2c" / "CartPole-v1_1"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom rlzoo.zoo import run_lock\nrun_lock.acquire(sys.argv[1])\n"
                               "print('locked', flush=True)\ntime.sleep(120)\n", str(run)],
        env=repo_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = {p.name: p.read_bytes() for p in [run / "run.json", *sorted((run / "monitor").iterdir())]}
        result = invoke(["train", "--algo", "a2c", "--env", "CartPole-v1", "--resume", str(run), "-n", "64"])
        assert result.exit_code == 2, result.output
        [line] = _error_lines(result.output)
        assert f"pid {holder.pid}" in line and f"host {socket.gethostname()}" in line and str(run) in line
        assert "Traceback" not in result.output
        after = {p.name: p.read_bytes() for p in [run / "run.json", *sorted((run / "monitor").iterdir())]}
        assert after == before  # the refused writer wrote nothing
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock, no stale lock is left
        holder.wait(timeout=30)
    result = invoke(["train", "--algo", "a2c", "--env", "CartPole-v1", "--resume", str(run), "-n", "64"])
    assert result.exit_code == 0, result.output
    info = _info(run)
    assert info["status"] == "finished" and info["num_timesteps"] == 64 and len(info["segments"]) == 2


def test_the_lock_is_one_per_folder_within_a_process_too(tmp_path):
    from rlzoo.zoo import run_lock
    from rlzoo.zoo.errors import ZooError

    run_lock.acquire(tmp_path)
    try:
        with pytest.raises(ZooError, match=f"pid {os.getpid()}"):
            run_lock.acquire(tmp_path)
    finally:
        run_lock.release(tmp_path)
    run_lock.acquire(tmp_path)  # released: free again
    run_lock.release(tmp_path)


# ----------------------------------------------------------------------------- defect 2
def _sigterm_when_training_env_is_built(monkeypatch) -> None:
    from rlzoo.zoo import experiment

    original = experiment.make_env

    def make_env(config, n_envs, seed, vec_env="dummy", monitor_dir=None, *args, **kwargs):
        env = original(config, n_envs, seed, vec_env, monitor_dir, *args, **kwargs)
        if monitor_dir is not None:  # the training env: the run folder exists, nothing is saved yet
            os.kill(os.getpid(), signal.SIGTERM)
        return env

    monkeypatch.setattr(experiment, "make_env", make_env)


def test_sigterm_during_start_up_marks_the_run_interrupted_and_resume_starts_over(workdir, monkeypatch):
    _sigterm_when_training_env_is_built(monkeypatch)
    result = invoke(["train", *TINY, "-n", "64", "--save-freq", "32", "--eval-freq", "0"])
    assert result.exit_code == 128 + signal.SIGTERM, result.output
    assert "Traceback" not in result.output
    run = workdir / "logs" / "a2c" / "CartPole-v1_1"
    info = _info(run)
    assert info["status"] == "interrupted" and info["num_timesteps"] == 0
    assert not (run / "model.zip").exists()
    monkeypatch.undo()
    signal.signal(signal.SIGTERM, _raise)

    result = invoke(["train", "--algo", "a2c", "--env", "CartPole-v1", "--resume", str(run)])
    assert result.exit_code == 0, result.output
    assert "starting it again from 0 timesteps" in result.output
    info = _info(run)
    assert info["status"] == "finished" and info["num_timesteps"] == 64 and info["seed"] == 3
    assert [s["from_timesteps"] for s in info["segments"]] == [0]
    assert sorted(p.name for p in (run / "checkpoints").glob("*.zip")) == ["32.zip", "64.zip"]  # --save-freq kept


def test_subprocess_env_workers_die_quietly_with_their_parent():
    script = ("from rlzoo.envs import make_vec_env\n"
              "venv = make_vec_env('CartPole-v1', n_envs=2, seed=0, vec_env_cls='subproc')\n"
              "venv.reset()\nprint('ready', flush=True)\nimport time\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], env=repo_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)  # the parent dies without closing its envs
    rest, _ = proc.communicate(timeout=60)  # EOF only once every worker holding the pipe has exited
    assert "Traceback" not in rest and "BrokenPipeError" not in rest, rest


# ----------------------------------------------------------------------------- defect 3
def test_yaml_alias_bombs_are_refused_at_once(workdir):
    bomb = "&a0 [64, 64, 64, 64, 64, 64, 64, 64, 64, 64]"  # each level: its anchor, then 9 aliases of the last
    for level in range(1, 10):
        bomb = f"&a{level} [{bomb}, " + ", ".join([f"*a{level - 1}"] * 9) + "]"
    conf = workdir / "bomb.yml"  # 10^10 numbers once expanded (printing it in an error message never ends)
    conf.write_text(f"n_timesteps: 64\npolicy_kwargs:\n  net_arch: {bomb}\n")
    result = invoke(["train", *TINY, "--conf-file", str(conf), "--eval-freq", "0"])
    assert result.exit_code == 2, result.output
    [line] = _error_lines(result.output)
    assert str(conf) in line and "aliases" in line
    assert not (workdir / "logs").exists()

    from rlzoo.zoo.errors import ZooError
    from rlzoo.zoo.hyperparams_files import parse_yaml

    start = time.monotonic()
    with pytest.raises(ZooError, match="aliases expand the document to more than"):
        parse_yaml(conf.read_text(), "bomb.yml")
    with pytest.raises(ZooError, match="recursive alias"):
        parse_yaml("a: &x [1, *x]\n", "loop.yml")
    assert time.monotonic() - start < 2  # refused before anything walks the expansion


def test_n_steps_zero_is_refused_and_a_stuck_loop_still_obeys_sigterm(workdir, monkeypatch):
    result = invoke(["train", *TINY, "-n", "64", "--hyperparams", "n_steps=0", "--eval-freq", "0"])
    assert result.exit_code == 2, result.output
    [line] = _error_lines(result.output)
    assert "--hyperparams" in line and "'n_steps' must be an integer >= 1" in line
    assert not (workdir / "logs").exists()

    # were such a loop reached anyway (a rollout that makes no env step), SIGTERM must still end it
    from rlzoo.zoo import validation

    monkeypatch.setitem(validation.RANGES, "n_steps", validation.Rule(0, integer=True))
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        start = time.monotonic()
        result = invoke(["train", *TINY, "-n", "64", "--hyperparams", "n_steps=0",
                         "--eval-freq", "0"])
        elapsed = time.monotonic() - start
    finally:
        timer.cancel()
    assert result.exit_code == 128 + signal.SIGTERM, result.output
    assert elapsed < 30
    info = _info(workdir / "logs" / "a2c" / "CartPole-v1_1")
    assert info["status"] == "interrupted" and info["num_timesteps"] == 0


# ----------------------------------------------------------------------------- defect 9
def test_sigterm_during_a_long_evaluation_is_acted_on_at_once(workdir, monkeypatch):
    from rlzoo.common import eval_callbacks

    steps = []
    original = eval_callbacks.evaluate_policy

    def evaluate_policy(*args, **kwargs):
        inner = kwargs["callback"]

        def counting(locals_, globals_):
            steps.append(1)
            if len(steps) == 5:  # a few steps into an evaluation of 2000 episodes
                os.kill(os.getpid(), signal.SIGTERM)
            inner(locals_, globals_)

        kwargs["callback"] = counting
        return original(*args, **kwargs)

    monkeypatch.setattr(eval_callbacks, "evaluate_policy", evaluate_policy)
    result = invoke(["train", *TINY, "-n", "512", "--eval-freq", "32", "--eval-episodes", "2000"])
    assert result.exit_code == 128 + signal.SIGTERM, result.output
    assert len(steps) <= 10  # the evaluation was abandoned within a step or two of the signal
    run = workdir / "logs" / "a2c" / "CartPole-v1_1"
    info = _info(run)
    assert info["status"] == "interrupted" and 0 < info["num_timesteps"] < 512
    assert not (run / "evaluations.csv").exists()  # no partial evaluation recorded
