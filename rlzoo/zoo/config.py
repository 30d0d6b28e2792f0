"""Hyperparameter files (``hyperparams/<algo>.yml``): load, validate, override and resolve.

A file maps env ids (plus ``atari`` and ``default``) to entries. An entry's keys are the algorithm's
constructor arguments plus the zoo's own keys (:data:`ZOO_KEYS`). Validation happens before anything
is written: an unknown key names the closest allowed one, a wrong type or malformed YAML is a
one-line :class:`ZooError` (the checks of an entry: :mod:`rlzoo.zoo.hyperparams_schema`). Resolution
turns the plain YAML values into Python objects: ``lin_<v>`` schedules, ``policy_kwargs``
activation/optimizer names, import paths of wrappers and callbacks.
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

import yaml

from rlzoo.common.base import OPTIMIZER_KEYS
from rlzoo.zoo.errors import ZooError, did_you_mean
from rlzoo.zoo.hyperparams_files import (hyperparams_file, load_hyperparams_file, load_yaml, parse_yaml,
                                         select_entry)
from rlzoo.zoo.hyperparams_schema import (CLASS_KEYS, ZOO_KEYS, class_from_table, is_schedule_str, allowed_keys,
                                          constructor_schema, validate_entry)
from rlzoo.zoo.resolve import import_object
from rlzoo.zoo.validation import check_env_kwargs


# ----------------------------------------------------------------------------- overrides
def parse_key_values(items: list[str] | None, where: str) -> dict[str, Any]:
    """``["a=1", "b=lin_0.1", "c={x: 1}"]`` -> ``{"a": 1, "b": "lin_0.1", "c": {"x": 1}}``.

    Values are read as YAML.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ZooError(f"{where}: expected key=value, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ZooError(f"{where}: expected key=value, got {item!r}")
        out[key] = parse_yaml(text, f"{where} {key}") if text.strip() else None
    return out


# ----------------------------------------------------------------------------- the resolved config
@dataclass
class ZooConfig:
    """A validated experiment configuration.

    ``hyperparams`` is the plain YAML mapping written to ``config.yml``; the other fields are the
    resolved objects the experiment uses.
    """

    algo: str
    env_id: str
    source: str
    hyperparams: dict[str, Any]
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    env_modules: tuple[str, ...] = ()  # modules that register the env (imported in every env process)

    @property
    def n_timesteps(self) -> int:
        """Total training timesteps."""
        return int(self.hyperparams["n_timesteps"])

    @property
    def n_envs(self) -> int:
        """Number of parallel training envs."""
        return int(self.hyperparams.get("n_envs", 1))

    @property
    def policy(self) -> str:
        """Policy name (``MlpPolicy`` ...)."""
        return self.hyperparams.get("policy", "MlpPolicy")

    @property
    def normalize(self) -> dict[str, Any] | None:
        """VecNormalize kwargs or None (``gamma`` defaults to the algorithm's gamma)."""
        value = self.hyperparams.get("normalize", False)
        if not value:
            return None
        kwargs = dict(value) if isinstance(value, dict) else {}
        gamma = self.hyperparams.get("gamma")
        if "gamma" in self.hyperparams and "gamma" not in kwargs and isinstance(gamma, (int, float)):
            kwargs["gamma"] = float(gamma)
        return kwargs

    @property
    def frame_stack(self) -> int | None:
        """Number of stacked frames, or None."""
        return self.hyperparams.get("frame_stack") or None

    @property
    def env_kwargs(self) -> dict:
        """Keyword arguments of ``gymnasium.make``."""
        return dict(self.hyperparams.get("env_kwargs") or {})

    def env_wrappers(self) -> list[tuple[Callable, dict]]:
        """Imported ``env_wrapper`` classes with their kwargs, outermost last. YAML has no tuples:
        a list argument is passed as a tuple (gymnasium's wrappers take shapes as tuples, e.g.
        ``ResizeObservation: {shape: [64, 64]}``)."""
        return [(wrapper, {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})
                for wrapper, kwargs in _import_list(self.hyperparams.get("env_wrapper"), "env_wrapper")]

    def callbacks(self) -> list[tuple[Callable, dict]]:
        """Imported ``callback`` classes with their kwargs."""
        return _import_list(self.hyperparams.get("callback"), "callback")

    @property
    def noise(self) -> tuple[str, float] | None:
        """``(noise_type, noise_std)`` or None."""
        if not self.hyperparams.get("noise_type"):
            return None
        return self.hyperparams["noise_type"], float(self.hyperparams.get("noise_std", 0.1))

    def to_yaml(self) -> str:
        """``config.yml`` text: a header comment and the flat resolved entry (usable with --conf-file)."""
        header = (
            f"# rlzoo configuration: {self.algo} on {self.env_id} (from {self.source}).\n"
            f"# Re-use it with: rlzoo train --algo {self.algo} --env {self.env_id} --conf-file config.yml\n"
        )
        return header + yaml.safe_dump(_plain(self.hyperparams), sort_keys=True, default_flow_style=False)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _import_list(value: Any, what: str) -> list[tuple[Callable[..., Any], dict[str, Any]]]:
    out: list[tuple[Callable[..., Any], dict[str, Any]]] = []
    for item in value or []:
        if isinstance(item, str):
            out.append((import_object(item, what), {}))
        else:
            (path, kwargs), = item.items()
            out.append((import_object(path, what), dict(kwargs or {})))
    return out


def resolve_schedule(value: Any) -> Any:
    """``"lin_3e-4"`` -> ``linear_schedule(3e-4)``; anything else unchanged."""
    if is_schedule_str(value):
        from rlzoo.utils import linear_schedule

        return linear_schedule(float(value[4:]))
    return value


def resolve_policy_kwargs(policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Turn names in ``policy_kwargs`` into classes (activation, optimizer, features extractor)."""
    out: dict[str, Any] = {}
    for key, value in policy_kwargs.items():
        if key in CLASS_KEYS and isinstance(value, str):
            cls = class_from_table(key, value)
            out[key] = cls if cls is not None else import_object(value, f"policy_kwargs.{key}")
        else:
            out[key] = value
    return out


def model_kwargs_of(hyperparams: dict[str, Any], cls: type[Any]) -> dict[str, Any]:
    """Constructor keyword arguments (resolved objects) from a validated plain entry."""
    schema = constructor_schema(cls)
    kwargs: dict[str, Any] = {}
    for key, value in hyperparams.items():
        if key in ZOO_KEYS:
            continue
        if key == "policy_kwargs":
            kwargs[key] = resolve_policy_kwargs(value)
        elif isinstance(value, list) and key in schema and "tuple" in schema[key].kinds \
                and list not in schema[key].kinds:
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = resolve_schedule(value)
    return kwargs


def check_policy(cls: type[Any], algo: str, policy: str, policy_kwargs: dict, where: str) -> None:
    """The policy name must be one of the algorithm's, and ``policy_kwargs`` keys its constructor's."""
    aliases = getattr(cls, "policy_aliases", None) or {}
    if aliases and policy not in aliases:
        raise ZooError(f"{where}: unknown policy '{policy}' for {algo}{did_you_mean(policy, aliases)} "
                       f"(available: {', '.join(aliases)})")
    policy_cls = aliases.get(policy)
    if policy_cls is None or not policy_kwargs:
        return
    params = inspect.signature(policy_cls.__init__).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    allowed = sorted(set(params) - {"self", "observation_space", "action_space"})
    if getattr(cls, "fixed_optimizer", None) is None:  # the optimizer's keys (SB3's), where it is not the algorithm
        allowed = sorted({*allowed, *OPTIMIZER_KEYS})
    for key in policy_kwargs:
        if key not in allowed:
            raise ZooError(f"{where}: unknown policy_kwargs key '{key}' for {policy}{did_you_mean(key, allowed)} "
                           f"(allowed: {', '.join(allowed)})")


def flat_or_keyed(data: dict, env_id: str, atari: bool, allowed: set[str], where: str) -> tuple[str, dict]:
    """A ``--conf-file`` is either a flat entry (like ``config.yml``) or a file keyed by env id.

    It is keyed when every value is a mapping (or empty) and no key is a hyperparameter name; otherwise
    it is flat, so that an unknown key of a flat file is reported as such (with the closest name).
    """
    keyed = all(isinstance(v, dict) or v is None for v in data.values()) and not any(
        isinstance(k, str) and k in allowed for k in data)
    if data and not keyed:
        return where, dict(data)
    name, entry = select_entry(data, env_id, atari, where)
    return f"{where} [{name}]", entry


def build_config(
    algo: str,
    cls: type[Any],
    env_id: str,
    atari: bool = False,
    conf_file: str | os.PathLike[str] | None = None,
    overrides: dict[str, Any] | None = None,
    n_timesteps: int | None = None,
    n_envs: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> ZooConfig:
    """Load, validate and resolve the configuration of one experiment.

    Order (later wins): the entry of ``hyperparams/<algo>.yml`` (or of ``conf_file``), the
    ``--hyperparams`` overrides, then the ``-n``, ``--n-envs`` and ``--env-kwargs`` options.
    """
    allowed = set(allowed_keys(cls))
    if conf_file is not None:
        data = load_yaml(conf_file)
        if not isinstance(data, dict):
            raise ZooError(f"{conf_file}: expected a mapping of hyperparameters, got {type(data).__name__}")
        where, entry = flat_or_keyed(data, env_id, atari, allowed, str(conf_file))
    else:
        path = hyperparams_file(algo)
        if not path.is_file():
            raise ZooError(f"no hyperparameter file for {algo} ({path}); pass one with --conf-file")
        rel = f"hyperparams/{path.name}"
        name, entry = select_entry(load_hyperparams_file(path), env_id, atari, rel)
        where = f"{rel} [{name}]"
    hyperparams = validate_entry(entry, cls, algo, where)
    if overrides:
        hyperparams.update(validate_entry(overrides, cls, algo, "--hyperparams"))
    if n_timesteps is not None:
        if n_timesteps <= 0:
            raise ZooError(f"the number of timesteps must be positive, got {n_timesteps}")
        hyperparams["n_timesteps"] = int(n_timesteps)
    if n_envs is not None:
        if n_envs <= 0:
            raise ZooError(f"--n-envs must be positive, got {n_envs}")
        hyperparams["n_envs"] = int(n_envs)
    if env_kwargs:
        check_env_kwargs(env_kwargs, "--env-kwargs")
        merged = dict(hyperparams.get("env_kwargs") or {})
        merged.update(env_kwargs)
        hyperparams["env_kwargs"] = merged
    if "n_timesteps" not in hyperparams:
        raise ZooError(f"{where}: 'n_timesteps' is missing (set it in the file or with -n)")
    hyperparams.setdefault("policy", "MlpPolicy")
    check_policy(cls, algo, hyperparams["policy"], hyperparams.get("policy_kwargs") or {}, where)
    hyperparams.setdefault("n_envs", 1)
    return ZooConfig(algo, env_id, where, hyperparams, model_kwargs_of(hyperparams, cls))
