"""The K-FAC optimizer: exactness on linear-Gaussian models, damping, conv factors, trust region."""

import copy
import math
from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlzoo.algos.acktr.kfac import KFAC
from rlzoo.algos.trpo.natural_gradient import flat_grad

D_IN, D_OUT, N = 4, 3, 40


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D_IN, generator=g, dtype=torch.float64) * torch.tensor([1.0, 3.0, 0.3, 1.0], dtype=torch.float64)
    x = x + 0.5  # non-centred inputs: the bias column matters
    y = torch.randn(N, D_OUT, generator=g, dtype=torch.float64)
    return x, y


def _exact_fisher_stats(opt: KFAC, model: nn.Module, x: torch.Tensor) -> None:
    """Record statistics that are exact for y ~ N(Wx+b, I).

    For each input, targets mu +/- sqrt(D_OUT) e_k (k = 1..D_OUT) have mean mu and covariance I, so the
    sampled output-gradient second moment is exactly E[g g^T] = I and independent of x: K-FAC's
    A (x) G then equals the true Fisher E_x[J^T J] of this model.
    """
    xs = x.repeat_interleave(2 * D_OUT, dim=0)
    mu = model(xs)
    signs = torch.cat([torch.eye(D_OUT), -torch.eye(D_OUT)]).to(torch.float64) * math.sqrt(D_OUT)
    target = (mu + signs.repeat(len(x), 1)).detach()
    fisher_loss = 0.5 * ((mu - target) ** 2).sum(-1).mean()  # mean NLL of sampled targets
    opt.zero_grad()
    with opt.record_stats():
        fisher_loss.backward()


