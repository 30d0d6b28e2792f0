"""rlzoo sweep --resume: finished runs are skipped, unfinished ones continue in their own run folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SWEEP = ["sweep", "--algos", "ppo", "--envs", "CartPole-v1", "--seeds", "3", "--jobs", "1", "-f", "logs",
         "--eval-freq", "0", "--no-progress"]


def rlzoo(*args: str, cwd: Path) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "rlzoo.zoo.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_sweep_resume_continues_and_skips(tmp_path):
    rlzoo(*SWEEP, "-n", "512", cwd=tmp_path)
    runs = sorted((tmp_path / "logs" / "ppo").iterdir())
    assert [r.name for r in runs] == ["CartPole-v1_1"]
    info = json.loads((runs[0] / "run.json").read_text())
    assert (info["status"], info["num_timesteps"]) == ("finished", 512)

    # a larger budget: the same run folder continues from its saved model, no new run
    out = rlzoo(*SWEEP, "-n", "1024", "--resume", cwd=tmp_path)
    assert "0 run(s) already finished, 1 to resume, 0 new" in out
    assert sorted(r.name for r in (tmp_path / "logs" / "ppo").iterdir()) == ["CartPole-v1_1"]
    info = json.loads((runs[0] / "run.json").read_text())
    assert (info["status"], info["num_timesteps"], len(info["segments"])) == ("finished", 1024, 2)

    # everything finished: nothing runs again
    out = rlzoo(*SWEEP, "-n", "1024", "--resume", cwd=tmp_path)
    assert "1 run(s) already finished, 0 to resume, 0 new" in out
    assert len(json.loads((runs[0] / "run.json").read_text())["segments"]) == 2

    # a smaller budget is a new run: the 1024-step model is not a 512-step one
    out = rlzoo(*SWEEP, "-n", "512", "--resume", cwd=tmp_path)
    assert "0 run(s) already finished, 0 to resume, 1 new" in out
    info = json.loads((tmp_path / "logs" / "ppo" / "CartPole-v1_2" / "run.json").read_text())
    assert (info["status"], info["n_timesteps"], info["seed"]) == ("finished", 512, 3)
