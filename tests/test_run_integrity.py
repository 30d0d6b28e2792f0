"""Issue 13, defects 4-8: resume carries the run, disk full, silent garbage, fallback, messages."""
from __future__ import annotations

import csv
import errno
import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlzoo.zoo.cli import app

runner = CliRunner()
TINY = ["--algo", "a2c", "--env", "CartPole-v1", "--hyperparams", "n_steps=8", "--n-envs", "2", "-f", "logs",
        "--seed", "3", "--no-progress"]
RESUME = ["train", "--algo", "a2c", "--env", "CartPole-v1", "--resume"]


def invoke(args: list[str]):
    return runner.invoke(app, args)


def ok(args: list[str]) -> str:
    result = invoke(args)
    assert result.exit_code == 0, result.output
    return result.output


def _info(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def one_error(result, code: int = 2) -> str:
    """The single ``error:`` line of a failed command (no traceback, nothing else on stderr)."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


RUN = Path("logs") / "a2c" / "CartPole-v1_1"


# ----------------------------------------------------------------------------- defect 4
def test_resume_carries_every_run_option(workdir):
    ok(["train", *TINY, "-n", "32", "--save-freq", "16", "--eval-freq", "16", "--eval-episodes", "1"])
    ok([*RESUME, str(RUN), "-n", "64"])  # no --save-freq / --eval-freq / --eval-episodes given again
    assert sorted(int(p.stem) for p in (RUN / "checkpoints").glob("*.zip")) == [16, 32, 48, 64]
    with open(RUN / "evaluations.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["timesteps"]) for r in rows] == [16, 32, 48, 64] and all("reward_1" not in r for r in rows)
    info = _info(RUN)
    assert info["options"]["save_freq"] == 16 and info["options"]["eval_episodes"] == 1
    assert info["status"] == "finished" and info["num_timesteps"] == 64
    ok([*RESUME, str(RUN), "-n", "96", "--save-freq", "32", "--eval-freq", "0"])  # overrides win, and are kept
    assert sorted(int(p.stem) for p in (RUN / "checkpoints").glob("*.zip")) == [16, 32, 48, 64, 96]
    assert _info(RUN)["options"]["save_freq"] == 32 and _info(RUN)["options"]["eval_freq"] == 0


# ----------------------------------------------------------------------------- defect 5
def test_disk_full_marks_the_run_failed_and_checkpoints_stay_whole(workdir, monkeypatch):
    from rlzoo.common.off_policy import OffPolicyAlgorithm
    from rlzoo.zoo import run_folder

    calls = []
    save_buffer = OffPolicyAlgorithm.save_replay_buffer

    def full_disk_buffer(self, path):
        calls.append(path)
        if len(calls) == 2:  # the second checkpoint: the disk is full now
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return save_buffer(self, path)

    update = run_folder.update_run_info
    failures = []

    def full_disk_status(run_dir, **changes):
        if changes.get("status") == "failed" and not failures:  # the status write hits the full disk once
            failures.append(1)
            (Path(run_dir) / ".model.zip.abc123.zip").write_bytes(b"x" * 1000)  # a temp file to free
            raise OSError(errno.ENOSPC, "No space left on device")
        return update(run_dir, **changes)

    monkeypatch.setattr(OffPolicyAlgorithm, "save_replay_buffer", full_disk_buffer)
    monkeypatch.setattr(run_folder, "update_run_info", full_disk_status)
    result = invoke(["train", "--algo", "dqn", "--env", "CartPole-v1", "-n", "400", "--save-freq", "100",
                     "--eval-freq", "0", "--seed", "1", "--no-progress", "-f", "logs", "--hyperparams",
                     "learning_starts=50", "buffer_size=1000"])
    line = one_error(result, code=1)
    run = workdir / "logs" / "dqn" / "CartPole-v1_1"
    assert "no space left on device" in line and "marked failed" in line
    info = _info(run)
    assert info["status"] == "failed" and "no space left on device" in info["error"]
    assert not (run / ".model.zip.abc123.zip").exists()  # freed before the status write was retried
    checkpoints = sorted((run / "checkpoints").glob("*.zip"))
    assert [p.stem for p in checkpoints] == ["100"]  # the one written whole; nothing of the failed one
    for path in checkpoints:
        assert path.with_name(path.stem + "_replay_buffer.npz").is_file()


def test_tensorboard_write_errors_are_one_line_not_a_thread_traceback(tmp_path, capfd):
    import time

    from rlzoo.common.logger import TensorBoardOutputFormat

    fmt = TensorBoardOutputFormat(str(tmp_path / "tb"))
    fmt.write({"a": 1.0}, {}, step=0)
    record_writer = fmt.writer._get_file_writer().event_writer._async_writer._writer

    def disk_full(data):
        raise OSError(errno.ENOSPC, "No space left on device")

    record_writer.write = disk_full
    for step in range(1, 6):
        fmt.write({"a": float(step)}, {}, step=step)
        time.sleep(0.05)
    fmt.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception in thread" not in err, err
    assert err.count("warning: TensorBoard logging") == 1


# ----------------------------------------------------------------------------- defect 6
@pytest.mark.parametrize("flag, value, words", [
    ("--hyperparams", "learning_rate=.inf", ["learning_rate", "finite"]),
    ("--hyperparams", "learning_rate=lin_-1e-3", ["learning_rate", "> 0"]),
    ("--hyperparams", "gamma=2", ["gamma", "in [0, 1]"]),
    ("--hyperparams", "policy_kwargs={log_std_init: .nan}", ["policy_kwargs.log_std_init", "finite"]),
    ("--env-kwargs", "max_episode_steps=-1", ["--env-kwargs", "max_episode_steps", ">= 1"]),
])
def test_garbage_values_are_refused_before_anything_is_written(workdir, flag, value, words):
    line = one_error(invoke(["train", *TINY, "-n", "32", flag, value]))
    assert all(w in line for w in words), line
    assert not (workdir / "logs").exists()


def test_a_diverging_run_is_marked_diverged_and_keeps_a_finite_checkpoint(workdir):
    from rlzoo.common.save_format import read_model_zip

    result = invoke(["train", "--algo", "a2c", "--env", "CartPole-v1", "-n", "2000", "--hyperparams",
                     "learning_rate=1e30", "n_steps=8", "--n-envs", "2", "--save-freq", "16", "--eval-freq", "0",
                     "--seed", "0", "--no-progress", "-f", "logs"])
    line = one_error(result, code=1)
    assert "diverged" in line and "NaN/inf" in line
    info = _info(RUN)
    assert info["status"] == "diverged" and info["num_timesteps"] < 2000
    kept = info["last_finite_checkpoint"]
    assert kept is not None and kept in line
    _, files = read_model_zip(str(RUN / kept))
    import numpy as np
    from safetensors.numpy import load

    arrays = [a for name, blob in files.items() if name.endswith(".safetensors") for a in load(blob).values()]
    assert arrays and all(np.isfinite(a).all() for a in arrays if a.dtype.kind == "f")
    assert not (RUN / "model.zip").exists()  # no non-finite model was written


# ----------------------------------------------------------------------------- defect 7
def test_resume_walks_back_to_the_newest_intact_checkpoint_and_says_so(workdir):
    ok(["train", *TINY, "-n", "48", "--save-freq", "16", "--eval-freq", "0"])
    for name in ("model.zip", "checkpoints/48.zip", "checkpoints/32.zip"):
        data = (RUN / name).read_bytes()
        (RUN / name).write_bytes(data[: len(data) // 2])  # truncated
    out = ok([*RESUME, str(RUN), "-n", "64"])
    assert re.search(r"note: model\.zip cannot be resumed from: .+", out)
    assert "note: checkpoints/48.zip cannot be resumed from" in out
    assert "note: checkpoints/32.zip cannot be resumed from" in out
    assert "resuming from checkpoints/16.zip (16 timesteps)" in out
    info = _info(RUN)
    assert info["status"] == "finished" and info["num_timesteps"] == 64
    assert [s["from_timesteps"] for s in info["segments"]] == [0, 16]


# ----------------------------------------------------------------------------- defect 8
def test_user_errors_exit_2_with_one_line_naming_the_file_key_or_flag(workdir, monkeypatch):
    flat = workdir / "flat.yml"
    flat.write_text("n_timesteps: 100\nlearning_rat: 0.001\n")
    line = one_error(invoke(["train", *TINY, "--conf-file", str(flat)]))
    assert str(flat) in line and "unknown hyperparameter 'learning_rat'" in line and "'learning_rate'" in line

    a_file = workdir / "passwd"
    a_file.write_text("root:x:0:0\n")
    line = one_error(invoke([*RESUME, str(a_file)]))
    assert "--resume" in line and "is not a run folder" in line and "does not exist" not in line

    ok(["train", *TINY, "-n", "16", "--eval-freq", "0"])
    info = _info(RUN)
    info["seed"] = "abc"
    (RUN / "run.json").write_text(json.dumps(info))
    line = one_error(invoke([*RESUME, str(RUN), "-n", "32"]))
    assert str(RUN / "run.json") in line and "'seed'" in line and "'abc'" in line

    (workdir / "exits_pkg.py").write_text("import sys\nsys.exit(3)\n")
    (workdir / "raises_pkg.py").write_text("raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(workdir))
    line = one_error(invoke(["train", *TINY, "--gym-packages", "exits_pkg"]))
    assert "--gym-packages" in line and "exits_pkg" in line and "exit(3)" in line
    line = one_error(invoke(["train", *TINY, "--gym-packages", "raises_pkg"]))
    assert "--gym-packages" in line and "raises_pkg" in line and "broken on import" in line

    line = one_error(invoke(["train", *TINY, "--hyperparams", "n_steps=-5"]))
    assert "--hyperparams" in line and "'n_steps'" in line and "-5" in line

    line = one_error(invoke(["train", "--algo", "ppo", "--env", "LunarLander-v3", "-n", "64", "--env-kwargs",
                             "gravity=5.0", "-f", "logs", "--no-progress"]))
    assert "--env-kwargs" in line and "LunarLander-v3" in line and "gravity" in line
    assert not (workdir / "logs" / "ppo").exists()

    real_mkdir = os.mkdir
    read_only = workdir / "ro"

    def mkdir(path, *args, **kwargs):
        if str(path).startswith(str(read_only)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    line = one_error(invoke(["train", *TINY, "-n", "16", "-f", str(read_only / "logs")]))
    assert f"-f {read_only / 'logs'}" in line and "Read-only file system" in line
