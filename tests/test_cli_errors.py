"""Every bad input of the zoo CLI: non-zero exit, one line on stderr, no traceback, nothing written."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from gymnasium import spaces
from typer.testing import CliRunner

import rlzoo
from rlzoo import PPO
from rlzoo.zoo.cli import app

runner = CliRunner()


def run(args: list[str]):
    return runner.invoke(app, args)


def assert_one_line_error(result, *fragments: str) -> str:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def nothing_written(folder: Path) -> bool:
    return not any(folder.iterdir())


TRAIN = ["train", "--algo", "ppo", "--env", "CartPole-v1", "-f", "logs", "--no-progress"]


@pytest.mark.parametrize("args, fragments", [
    (["train", "--algo", "ppo2", "--env", "CartPole-v1"], ["unknown algorithm 'ppo2'", "did you mean 'ppo'"]),
    (["train", "--algo", "ppo", "--env", "CartPol-v1"],
     ["unknown environment 'CartPol-v1'", "did you mean 'CartPole-v1'"]),
    (TRAIN + ["-n", "0"], ["timesteps must be positive, got 0"]),
    (TRAIN + ["--resume-or-new"], ["--resume-or-new needs --seed"]),
    (TRAIN + ["--seed", "1", "--resume-or-new", "--resume", "x"], ["either --resume RUN_DIR or --resume-or-new"]),
    (TRAIN + ["-n", "-100"], ["timesteps must be positive, got -100"]),
    (TRAIN + ["--hyperparams", "n_step=64"], ["unknown hyperparameter 'n_step'", "did you mean 'n_steps'"]),
    (TRAIN + ["--hyperparams", "n_steps=abc"], ["'n_steps' must be an integer, got 'abc'"]),
    (TRAIN + ["--hyperparams", "learning_rate=lin_x"], ["malformed schedule"]),
    (TRAIN + ["--hyperparams", "gamma"], ["expected key=value"]),
    (TRAIN + ["--hyperparams", "policy_kwargs={net_arch: [64"], ["malformed YAML"]),
    (TRAIN + ["--n-envs", "0"], ["--n-envs must be positive"]),
    (TRAIN + ["--env-kwargs", "not_an_arg=1", "-n", "64"], ["cannot create CartPole-v1", "not_an_arg"]),
    (TRAIN + ["--vec-env", "threads"], ["--vec-env"]),
    (TRAIN + ["--bogus"], ["No such option: --bogus"]),
    (["train", "--env", "CartPole-v1"], ["Missing option '--algo'"]),
    (TRAIN + ["--conf-file", "missing.yml"], ["does not exist"]),
    (TRAIN + ["-i", "missing.zip"], ["does not exist"]),
    (TRAIN + ["--resume", "logs/ppo/CartPole-v1_9"], ["does not exist"]),
    (["trian"], ["No such command 'trian'", "Did you mean 'train'"]),
])
def test_train_bad_input(workdir, args, fragments):
    assert_one_line_error(run(args), *fragments)
    assert nothing_written(workdir)


def test_malformed_and_unknown_keys_in_conf_file(workdir):
    (workdir / "bad.yml").write_text("CartPole-v1:\n  n_steps: [32\n  gamma: 0.9\n")
    assert_one_line_error(run(TRAIN + ["--conf-file", "bad.yml"]), "bad.yml: malformed YAML at line")
    (workdir / "typo.yml").write_text("CartPole-v1:\n  n_timesteps: 1000\n  gama: 0.9\n")
    assert_one_line_error(run(TRAIN + ["--conf-file", "typo.yml"]), "unknown hyperparameter 'gama'",
                          "did you mean 'gamma'", "allowed:")
    (workdir / "type.yml").write_text("n_timesteps: 1000\nbatch_size: [64]\n")
    assert_one_line_error(run(TRAIN + ["--conf-file", "type.yml"]), "'batch_size' must be an integer")
    assert sorted(p.name for p in workdir.iterdir()) == ["bad.yml", "type.yml", "typo.yml"]


class DiscreteOnlyPPO(PPO):
    """A test algorithm that only supports Discrete actions."""

    supported_action_spaces = (spaces.Discrete,)


def test_unsupported_action_space_and_new_algorithms_plug_in(workdir, monkeypatch):
    hp = workdir / "hp"
    hp.mkdir()
    (hp / "discppo.yml").write_text("default:\n  n_timesteps: 256\n  n_steps: 32\n  batch_size: 32\n")
    monkeypatch.setenv("RLZOO_HYPERPARAMS_DIR", str(hp))
    monkeypatch.setitem(rlzoo.ALGOS, "discppo", DiscreteOnlyPPO)
    result = run(["train", "--algo", "discppo", "--env", "Pendulum-v1", "-f", "logs", "--no-progress"])
    assert_one_line_error(result, "does not support the action space Box", "Discrete")
    assert sorted(p.name for p in workdir.iterdir()) == ["hp"]
    # the same algorithm trains on a Discrete env from its own yml, with no code change in the zoo
    result = run(["train", "--algo", "discppo", "--env", "CartPole-v1", "-f", "logs", "--no-progress",
                  "--eval-freq", "0", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert (workdir / "logs" / "discppo" / "CartPole-v1_1" / "model.zip").is_file()


@pytest.fixture
def fake_run(workdir):
    """A run folder shaped like a real one, to test enjoy's model loading errors."""
    run_dir = workdir / "logs" / "ppo" / "CartPole-v1_1"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yml").write_text("n_timesteps: 1000\npolicy: MlpPolicy\n")
    (run_dir / "run.json").write_text('{"algo": "ppo", "env": "CartPole-v1", "status": "finished"}')
    return run_dir