def _explicit_fisher(model: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    params = [model.weight, model.bias]
    fisher = 0
    for i in range(len(x)):
        jac = torch.stack([flat_grad(model(x[i : i + 1])[0, k], params) for k in range(D_OUT)])
        fisher = fisher + jac.T @ jac / len(x)  # Gaussian, unit variance
    return fisher


def _loss_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    model.zero_grad()
    (0.5 * ((model(x) - y) ** 2).sum(-1).mean()).backward()
    return {p: p.grad.clone() for p in model.parameters()}


def _flat(grads: dict, model: nn.Module) -> torch.Tensor:
    return torch.cat([grads[p].reshape(-1) for p in model.parameters()])


def test_kfac_matches_exact_natural_gradient_linear_gaussian():
    """Tolerance: 1e-8 relative in float64 (the factorisation is exact here, only round-off remains)."""
    torch.manual_seed(0)
    model = nn.Linear(D_IN, D_OUT).double()
    x, y = _data()
    opt = KFAC(model, damping=0.0, cold_iter=0)
    _exact_fisher_stats(opt, model, x)
    a, g = opt.factors(model)
    assert a.shape == (D_IN + 1, D_IN + 1) and g.shape == (D_OUT, D_OUT)
    torch.testing.assert_close(g, torch.eye(D_OUT, dtype=torch.float64), rtol=1e-12, atol=1e-12)

    opt.update_curvature()
    grads = _loss_grads(model, x, y)
    natural = _flat(opt.precondition(grads), model)
    fisher = _explicit_fisher(model, x)
    exact = torch.linalg.solve(fisher, _flat(grads, model))
    torch.testing.assert_close(natural, exact, rtol=1e-8, atol=1e-10)
    # the plain gradient is far from it (the test can fail)
    assert (natural - _flat(grads, model)).norm() > 0.1 * exact.norm()


def test_kfac_monte_carlo_statistics_approach_natural_gradient():
    """With targets sampled from the model the factors are estimates; 20k samples give < 5% error."""
    torch.manual_seed(1)
    model = nn.Linear(D_IN, D_OUT).double()
    x, y = _data(1)
    opt = KFAC(model, damping=0.0, cold_iter=0)
    xs = x.repeat(500, 1)
    mu = model(xs)
    target = (mu + torch.randn_like(mu)).detach()
    opt.zero_grad()
    with opt.record_stats():
        (0.5 * ((mu - target) ** 2).sum(-1).mean()).backward()
    opt.update_curvature()
    grads = _loss_grads(model, x, y)
    natural = _flat(opt.precondition(grads), model)
    exact = torch.linalg.solve(_explicit_fisher(model, x), _flat(grads, model))
    assert (natural - exact).norm() / exact.norm() < 0.05


def test_factored_damping_formula():
    """U = (G + gamma/pi I)^-1 V (A + gamma pi I)^-1, gamma = sqrt(damping), pi from the traces."""
    torch.manual_seed(2)
    model = nn.Linear(D_IN, D_OUT).double()
    x, y = _data(2)
    damping = 0.3
    opt = KFAC(model, damping=damping, cold_iter=0, factored_damping=True)
    _exact_fisher_stats(opt, model, x)
    opt.update_curvature()
    grads = _loss_grads(model, x, y)
    out = opt.precondition(grads)
    a, g = opt.factors(model)
    pi = math.sqrt((a.trace() / a.shape[0]) / (g.trace() / g.shape[0]))
    gamma = math.sqrt(damping)
    v = torch.cat([grads[model.weight], grads[model.bias][:, None]], 1)
    eye = lambda n: torch.eye(n, dtype=torch.float64)  # noqa: E731
    u = torch.linalg.solve(g + gamma / pi * eye(D_OUT), v) @ torch.linalg.inv(a + gamma * pi * eye(D_IN + 1))
    torch.testing.assert_close(out[model.weight], u[:, :-1], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(out[model.bias], u[:, -1], rtol=1e-9, atol=1e-12)


def test_kronecker_product_damping_and_its_limits():
    """factored_damping=False: U = (G (x) A + damping I)^-1 vec(V); large damping -> V / damping."""
    torch.manual_seed(3)
    model = nn.Linear(D_IN, D_OUT).double()
    x, y = _data(3)
    opt = KFAC(model, damping=0.05, cold_iter=0, factored_damping=False)
    _exact_fisher_stats(opt, model, x)
    opt.update_curvature()
    grads = _loss_grads(model, x, y)
    a, g = opt.factors(model)
    v = torch.cat([grads[model.weight], grads[model.bias][:, None]], 1)
    # row-major flattening of V: vec(G V A) = (G (x) A) vec(V)
    big = torch.kron(g, a) + 0.05 * torch.eye(v.numel(), dtype=torch.float64)
    u = torch.linalg.solve(big, v.reshape(-1)).reshape(v.shape)
    out = opt.precondition(grads)
    torch.testing.assert_close(out[model.weight], u[:, :-1], rtol=1e-9, atol=1e-12)

    norms = []
    for damping in (1e-3, 1e-1, 1e1, 1e6):
        opt.param_groups[0]["damping"] = damping
        norms.append(_flat(opt.precondition(grads), model).norm() * damping)
    out = opt.precondition(grads)
    torch.testing.assert_close(out[model.bias] * 1e6, grads[model.bias], rtol=1e-3, atol=1e-9)
    # damping * |U| rises towards |V| as damping grows (U shrinks towards V / damping)
    assert all(n1 < n2 for n1, n2 in pairwise(norms))


def _manual_patches(x: torch.Tensor, k: int, stride: int, pad: int) -> torch.Tensor:
    xp = F.pad(x, (pad, pad, pad, pad))
    rows = []
    for i in range(0, xp.shape[2] - k + 1, stride):
        for j in range(0, xp.shape[3] - k + 1, stride):
            rows.append(xp[:, :, i : i + k, j : j + k].reshape(x.shape[0], -1))
    return torch.stack(rows, 1)  # (B, T, C*k*k)


def test_conv_factor_shapes_and_values():
    torch.manual_seed(4)
    conv = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1).double()
    opt = KFAC(conv, cold_iter=0)
    x = torch.randn(5, 3, 9, 9, dtype=torch.float64)
    out = conv(x)
    opt.zero_grad()
    with opt.record_stats():
        (out * torch.randn_like(out)).sum(dim=(1, 2, 3)).mean().backward()
    a, g = opt.factors(conv)
    assert a.shape == (3 * 3 * 3 + 1,) * 2 and g.shape == (8, 8)
    # KFC: A = E_batch[sum_t a_t a_t^T] over patches with a ones column
    patches = _manual_patches(x, 3, 2, 1)
    patches = torch.cat([patches, torch.ones(*patches.shape[:2], 1, dtype=torch.float64)], -1)
    expected_a = torch.einsum("bti,btj->ij", patches, patches) / x.shape[0]
    torch.testing.assert_close(a, expected_a)
    assert torch.linalg.eigvalsh(g).min() > -1e-10


def test_conv_with_full_kernel_equals_linear():
    """A conv whose kernel covers the image is a Linear layer: same preconditioned gradient."""
    torch.manual_seed(5)
    conv = nn.Conv2d(2, 3, kernel_size=3).double()
    lin = nn.Linear(18, 3).double()
    with torch.no_grad():
        lin.weight.copy_(conv.weight.reshape(3, -1))
        lin.bias.copy_(conv.bias)
    x = torch.randn(30, 2, 3, 3, dtype=torch.float64)
    target = torch.randn(30, 3, dtype=torch.float64)
    noise = torch.randn(30, 3, dtype=torch.float64)  # same sampled targets for both models
    results = []
    for model, inp in ((conv, x), (lin, x.reshape(30, -1))):
        opt = KFAC(model, damping=1e-3, cold_iter=0)
        out = model(inp).reshape(30, 3)
        opt.zero_grad()
        with opt.record_stats():
            (0.5 * ((out - (out + noise).detach()) ** 2).sum(-1).mean()).backward(retain_graph=True)
        opt.update_curvature()
        opt.zero_grad()
        (0.5 * ((out - target) ** 2).sum(-1).mean()).backward()
        pre = opt.precondition({p: p.grad for p in model.parameters()})
        results.append([pre[p].reshape(3, -1) for p in model.parameters()])
    for conv_part, lin_part in zip(*results, strict=True):
        torch.testing.assert_close(conv_part, lin_part, rtol=1e-9, atol=1e-12)


def _one_step(model, opt, x, y):
    mu = model(x)
    fisher_loss = 0.5 * ((mu - (mu + torch.randn_like(mu)).detach()) ** 2).sum(-1).mean()
    opt.zero_grad()
    with opt.record_stats():
        fisher_loss.backward(retain_graph=True)
    opt.zero_grad()
    (0.5 * ((mu - y) ** 2).sum(-1).mean()).backward()
    grads = {p: p.grad.clone() for p in model.parameters()}
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    delta = {p: b - p.detach() for p, b in zip(model.parameters(), before, strict=True)}
    return grads, delta


@pytest.mark.parametrize("kfac_clip", [1e-6, 1e6])
def test_trust_region_scaling(kfac_clip):
    """Step = lr * min(1, sqrt(kfac_clip / (lr^2 v^T g))) * v, v = F^-1 g (momentum 0)."""
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(D_IN, 8), nn.Tanh(), nn.Linear(8, D_OUT)).double()
    x, y = _data(6)
    lr = 0.5
    opt = KFAC(model, lr=lr, momentum=0.0, cold_iter=0, kfac_clip=kfac_clip)
    grads, delta = _one_step(model, opt, x, y)
    v = opt.precondition(grads)  # eigen-decomposition unchanged since the step
    vg = sum((v[p] * grads[p]).sum() for p in grads)
    scale = min(1.0, math.sqrt(kfac_clip / (lr**2 * vg)))
    for p in grads:
        torch.testing.assert_close(delta[p], lr * scale * v[p], rtol=1e-9, atol=1e-14)
    quad = sum((delta[p] * grads[p]).sum() for p in grads) * lr * scale  # = dtheta^T F dtheta
    if kfac_clip < 1:
        assert scale < 1 and abs(float(quad) - kfac_clip) < 1e-9 * kfac_clip
    else:
        assert scale == 1.0


