"""Hand-checked cases for the ACER update rules and its segment replay memory."""

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlzoo.algos.acer.maths import (
    continuous_policy_gain,
    discrete_policy_gain,
    gaussian_kl,
    gaussian_log_prob,
    retrace_targets,
    trust_region_loss,
    trust_region_projection,
)
from rlzoo.algos.acer.replay import SegmentReplayMemory


def t(x):
    return torch.tensor(x, dtype=torch.float32)


# --------------------------------------------------------------------------- Retrace (Eq. 5)
def test_retrace_three_steps_by_hand():
    gamma = 0.9
    # env 0: no episode end. env 1: terminates at t=1, truncated at t=2 with V(final obs) = 7.
    rewards = t([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    q_taken = t([[0.5, 1.0], [1.0, 1.0], [1.5, 1.0]])
    values = t([[0.4, 0.5], [0.9, 0.5], [1.2, 0.5], [2.0, 10.0]])
    c = t([[0.5, 1.0], [0.8, 1.0], [1.0, 1.0]])
    terminated = torch.tensor([[False, False], [False, True], [False, False]])
    truncated = torch.tensor([[False, False], [False, False], [False, True]])
    final_values = t([[0.0, 0.0], [0.0, 0.0], [0.0, 7.0]])
    out = retrace_targets(rewards, q_taken, values, c, terminated, truncated, final_values, gamma)
    # env 0, backwards from Q_ret = V(x_3) = 2.0:
    #   t=2: 3 + 0.9 * 2.0 = 4.8              carry 1.0 * (4.8 - 1.5) + 1.2 = 4.5
    #   t=1: 2 + 0.9 * 4.5 = 6.05             carry 0.8 * (6.05 - 1.0) + 0.9 = 4.94
    #   t=0: 1 + 0.9 * 4.94 = 5.446
    # env 1: t=2 truncated -> 1 + 0.9 * 7 = 7.3 (V(x_3) = 10 unused); t=1 terminal -> 1;
    #   carry (1 - 1) + 0.5 = 0.5 -> t=0: 1 + 0.9 * 0.5 = 1.45
    expected = t([[5.446, 1.45], [6.05, 1.0], [4.8, 7.3]])
    torch.testing.assert_close(out, expected)


def test_retrace_with_zero_traces_is_one_step_td():
    g = torch.Generator().manual_seed(0)
    r, q, v = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g), torch.randn(6, 3, generator=g)
    none = torch.zeros(5, 3, dtype=torch.bool)
    out = retrace_targets(r, q, v, torch.zeros(5, 3), none, none, torch.zeros(5, 3), 0.99)
    torch.testing.assert_close(out, r + 0.99 * v[1:])


def test_retrace_rejects_wrong_value_rows():
    z = torch.zeros(3, 1)
    with pytest.raises(ValueError, match="n_steps \\+ 1"):
        retrace_targets(z, z, z, z, z.bool(), z.bool(), z, 0.9)


# --------------------------------------------------------------------------- truncation + bias correction
def test_discrete_gain_by_hand():
    probs, q = t([[0.25, 0.75]]), t([[1.0, 3.0]])  # V = 0.25 + 2.25 = 2.5
    actions, q_ret, rho = torch.tensor([0]), t([2.0]), t([[2.0, 0.5]])
    log_a = math.log(0.25 + 1e-6)
    # c = 10: no truncation, no correction: min(10, 2) * (2 - 2.5) * log f(0)
    gain = discrete_policy_gain(probs, q, actions, q_ret, rho, c=10.0)
    torch.testing.assert_close(gain, t([2.0 * -0.5 * log_a]))
    # c = 1: rho(0) = 2 truncated to 1; correction for action 0: [1 - 1/2]_+ * 0.25 * (1 - 2.5)
    gain = discrete_policy_gain(probs, q, actions, q_ret, rho, c=1.0)
    torch.testing.assert_close(gain, t([(1.0 * -0.5 + 0.5 * 0.25 * -1.5) * log_a]))


def test_truncation_with_bias_correction_is_unbiased():
    """E_{a~mu}[gain] with Q_ret = Q(a) equals sum_a f(a) log f(a) (Q(a) - V) for any c (Eq. 9)."""
    g = torch.Generator().manual_seed(1)
    n_act = 5
    f = torch.softmax(torch.randn(1, n_act, generator=g), -1)
    mu = torch.softmax(2 * torch.randn(1, n_act, generator=g), -1)
    q = torch.randn(1, n_act, generator=g)
    v = (f * q).sum()
    expected = (f * torch.log(f + 1e-6) * (q - v)).sum()
    for c in (0.3, 1.0, 10.0):
        acts = torch.arange(n_act)
        gains = discrete_policy_gain(f.expand(n_act, -1), q.expand(n_act, -1), acts, q[0],
                                     (f / mu).expand(n_act, -1), c)
        torch.testing.assert_close((mu[0] * gains).sum(), expected, rtol=1e-4, atol=1e-5)


def test_continuous_gain_terms():
    lp, lps = t([0.3]).requires_grad_(), t([0.7]).requires_grad_()
    gain = continuous_policy_gain(lp, lps, rho=t([4.0]), rho_sampled=t([5.0]), q_opc=t([2.0]),
                                  q_sampled=t([3.0]), v=t([1.0]), c=2.0)
    gain.sum().backward()
    assert lp.grad.item() == pytest.approx(2.0 * (2.0 - 1.0))  # min(c, rho) (Q_opc - V)
    assert lps.grad.item() == pytest.approx((1 - 2.0 / 5.0) * (3.0 - 1.0))  # [1 - c/rho']_+ (Q~ - V)


# --------------------------------------------------------------------------- trust region (Eq. 12)
def test_trust_region_inactive_leaves_gradient_unchanged():
    g, k = t([[1.0, 0.0], [0.5, -2.0]]), t([[1.0, 1.0], [1.0, 1.0]])
    z = trust_region_projection(g, k, delta=2.0)  # k.g = 1 and -1.5, both <= 2
    torch.testing.assert_close(z, g)


def test_trust_region_active_projects_onto_constraint():
    g, k, delta = t([[3.0, 1.0]]), t([[1.0, 1.0]]), 1.0
    z = trust_region_projection(g, k, delta)
    # k.g = 4 > 1: z = g - (4 - 1) / 2 * k = [1.5, -0.5]
    torch.testing.assert_close(z, t([[1.5, -0.5]]))
    assert (k * z).sum().item() == pytest.approx(delta, abs=1e-5)
    # g - z is parallel to k: z is the closest point of the half-space.
    d = g - z
    assert d[0, 0] * k[0, 1] - d[0, 1] * k[0, 0] == pytest.approx(0.0)


def test_trust_region_loss_gradient_is_projected_statistics_gradient():
    phi = torch.randn(4, 3, requires_grad=True)
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    gain, kl = (phi * a).sum(-1), (phi * b).sum(-1)  # g = a, k = b per sample
    loss, active = trust_region_loss(phi, gain, kl, delta=0.1)
    loss.backward()
    torch.testing.assert_close(phi.grad, -trust_region_projection(a, b, 0.1) / 4)
    assert 0.0 <= active.item() <= 1.0


def test_gaussian_helpers_match_torch():
    m1, s1, m2, s2, x = (torch.randn(6, 2) for _ in range(5))
    p, q = torch.distributions.Normal(m1, s1.exp()), torch.distributions.Normal(m2, s2.exp())
    torch.testing.assert_close(gaussian_log_prob(x, m1, s1), p.log_prob(x).sum(-1))
    torch.testing.assert_close(gaussian_kl(m1, s1, m2, s2), torch.distributions.kl_divergence(p, q).sum(-1))


# --------------------------------------------------------------------------- segment replay memory
def _segment(rng, n_steps, n_envs, obs):
    dones = rng.random((n_steps, n_envs)) < 0.2
    return dict(obs=obs, actions=rng.integers(0, 3, (n_steps, n_envs)),
                rewards=rng.standard_normal((n_steps, n_envs)).astype(np.float32),
                terminated=dones & (rng.random((n_steps, n_envs)) < 0.5),
                truncated=dones & (rng.random((n_steps, n_envs)) >= 0.5),
                final_values=rng.standard_normal((n_steps, n_envs)).astype(np.float32),
                mu=rng.dirichlet(np.ones(3), (n_steps, n_envs)).astype(np.float32))


def test_replay_roundtrip_ring_and_save(tmp_path):
    rng = np.random.default_rng(0)
    box = spaces.Box(-1, 1, (4,), np.float32)
    mem = SegmentReplayMemory(buffer_size=15, n_steps=5, n_envs=2, observation_space=box,
                              action_space=spaces.Discrete(3), stat_dim=3)
    assert mem.n_segments == 3 and not mem.has_at_least(5)
    segs = [_segment(rng, 5, 2, rng.standard_normal((6, 2, 4)).astype(np.float32)) for _ in range(4)]
    for s in segs:
        mem.add(**s)
    assert len(mem) == 3 and mem.has_at_least(15) and not mem.has_at_least(20)
    # The fourth segment overwrote the first slot.
    for slot, seg in zip(range(3), [segs[3], segs[1], segs[2]], strict=True):
        got = mem.get(slot)
        for key, val in seg.items():
            np.testing.assert_array_equal(got[key], val)
    sampled = mem.sample(np.random.default_rng(0))
    assert any(np.array_equal(sampled["obs"], s["obs"]) for s in segs[1:])
    assert mem.save(tmp_path / "mem") == str(tmp_path / "mem.npz")
    other = SegmentReplayMemory(15, 5, 2, box, spaces.Discrete(3), 3)
    other.load(tmp_path / "mem.npz")
    assert len(other) == 3 and other.pos == mem.pos
    np.testing.assert_array_equal(other.get(0)["obs"], segs[3]["obs"])
    (tmp_path / "bad.npz").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="not a readable ACER replay memory"):
        other.load(tmp_path / "bad.npz")


