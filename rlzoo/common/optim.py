"""Optimizers that the original (TensorFlow) Stable Baselines used and PyTorch lacks, on flat buffers.

A small network has a dozen parameter tensors of a few thousand numbers each; an optimizer step, a
gradient norm or a target-network average done tensor by tensor costs a dozen dispatches per
operation, more than the arithmetic. :class:`FlatParameters` moves a network's parameters into one
contiguous buffer (each parameter becomes a view of it) and preallocates their gradients in a second
one, so each of those becomes a single operation on a buffer. The optimizers keep per-parameter
``state_dict`` entries (views of their flat state), so saved files are those of ``torch.optim``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, overload

import operator
import weakref

import torch
from torch.optim.adam import adam as adam_functional


_GRAD = operator.attrgetter("grad")


class FlatParameters:
    """Parameters as views of one contiguous buffer ``data``, gradients as views of ``grad``.

    Backward accumulates into an existing ``.grad`` in place, so gradients land in ``grad`` as long as
    nobody replaces them; ``zero_grad`` re-attaches the views (after a ``set_to_none``), and
    :meth:`intact` tells whether the parameters still live in the buffer (``.to(device)``, ``.data``
    assignment: then callers take the per-tensor path).
    """

    def __init__(self, params: Iterable[torch.Tensor], with_grad: bool = True) -> None:
        self.params = list(params)
        first = self.params[0]
        if any(p.dtype != first.dtype or p.device != first.device for p in self.params):
            raise ValueError("flat parameters need one dtype and one device")
        total = sum(p.numel() for p in self.params)
        self.data = torch.empty(total, dtype=first.dtype, device=first.device)
        self.grad = torch.zeros_like(self.data) if with_grad else None
        self._grad_views: list[torch.Tensor] = []
        self._ptrs: list[int] = []
        offset = 0
        with torch.no_grad():
            for p in self.params:
                n = p.numel()
                view = self.data[offset:offset + n].view_as(p)
                view.copy_(p)
                p.data = view
                self._ptrs.append(p.data_ptr())
                if self.grad is not None:
                    self._grad_views.append(self.grad[offset:offset + n].view_as(p))
                offset += n
        self.attach_grads()
        _FLAT_OF[id(first)] = self

    @classmethod
    def build(cls, params: Iterable[torch.Tensor], with_grad: bool = True) -> FlatParameters | None:
        """Flat buffers for ``params``, or None when they cannot share one (mixed dtypes or devices, none)."""
        params = list(params)
        try:
            return cls(params, with_grad) if params else None
        except ValueError:  # mixed dtypes or devices
            return None

    def attach_grads(self) -> None:
        """Point every parameter's ``.grad`` at its view of ``grad`` (zeroed)."""
        if self.grad is None:
            return
        self.grad.zero_()
        for p, g in zip(self.params, self._grad_views, strict=True):
            if p.grad is not g:
                p.grad = g

    # (checked several times per gradient step: written with C-level map() rather than Python loops)
    def data_intact(self) -> bool:
        """Whether every parameter still lives in the flat buffer."""
        return list(map(torch.Tensor.data_ptr, self.params)) == self._ptrs

    def intact(self) -> bool:
        """Whether every parameter and gradient still lives in the flat buffers."""
        if not self.data_intact():
            return False
        return self.grad is None or all(map(operator.is_, map(_GRAD, self.params), self._grad_views))

    def covers(self, params: Sequence[torch.Tensor]) -> bool:
        """Whether ``params`` are exactly these parameters, in order."""
        return len(params) == len(self.params) and all(map(operator.is_, params, self.params))


# flat buffers by the id of their first parameter (for clip_grad_norm's fast path); an entry lives as
# long as its FlatParameters (held by an optimizer), and ``covers`` rejects a reused id
_FLAT_OF: weakref.WeakValueDictionary[int, FlatParameters] = weakref.WeakValueDictionary()


def flat_of(params: Sequence[torch.Tensor]) -> FlatParameters | None:
    """The intact :class:`FlatParameters` holding exactly ``params``, if any."""
    flat = _FLAT_OF.get(id(params[0])) if params else None
    return flat if flat is not None and flat.covers(params) and flat.intact() else None


