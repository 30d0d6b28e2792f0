"""``rlzoo optimize --sampler auto``, ``--optimization-log-path`` (Optuna plots) and ``--track`` (a W&B run per
trial)."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlzoo.zoo.cli import app

optuna = pytest.importorskip("optuna")
runner = CliRunner()


def test_auto_sampler_rule(monkeypatch):
    from rlzoo.algos import PPO
    from rlzoo.zoo import search_spaces
    from rlzoo.zoo.search_spaces import SpaceContext
    from rlzoo.zoo.tune import _make_sampler
    from rlzoo.zoo.tune_extras import GP_MAX_TRIALS, auto_sampler, search_space_kinds

    def tpe():
        return _make_sampler("tpe", 3, 0)
    ctx = SpaceContext(n_envs=1, continuous=False, n_timesteps=1000)
    # the built-in PPO space has categorical choices: TPE
    assert search_space_kinds("ppo", PPO, ctx, {})["batch_size"] == "categorical"
    sampler, text = auto_sampler("ppo", PPO, ctx, {}, 20, 3, 0, tpe)
    assert isinstance(sampler, optuna.samplers.TPESampler) and text.startswith("auto -> tpe: categorical")

    def numeric(trial, ctx):
        return {"learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-2, log=True),
                "n_epochs": trial.suggest_int("n_epochs", 1, 10)}
    from dataclasses import replace

    from rlzoo.algos import registry
    # the registry is the one place a search space is declared: swap PPO's row for this test
    monkeypatch.setitem(registry._REGISTRY, "ppo", replace(registry.get("ppo"), search_space=numeric))
    assert search_spaces.SEARCH_SPACES["ppo"] is numeric
    sampler, text = auto_sampler("ppo", PPO, ctx, {}, 20, 3, 0, tpe)
    assert isinstance(sampler, optuna.samplers.GPSampler) and text == "auto -> gp: 2 numeric hyperparameters, 20 trials"
    sampler, text = auto_sampler("ppo", PPO, ctx, {}, GP_MAX_TRIALS + 1, 3, 0, tpe)
    assert isinstance(sampler, optuna.samplers.TPESampler) and "budget" in text
    sampler, _ = auto_sampler("ppo", PPO, ctx, {}, None, 3, 0, tpe)
    assert isinstance(sampler, optuna.samplers.TPESampler)


def test_optimize_auto_plots_and_track(wandb_offline):
    wandb = pytest.importorskip("wandb")  # noqa: F841
    from rlzoo.zoo.tracking import read_offline_run

    result = runner.invoke(app, ["optimize", "--algo", "ppo", "--env", "CartPole-v1", "--n-trials", "2", "-n", "256",
                                 "--n-evaluations", "1", "--eval-episodes", "1", "--sampler", "auto", "--seed", "0",
                                 "--n-startup-trials", "1", "--pruner", "none",  # importance needs 2 complete
                                 "--optimization-log-path", "plots", "--track",
                                 "--wandb-tags", "tune", "--no-progress",
                                 "--hyperparams", "n_envs=1", "n_steps=128", "batch_size=32", "n_epochs=1"])
    assert result.exit_code == 0, result.output
    assert "auto -> tpe: categorical" in result.output
    for name in ("history", "importance"):
        png = Path(f"plots/ppo_CartPole-v1_{name}.png")
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
    folders = sorted(Path("logs/ppo/CartPole-v1/wandb").glob("offline-run-*"))
    assert len(folders) == 2
    runs = sorted((read_offline_run(f) for f in folders), key=lambda r: r["config"]["trial"])
    study = optuna.load_study(study_name="ppo_CartPole-v1",
                              storage=optuna.storages.JournalStorage(
                                  optuna.storages.journal.JournalFileBackend("logs/ppo/CartPole-v1/optuna.log")))
    for run, trial in zip(runs, study.trials, strict=True):
        assert run["name"] == f"ppo_CartPole-v1_trial_{trial.number}" and run["tags"] == ["tune"]
        assert run["config"]["learning_rate"] == trial.user_attrs["hyperparams"]["learning_rate"]
        assert run["summary"]["state"] == "complete" and run["summary"]["value"] == pytest.approx(trial.value)
        assert any("rollout/ep_rew_mean" in row for row in run["history"])


def test_optimize_options_need_their_partners(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["optimize", "--algo", "ppo", "--env", "CartPole-v1", "--n-trials", "1",
                                 "--wandb-tags", "x"])
    assert result.exit_code == 2 and "--track" in result.output
    result = runner.invoke(app, ["optimize", "--algo", "ppo", "--env", "CartPole-v1", "--n-trials", "1",
                                 "--sampler", "bayes"])
    assert result.exit_code == 2 and "auto" in result.output
