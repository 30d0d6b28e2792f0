"""Optimizers that the original (TensorFlow) Stable Baselines used and PyTorch lacks."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, overload

import torch
from torch.optim.adam import adam as adam_functional


class RMSpropTF(torch.optim.Optimizer):
    """RMSprop as TensorFlow 1 computes it (used by A2C/ACER in the original implementations).

    Differences from ``torch.optim.RMSprop``: epsilon is added *inside* the square root,
    ``theta -= lr * g / sqrt(ms + eps)``, and the mean square starts at 1 instead of 0, which
    keeps the first steps small. Parameters: ``lr``, ``alpha`` (decay of the mean square),
    ``eps``, ``momentum`` (optional).
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 7e-4, alpha: float = 0.99,
                 eps: float = 1e-5, momentum: float = 0.0) -> None:
        if lr < 0 or eps < 0 or not 0.0 <= alpha < 1.0:
            raise ValueError(f"invalid RMSpropTF settings lr={lr}, alpha={alpha}, eps={eps}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, momentum=momentum))

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One RMSprop update of every parameter with a gradient; returns ``closure()``'s loss if given."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            for p in params:
                if "square_avg" not in self.state[p]:
                    self.state[p]["square_avg"] = torch.ones_like(p)
                    if group["momentum"] > 0:
                        self.state[p]["momentum_buffer"] = torch.zeros_like(p)
            sq = [self.state[p]["square_avg"] for p in params]
            # ms <- alpha * ms + (1 - alpha) * g^2
            torch._foreach_mul_(sq, group["alpha"])
            torch._foreach_addcmul_(sq, grads, grads, value=1 - group["alpha"])
            denom = torch._foreach_add(sq, group["eps"])
            torch._foreach_sqrt_(denom)
            if group["momentum"] > 0:
                bufs = [self.state[p]["momentum_buffer"] for p in params]
                torch._foreach_mul_(bufs, group["momentum"])
                torch._foreach_addcdiv_(bufs, grads, denom)
                torch._foreach_add_(params, bufs, alpha=-group["lr"])
            else:
                torch._foreach_addcdiv_(params, grads, denom, value=-group["lr"])
        return loss


@torch.no_grad()
def clip_grad_norm(params: list[torch.Tensor], max_norm: float | None) -> torch.Tensor:
    """Scale the gradients so that their global L2 norm is at most ``max_norm`` (no host sync); returns
    the norm before clipping (``max_norm`` None: the norm only, no clipping)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    if max_norm is not None:
        torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp_(max=1.0))
    return total


class LeanAdam(torch.optim.Adam):
    """``torch.optim.Adam`` with the fused kernel and a lean ``step``: after the first step, one call of
    torch's public functional ``torch.optim.adam.adam(..., fused=True)`` for all parameters, skipping
    the generic optimizer's per-call bookkeeping (a large share of a small network's update time).
    Same maths, same ``state_dict``; anything unusual (closures, missing gradients, several groups)
    takes the regular path."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, **kwargs: Any) -> None:
        super().__init__(params, lr=lr, fused=True, **kwargs)
        self._lean: tuple[list[torch.Tensor], ...] | None = None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._lean = None

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._lean = None

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        group = self.param_groups[0]
        params = group["params"]
        if (closure is not None or len(self.param_groups) != 1 or group["amsgrad"] or group["maximize"]
                or group.get("decoupled_weight_decay", False) or any(p.grad is None for p in params)):
            self._lean = None
            return super().step(closure)
        if self._lean is None:
            if any(not self.state[p] for p in params):  # first step: let torch create the state
                return super().step()
            states = [self.state[p] for p in params]
            self._lean = ([s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                          [s["step"] for s in states])
        exp_avgs, exp_avg_sqs, steps = self._lean
        beta1, beta2 = group["betas"]
        # increments the step counters, then one fused kernel for all parameters
        adam_functional(params, [p.grad for p in params], exp_avgs, exp_avg_sqs, [], steps, fused=True,
                        amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
                        eps=group["eps"], maximize=False)
        return None


def make_adam(params: Iterable[torch.Tensor], lr: float, **kwargs: Any) -> torch.optim.Adam:
    """Adam with the fused kernel (one call for all parameters) where torch has one for the device."""
    params = list(params)
    try:
        return LeanAdam(params, lr=lr, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, **kwargs)
