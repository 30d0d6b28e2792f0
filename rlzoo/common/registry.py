"""The closed registry of what a saved file may name.

A model file stores a few values that are not plain JSON: learning-rate / clip-range schedules,
action-noise objects, activation classes, rlzoo policy and features-extractor classes. Each is
written as a tag naming a *registered* entry; loading looks the tag up in this registry (an exact
dictionary lookup: nothing is imported, no attribute is resolved from a name read from a file) and
rebuilds an object only through its registered ``from_config`` after its configuration passed the
entry's type checks. Anything else is a :class:`ModelFileError` naming the tag; user classes come
only from the ``custom_objects`` the caller passes to ``load``.

Registration is explicit: ``@register_saveable("Name", config={...})`` on a class with
``to_config``/``from_config`` (schedules, noises), :func:`register_class` for classes stored as
values (activations, policies, features extractors).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

# --------------------------------------------------------------------------- errors


class ModelFileError(ValueError):
    """A file that is not a readable rlzoo model (corrupt, truncated, foreign, hostile or of another algorithm)."""


def short(value: Any, limit: int = 80) -> str:
    """``repr`` of a value read from a file, cut to one short line (for error messages)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --------------------------------------------------------------------------- config checks
Checker = Callable[[Any, str], Any]
MAX_CONFIG_ELEMENTS = 1 << 16  # numbers in one array-valued config entry (noise mean/sigma)


def number(value: Any, where: str) -> float:
    """A finite int or float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelFileError(f"{where} must be a number, got {short(value)}")
    try:
        out = float(value)
    except OverflowError:
        raise ModelFileError(f"{where} is out of range") from None
    if not math.isfinite(out):
        raise ModelFileError(f"{where} must be finite, got {short(value)}")
    return out


def integer(lo: int, hi: int) -> Checker:
    """An int (not a bool) in ``[lo, hi]``."""
    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ModelFileError(f"{where} must be an integer in [{lo}, {hi}], got {short(value)}")
        return value
    return check


def numbers(value: Any, where: str) -> Any:
    """A finite number or a (nested, rectangular) list of them, at most MAX_CONFIG_ELEMENTS."""
    count = [0]

    def walk(v: Any, depth: int) -> Any:
        if isinstance(v, list):
            if depth > 8:
                raise ModelFileError(f"{where} is nested too deeply")
            return [walk(x, depth + 1) for x in v]
        count[0] += 1
        if count[0] > MAX_CONFIG_ELEMENTS:
            raise ModelFileError(f"{where} has more than {MAX_CONFIG_ELEMENTS} numbers")
        return number(v, where)

    return walk(value, 0)


def optional(checker: Checker) -> Checker:
    """``None`` or what ``checker`` accepts."""
    def check(value: Any, where: str) -> Any:
        return None if value is None else checker(value, where)
    return check


def instance_of(cls: type) -> Checker:
    """An object already rebuilt from a tag, of class ``cls``."""
    def check(value: Any, where: str) -> Any:
        if not isinstance(value, cls):
            raise ModelFileError(f"{where} must be a saved {cls.__name__}, got {short(value)}")
        return value
    return check


# --------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Entry:
    """One registered name: a class rebuilt from a config (``config`` set) or a class stored as a value."""

    name: str
    cls: type
    config: dict[str, tuple[Checker, bool]] | None = None  # key -> (checker, required)


_REGISTRY: dict[str, Entry] = {}
_LEGACY: dict[str, str] = {}   # full dotted names written by rlzoo <= 0.x -> registered name
_BY_CLASS: dict[type, str] = {}
_builtins_loaded = False


def _add(entry: Entry, legacy: tuple[str, ...]) -> None:
    if entry.name in _REGISTRY and _REGISTRY[entry.name].cls is not entry.cls:
        raise ValueError(f"the saveable name {entry.name!r} is registered twice")
    _REGISTRY[entry.name] = entry
    _BY_CLASS.setdefault(entry.cls, entry.name)
    for old in legacy:
        _LEGACY[old] = entry.name


def register_saveable(name: str, config: dict[str, tuple[Checker, bool]],
                      legacy: tuple[str, ...] = ()) -> Callable[[type], type]:
    """Class decorator: instances are saved as ``{"__object__": name, "config": obj.to_config()}`` and
    rebuilt with ``cls.from_config(config)`` once every entry passed its checker.

    :param config: ``{key: (checker, required)}``; keys outside it are refused
    :param legacy: full dotted names older rlzoo releases wrote for this class
    """
    def decorate(cls: type) -> type:
        if not callable(getattr(cls, "from_config", None)) or not callable(getattr(cls, "to_config", None)):
            raise TypeError(f"{cls.__name__} needs to_config and from_config to be saveable")
        _add(Entry(name, cls, dict(config)), legacy)
        return cls
    return decorate


def register_class(name: str, cls: type, legacy: tuple[str, ...] = ()) -> None:
    """Allow the class ``cls`` itself as a stored value (``{"__class__": name}``)."""
    _add(Entry(name, cls), legacy)


def _load_builtins() -> None:
    """Register rlzoo's policy / features-extractor classes and torch's activations (once, on first use)."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    from torch import nn

    import rlzoo.common.noise  # noqa: F401  (registers the noises)
    import rlzoo.common.utils  # noqa: F401  (registers the schedules)
    from rlzoo import ALGOS
    from rlzoo.algos.dqn import policies as dqn_pol
    from rlzoo.algos.sac import policies as sac_pol
    from rlzoo.algos.td3 import policies as td3_pol
    from rlzoo.common import policies as pol
    from rlzoo.common import prioritized_replay, replay

    for act in ("ReLU", "Tanh", "ELU", "LeakyReLU", "SiLU", "GELU", "Sigmoid", "Softplus", "SELU", "Identity",
                "Mish"):
        module = "linear" if act == "Identity" else "activation"
        register_class(act, getattr(nn, act), legacy=(f"torch.nn.modules.{module}.{act}", f"torch.nn.{act}"))
    # optimizer_class values (policy_kwargs): torch's optimizers and the TensorFlow-style RMSprop
    import torch

    from rlzoo.common.optim import RMSpropTF
    for opt in ("Adam", "AdamW", "RMSprop", "SGD", "Adagrad"):
        register_class(opt, getattr(torch.optim, opt), legacy=(f"torch.optim.{opt}",))
    register_class("RMSpropTF", RMSpropTF, legacy=("RMSpropTFLike",))
    # (module named in files of earlier releases, module the classes live in now, class names)
    classes: list[tuple[str, ModuleType, tuple[str, ...]]] = [
        ("rlzoo.common.policies", pol, ("BaseFeaturesExtractor", "FlattenExtractor", "NatureCNN",
                                        "CombinedExtractor", "BasePolicy", "ActorCriticPolicy",
                                        "ActorCriticCnnPolicy", "MultiInputActorCriticPolicy")),
        ("rlzoo.common.off_policy_policies", dqn_pol, ("DQNPolicy", "DQNCnnPolicy", "DQNMultiInputPolicy")),
        ("rlzoo.common.off_policy_policies", td3_pol, ("TD3Policy", "TD3CnnPolicy", "TD3MultiInputPolicy")),
        ("rlzoo.common.off_policy_policies", sac_pol, ("SACPolicy", "SACCnnPolicy", "SACMultiInputPolicy")),
        # replay_buffer_class values (DDPG / TD3 / SAC / DQN)
        ("rlzoo.common.replay", replay, ("ReplayBuffer",)),
        ("rlzoo.common.replay", prioritized_replay, ("PrioritizedReplayBuffer",)),
    ]
    for old_module, new_module, names in classes:
        for name in names:
            register_class(name, getattr(new_module, name), legacy=(f"{old_module}.{name}",))
    # the policies each algorithm declares by alias (ACER's own, and any an algorithm adds later)
    legacy_modules = {"acer": "rlzoo.algos.acer"}
    for algo, cls in ALGOS.items():
        for policy in getattr(cls, "policy_aliases", {}).values():
            if policy not in _BY_CLASS:
                old = legacy_modules.get(algo)
                register_class(policy.__name__, policy, legacy=(f"{old}.{policy.__name__}",) if old else ())


