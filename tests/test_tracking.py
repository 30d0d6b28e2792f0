"""``rlzoo train --track``: a real offline W&B run (WANDB_MODE=offline, no mock), read back from its files."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlzoo.zoo.cli import app

wandb = pytest.importorskip("wandb")
runner = CliRunner()


def test_track_writes_an_offline_run_with_config_and_reward_curve(wandb_offline):
    from rlzoo.zoo.tracking import read_offline_run

    result = runner.invoke(app, ["train", "--algo", "ppo", "--env", "CartPole-v1", "-n", "2048", "--seed", "3",
                                 "--eval-freq", "1024", "--eval-episodes", "2", "--no-progress", "--track",
                                 "--wandb-project-name", "zoo-test", "--wandb-entity", "zoo-team",
                                 "--wandb-tags", "ci", "cartpole",
                                 "--hyperparams", "n_envs=2", "n_steps=256"])
    assert result.exit_code == 0, result.output
    run_dir = Path("logs/ppo/CartPole-v1_1")
    folders = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(folders) == 1
    run = read_offline_run(folders[0])
    assert run["name"] == "ppo_CartPole-v1_1"
    assert run["tags"] == ["ci", "cartpole"] and run["project"] == "zoo-test" and run["entity"] == "zoo-team"
    config = run["config"]
    assert (config["algo"], config["env"], config["seed"]) == ("ppo", "CartPole-v1", 3)
    assert config["n_steps"] == 256 and config["n_envs"] == 2 and config["n_timesteps"] == 2048
    # the reward curve: training episodes' mean reward at increasing env steps
    curve = [(row["global_step"], row["rollout/ep_rew_mean"]) for row in run["history"] if "rollout/ep_rew_mean" in row]
    assert [step for step, _ in curve] == [512, 1024, 1536, 2048]
    assert all(reward > 5 for _, reward in curve)  # CartPole episodes last at least ~8 steps
    # the evaluations, and the same values in the summary
    evals = [(row["global_step"], row["eval/mean_reward"]) for row in run["history"] if "eval/mean_reward" in row]
    assert [step for step, _ in evals] == [1024, 2048]
    assert run["summary"]["eval/last_mean_reward"] == pytest.approx(evals[-1][1])
    assert run["summary"]["eval/best_mean_reward"] == pytest.approx(max(r for _, r in evals))
    assert run["summary"]["status"] == "finished"
    models = [a for a in run["artifacts"] if a["type"] == "model"]
    assert models and {"model.zip", "config.yml"} <= set(models[0]["files"])


def test_track_without_wandb_is_one_line_naming_the_extra(wandb_offline, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    result = runner.invoke(app, ["train", "--algo", "ppo", "--env", "CartPole-v1", "-n", "256", "--track"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "rlzoo[tracking]" in lines[0] and lines[0].startswith("error:")
    assert not Path("logs/ppo").exists()


def test_wandb_options_need_track(wandb_offline):
    result = runner.invoke(app, ["train", "--algo", "ppo", "--env", "CartPole-v1", "-n", "256",
                                 "--wandb-entity", "me"])
    assert result.exit_code == 2 and "--track" in result.output