class _FlatOptimizer(torch.optim.Optimizer):
    """An optimizer of one parameter group whose per-parameter state tensors are views of flat buffers,
    stepping with one operation per buffer; anything else (several groups, closures, parameters moved
    out of their buffer) takes the per-tensor path of the subclass (``_step_tensors``)."""

    _state_keys: tuple[str, ...] = ()

    def _setup_flat(self, params: Sequence[torch.Tensor]) -> None:
        self.flat = FlatParameters.build(params)
        self._flat_state: dict[str, torch.Tensor] | None = None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._flat_state = None  # loaded state tensors are new: gather them into buffers again

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._flat_state = None
        if getattr(self, "flat", None) is not None and len(self.param_groups) > 1:
            self.flat = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients; with flat buffers they are zeroed in place (never None), so that the next
        backward accumulates into the buffer."""
        if self.flat is not None and self.flat.intact():
            assert self.flat.grad is not None
            self.flat.grad.zero_()
        elif self.flat is not None and self.flat.data_intact():
            self.flat.attach_grads()
        else:
            super().zero_grad(set_to_none)

    def _flat_ready(self) -> bool:
        return self.flat is not None and len(self.param_groups) == 1 and self.flat.intact()

    def _gather_state(self, init: dict[str, float]) -> dict[str, torch.Tensor]:
        """The flat state buffers (``key -> buffer``), built from the per-parameter state (or ``init``
        values where a parameter has none yet); the per-parameter entries become views of them."""
        if self._flat_state is not None:
            return self._flat_state
        assert self.flat is not None
        buffers = {key: torch.full_like(self.flat.data, value) for key, value in init.items()}
        offset = 0
        for p in self.flat.params:
            n = p.numel()
            state = self.state[p]
            for key, buf in buffers.items():
                view = buf[offset:offset + n].view_as(p)
                if isinstance(state.get(key), torch.Tensor):
                    view.copy_(state[key])
                state[key] = view
            offset += n
        self._flat_state = buffers
        return buffers


class RMSpropTF(_FlatOptimizer):
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
        params = list(params)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, momentum=momentum))
        self._setup_flat(params)

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One RMSprop update of every parameter with a gradient; returns ``closure()``'s loss if given."""
        loss = closure() if closure is not None else None
        if self._flat_ready():
            assert self.flat is not None and self.flat.grad is not None
            group = self.param_groups[0]
            init = {"square_avg": 1.0, **({"momentum_buffer": 0.0} if group["momentum"] > 0 else {})}
            bufs = self._gather_state(init)
            self._update(self.flat.data, self.flat.grad, bufs["square_avg"], bufs.get("momentum_buffer"), group)
            return loss
        self._flat_state = None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "square_avg" not in state:
                    state["square_avg"] = torch.ones_like(p)
                    if group["momentum"] > 0:
                        state["momentum_buffer"] = torch.zeros_like(p)
                self._update(p, p.grad, state["square_avg"], state.get("momentum_buffer"), group)
        return loss

    @staticmethod
    def _update(param: torch.Tensor, grad: torch.Tensor, square_avg: torch.Tensor,
                momentum_buffer: torch.Tensor | None, group: dict[str, Any]) -> None:
        # ms <- alpha * ms + (1 - alpha) * g^2;  theta <- theta - lr * g / sqrt(ms + eps)
        square_avg.mul_(group["alpha"]).addcmul_(grad, grad, value=1 - group["alpha"])
        denom = square_avg.add(group["eps"]).sqrt_()
        if group["momentum"] > 0 and momentum_buffer is not None:
            momentum_buffer.mul_(group["momentum"]).addcdiv_(grad, denom)
            param.add_(momentum_buffer, alpha=-group["lr"])
        else:
            param.addcdiv_(grad, denom, value=-group["lr"])