def lookup(tag: Any, custom_objects: dict[str, Any] | None = None) -> tuple[Any, Entry | None]:
    """``(class, entry)`` for a tag read from a file: ``custom_objects`` first, then the registry (also
    by the legacy full names of older files). ``entry`` is None for a user class from ``custom_objects``."""
    if not isinstance(tag, str):
        raise ModelFileError(f"model file names a class with a non-string tag {short(tag)}")
    if custom_objects and tag in custom_objects:
        return custom_objects[tag], None
    _load_builtins()
    entry = _REGISTRY.get(tag) or _REGISTRY.get(_LEGACY.get(tag, ""))
    if entry is None:
        raise ModelFileError(f"model file names {short(tag)}, which is not a value rlzoo may load: a user class "
                             f"must be passed with custom_objects={{{tag!r}: YourClass}}")
    return entry.cls, entry


def name_of(cls: type) -> str | None:
    """The registered name of ``cls`` (None for classes outside the registry)."""
    _load_builtins()
    return _BY_CLASS.get(cls)


def rebuild(tag: str, entry: Entry | None, cls: Any, config: Any) -> Any:
    """Rebuild the object of tag ``tag`` from its (already decoded) ``config``.

    Registered entries: keys and value types are checked first, then ``from_config`` is called; any
    error it raises becomes a :class:`ModelFileError`. User classes from ``custom_objects`` get the
    plain-data config through their own ``from_config``.
    """
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise ModelFileError(f"model file: the config of {tag} is not a mapping")
    if entry is not None:
        if entry.config is None:
            raise ModelFileError(f"model file: {tag} is a class, not an object with a config")
        unknown = sorted(set(config) - set(entry.config))
        if unknown:
            raise ModelFileError(f"model file: {tag} has no setting {short(unknown[0])}")
        checked = {}
        for key, (checker, required) in entry.config.items():
            if key in config:
                checked[key] = checker(config[key], f"{tag}.{key}")
            elif required:
                raise ModelFileError(f"model file: {tag} lacks its setting {key!r}")
        config = checked
    from_config = getattr(cls, "from_config", None)
    if not callable(from_config):
        raise ModelFileError(f"model file: {tag} cannot be rebuilt (no from_config)")
    try:
        return from_config(config)
    except ModelFileError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, OverflowError, ArithmeticError, MemoryError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"model file: invalid {tag} ({short(msg, 120)})") from None
