"""``rlzoo record-video`` / ``record-training``: MP4 files checked by decoding them (frame count, size, fps)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rlzoo.zoo.cli import app

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
runner = CliRunner()
RUN = Path("logs/ppo/CartPole-v1_1")


def ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def decode(path: Path) -> tuple[dict, list[np.ndarray]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return meta, [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("video")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    ok(["train", "--algo", "ppo", "--env", "CartPole-v1", "-n", "1536", "--seed", "0", "--save-freq", "512",
        "--eval-freq", "512", "--eval-episodes", "1", "--no-progress", "--hyperparams", "n_envs=2", "n_steps=128"])
    yield root
    mp.undo()


def test_record_video_from_a_run_folder(trained):
    out = ok(["record-video", "--algo", "ppo", "--env", "CartPole-v1", "-n", "90"])
    path = RUN / "videos" / "ppo-CartPole-v1.mp4"
    assert str(path) in out
    meta, frames = decode(path)
    assert len(frames) == 90
    assert meta["size"] == (600, 400) and meta["codec"] == "h264"
    assert meta["fps"] == pytest.approx(50)  # CartPole's render_fps
    frame = frames[45]
    assert frame.mean() > 200  # white background
    assert (frame < 80).all(axis=2).sum() > 500  # the black cart


def test_record_video_options(trained):
    ok(["record-video", "--algo", "ppo", "--env", "CartPole-v1", "--load-checkpoint", "512", "-n", "30",
        "--fps", "10", "-o", "ck.mp4"])
    meta, frames = decode(Path("ck.mp4"))
    assert len(frames) == 30 and meta["fps"] == pytest.approx(10)
    ok(["record-video", "--algo", "ppo", "--env", "CartPole-v1", "--load-best", "-n", "20", "-o", "best.mp4"])
    assert len(decode(Path("best.mp4"))[1]) == 20
    ok(["record-video", "--algo", "ppo", "--env", "CartPole-v1", "--load-last-checkpoint",
        "-n", "20", "-o", "last.mp4"])
    assert len(decode(Path("last.mp4"))[1]) == 20
    # a model file (here outside its run folder: the env comes from --env)
    (trained / "loose").mkdir(exist_ok=True)
    (trained / "loose" / "agent.zip").write_bytes((RUN / "model.zip").read_bytes())
    ok(["record-video", "--model", "loose/agent.zip", "--env", "CartPole-v1", "-n", "25", "-o", "file.mp4"])
    assert len(decode(Path("file.mp4"))[1]) == 25
    # deterministic: the same frames twice; stochastic: another trajectory
    for name, flag in (("d1.mp4", "--deterministic"), ("d2.mp4", "--deterministic"), ("s.mp4", "--stochastic")):
        ok(["record-video", "--model", str(RUN / "checkpoints" / "512.zip"), "-n", "60", "-o", name, flag,
            "--seed", "1"])
    d1, d2, s = (np.stack(decode(Path(n))[1]).astype(int) for n in ("d1.mp4", "d2.mp4", "s.mp4"))
    assert np.abs(d1 - d2).max() == 0
    assert np.abs(d1 - s).mean() > 0.1


def test_record_video_bad_input(trained, monkeypatch):
    result = runner.invoke(app, ["record-video", "--algo", "ppo", "--env", "CartPole-v1", "-o", "x.avi"])
    assert result.exit_code == 2 and ".mp4" in result.output
    result = runner.invoke(app, ["record-video", "--model", "nope.zip"])
    assert result.exit_code == 2 and "does not exist" in result.output
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    result = runner.invoke(app, ["record-video", "--algo", "ppo", "--env", "CartPole-v1"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "rlzoo[video]" in result.output


def test_record_training_joins_one_clip_per_checkpoint(trained):
    out = ok(["record-training", "--algo", "ppo", "--env", "CartPole-v1", "-n", "40", "-o", "training.mp4"])
    assert "wrote training.mp4 (120 frames" in out  # checkpoints 512, 1024, 1536; the final model is 1536 too
    meta, frames = decode(Path("training.mp4"))
    assert len(frames) == 120 and meta["size"] == (600, 400)
    band = frames[0][:12, :40]
    assert band.mean() < 60  # the caption's dark band
    ok(["record-training", "--algo", "ppo", "--env", "CartPole-v1", "-n", "10", "-o", "plain.mp4", "--no-captions"])
    plain = decode(Path("plain.mp4"))[1]
    assert len(plain) == 30 and plain[0][:12, :40].mean() > 200


def test_record_gif_still_works(trained):
    out = ok(["record-gif", "--algo", "ppo", "--env", "CartPole-v1", "-n", "15", "-o", "a.gif"])
    assert "15 frames 600x400" in out