def test_cold_iterations_are_plain_sgd_and_momentum():
    torch.manual_seed(7)
    model = nn.Linear(D_IN, D_OUT).double()
    x, y = _data(7)
    opt = KFAC(model, lr=0.25, cold_lr=0.02, momentum=0.5, cold_iter=2)
    g1, d1 = _one_step(model, opt, x, y)
    g2, d2 = _one_step(model, opt, x, y)
    for p in g1:
        torch.testing.assert_close(d1[p], 0.02 * g1[p])  # heavy ball: buf = 0.5 buf + g
        torch.testing.assert_close(d2[p], 0.02 * (g2[p] + 0.5 * g1[p]))
    assert opt.last_scale is None
    _one_step(model, opt, x, y)
    assert opt.last_scale is not None  # third step is a K-FAC step


def test_kfac_momentum_is_an_average_of_scaled_steps():
    """buf = m buf + (1 - m) scale v: the steady-state step is lr * scale * v (ACKTR reference code)."""
    torch.manual_seed(12)
    model = nn.Linear(D_IN, D_OUT).double()
    x, y = _data(12)
    lr = 0.5
    opt = KFAC(model, lr=lr, momentum=0.5, cold_iter=0, kfac_clip=1e6, kfac_update=100)
    g1, d1 = _one_step(model, opt, x, y)
    v1 = opt.precondition(g1)  # curvature refreshed at the first step only (kfac_update=100)
    g2, d2 = _one_step(model, opt, x, y)
    v2 = opt.precondition(g2)
    for p in g1:
        torch.testing.assert_close(d1[p], lr * 0.5 * v1[p])
        torch.testing.assert_close(d2[p], lr * (0.5 * v2[p] + 0.25 * v1[p]))


