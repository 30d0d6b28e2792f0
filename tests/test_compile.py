"""``compile=True`` / ``rlzoo train --compile``: the update's network calls run as torch.compile'd graphs,
with the same learning as eager (within float rounding), or a clear refusal."""
from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from rlzoo import A2C, ACER, ACKTR, DQN, PPO, SAC, TD3, TRPO
from rlzoo.zoo.cli import app

runner = CliRunner()


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.policy.parameters()])


def _spy_compile(monkeypatch) -> list[int]:
    """Count the calls of every function torch.compile returns (the compiled graphs actually run)."""
    calls = [0]
    real = torch.compile

    def spy(fn, **kwargs):
        compiled = real(fn, **kwargs)

        def counted(*args, **kw):
            calls[0] += 1
            return compiled(*args, **kw)
        return counted

    monkeypatch.setattr(torch, "compile", spy)
    return calls


@pytest.mark.parametrize("cls, env, kwargs", [
    (PPO, "CartPole-v1", dict(n_steps=64, batch_size=32, n_epochs=2)),
    (A2C, "CartPole-v1", {}),
    (DQN, "CartPole-v1", dict(learning_starts=64, batch_size=32)),
    (TD3, "Pendulum-v1", dict(learning_starts=64, batch_size=32)),
])
def test_compiled_update_learns_as_eager(cls, env, kwargs, monkeypatch):
    eager = cls("MlpPolicy", env, seed=0, **kwargs)
    start = _flat(eager)
    eager.learn(300)
    calls = _spy_compile(monkeypatch)
    compiled = cls("MlpPolicy", env, seed=0, compile=True, **kwargs)
    assert torch.equal(_flat(compiled), start)
    compiled.learn(300)
    assert calls[0] > 0  # the update went through the compiled functions
    moved = (_flat(eager) - start).norm()
    assert moved > 0
    assert (_flat(compiled) - _flat(eager)).norm() <= 1e-3 * moved


def test_compile_is_saved_and_sac_trains_compiled(tmp_path, monkeypatch):
    calls = _spy_compile(monkeypatch)
    model = SAC("MlpPolicy", "Pendulum-v1", seed=0, compile=True, learning_starts=64, batch_size=32)
    model.learn(200)
    assert calls[0] > 0 and torch.isfinite(_flat(model)).all()
    model.save(tmp_path / "sac.zip")
    loaded = SAC.load(tmp_path / "sac.zip", env="Pendulum-v1")
    assert loaded.compile is True
    assert SAC.load(tmp_path / "sac.zip", env="Pendulum-v1", compile=False).compile is False


@pytest.mark.parametrize("cls, env, reason", [
    (TRPO, "CartPole-v1", "double backward"), (ACKTR, "CartPole-v1", "K-FAC"), (ACER, "CartPole-v1", "trust-region")])
def test_algorithms_that_cannot_compile_refuse(cls, env, reason):
    with pytest.raises(ValueError, match=reason):
        cls("MlpPolicy", env, compile=True)


def test_cli_compile_flag(tmp_path):
    out = runner.invoke(app, ["train", "--algo", "trpo", "--env", "CartPole-v1", "--compile", "-f", str(tmp_path),
                              "--no-progress"])
    assert out.exit_code == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "TRPO cannot run with compile=True" in lines[0]
    assert not any(tmp_path.iterdir())
    out = runner.invoke(app, ["train", "--algo", "ppo", "--env", "CartPole-v1", "--compile", "-f", str(tmp_path),
                              "--resume", str(tmp_path / "ppo" / "CartPole-v1_1"), "--no-progress"])
    assert out.exit_code == 2 and "drop --compile" in out.stderr
