"""Small shared utilities: seeding, devices, schedules and tensor helpers."""
from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlzoo.common.registry import number, register_saveable

Schedule = Callable[[float], float]


def space_shape(space: spaces.Space) -> tuple[int, ...]:
    """The shape of one element of ``space`` (``()`` for a space without one, such as ``Dict``)."""
    return space.shape or ()


def set_global_seeds(seed: int) -> None:
    """Seed python, numpy and torch so that a run on CPU is reproducible."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``"auto"`` to CUDA when available, else CPU; reject unknown devices with a clear error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}: use auto, cpu or cuda") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available on this machine")
    return dev


@register_saveable("ConstantSchedule", config={"value": (number, True)},
                   legacy=("rlzoo.common.utils.ConstantSchedule",))
class ConstantSchedule:
    """A schedule that always returns ``value``; JSON-serializable through ``to_config``."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def __call__(self, progress_remaining: float) -> float:
        return self.value

    def to_config(self) -> dict:
        """Constructor arguments, as JSON-able values."""
        return {"value": self.value}

    @classmethod
    def from_config(cls, config: dict) -> ConstantSchedule:
        """Rebuild from :meth:`to_config` output."""
        return cls(config["value"])

    def __repr__(self) -> str:
        return f"ConstantSchedule({self.value})"


@register_saveable("LinearSchedule", config={"initial_value": (number, True), "final_value": (number, False)},
                   legacy=("rlzoo.common.utils.LinearSchedule",))
class LinearSchedule:
    """Linear interpolation from ``initial_value`` (progress 1) to ``final_value`` (progress 0)."""

    def __init__(self, initial_value: float, final_value: float = 0.0) -> None:
        self.initial_value = float(initial_value)
        self.final_value = float(final_value)

    def __call__(self, progress_remaining: float) -> float:
        return self.final_value + progress_remaining * (self.initial_value - self.final_value)

    def to_config(self) -> dict:
        """Constructor arguments, as JSON-able values."""
        return {"initial_value": self.initial_value, "final_value": self.final_value}

    @classmethod
    def from_config(cls, config: dict) -> LinearSchedule:
        """Rebuild from :meth:`to_config` output."""
        return cls(config["initial_value"], config.get("final_value", 0.0))

    def __repr__(self) -> str:
        return f"LinearSchedule({self.initial_value}, {self.final_value})"


def linear_schedule(initial_value: float, final_value: float = 0.0) -> LinearSchedule:
    """Learning-rate (or clip-range) schedule decreasing linearly to ``final_value`` over training."""
    return LinearSchedule(initial_value, final_value)


def get_schedule_fn(value: float | Schedule) -> Schedule:
    """Turn a constant into a :class:`ConstantSchedule`; keep callables as they are."""
    if callable(value):
        return value
    return ConstantSchedule(float(value))


def explained_variance(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """1 - Var[y_true - y_pred] / Var[y_true]: 1 is perfect, 0 no better than a constant."""
    var_y = np.var(y_true)
    return float("nan") if var_y == 0 else float(1.0 - np.var(y_true - y_pred) / var_y)


def obs_to_tensor(obs: Any, device: torch.device) -> Any:
    """numpy observation (array or dict of arrays) -> torch tensor(s) on ``device`` without copying on CPU."""
    if isinstance(obs, dict):
        return {k: torch.as_tensor(v, device=device) for k, v in obs.items()}
    return torch.as_tensor(obs, device=device)


_DEFAULT_THREADS = torch.get_num_threads()  # torch's choice at import, before rlzoo changes it


def tune_threads(small_model: bool) -> None:
    """Intra-op threads for a model about to train: ``RLZOO_NUM_THREADS`` when set; else one thread for
    small MLPs (fastest), and torch's own default for big models (all cores or ``OMP_NUM_THREADS``)."""
    if os.environ.get("RLZOO_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["RLZOO_NUM_THREADS"]))
    else:
        torch.set_num_threads(1 if small_model else _DEFAULT_THREADS)


@contextlib.contextmanager
def threads_override(n_threads: int | None) -> Iterator[None]:
    """Within the block, ``n_threads`` intra-op threads for every model, as ``RLZOO_NUM_THREADS`` would give
    (``rlzoo train --num-threads``); ``None`` changes nothing. The previous setting is put back after."""
    if n_threads is None:
        yield
        return
    before = os.environ.get("RLZOO_NUM_THREADS")
    os.environ["RLZOO_NUM_THREADS"] = str(int(n_threads))
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("RLZOO_NUM_THREADS", None)
        else:
            os.environ["RLZOO_NUM_THREADS"] = before


@contextlib.contextmanager
def large_batch_threads() -> Iterator[None]:
    """All the intra-op threads rlzoo may use (``RLZOO_NUM_THREADS``, else torch's default) for one large
    batched computation of a small model (e.g. DQN's target values of a whole train() call: 8192 rows),
    then back to the model's own count."""
    before = torch.get_num_threads()
    wanted = int(os.environ["RLZOO_NUM_THREADS"]) if os.environ.get("RLZOO_NUM_THREADS") else _DEFAULT_THREADS
    if wanted != before:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if wanted != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def flush_denormals(enabled: bool = True) -> Iterator[None]:
    """Flush denormal floats (|x| < 1.2e-38) to zero on this thread while training on CPU, then put the
    previous mode back.

    On x86 an operation on denormals takes up to ~100x longer; they appear in Adam's second moments of
    near-zero gradients, and flushing them made DQN CartPole's update 1.5x faster with the same learning
    curve (XLA, under SBX, flushes them by default). The mode is per thread and process-wide state, so it
    is set only for the duration of ``learn()`` (callbacks run under it too).
    """
    was_on = bool(np.float32(1e-39) == 0)  # a denormal literal reads as zero when flushing is on
    if enabled and not was_on:
        torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if enabled and not was_on:
            torch.set_flush_denormal(False)
