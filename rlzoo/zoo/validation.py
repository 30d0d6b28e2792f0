"""Ranges of hyperparameter values, from one table, checked before anything is written.

:data:`RANGES` maps a hyperparameter name to the numbers it accepts (``gamma`` in [0, 1],
``n_steps`` >= 1, a learning rate > 0, ...). :func:`check_ranges` applies it to a validated entry
(``lin_<v>`` schedules are checked on their initial value) and also rejects NaN and infinity
anywhere in the entry, nested mappings and lists included. :data:`ENV_KWARG_RANGES` does the
same for the keyword arguments of ``gymnasium.make``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rlzoo.zoo.errors import ZooError


@dataclass(frozen=True)
class Rule:
    """Numbers in ``[low, high]`` (``low_open``/``high_open``: bound excluded); ``integer``: whole numbers only."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        """``in [0, 1]``, ``>= 1``, ``> 0`` ..."""
        kind = "an integer " if self.integer else ""
        if self.low is not None and self.high is not None:
            return (f"{kind}in {'(' if self.low_open else '['}{_num(self.low)}, "
                    f"{_num(self.high)}{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{kind}{'>' if self.low_open else '>='} {_num(self.low)}"
        if self.high is not None:
            return f"{kind}{'<' if self.high_open else '<='} {_num(self.high)}"
        return kind.strip() or "a finite number"

    def accepts(self, value: float) -> bool:
        """Whether ``value`` (already known to be a finite number) satisfies the rule."""
        if self.integer and float(value) != int(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return False
        return True


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


UNIT = Rule(0, 1)
POSITIVE = Rule(0, None, low_open=True)
NON_NEGATIVE = Rule(0)
AT_LEAST_ONE = Rule(1, integer=True)
COUNT = Rule(0, integer=True)

#: The one table of hyperparameter ranges (keys absent here only get the finite-number check).
RANGES: dict[str, Rule] = {
    # discounting and averaging factors
    "gamma": UNIT, "gae_lambda": UNIT, "tau": UNIT, "alpha": UNIT, "momentum": UNIT, "stats_decay": UNIT,
    "rprop_alpha": UNIT, "exploration_fraction": UNIT, "exploration_initial_eps": UNIT,
    "exploration_final_eps": UNIT, "line_search_shrinking_factor": Rule(0, 1, low_open=True, high_open=True),
    # step sizes and thresholds
    "learning_rate": POSITIVE, "cold_lr": POSITIVE, "clip_range": POSITIVE, "clip_range_vf": POSITIVE,
    "max_grad_norm": POSITIVE, "target_kl": POSITIVE, "delta": POSITIVE, "rms_prop_eps": POSITIVE,
    "rprop_epsilon": POSITIVE, "prioritized_replay_eps": POSITIVE, "kl_tolerance": POSITIVE,
    # coefficients
    "ent_coef": NON_NEGATIVE, "vf_coef": NON_NEGATIVE, "q_coef": NON_NEGATIVE, "vf_fisher_coef": NON_NEGATIVE,
    "cg_damping": NON_NEGATIVE, "kfac_damping": NON_NEGATIVE, "kfac_clip": NON_NEGATIVE,
    "target_policy_noise": NON_NEGATIVE, "target_noise_clip": NON_NEGATIVE, "noise_std": NON_NEGATIVE,
    "prioritized_replay_alpha": NON_NEGATIVE, "prioritized_replay_beta0": NON_NEGATIVE,
    "replay_ratio": NON_NEGATIVE, "correction_term": NON_NEGATIVE,
    # counts
    "n_steps": AT_LEAST_ONE, "batch_size": AT_LEAST_ONE, "n_epochs": AT_LEAST_ONE, "buffer_size": AT_LEAST_ONE,
    "n_timesteps": AT_LEAST_ONE, "n_envs": AT_LEAST_ONE, "frame_stack": AT_LEAST_ONE,
    "target_update_interval": AT_LEAST_ONE, "policy_delay": AT_LEAST_ONE, "n_critic_updates": AT_LEAST_ONE,
    "cg_max_steps": AT_LEAST_ONE, "line_search_max_iter": AT_LEAST_ONE, "kfac_update": AT_LEAST_ONE,
    "sub_sampling_factor": AT_LEAST_ONE, "n_sdn_samples": AT_LEAST_ONE, "train_freq": AT_LEAST_ONE,
    "param_noise_adaption_interval": AT_LEAST_ONE, "cold_iter": COUNT,
    "learning_starts": COUNT, "replay_start": COUNT, "gradient_steps": Rule(-1, integer=True),
    "sde_sample_freq": Rule(-1, integer=True),
}

#: Ranges of ``env_kwargs``/``--env-kwargs`` values that gymnasium would otherwise accept.
ENV_KWARG_RANGES: dict[str, Rule] = {"max_episode_steps": AT_LEAST_ONE}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _non_finite(value: Any, path: str) -> str | None:
    """The dotted path of the first NaN/infinity inside ``value`` (None when all numbers are finite)."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            if not math.isfinite(float(value[4:])):
                return path
        except ValueError:
            return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _non_finite(item, f"{path}.{key}")
            if found:
                return found
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _non_finite(item, f"{path}[{i}]")
            if found:
                return found
    return None


def _number_of(key: str, value: Any) -> float | None:
    """The number a value stands for: itself, a ``lin_<v>`` schedule's start, ``train_freq: [n, unit]``'s n."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            return float(value[4:])
        except ValueError:
            return None
    if key == "train_freq" and isinstance(value, (list, tuple)) and value and _is_number(value[0]):
        return float(value[0])
    return None


def check_ranges(entry: dict[str, Any], where: str, table: dict[str, Rule] | None = None) -> None:
    """Raise :class:`ZooError` naming ``where`` and the key for the first value out of range or not finite."""
    table = RANGES if table is None else table
    for key, value in entry.items():
        bad = _non_finite(value, str(key))
        if bad is not None:
            raise ZooError(f"{where}: '{bad}' must be a finite number, got {value!r}")
        rule = table.get(key)
        if rule is None:
            continue
        number = _number_of(key, value)
        if number is not None and not rule.accepts(number):
            raise ZooError(f"{where}: '{key}' must be {rule.describe()}, got {value!r}")


def check_env_kwargs(kwargs: dict[str, Any], where: str) -> None:
    """Ranges of ``gymnasium.make`` arguments (``max_episode_steps`` >= 1) and finite numbers."""
    check_ranges(kwargs, where, ENV_KWARG_RANGES)