@torch.no_grad()
def clip_grad_norm(params: Sequence[torch.Tensor], max_norm: float | None) -> torch.Tensor:
    """Scale the gradients so that their global L2 norm is at most ``max_norm`` (no host sync); returns
    the norm before clipping (``max_norm`` None: the norm only, no clipping). Parameters held in one
    :class:`FlatParameters` take one norm over its gradient buffer."""
    flat = flat_of(params)
    if flat is not None and flat.grad is not None:
        grads = [flat.grad]
    else:
        grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.cat([g.reshape(-1) for g in grads])) if len(grads) > 1 \
        else torch.linalg.vector_norm(grads[0])
    if max_norm is not None:
        if total.device.type == "cpu" and total.item() + 1e-6 <= max_norm:
            return total  # the clip factor max_norm / (norm + 1e-6) would be clamped to 1 (no host sync on CPU)
        scale = (max_norm / (total + 1e-6)).clamp_(max=1.0)
        for g in grads:
            g.mul_(scale)
    return total


@torch.no_grad()
def polyak_update(params: Sequence[torch.Tensor], target_params: Sequence[torch.Tensor], tau: float) -> None:
    """``target <- tau * online + (1 - tau) * target`` (``tau`` 1: a copy); one operation when both sides
    live in :class:`FlatParameters` of the same layout, else one per tensor."""
    flat, target_flat = flat_of(params), flat_of(target_params)
    pairs: Iterable[tuple[torch.Tensor, torch.Tensor]] = (
        [(flat.data, target_flat.data)] if flat is not None and target_flat is not None
        and flat.data.shape == target_flat.data.shape else zip(params, target_params, strict=True))
    for p, t in pairs:
        if tau >= 1.0:
            t.copy_(p)
        else:
            t.lerp_(p, tau)


class LeanAdam(_FlatOptimizer, torch.optim.Adam):
    """``torch.optim.Adam`` (Kingma & Ba 2015, Algorithm 1) stepping on flat buffers: the update is one
    fused kernel (torch's public functional ``adam(..., fused=True)``) over all parameters at once. Same
    maths, same ``state_dict`` as ``torch.optim.Adam``;
    anything unusual (closures, several groups, amsgrad, maximize, AdamW-style decay, parameters moved
    out of the buffer) takes torch's own step."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, **kwargs: Any) -> None:
        params = list(params)
        torch.optim.Adam.__init__(self, params, lr=lr, **kwargs)
        self._setup_flat(params)
        self._flat_step = torch.tensor(0.0)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        group = self.param_groups[0]
        if (closure is not None or not self._flat_ready() or group["amsgrad"] or group["maximize"]
                or group.get("decoupled_weight_decay", False)):
            if self._flat_state is not None and self.flat is not None:  # torch counts steps per parameter
                for p in self.flat.params:
                    self.state[p]["step"] = self._flat_step.clone()
            self._flat_state = None
            return torch.optim.Adam.step(self, closure)
        assert self.flat is not None and self.flat.grad is not None
        if self._flat_state is None:  # (re)entering the flat path: continue torch's step count
            steps = [float(s["step"]) for s in self.state.values() if isinstance(s.get("step"), torch.Tensor)]
            self._flat_step = torch.tensor(max(steps) if steps else 0.0)
        bufs = self._gather_state({"exp_avg": 0.0, "exp_avg_sq": 0.0})
        beta1, beta2 = group["betas"]
        # torch's public functional Adam, fused: one pass over the buffers for all parameters
        adam_functional([self.flat.data], [self.flat.grad], [bufs["exp_avg"]], [bufs["exp_avg_sq"]], [],
                        [self._flat_step], fused=True, amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
                        weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)
        return None

    def state_dict(self) -> dict[str, Any]:
        """torch's Adam state, with every parameter's ``step`` (counted once for the buffer)."""
        if self._flat_state is not None and self.flat is not None:
            for p in self.flat.params:
                self.state[p]["step"] = self._flat_step.clone()
        return super().state_dict()


def make_adam(params: Iterable[torch.Tensor], lr: float, **kwargs: Any) -> torch.optim.Adam:
    """Adam on flat buffers (:class:`LeanAdam`): the parameters move into one buffer."""
    params = list(params)
    return LeanAdam(params, lr=lr, **kwargs)
