"""rlzoo sweep --resume: finished runs are skipped, unfinished ones continue in their own run folder."""
from __future__ import annotations

import json
import os
import subprocess

from cli_kit import CLI, cli_env, rlzoo

SWEEP = ["sweep", "--algos", "ppo", "--envs", "CartPole-v1", "--seeds", "3", "--jobs", "1", "-f", "logs",
         "--eval-freq", "0", "--no-progress"]


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

    # train --resume-or-new (what each sweep --resume run is) on a job that finished: nothing runs
    out = rlzoo("train", "--algo", "ppo", "--env", "CartPole-v1", "--seed", "3", "-f", "logs", "-n", "512",
                "--resume-or-new", cwd=tmp_path)
    assert out.strip() == f"skipped: ppo CartPole-v1 seed 3 already finished in {tmp_path / 'logs/ppo/CartPole-v1_2'}"


def test_sweep_resume_skips_a_job_another_sweep_holds(tmp_path):
    from rlzoo.zoo import run_lock

    claim = tmp_path / "logs" / ".sweep-claims" / "ppo_CartPole-v1_seed3.lock"
    assert run_lock.claim(claim) is None
    try:
        out = rlzoo(*SWEEP, "-n", "512", "--resume", cwd=tmp_path)
    finally:
        run_lock.release(claim)
    assert f"skipped: ppo CartPole-v1 seed 3 is being run by pid {os.getpid()} on host" in out
    assert "0 of 1 runs finished, 1 skipped" in out
    assert not (tmp_path / "logs" / "ppo").exists()  # nothing was trained
    # the claim is free again: the same sweep now runs the job
    out = rlzoo(*SWEEP, "-n", "512", "--resume", cwd=tmp_path)
    assert "1 of 1 runs finished" in out
    assert [r.name for r in (tmp_path / "logs" / "ppo").iterdir()] == ["CartPole-v1_1"]


def test_two_overlapping_sweeps_run_each_job_once(tmp_path):
    """Two `sweep --resume` calls over the same seeds, started together: every run exists once, finished."""
    args = [*CLI, *SWEEP[:6], "0-2", *SWEEP[7:], "-n", "1024", "--resume"]
    procs = [subprocess.Popen(args, cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    runs = sorted((tmp_path / "logs" / "ppo").iterdir())
    infos = [json.loads((r / "run.json").read_text()) for r in runs]
    assert sorted(i["seed"] for i in infos) == [0, 1, 2], [r.name for r in runs]
    assert all((i["status"], i["num_timesteps"], len(i["segments"])) == ("finished", 1024, 1) for i in infos)
    trained = sum(o.count(": ok in") for o in outs)
    assert trained == 3, outs


def test_requeued_slurm_task_continues_its_run(tmp_path):
    """A task of a `sweep --resume --emit-slurm` script decides as it starts: run twice (a requeue), it
    continues the interrupted run once, then skips it."""
    rlzoo(*SWEEP, "-n", "512", cwd=tmp_path)  # finished at 512: for the 1024-step sweep, a run to continue
    script = tmp_path / "sweep.sh"
    rlzoo(*SWEEP, "-n", "1024", "--resume", "--emit-slurm", str(script), cwd=tmp_path)
    assert "--resume-or-new" in script.read_text()
    env = dict(cli_env(), SLURM_ARRAY_TASK_ID="0")
    outs = [subprocess.run(["bash", str(script)], cwd="/", env=env, capture_output=True, text=True, timeout=240)
            for _ in range(2)]
    assert [o.returncode for o in outs] == [0, 0], [o.stderr for o in outs]
    assert "resuming ppo on CartPole-v1" in outs[0].stdout
    assert outs[1].stdout.startswith("skipped: ppo CartPole-v1 seed 3 already finished")
    assert sorted(r.name for r in (tmp_path / "logs" / "ppo").iterdir()) == ["CartPole-v1_1"]
    info = json.loads((tmp_path / "logs" / "ppo" / "CartPole-v1_1" / "run.json").read_text())
    assert (info["status"], info["num_timesteps"], len(info["segments"])) == ("finished", 1024, 2)
