"""The fast paths give the same results as the plain ones: numpy acting, flat optimizer buffers,
flushing denormals only inside learn()."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlzoo import A2C, PPO
from rlzoo.common.optim import FlatParameters, RMSpropTF, clip_grad_norm, flat_of, make_adam, polyak_update
from rlzoo.common.policies import ActorCriticPolicy
from rlzoo.common.utils import flush_denormals
from rlzoo.envs import make_vec_env


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


@pytest.mark.parametrize("space", [spaces.Discrete(3), spaces.Box(-1.0, 1.0, (2,))])
def test_numpy_actor_matches_the_torch_forward(space):
    obs_space = spaces.Box(-5.0, 5.0, (4,))
    torch.manual_seed(0)
    policy = ActorCriticPolicy(obs_space, space, log_std_init=-0.5)
    actor = policy.numpy_actor()
    assert actor is not None
    obs = np.random.default_rng(0).normal(size=(256, 4)).astype(np.float32)
    np.random.seed(0)
    actions, values, log_probs = actor.act(obs)
    with torch.no_grad():
        t_values, t_log_probs, _ = policy.evaluate_actions(torch.as_tensor(obs), torch.as_tensor(actions))
    np.testing.assert_allclose(values, t_values.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(actor.values(obs), t_values.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_probs, t_log_probs.numpy(), rtol=1e-4, atol=1e-5)
    if isinstance(space, spaces.Discrete):
        # sampled frequencies follow the policy's probabilities (one observation, 20000 draws)
        one = np.repeat(obs[:1], 20000, axis=0)
        drawn = actor.act(one)[0]
        with torch.no_grad():
            probs = policy.get_distribution(torch.as_tensor(obs[:1])).probs.numpy()[0]
        freq = np.bincount(drawn, minlength=3) / len(drawn)
        np.testing.assert_allclose(freq, probs, atol=0.015)
    else:  # N(mean, std): standardized noise has mean 0 and std 1
        one = np.repeat(obs[:1], 20000, axis=0)
        drawn = actor.act(one)[0]
        with torch.no_grad():
            dist = policy.get_distribution(torch.as_tensor(obs[:1]))
        z = (drawn - dist.mean.numpy()) / dist.std.numpy()
        assert abs(z.mean()) < 0.03 and abs(z.std() - 1.0) < 0.03


def test_numpy_actor_follows_in_place_updates_and_declines_what_it_cannot_do():
    torch.manual_seed(0)
    policy = ActorCriticPolicy(spaces.Box(-1.0, 1.0, (4,)), spaces.Discrete(2))
    actor = policy.numpy_actor()
    assert actor is not None
    obs = np.ones((3, 4), dtype=np.float32)
    with torch.no_grad():
        policy.value_net.bias.add_(1.0)  # in place, as an optimizer step
        expected = policy.predict_values(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(actor.values(obs), expected, rtol=1e-6)
    image = ActorCriticPolicy(spaces.Box(0, 255, (36, 36, 3), np.uint8), spaces.Discrete(2))
    assert image.numpy_actor() is None  # a CNN acts in torch
    multi = ActorCriticPolicy(spaces.Box(-1.0, 1.0, (4,)), spaces.MultiDiscrete([2, 3]))
    assert multi.numpy_actor() is None


@pytest.mark.parametrize("algo", [A2C, PPO])
def test_rollouts_acted_in_numpy_fill_the_buffer_like_torch(algo):
    """The stored values and log-probabilities of a numpy-acted rollout are those the torch policy
    gives for the stored observations and actions."""
    model = algo("MlpPolicy", make_vec_env("CartPole-v1", n_envs=4, seed=0), seed=0, n_steps=16)
    model.learn(64)
    buf = model.rollout_buffer
    assert model._numpy_actor() is not None
    model.collect_rollouts(_NoCallback())  # with today's weights (learn() updated after its last rollout)
    with torch.no_grad():
        values, log_probs, _ = model.policy.evaluate_actions(buf.observations.reshape(-1, 4), buf.actions.reshape(-1))
    np.testing.assert_allclose(buf.values.reshape(-1).numpy(), values.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(buf.log_probs.reshape(-1).numpy(), log_probs.numpy(), rtol=1e-5, atol=1e-5)


class _NoCallback:
    def on_rollout_start(self) -> None: ...
    def on_rollout_end(self) -> None: ...
    def update_locals(self, _: dict) -> None: ...
    def on_step(self) -> bool:
        return True


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, x: torch.Tensor,
           reload_at: int | None = None) -> None:
    for i in range(steps):
        opt.zero_grad(set_to_none=True)
        (model(x) ** 2).mean().backward()
        clip_grad_norm(list(model.parameters()), 0.05)
        opt.step()
        if i == reload_at:
            opt.load_state_dict(copy.deepcopy(opt.state_dict()))


def test_flat_adam_is_torch_adam_bit_for_bit():
    x = torch.randn(32, 4)
    a, b = _net(), _net()
    opt_a = make_adam(a.parameters(), lr=1e-2, eps=1e-5, weight_decay=0.01)
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-2, eps=1e-5, weight_decay=0.01, fused=True)
    assert opt_a.flat is not None and flat_of(list(a.parameters())) is opt_a.flat
    _train(a, opt_a, 25, x, reload_at=10)
    _train(b, opt_b, 25, x)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    state_a, state_b = opt_a.state_dict(), opt_b.state_dict()
    assert state_a["state"].keys() == state_b["state"].keys()
    for i, entry in state_b["state"].items():
        for key, value in entry.items():
            assert torch.equal(state_a["state"][i][key], value), key


def test_flat_adam_falls_back_when_parameters_leave_the_buffer():
    x = torch.randn(32, 4)
    a, b = _net(), _net()
    opt_a, opt_b = make_adam(a.parameters(), lr=1e-2), torch.optim.Adam(b.parameters(), lr=1e-2, fused=True)
    _train(a, opt_a, 5, x)
    _train(b, opt_b, 5, x)
    with torch.no_grad():
        first = next(a.parameters())
        first.data = first.data.clone()  # out of the flat buffer
    assert opt_a.flat is not None and not opt_a.flat.intact()
    _train(a, opt_a, 5, x)
    _train(b, opt_b, 5, x)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_flat_rmsprop_matches_its_per_tensor_path():
    x = torch.randn(32, 4)
    a, b = _net(), _net()
    opt_a = RMSpropTF(a.parameters(), lr=1e-2, alpha=0.99, eps=1e-5)
    opt_b = RMSpropTF(b.parameters(), lr=1e-2, alpha=0.99, eps=1e-5)
    opt_b.flat = None  # the per-tensor path
    b_params = list(b.parameters())
    for p in b_params:
        p.grad = None
    _train(a, opt_a, 20, x, reload_at=7)
    _train(b, opt_b, 20, x)
    for p, q in zip(a.parameters(), b_params, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_zero_grad_reattaches_and_clip_and_polyak_match_per_tensor():
    net = _net()
    opt = make_adam(net.parameters(), lr=1e-3)
    params = list(net.parameters())
    for p in params:
        p.grad = None  # as zero_grad(set_to_none=True) elsewhere would
    opt.zero_grad()
    assert opt.flat is not None and opt.flat.intact()
    (net(torch.randn(8, 4)) ** 2).sum().backward()
    grads = [p.grad.clone() for p in params]
    norm = clip_grad_norm(params, 1e-3)
    expected = torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads]))
    torch.testing.assert_close(norm, expected)
    scale = 1e-3 / (expected + 1e-6)
    for p, g in zip(params, grads, strict=True):
        torch.testing.assert_close(p.grad, g * scale)
    target = _net(seed=1)
    loose = [t.detach().clone() for t in target.parameters()]
    FlatParameters.build(list(target.parameters()), with_grad=False)
    polyak_update(params, list(target.parameters()), 0.3)
    for t, t0, p in zip(target.parameters(), loose, params, strict=True):
        torch.testing.assert_close(t, 0.7 * t0 + 0.3 * p.detach())


def test_denormals_are_flushed_only_inside_learn():
    tiny = np.float32(1e-39)
    assert tiny != 0
    seen = []
    model = PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), seed=0, n_steps=16, batch_size=32,
                device="cpu")
    model.learn(32, callback=lambda *_: seen.append(bool(np.float32(1e-39) == 0)) is None)
    assert seen and all(seen)
    assert np.float32(1e-39) != 0  # restored
    with flush_denormals():
        assert np.float32(1e-39) == 0
        with flush_denormals():  # nested: leaves it on for the outer block
            pass
        assert np.float32(1e-39) == 0
    assert np.float32(1e-39) != 0