ENJOY = ["enjoy", "--algo", "ppo", "--env", "CartPole-v1", "-f", "logs", "--no-render"]


def test_enjoy_missing_folder_and_models(workdir, fake_run):
    assert_one_line_error(run(["enjoy", "--algo", "ppo", "--env", "CartPole-v1", "-f", "nowhere"]),
                          "log folder 'nowhere' does not exist")
    assert_one_line_error(run(["enjoy", "--algo", "ppo", "--env", "Pendulum-v1", "-f", "logs"]),
                          "no ppo runs on Pendulum-v1")
    assert_one_line_error(run(ENJOY + ["--exp-id", "7"]), "no run CartPole-v1_7", "runs: 1")
    assert_one_line_error(run(ENJOY), "has no model.zip")
    assert_one_line_error(run(ENJOY + ["--load-best"]), "has no best_model.zip")
    assert_one_line_error(run(ENJOY + ["--load-checkpoint", "5000"]), "no checkpoint 5000", "checkpoints: none")
    assert_one_line_error(run(ENJOY + ["-n", "0"]), "must be positive")
    assert_one_line_error(run(ENJOY + ["--load-best", "--load-checkpoint", "1"]), "either --load-best or")


def test_enjoy_corrupt_and_foreign_zips(workdir, fake_run):
    model = fake_run / "model.zip"
    model.write_bytes(b"PK\x03\x04 this is not really a zip file")
    assert_one_line_error(run(ENJOY), "not a valid zip file")
    with zipfile.ZipFile(model, "w") as zf:
        zf.writestr("data.pkl", b"\x80\x04K\x01.")
    assert_one_line_error(run(ENJOY), "not an rlzoo model")
    # a real model of another algorithm
    from rlzoo import A2C

    A2C("MlpPolicy", "CartPole-v1", n_steps=8).save(str(model))
    assert_one_line_error(run(ENJOY), "A2C model, not PPO")
    # a truncated model file
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])
    assert_one_line_error(run(ENJOY), "model.zip")
    assert_one_line_error(run(["record-gif", "--algo", "ppo", "--env", "CartPole-v1", "-f", "logs"]), "model.zip")
    assert_one_line_error(run(["record-gif", "--algo", "ppo", "--env", "CartPole-v1", "-f", "logs", "-o", "x.png"]),
                          "must end with .gif")


def test_plot_and_gif_bad_input(workdir, fake_run):
    assert_one_line_error(run(["plot", "-f", "nowhere", "-o", "c.png"]), "log folder 'nowhere' does not exist")
    assert_one_line_error(run(["plot", "-f", "logs", "-o", "c.png"]), "no finished episodes found")
    assert_one_line_error(run(["plot", "-f", "logs", "-o", "c.jpg"]), "must end with .png")
    assert_one_line_error(run(["plot", "-f", "logs", "-o", "c.png", "--window", "0"]), "--window must be >= 1")
    assert_one_line_error(run(["record-gif", "--algo", "ppo", "--env", "CartPole-v1", "-f", "logs", "--fps", "0"]),
                          "--fps must be positive")
    assert not (workdir / "c.png").exists()
