"""The hand-written actor-critic passes (rlzoo/common/analytic_grad.py) against autograd."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from rlzoo.common.analytic_grad import ActorCriticGrad
from rlzoo.common.policies import ActorCriticPolicy

OBS = spaces.Box(-1.0, 1.0, (5,), np.float32)


def _policy(action_space: spaces.Space, **kwargs: object) -> ActorCriticPolicy:
    torch.manual_seed(0)
    return ActorCriticPolicy(OBS, action_space, **kwargs)  # type: ignore[arg-type]


CASES = [
    (spaces.Discrete(3), {}),
    (spaces.Discrete(4), {"activation_fn": nn.ReLU, "net_arch": {"pi": [32], "vf": [16, 8]}}),
    (spaces.Box(-1.0, 1.0, (2,), np.float32), {"log_std_init": -0.5}),
    (spaces.Box(-2.0, 2.0, (3,), np.float32), {"activation_fn": nn.ReLU, "net_arch": [16, 16, 16]}),
]


@pytest.mark.parametrize("action_space, kwargs", CASES)
def test_values_log_probs_entropies_and_gradients_match_autograd(action_space: spaces.Space, kwargs: dict) -> None:
    policy = _policy(action_space, **kwargs)
    grad = ActorCriticGrad.of(policy)
    assert grad is not None
    n = 48
    obs = torch.randn(n, 5)
    actions = torch.as_tensor(np.stack([action_space.sample() for _ in range(n)])).float()
    weights_v, weights_lp = torch.randn(n), torch.randn(n)
    ent_coef = 0.3

    values, log_prob, entropy = policy.evaluate_actions(obs, actions)
    loss = (weights_v * values).sum() + (weights_lp * log_prob).sum() + ent_coef * entropy.sum()
    policy.zero_grad(set_to_none=True)
    loss.backward()
    expected = [p.grad.clone() for p in grad.params]

    ev = grad.evaluate(obs, actions)
    torch.testing.assert_close(ev.values, values.detach())
    torch.testing.assert_close(ev.log_prob, log_prob.detach())
    torch.testing.assert_close(ev.entropy, entropy.detach())
    for p in grad.params:
        p.grad = torch.full_like(p, 7.0)  # stale values must be overwritten, not accumulated
    grad.backward(ev, weights_v, weights_lp, ent_coef)
    for p, want in zip(grad.params, expected, strict=True):
        torch.testing.assert_close(p.grad, want, rtol=1e-4, atol=1e-5)


def test_other_policies_take_autograd() -> None:
    class Custom(ActorCriticPolicy):
        pass

    box = spaces.Box(-1.0, 1.0, (2,), np.float32)
    assert ActorCriticGrad.of(Custom(OBS, box)) is None
    assert ActorCriticGrad.of(ActorCriticPolicy(OBS, box, use_sde=True)) is None
    assert ActorCriticGrad.of(ActorCriticPolicy(OBS, spaces.MultiDiscrete([2, 3]))) is None
    assert ActorCriticGrad.of(ActorCriticPolicy(OBS, box, activation_fn=nn.ELU)) is None
    image = spaces.Box(0, 255, (36, 36, 3), np.uint8)
    assert ActorCriticGrad.of(ActorCriticPolicy(image, box)) is None
    frozen = ActorCriticPolicy(OBS, box)
    frozen.value_net.requires_grad_(False)
    assert ActorCriticGrad.of(frozen) is None


@pytest.mark.parametrize("algo, env_id, kwargs", [
    ("PPO", "CartPole-v1", {"n_steps": 64, "batch_size": 32, "n_epochs": 3, "ent_coef": 0.01}),
    ("PPO", "Pendulum-v1", {"n_steps": 64, "batch_size": 64, "n_epochs": 2}),
    ("A2C", "CartPole-v1", {"n_steps": 8, "ent_coef": 0.01, "normalize_advantage": True}),
])
def test_updates_match_the_autograd_path(algo: str, env_id: str, kwargs: dict,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The default update (hand-written passes) and the autograd one end at the same weights."""
    import rlzoo
    from rlzoo.common.on_policy import OnPolicyAlgorithm

    def trained() -> list[torch.Tensor]:
        model = getattr(rlzoo, algo)("MlpPolicy", env_id, seed=3, **kwargs)
        model.learn(256)
        return [p.detach().clone() for p in model.policy.parameters()]

    built: list[bool] = []  # whether each update got the hand-written passes
    original = OnPolicyAlgorithm._analytic_grad

    def recorded(self: OnPolicyAlgorithm) -> ActorCriticGrad | None:
        grad = original(self)
        built.append(grad is not None)
        return grad

    monkeypatch.setattr(OnPolicyAlgorithm, "_analytic_grad", recorded)
    analytic = trained()
    assert built and all(built)
    monkeypatch.setattr(OnPolicyAlgorithm, "_analytic_grad", lambda self: None)
    autograd = trained()
    for a, b in zip(analytic, autograd, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("kwargs", [
    {"double_q": False, "dueling": False},
    {"double_q": True, "dueling": False, "prioritized_replay": True},
])
def test_dqn_updates_match_the_autograd_path(kwargs: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """DQN's default step (hand-written backward for a plain MLP Q-network) ends at autograd's weights."""
    from rlzoo import DQN

    def trained() -> list[torch.Tensor]:
        model = DQN("MlpPolicy", "CartPole-v1", seed=5, learning_starts=100, train_freq=16, gradient_steps=8,
                    batch_size=32, target_update_interval=50, **kwargs)
        model.learn(600)
        return [p.detach().clone() for p in model.q_net.parameters()]

    assert DQN("MlpPolicy", "CartPole-v1", seed=0, **kwargs)._mlp_passes() is not None
    analytic = trained()
    monkeypatch.setattr(DQN, "_mlp_passes", lambda self: None)
    autograd = trained()
    for a, b in zip(analytic, autograd, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    assert DQN("MlpPolicy", "CartPole-v1", seed=0, dueling=True)._mlp_passes() is None
