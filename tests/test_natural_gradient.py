"""Conjugate gradient, Fisher-vector products and the TRPO line search."""

import math

import pytest
import torch
from torch import nn

from rlzoo.algos.trpo.natural_gradient import (
    backtracking_line_search,
    conjugate_gradient,
    fisher_vector_product,
    flat_grad,
    flat_params,
    set_flat_params,
)


def _spd(n: int, cond: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    eigs = torch.logspace(0, math.log10(cond), n, dtype=torch.float64)
    return q @ torch.diag(eigs) @ q.T


def test_conjugate_gradient_solves_spd_system():
    a = _spd(30, cond=100.0)
    b = torch.randn(30, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = conjugate_gradient(lambda v: a @ v, b, n_iters=60, residual_tol=1e-24)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-10)


def test_conjugate_gradient_exact_in_n_steps_for_few_distinct_eigenvalues():
    # CG terminates after k iterations when A has k distinct eigenvalues
    q, _ = torch.linalg.qr(torch.randn(20, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))
    a = q @ torch.diag(torch.tensor([1.0, 5.0, 25.0] * 6 + [1.0, 5.0], dtype=torch.float64)) @ q.T
    b = torch.randn(20, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, n_iters=3, residual_tol=0.0)
    torch.testing.assert_close(a @ x, b, rtol=1e-8, atol=1e-8)
    # and a truncated solve is only approximate (the test above could fail)
    x2 = conjugate_gradient(lambda v: _spd(20, 1e4) @ v, b, n_iters=3)
    assert torch.linalg.vector_norm(_spd(20, 1e4) @ x2 - b) > 1e-3


def test_flat_helpers_round_trip():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    params = list(net.parameters())
    flat = flat_params(params)
    assert flat.shape == (3 * 4 + 4 + 4 * 2 + 2,)
    set_flat_params(params, flat + 1.0)
    torch.testing.assert_close(flat_params(params), flat + 1.0)
    with pytest.raises(ValueError, match="flat vector"):
        set_flat_params(params, flat[:-1])
    # flat_grad fills unused parameters with zeros
    unused = nn.Parameter(torch.ones(5))
    g = flat_grad(net(torch.ones(1, 3)).sum(), params + [unused])
    assert g.shape == (flat.numel() + 5,) and torch.all(g[-5:] == 0)


def test_fisher_vector_product_matches_explicit_fisher_categorical():
    """Hessian of KL(old||new) at theta_old equals E_s E_{a~pi}[grad log pi grad log pi^T]."""
    torch.manual_seed(0)
    net = nn.Linear(4, 3).double()
    obs = torch.randn(16, 4, dtype=torch.float64)
    params = list(net.parameters())
    old_logp = torch.log_softmax(net(obs), -1).detach()

    def kl_fn():
        logp = torch.log_softmax(net(obs), -1)
        return (old_logp.exp() * (old_logp - logp)).sum(-1).mean()

    # explicit Fisher: sum over states and actions of p(a|s) * score score^T
    n_params = sum(p.numel() for p in params)
    fisher = torch.zeros(n_params, n_params, dtype=torch.float64)
    for i in range(len(obs)):
        for a in range(3):
            score = flat_grad(torch.log_softmax(net(obs[i : i + 1]), -1)[0, a], params)
            fisher += old_logp[i, a].exp() * torch.outer(score, score) / len(obs)

    damping = 0.1
    fvp = fisher_vector_product(kl_fn, params, damping=damping)
    for seed in range(3):
        v = torch.randn(n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(fvp(v), fisher @ v + damping * v, rtol=1e-9, atol=1e-12)
    # CG on the FVP gives the damped natural gradient
    g = torch.randn(n_params, dtype=torch.float64)
    x = conjugate_gradient(fvp, g, n_iters=n_params * 2, residual_tol=1e-30)
    torch.testing.assert_close(x, torch.linalg.solve(fisher + damping * torch.eye(n_params, dtype=torch.float64), g),
                               rtol=1e-6, atol=1e-8)


def test_fisher_vector_product_matches_explicit_fisher_gaussian():
    """Diagonal Gaussian with state-independent log std: F_mu = J^T diag(1/sigma^2) J, F_logstd = 2 I."""
    torch.manual_seed(1)
    mean_net = nn.Linear(3, 2).double()
    log_std = nn.Parameter(torch.tensor([-0.3, 0.4], dtype=torch.float64))
    obs = torch.randn(10, 3, dtype=torch.float64)
    params = list(mean_net.parameters()) + [log_std]
    old_mu, old_log_std = mean_net(obs).detach(), log_std.detach().clone()

    def kl_fn():
        mu, ls = mean_net(obs), log_std
        kl = ls - old_log_std + (old_log_std.exp() ** 2 + (old_mu - mu) ** 2) / (2 * ls.exp() ** 2) - 0.5
        return kl.sum(-1).mean()

    n = sum(p.numel() for p in params)
    fisher = torch.zeros(n, n, dtype=torch.float64)
    inv_var = torch.exp(-2 * old_log_std)
    for i in range(len(obs)):
        jac = torch.stack([flat_grad(mean_net(obs[i : i + 1])[0, k], params) for k in range(2)])  # (2, n)
        fisher += jac.T @ torch.diag(inv_var) @ jac / len(obs)
    fisher[-2:, -2:] += 2 * torch.eye(2, dtype=torch.float64)
    fvp = fisher_vector_product(kl_fn, params)
    v = torch.randn(n, dtype=torch.float64)
    torch.testing.assert_close(fvp(v), fisher @ v, rtol=1e-9, atol=1e-12)


def _quadratic_problem():
    """Surrogate s(x) = g.x - 0.5 x^T H x and 'KL' = 0.5 x^T F x around x=0."""
    x = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    fmat = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    g = torch.tensor([1.0, 1.0], dtype=torch.float64)

    def evaluate():
        return g @ x - 0.5 * x @ (3 * fmat) @ x, 0.5 * x @ fmat @ x

    return x, fmat, g, evaluate


def test_line_search_accepts_within_kl_bound_and_improves():
    x, fmat, g, evaluate = _quadratic_problem()
    max_kl = 0.01
    step = torch.linalg.solve(fmat, g)
    step = step * math.sqrt(2 * max_kl / float(step @ fmat @ step)) * 4  # 16x too large in KL
    res = backtracking_line_search([x], step, evaluate, max_kl=max_kl)
    assert res.accepted
    assert res.kl <= 1.5 * max_kl and res.improvement > 0
    assert res.step_fraction == 0.25  # 1 -> kl 16x, 0.5 -> 4x, 0.25 -> 1x max_kl
    torch.testing.assert_close(x.detach(), 0.25 * step)


def test_line_search_restores_parameters_when_nothing_improves():
    x, fmat, g, evaluate = _quadratic_problem()
    with torch.no_grad():
        x.copy_(torch.tensor([0.3, -0.2], dtype=torch.float64))
    before = x.detach().clone()
    res = backtracking_line_search([x], -g * 10, lambda: (-(x - before).norm(), torch.zeros(())), max_kl=0.01)
    assert not res.accepted and res.step_fraction == 0.0
    torch.testing.assert_close(x.detach(), before)
    # a NaN surrogate is never accepted either
    res = backtracking_line_search([x], g, lambda: (torch.tensor(float("nan")), torch.zeros(())), max_kl=0.01)
    assert not res.accepted
    torch.testing.assert_close(x.detach(), before)
