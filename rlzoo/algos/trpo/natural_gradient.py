"""Natural-gradient helpers for TRPO (Schulman et al. 2015, "Trust Region Policy Optimization").

- ``conjugate_gradient``: solve ``A x = b`` with only matrix-vector products (Appendix C).
- ``fisher_vector_product``: ``v -> (H_KL + damping I) v``, the Hessian of the mean KL between the
  old and the new policy at the current parameters, which equals the Fisher matrix there.
- ``backtracking_line_search``: shrink the step until the surrogate improves within the KL bound.
- flat parameter / gradient helpers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch


def flat_params(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate parameters into one detached 1-D tensor."""
    return torch.cat([p.detach().reshape(-1) for p in params])


@torch.no_grad()
def set_flat_params(params: Sequence[torch.Tensor], flat: torch.Tensor) -> None:
    """Copy a 1-D tensor (as made by ``flat_params``) back into the parameters, in place."""
    if flat.numel() != sum(p.numel() for p in params):
        raise ValueError(f"flat vector has {flat.numel()} values, parameters need {sum(p.numel() for p in params)}")
    offset = 0
    for p in params:
        p.copy_(flat[offset : offset + p.numel()].view_as(p))
        offset += p.numel()


def flat_grad(
    output: torch.Tensor,
    params: Sequence[torch.Tensor],
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> torch.Tensor:
    """Gradient of a scalar with respect to ``params`` as one 1-D tensor (zeros where unused).

    ``retain_graph`` defaults to ``create_graph``, as in ``torch.autograd.grad``.
    """
    grads = torch.autograd.grad(output, list(params), retain_graph=retain_graph, create_graph=create_graph,
                                allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for g, p in zip(grads, params, strict=True)])


def conjugate_gradient(
    Avp: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    n_iters: int = 10,
    residual_tol: float = 1e-10,
) -> torch.Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given ``Avp(v) = A v``.

    Standard CG from ``x = 0`` (Nocedal & Wright, Algorithm 5.2); stops after ``n_iters``
    iterations or when the squared residual ``r^T r`` falls below ``residual_tol``.
    """
    x = torch.zeros_like(b)
    r = b.clone()  # residual b - A x
    p = b.clone()  # search direction
    rr = r.dot(r)
    for _ in range(n_iters):
        if rr <= residual_tol:  # one sync per iteration; CG runs ~10 of them per update
            break
        Ap = Avp(p)
        alpha = rr / p.dot(Ap)
        x += alpha * p
        r -= alpha * Ap
        rr_new = r.dot(r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def fisher_vector_product(
    kl_fn: Callable[[], torch.Tensor],
    params: Sequence[torch.Tensor],
    damping: float = 0.0,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return ``v -> H v + damping * v`` with ``H`` the Hessian of ``kl_fn()`` w.r.t. ``params``.

    ``kl_fn`` must return the mean KL(old || new) where the old distribution is detached; at
    the current parameters its Hessian is the Fisher information matrix (TRPO Appendix C.1).
    The KL gradient graph is built once and reused for every product (Pearlmutter's trick:
    ``H v = d(grad_KL . v)/dtheta``).
    """
    params = list(params)
    grad_kl = flat_grad(kl_fn(), params, create_graph=True)

    def fvp(v: torch.Tensor) -> torch.Tensor:
        return flat_grad(grad_kl.dot(v.detach()), params, retain_graph=True) + damping * v

    return fvp


class LineSearchResult(NamedTuple):
    """Outcome of ``backtracking_line_search``."""

    accepted: bool
    step_fraction: float  # fraction of the full step taken (0.0 when rejected)
    improvement: float  # surrogate improvement of the accepted step
    kl: float  # mean KL of the accepted step


@torch.no_grad()
def backtracking_line_search(
    params: Sequence[torch.Tensor],
    full_step: torch.Tensor,
    evaluate: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    max_kl: float,
    kl_tolerance: float = 1.5,
    max_backtracks: int = 10,
    shrink: float = 0.5,
) -> LineSearchResult:
    """Try ``theta_old + f * full_step`` for ``f = 1, shrink, shrink^2, ...``.

    ``evaluate()`` returns ``(surrogate, kl)`` at the parameters currently set (surrogate to
    maximise). A step is accepted when both are finite, ``kl <= kl_tolerance * max_kl`` and the
    surrogate improved. If no step is accepted within ``max_backtracks`` tries, the old
    parameters are restored. (The TRPO reference implementation uses ``kl_tolerance = 1.5``.)
    """
    params = list(params)
    old = flat_params(params)
    surrogate_t, _ = evaluate()
    surrogate_before = float(surrogate_t)
    fraction = 1.0
    for _ in range(max_backtracks):
        set_flat_params(params, old + fraction * full_step)
        surrogate, kl = (float(t) for t in evaluate())
        improvement = surrogate - surrogate_before
        if math.isfinite(surrogate) and math.isfinite(kl) and kl <= kl_tolerance * max_kl and improvement > 0:
            return LineSearchResult(True, fraction, improvement, kl)
        fraction *= shrink
    set_flat_params(params, old)
    return LineSearchResult(False, 0.0, 0.0, 0.0)