def test_statistics_only_recorded_inside_context():
    torch.manual_seed(8)
    model = nn.Linear(D_IN, D_OUT).double()
    x, _ = _data(8)
    opt = KFAC(model)
    with pytest.raises(ValueError, match="no statistics"):
        opt.factors(model)
    model(x).sum().backward()  # outside record_stats: ignored
    with torch.no_grad():
        model(x)
    assert "A" not in opt.state[model.weight]
    with opt.record_stats():
        model(x).pow(2).sum().div(N).backward()
    a1 = opt.factors(model)[0].clone()
    model(x * 10).sum().backward()
    torch.testing.assert_close(opt.factors(model)[0], a1)
    # running average: the second update averages with the first (k = 2 -> weight 1/2)
    with opt.record_stats():
        model(x * 2).pow(2).sum().div(N).backward()
    torch.testing.assert_close(opt.factors(model)[0][:-1, :-1], a1[:-1, :-1] * 2.5)


def test_non_kfac_parameter_gets_plain_gradient_direction():
    class Gaussian(nn.Module):
        def __init__(self):
            super().__init__()
            self.mean = nn.Linear(D_IN, D_OUT)
            self.log_std = nn.Parameter(torch.zeros(D_OUT))

    torch.manual_seed(9)
    model = Gaussian().double()
    opt = KFAC(model, cold_iter=0)
    assert opt.layers == [model.mean]
    grads = {p: torch.randn_like(p) for p in model.parameters()}
    x, _ = _data(9)
    with opt.record_stats():
        (0.5 * (model.mean(x) - (model.mean(x) + torch.randn(N, D_OUT)).detach()) ** 2).sum(-1).mean().backward()
    opt.update_curvature()
    out = opt.precondition(grads)
    assert torch.equal(out[model.log_std], grads[model.log_std])
    assert not torch.allclose(out[model.mean.weight], grads[model.mean.weight])


def test_kfac_solves_ill_conditioned_regression_fast():
    """Natural gradient = Gauss-Newton for a linear-Gaussian model: a few steps reach the optimum."""
    torch.manual_seed(10)
    x, y = _data(10)
    x = x * torch.tensor([1.0, 30.0, 0.03, 1.0], dtype=torch.float64)  # condition number ~1e6
    results = {}
    for name in ("kfac", "sgd"):
        model = nn.Linear(D_IN, D_OUT).double()
        opt = KFAC(model, lr=1.0, momentum=0.0, damping=1e-12, kfac_clip=1e6, cold_iter=0) if name == "kfac" \
            else torch.optim.SGD(model.parameters(), lr=1e-3)
        for _ in range(20):
            mu = model(x)
            if name == "kfac":
                opt.zero_grad()
                with opt.record_stats():
                    sampled = (mu + torch.randn_like(mu)).detach()
                    (0.5 * ((mu - sampled) ** 2).sum(-1).mean()).backward(retain_graph=True)
            opt.zero_grad()
            (0.5 * ((mu - y) ** 2).sum(-1).mean()).backward()
            opt.step()
        results[name] = float(0.5 * ((model(x) - y) ** 2).sum(-1).mean().detach())
    w = torch.linalg.lstsq(torch.cat([x, torch.ones(N, 1, dtype=torch.float64)], 1), y).solution
    best = float(0.5 * ((torch.cat([x, torch.ones(N, 1, dtype=torch.float64)], 1) @ w - y) ** 2).sum(-1).mean())
    assert results["kfac"] < best + 1e-3
    assert results["sgd"] > best + 0.1


def test_state_dict_round_trip_and_bad_arguments():
    torch.manual_seed(11)
    model = nn.Sequential(nn.Linear(D_IN, 8), nn.Tanh(), nn.Linear(8, D_OUT)).double()
    x, y = _data(11)
    opt = KFAC(model, cold_iter=1)
    for _ in range(3):
        _one_step(model, opt, x, y)
    clone = nn.Sequential(nn.Linear(D_IN, 8), nn.Tanh(), nn.Linear(8, D_OUT)).double()
    clone.load_state_dict(model.state_dict())
    opt2 = KFAC(clone, cold_iter=1)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # as if saved to disk
    assert opt2.param_groups[0]["step"] == 3 and opt2.param_groups[0]["stats_updates"] == 3
    torch.manual_seed(12)
    _one_step(model, opt, x, y)
    torch.manual_seed(12)
    _one_step(clone, opt2, x, y)
    for p, q in zip(model.parameters(), clone.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    with pytest.raises(ValueError):
        KFAC(model, lr=-1.0)
    with pytest.raises(ValueError):
        KFAC(model, kfac_update=0)
