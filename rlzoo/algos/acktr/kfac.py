"""K-FAC: Kronecker-factored approximate curvature, as a ``torch.optim.Optimizer``.

References
----------
- Martens & Grosse 2015, "Optimizing Neural Networks with Kronecker-factored Approximate
  Curvature" (K-FAC): F_l ~= A_{l-1} (x) G_l, factored Tikhonov damping (section 6.3).
- Grosse & Martens 2016, "A Kronecker-factored approximate Fisher matrix for convolution
  layers" (KFC): convolution factors from image patches.
- Wu et al. 2017, "Scalable trust-region method for deep reinforcement learning using
  Kronecker-factored approximation" (ACKTR): sampled Fisher loss (section 3.1) and the
  trust-region step size ``min(eta_max, sqrt(2 delta / (dtheta^T F dtheta)))`` (section 3.2,
  "step-size selection and trust-region optimization").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeAlias, TypeGuard, overload

import torch
import torch.nn.functional as F
from torch import nn

KFACLayer: TypeAlias = "nn.Linear | nn.Conv2d"
"""The layer types K-FAC preconditions (the rest get the plain gradient)."""


def _kfac_supported(module: nn.Module) -> TypeGuard[KFACLayer]:
    """Linear layers, and Conv2d layers whose patches ``F.unfold`` can reproduce."""
    if isinstance(module, nn.Linear):
        return module.weight.requires_grad
    if isinstance(module, nn.Conv2d):
        return (
            module.weight.requires_grad
            and module.groups == 1
            and module.padding_mode == "zeros"
            and not isinstance(module.padding, str)
        )
    return False


class KFAC(torch.optim.Optimizer):
    """K-FAC optimizer with the ACKTR trust region, for the parameters of one ``nn.Module``.

    Every ``nn.Linear`` and ``nn.Conv2d`` layer gets a block of the Fisher approximated by
    ``F ~= A (x) G`` (bias folded in as a column of ones in the input), where

    - ``A = E_batch[sum_t a_t a_t^T]`` over the layer inputs ``a_t`` (for a convolution,
      one row per output location t of the unfolded patches, the KFC factor of Grosse & Martens 2016;
      for a Linear layer on ``(B, in)`` inputs there is a single t),
    - ``G = E_{batch, t}[Ds_t Ds_t^T]`` over the per-sample gradients ``Ds_t`` of the
      *sampled* Fisher loss with respect to the layer outputs.

    Both are running averages with weight ``max(1 - stats_decay, 1/k)`` at the k-th update
    (a plain mean for the first ``1/(1-stats_decay)`` updates, then an exponential average).
    Every ``kfac_update`` steps the curvature is refreshed, and a layer with gradient matrix
    ``V = [dW | db]`` gets the preconditioned gradient::

        factored damping (default, Martens & Grosse 2015 section 6.3):
            U = (G + gamma/pi I)^-1 V (A + gamma*pi I)^-1,  gamma = sqrt(damping),
            pi = sqrt((tr A / dim A) / (tr G / dim G))
            (the two damped inverses are refreshed, by Cholesky factorisation)
        factored_damping=False (damping of the Kronecker product, as the ACKTR reference code):
            U = Q_G [(Q_G^T V Q_A) / (d_G d_A^T + damping)] Q_A^T
            (the eigen-decompositions A = Q_A diag(d_A) Q_A^T, G = Q_G diag(d_G) Q_G^T are refreshed)

    The Cholesky route gives the same factored-damping result as going through the
    eigen-decompositions, several times faster on large factors (the 3137x3137 input factor of
    the Nature CNN's dense layer). With factored damping, a change of ``damping`` takes effect at
    the next refresh.

    Parameters of other layers (for instance a state-independent ``log_std``) are not
    preconditioned: their update direction is their plain gradient (identity Fisher block).

    Trust region (ACKTR section 3.2). With ``v`` the preconditioned gradient of all parameters
    and ``g`` the raw gradient, ``v^T g = v^T F_damped v``, so ``lr^2 v^T g`` is the
    quadratic form ``dtheta^T F dtheta`` of the step ``dtheta = lr v``; the update is scaled by::

        scale = min(1, sqrt(kfac_clip / (lr^2 * v^T g)))

    i.e. ``kfac_clip`` plays the role of ``2 delta`` in ``sqrt(2 delta / dtheta^T F dtheta)``.
    The scaled direction then goes through momentum written as an exponential average,
    ``buf = momentum * buf + (1 - momentum) * scale * v``, ``p -= lr * buf`` (the ACKTR reference
    code's momentum optimizer at learning rate ``lr * (1 - momentum)``): in a steady state the
    parameters move by ``lr * scale * v`` per step, the displacement the trust region measured,
    where plain heavy-ball momentum would move ``1 / (1 - momentum)`` times farther.

    The first ``cold_iter`` steps are plain SGD with heavy-ball momentum at ``cold_lr`` (a
    separate buffer) while the statistics accumulate. ``weight_decay`` adds ``weight_decay * p`` to the gradient before
    preconditioning; ``max_grad_norm`` clips the raw gradient norm before preconditioning.

    Usage::

        opt = KFAC(model, lr=0.25)
        out = model(x)                                   # one forward pass
        loss, fisher_loss = my_loss(out), sampled_nll(out)
        opt.zero_grad()
        with opt.record_stats():                         # statistics come from this backward only
            fisher_loss.backward(retain_graph=True)
        opt.zero_grad()
        loss.backward()
        opt.step()

    ``fisher_loss`` must be the batch *mean* of negative log-likelihoods of targets sampled
    from the model's own predictive distribution (ACKTR section 3.1); the hooks multiply the
    back-propagated output gradients by the batch size to recover per-sample gradients.
    The learning rate lives in ``param_groups[0]["lr"]`` so schedules can change it.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 0.25,
        momentum: float = 0.9,
        stats_decay: float = 0.99,
        damping: float = 0.01,
        kfac_clip: float = 0.001,
        kfac_update: int = 1,
        cold_iter: int = 10,
        cold_lr: float = 0.01,
        weight_decay: float = 0.0,
        max_grad_norm: float | None = None,
        factored_damping: bool = True,
    ) -> None:
        if lr <= 0 or cold_lr < 0:
            raise ValueError(f"KFAC needs lr > 0 and cold_lr >= 0, got lr={lr}, cold_lr={cold_lr}")
        if not 0.0 <= momentum < 1.0 or not 0.0 <= stats_decay < 1.0:
            raise ValueError(f"KFAC needs momentum and stats_decay in [0, 1), got {momentum}, {stats_decay}")
        if damping < 0 or kfac_clip <= 0 or kfac_update < 1 or cold_iter < 0 or weight_decay < 0:
            raise ValueError(
                "KFAC needs damping >= 0, kfac_clip > 0, kfac_update >= 1, cold_iter >= 0, weight_decay >= 0"
            )
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("KFAC got a model without trainable parameters")
        defaults = dict(
            lr=lr, momentum=momentum, stats_decay=stats_decay, damping=damping, kfac_clip=kfac_clip,
            kfac_update=kfac_update, cold_iter=cold_iter, cold_lr=cold_lr, weight_decay=weight_decay,
            max_grad_norm=max_grad_norm, factored_damping=factored_damping, step=0, stats_updates=0,
        )
        super().__init__(params, defaults)
        self.layers: list[KFACLayer] = [m for m in model.modules() if _kfac_supported(m)]
        self.last_scale: torch.Tensor | None = None  # trust-region scale of the last K-FAC step
        self._recording = False
        # per layer: summed (cov_a, cov_g) of this backward and how many applications they sum
        self._pending: dict[KFACLayer, tuple[torch.Tensor, torch.Tensor, int]] = {}
        self._handles = [m.register_forward_hook(self._forward_hook) for m in self.layers]

    # ------------------------------------------------------------------ statistics
    @contextmanager
    def record_stats(self) -> Iterator[None]:
        """Capture Kronecker-factor statistics during the backward passes run inside."""
        self._recording, self._pending = True, {}
        try:
            yield
        finally:
            self._recording = False
        self._update_factors()

    def _forward_hook(self, module: KFACLayer, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if torch.is_grad_enabled() and output.requires_grad:
            x = inputs[0].detach()
            output.register_hook(lambda grad, m=module, x=x: self._backward_hook(m, x, grad))

    def _backward_hook(self, module: KFACLayer, x: torch.Tensor, grad: torch.Tensor) -> None:
        if not self._recording:
            return
        batch = grad.shape[0]
        if isinstance(module, nn.Conv2d):
            # KFC: one row per output location of the unfolded input patches
            padding = module.padding
            assert not isinstance(padding, str), "string padding is not K-FAC supported (_kfac_supported)"
            a = F.unfold(x, module.kernel_size, module.dilation, padding, module.stride)
            a = a.transpose(1, 2).reshape(-1, a.shape[1])
            ds = grad.permute(0, 2, 3, 1).reshape(-1, grad.shape[1])
        else:
            a = x.reshape(-1, x.shape[-1])
            ds = grad.reshape(-1, grad.shape[-1])
        if module.bias is not None:
            a = torch.cat([a, a.new_ones(a.shape[0], 1)], dim=1)
        ds = ds * batch  # the Fisher loss is a batch mean: recover per-sample gradients
        cov_a = a.T @ a / batch                   # sum over locations, mean over samples
        cov_g = ds.T @ ds / ds.shape[0]           # mean over locations and samples
        pending = self._pending.get(module)
        if pending is None:
            self._pending[module] = (cov_a, cov_g, 1)
        else:  # the layer was applied more than once: average its statistics
            self._pending[module] = (pending[0] + cov_a, pending[1] + cov_g, pending[2] + 1)

    @torch.no_grad()
    def _update_factors(self) -> None:
        if not self._pending:
            return
        group = self.param_groups[0]
        group["stats_updates"] += 1
        weight = max(1.0 - group["stats_decay"], 1.0 / group["stats_updates"])
        for module, (sum_a, sum_g, count) in self._pending.items():
            state = self.state[module.weight]
            if "A" not in state:
                state["A"], state["G"] = torch.zeros_like(sum_a), torch.zeros_like(sum_g)
            state["A"] = torch.lerp(state["A"], sum_a / count, weight)
            state["G"] = torch.lerp(state["G"], sum_g / count, weight)
        self._pending = {}

    def factors(self, module: KFACLayer) -> tuple[torch.Tensor, torch.Tensor]:
        """Current running Kronecker factors ``(A, G)`` of a Linear/Conv2d layer of the model."""
        state = self.state[module.weight]
        if "A" not in state:
            raise ValueError("no statistics recorded yet for this layer: backward a Fisher loss in record_stats()")
        return state["A"], state["G"]

    # ------------------------------------------------------------------ preconditioning
    @staticmethod
    def _eigh(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            evals, evecs = torch.linalg.eigh(matrix)
        except torch.linalg.LinAlgError:  # rare non-convergence: retry with a small jitter
            jitter = 1e-6 * matrix.diagonal().abs().mean().clamp_min(1e-12)
            evals, evecs = torch.linalg.eigh(matrix + jitter * torch.eye(len(matrix), dtype=matrix.dtype))
        return evals.clamp_min(0.0), evecs

    @staticmethod
    def _damped_inverse(matrix: torch.Tensor, damping: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(len(matrix), dtype=matrix.dtype, device=matrix.device)
        chol, info = torch.linalg.cholesky_ex(matrix + damping * eye)
        if int(info) != 0:  # not numerically positive definite: fall back to the eigen route
            evals, evecs = KFAC._eigh(matrix)
            return (evecs / (evals + damping).clamp_min(1e-30)) @ evecs.T
        return torch.cholesky_inverse(chol)

    @torch.no_grad()
    def update_curvature(self) -> None:
        """Refresh the damped inverses (or eigen-decompositions) of all factors.

        ``step`` calls this every ``kfac_update`` K-FAC steps.
        """
        group = self.param_groups[0]
        for module in self.layers:
            state = self.state[module.weight]
            if "A" not in state:
                continue
            a, g = state["A"], state["G"]
            if group["factored_damping"]:
                # Martens & Grosse 2015 section 6.3: pi balances the damping between the two factors
                gamma = math.sqrt(group["damping"])
                pi = torch.sqrt((a.diagonal().mean() / g.diagonal().mean().clamp_min(1e-12)).clamp_min(1e-12))
                state["A_inv"] = self._damped_inverse(a, gamma * pi)
                state["G_inv"] = self._damped_inverse(g, gamma / pi)
            else:
                state["dA"], state["QA"] = self._eigh(a)
                state["dG"], state["QG"] = self._eigh(g)

    @staticmethod
    def _grad_matrix(module: KFACLayer, grads: dict[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        mat = grads[module.weight].reshape(module.weight.shape[0], -1)
        if module.bias is not None:
            mat = torch.cat([mat, grads[module.bias].unsqueeze(1)], dim=1)
        return mat

    @torch.no_grad()
    def precondition(self, grads: dict[torch.Tensor, torch.Tensor]) -> dict[torch.Tensor, torch.Tensor]:
        """Return ``F_damped^-1 g`` per parameter (identity block for non-K-FAC parameters)."""
        group = self.param_groups[0]
        damping = group["damping"]
        out = dict(grads)
        for module in self.layers:
            state = self.state[module.weight]
            if module.weight not in grads or ("A_inv" if group["factored_damping"] else "QA") not in state:
                continue
            v = self._grad_matrix(module, grads)
            if group["factored_damping"]:
                v = state["G_inv"] @ v @ state["A_inv"]
            else:
                d_a, q_a, d_g, q_g = state["dA"], state["QA"], state["dG"], state["QG"]
                v = q_g.T @ v @ q_a
                v = v / (d_g.unsqueeze(1) * d_a.unsqueeze(0) + damping).clamp_min(1e-30)
                v = q_g @ v @ q_a.T
            if module.bias is not None:
                out[module.bias] = v[:, -1].contiguous()
                v = v[:, :-1]
            out[module.weight] = v.reshape(module.weight.shape)
        return out

    # ------------------------------------------------------------------ step
    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update: plain SGD (with momentum) during warm-up, then the scaled K-FAC step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return loss
        grads = {p: p.grad for p in params}
        if group["max_grad_norm"] is not None:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads.values()]))
            clip = (group["max_grad_norm"] / (norm + 1e-6)).clamp(max=1.0)
            grads = {p: g * clip for p, g in grads.items()}
        if group["weight_decay"] > 0:
            grads = {p: g + group["weight_decay"] * p for p, g in grads.items()}

        lr, momentum = group["lr"], group["momentum"]
        kfac_steps = group["step"] - group["cold_iter"]
        if kfac_steps < 0 or group["stats_updates"] == 0:
            # warm-up: plain SGD with heavy-ball momentum at cold_lr, its own momentum buffer
            for p in params:
                buf = self.state[p].get("cold_momentum_buffer")
                if buf is None:
                    buf = self.state[p]["cold_momentum_buffer"] = torch.zeros_like(p)
                buf.mul_(momentum).add_(grads[p])
                p.add_(buf, alpha=-group["cold_lr"])
            group["step"] += 1
            return loss

        key = "A_inv" if group["factored_damping"] else "QA"
        if kfac_steps % group["kfac_update"] == 0 or any(
            key not in self.state[m.weight] and "A" in self.state[m.weight] for m in self.layers
        ):
            self.update_curvature()
        updates = self.precondition(grads)
        # ACKTR section 3.2: dtheta^T F dtheta = lr^2 v^T g, scale to respect kfac_clip
        vg = sum((updates[p] * grads[p]).sum() for p in params)
        scale = torch.sqrt(group["kfac_clip"] / (lr**2 * vg).clamp_min(1e-30)).clamp(max=1.0)
        self.last_scale = scale
        # momentum as an exponential average of the scaled natural-gradient steps
        for p in params:
            buf = self.state[p].get("momentum_buffer")
            if buf is None:
                buf = self.state[p]["momentum_buffer"] = torch.zeros_like(p)
            buf.mul_(momentum).add_(updates[p] * scale, alpha=1.0 - momentum)
            p.add_(buf, alpha=-lr)
        group["step"] += 1
        return loss

    def remove_hooks(self) -> None:
        """Detach the forward hooks from the model (the optimizer stops collecting statistics)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