def _stacked_stream(rng, n_segments, n_steps, n_envs, n_stack, zero_on_reset=True):
    """Segments of frame-stacked uint8 images as VecFrameStack produces them (channels last)."""
    stack = np.zeros((n_envs, 6, 5, n_stack), dtype=np.uint8)
    stack[..., -1] = rng.integers(0, 255, (n_envs, 6, 5))
    out = []
    for _ in range(n_segments):
        seg = _segment(rng, n_steps, n_envs, None)
        dones = seg["terminated"] | seg["truncated"]
        obs = [stack.copy()]
        for step in range(n_steps):
            new = rng.integers(1, 255, (n_envs, 6, 5), dtype=np.uint8)
            stack = np.roll(stack, -1, axis=-1)
            if zero_on_reset:
                stack[dones[step]] = 0
            else:  # a stacker that repeats the reset frame: cannot be rebuilt from single frames
                stack[dones[step]] = new[dones[step]][..., None]
            stack[..., -1] = new
            obs.append(stack.copy())
        seg["obs"] = np.stack(obs)
        out.append(seg)
    return out


def test_replay_stores_stacked_frames_once():
    rng = np.random.default_rng(2)
    img = spaces.Box(0, 255, (6, 5, 4), np.uint8)
    segs = _stacked_stream(rng, 4, 8, 3, n_stack=4)
    mem = SegmentReplayMemory(40, 8, 3, img, spaces.Discrete(3), 3, n_stack=4, stack_axis=-1)
    full = SegmentReplayMemory(40, 8, 3, img, spaces.Discrete(3), 3)
    for s in segs:
        mem.add(**s)
        full.add(**s)
    assert mem.n_stack == 4  # no fallback happened
    for slot in range(4):
        np.testing.assert_array_equal(mem.get(slot)["obs"], segs[slot]["obs"])
    obs_full = full.obs[None].data.nbytes
    obs_dedup = mem.obs[None].data.nbytes
    assert obs_dedup == obs_full * (8 + 4) // (4 * (8 + 1))


