"""A signal to ``rlzoo sweep`` reaches the runs it started: they save and are marked interrupted, none is orphaned.

A container or cluster stopping a job often signals only its main process (the sweep); Ctrl-C signals the
whole process group, so each run gets the signal twice (directly and from the sweep) and must count it once.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_kit import CLI, cli_env, rlzoo

from rlzoo.zoo import stop_flag

SWEEP = ["sweep", "--algos", "ppo", "--envs", "CartPole-v1", "--seeds", "0-2", "--jobs", "1", "-f", "logs",
         "-n", "1000000", "--eval-freq", "0", "--no-progress"]


def _start_sweep(cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, *SWEEP], cwd=cwd, env=cli_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _wait_until_training(cwd: Path, sweep: subprocess.Popen[str]) -> Path:
    """The first run's ``run.json``, once the run has finished 100 episodes (a few rollouts)."""
    run = cwd / "logs" / "ppo" / "CartPole-v1_1"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert sweep.poll() is None, sweep.communicate()
        episodes = sum(max(len(f.read_text().splitlines()) - 2, 0) for f in run.glob("monitor/*.csv"))
        if episodes >= 100:
            return run / "run.json"
        time.sleep(0.2)
    sweep.kill()
    pytest.fail("the first run of the sweep never started")


def _no_train_left(cwd: Path) -> bool:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return not any("rlzoo.zoo.cli train" in line and str(cwd / "logs") in line for line in out.splitlines())


@pytest.mark.parametrize("how", ["sigterm to the sweep only", "ctrl-c to the process group"])
def test_a_stopped_sweep_leaves_its_runs_saved_and_resumable(tmp_path, how):
    sweep = _start_sweep(tmp_path)
    run_json = _wait_until_training(tmp_path, sweep)
    if how == "sigterm to the sweep only":
        signum = signal.SIGTERM
        sweep.send_signal(signum)
    else:
        signum = signal.SIGINT
        os.killpg(sweep.pid, signum)
    out, err = sweep.communicate(timeout=180)

    assert sweep.returncode == 128 + signum, out + err
    assert "exiting immediately" not in err  # the doubled Ctrl-C counted once: the run saved itself
    assert (f"sweep stopped by {signum.name}: 1 run(s) saved and marked interrupted, 2 not started; "
            "run the same sweep with --resume to continue") in out
    info = json.loads(run_json.read_text())
    assert info["status"] == "interrupted" and info["num_timesteps"] > 0
    assert (run_json.parent / "model.zip").is_file()
    assert sorted(p.name for p in (tmp_path / "logs" / "ppo").iterdir()) == ["CartPole-v1_1"]  # no run started
    assert _no_train_left(tmp_path)

    plan = rlzoo(*SWEEP, "--resume", "--dry-run", cwd=tmp_path)
    assert "0 run(s) already finished, 1 to resume, 2 new" in plan, plan


def test_the_same_signal_twice_at_once_is_one_request_and_later_it_forces_the_exit(monkeypatch):
    previous = {sig: signal.getsignal(sig) for sig in stop_flag.HANDLED}
    try:
        stop_flag.restore()
        assert stop_flag.install()
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # a scheduler's signal and the sweep's copy of it
        assert stop_flag.received() == signal.SIGTERM
        monkeypatch.setattr(stop_flag, "REPEAT_WINDOW_S", 0.0)  # as if the repeat came a second later
        with pytest.raises(SystemExit) as exit_info:
            os.kill(os.getpid(), signal.SIGTERM)
        assert exit_info.value.code == 128 + signal.SIGTERM
    finally:
        stop_flag.restore()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
