"""``policy_kwargs.optimizer_class`` / ``optimizer_kwargs`` (SB3's keys): chosen optimizer, defaults, files, errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from rlzoo import A2C, ACKTR, DQN, PPO, SAC
from rlzoo.common.optim import LeanAdam, RMSpropTF
from rlzoo.zoo.cli import app


def test_a2c_default_is_tf_rmsprop_and_torch_rmsprop_on_request() -> None:
    default = A2C("MlpPolicy", "CartPole-v1", seed=0)
    assert type(default.optimizer) is RMSpropTF and default.optimizer.defaults["eps"] == 1e-5
    chosen = A2C("MlpPolicy", "CartPole-v1", seed=0, learning_rate=3e-4,
                 policy_kwargs={"optimizer_class": torch.optim.RMSprop,
                                "optimizer_kwargs": {"alpha": 0.9, "eps": 1e-6}})
    assert type(chosen.optimizer) is torch.optim.RMSprop
    assert chosen.optimizer.defaults["alpha"] == 0.9 and chosen.optimizer.defaults["eps"] == 1e-6
    assert chosen.optimizer.defaults["lr"] == 3e-4
    # the policy itself never sees the optimizer keys
    assert "optimizer_class" not in chosen.policy.constructor_kwargs


def test_default_kwargs_apply_to_the_default_class_only() -> None:
    ppo = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, seed=0)
    assert isinstance(ppo.optimizer, LeanAdam) and ppo.optimizer.defaults["eps"] == 1e-5
    sgd = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, seed=0,
              policy_kwargs={"optimizer_class": torch.optim.SGD, "optimizer_kwargs": {"momentum": 0.9}})
    assert type(sgd.optimizer) is torch.optim.SGD and sgd.optimizer.defaults["momentum"] == 0.9
    sac = SAC("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs={"optimizer_class": torch.optim.AdamW})
    assert type(sac.actor_optimizer) is torch.optim.AdamW and type(sac.critic_optimizer) is torch.optim.AdamW


def test_optimizer_class_survives_save_and_load(tmp_path: Path) -> None:
    model = DQN("MlpPolicy", "CartPole-v1", seed=0, learning_starts=10,
                policy_kwargs={"optimizer_class": RMSpropTF, "optimizer_kwargs": {"alpha": 0.95}})
    model.learn(64)
    model.save(tmp_path / "dqn")
    loaded = DQN.load(tmp_path / "dqn")
    assert type(loaded.optimizer) is RMSpropTF and loaded.optimizer.defaults["alpha"] == 0.95
    saved = model.optimizer.state_dict()["state"]
    again = loaded.optimizer.state_dict()["state"]
    assert saved.keys() == again.keys()
    assert all(torch.equal(saved[k]["square_avg"], again[k]["square_avg"]) for k in saved)


@pytest.mark.parametrize("policy_kwargs, fragment", [
    ({"optimizer_class": torch.optim.RMSprop, "optimizer_kwargs": {"bogus": 1}}, "do not fit RMSprop"),
    ({"optimizer_class": torch.nn.ReLU}, "must be a torch optimizer class"),
    ({"optimizer_kwargs": [1, 2]}, "must be a mapping"),
])
def test_bad_optimizer_settings_are_one_clear_error(policy_kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        A2C("MlpPolicy", "CartPole-v1", policy_kwargs=policy_kwargs)


def test_acktr_refuses_an_optimizer_class() -> None:
    with pytest.raises(ValueError, match="K-FAC"):
        ACKTR("MlpPolicy", "CartPole-v1", policy_kwargs={"optimizer_class": torch.optim.Adam})


def test_cli_names_optimizers_and_rejects_bad_kwargs(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["train", "--algo", "a2c", "--env", "CartPole-v1", "-n", "200", "--no-progress", "--seed", "1"]
    ok = runner.invoke(app, base + ["-f", str(tmp_path / "ok"), "--hyperparams",
                                    "policy_kwargs={optimizer_class: RMSpropTFLike, optimizer_kwargs: {eps: 1.0e-5}}"])
    assert ok.exit_code == 0, ok.output
    loaded = A2C.load(next((tmp_path / "ok").rglob("model.zip")))
    assert type(loaded.optimizer) is RMSpropTF
    bad = runner.invoke(app, base + ["-f", str(tmp_path / "bad"), "--hyperparams",
                                     "policy_kwargs={optimizer_class: rmsprop, optimizer_kwargs: {bogus: 1}}"])
    assert bad.exit_code == 2
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "do not fit RMSprop" in lines[0], bad.stderr
    assert not (tmp_path / "bad").exists()  # nothing written for a run that could not start
    unknown = runner.invoke(app, base + ["-f", str(tmp_path / "bad"), "--hyperparams",
                                         "policy_kwargs={optimizer_class: rmsprob}"])
    assert unknown.exit_code == 2 and "did you mean 'rmsprop'" in unknown.stderr, unknown.stderr