def test_replay_stacked_channels_first():
    rng = np.random.default_rng(3)
    segs = _stacked_stream(rng, 2, 6, 2, n_stack=3)
    for s in segs:
        s["obs"] = np.moveaxis(s["obs"], -1, 2).copy()  # [T+1, N, 3, 6, 5]
    mem = SegmentReplayMemory(12, 6, 2, spaces.Box(0, 255, (3, 6, 5), np.uint8), spaces.Discrete(3), 3,
                              n_stack=3, stack_axis=0)
    for s in segs:
        mem.add(**s)
    for slot in range(2):
        np.testing.assert_array_equal(mem.get(slot)["obs"], segs[slot]["obs"])


def test_replay_falls_back_when_frames_cannot_be_rebuilt():
    rng = np.random.default_rng(4)
    img = spaces.Box(0, 255, (6, 5, 4), np.uint8)
    segs = _stacked_stream(rng, 3, 8, 3, n_stack=4, zero_on_reset=False)
    mem = SegmentReplayMemory(24, 8, 3, img, spaces.Discrete(3), 3, n_stack=4)
    with pytest.warns(UserWarning, match="whole observations"):
        for s in segs:
            mem.add(**s)
    assert mem.n_stack == 1
    for slot in range(3):
        np.testing.assert_array_equal(mem.get(slot)["obs"], segs[slot]["obs"])
