"""Stop a run whose weights or losses became NaN/inf, before a non-finite model is saved anywhere."""
from __future__ import annotations

import math
import time
from typing import Any

from rlzoo.callbacks import BaseCallback


class TrainingDiverged(Exception):
    """The model's weights or a training loss are no longer finite."""

    def __init__(self, timesteps: int, what: str) -> None:
        super().__init__(f"NaN/inf in {what} at {timesteps} timesteps")
        self.timesteps = timesteps
        self.what = what


def non_finite_part(model: Any) -> str | None:
    """Name of the first non-finite parameter or logged ``train/`` loss of ``model`` (None when all finite)."""
    import torch

    policy = getattr(model, "policy", None)
    if policy is not None:
        for name, param in policy.named_parameters():
            if not bool(torch.isfinite(param).all()):
                return f"the weights ({name})"
    logger = getattr(model, "logger", None)
    values = getattr(logger, "name_to_value", None) or {}
    for key, value in list(values.items()):
        if key.startswith("train/") and isinstance(value, float) and not math.isfinite(value):
            return f"the loss {key}"
    return None


class DivergenceGuard(BaseCallback):
    """Check the weights after every update (at most every ``interval_s`` seconds) and right before
    every checkpoint save (every ``save_every`` calls), raising :class:`TrainingDiverged`.

    It must come before the checkpoint callback in the callback list.
    """

    def __init__(self, save_every: int = 0, interval_s: float = 0.05) -> None:
        super().__init__()
        self.save_every = int(save_every)
        self.interval_s = interval_s
        self._last = 0.0

    def check(self) -> None:
        """Raise :class:`TrainingDiverged` when the model is no longer finite."""
        what = non_finite_part(self.model)
        if what is not None:
            raise TrainingDiverged(int(self.model.num_timesteps), what)
        self._last = time.monotonic()

    def _on_rollout_start(self) -> None:
        if time.monotonic() - self._last >= self.interval_s:
            self.check()

    def _on_step(self) -> bool:
        if self.save_every and self.n_calls % self.save_every == 0:
            self.check()
        return True
