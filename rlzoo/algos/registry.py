"""The one place an algorithm is declared: its name, class, hyperparameter file and search space.

``rlzoo.ALGOS``, ``rlzoo.PPO`` (and every other class name), ``rlzoo list``, ``rlzoo train`` and
``rlzoo optimize`` all read this table. An algorithm of rlzoo is one row of :data:`BUILTIN`; an
algorithm of another installed package declares an :class:`AlgoSpec` under the entry-point group
``rlzoo.algos`` of its package metadata (or calls :func:`register` on import) — see CONTRIBUTING.md.

Classes and search spaces are named as ``"module:attribute"`` strings written here in code (never read
from a file) and imported on first use, so reading the table does not import torch.
"""
from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

ENTRY_POINT_GROUP = "rlzoo.algos"


@dataclass(frozen=True)
class AlgoSpec:
    """One algorithm.

    :param name: lower-case name used on the command line and as the key of ``ALGOS``
    :param cls: the class, or ``"module:ClassName"`` imported on first use
    :param hyperparams: the zoo's hyperparameter file: a file name inside ``rlzoo/hyperparams``
        (``"ppo.yml"``) or an absolute path (another package's file); None: no tuned file
    :param search_space: ``f(trial, ctx) -> dict`` for ``rlzoo optimize``, or ``"module:function"``;
        None: the algorithm cannot be tuned
    """

    name: str
    cls: type | str
    hyperparams: str | Path | None = None
    search_space: Callable[..., dict[str, Any]] | str | None = None

    @property
    def class_name(self) -> str:
        """The class's name (``"PPO"``) without importing it."""
        return self.cls.rpartition(":")[2] if isinstance(self.cls, str) else self.cls.__name__

    def load_class(self) -> type:
        """The algorithm class (imported on first use)."""
        return _load(self.cls) if isinstance(self.cls, str) else self.cls

    def load_search_space(self) -> Callable[..., dict[str, Any]] | None:
        """The search-space function, or None when the algorithm has none."""
        return _load(self.search_space) if isinstance(self.search_space, str) else self.search_space


def _load(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def _builtin(name: str, cls: str) -> AlgoSpec:
    return AlgoSpec(name=name, cls=cls, hyperparams=f"{name}.yml",
                    search_space=f"rlzoo.zoo.search_spaces:sample_{name}")


#: rlzoo's own algorithms.
BUILTIN: tuple[AlgoSpec, ...] = (
    _builtin("a2c", "rlzoo.algos.a2c:A2C"),
    _builtin("acer", "rlzoo.algos.acer:ACER"),
    _builtin("acktr", "rlzoo.algos.acktr:ACKTR"),
    _builtin("ddpg", "rlzoo.algos.td3:DDPG"),
    _builtin("dqn", "rlzoo.algos.dqn:DQN"),
    _builtin("ppo", "rlzoo.algos.ppo:PPO"),
    _builtin("sac", "rlzoo.algos.sac:SAC"),
    _builtin("td3", "rlzoo.algos.td3:TD3"),
    _builtin("trpo", "rlzoo.algos.trpo:TRPO"),
)

_REGISTRY: dict[str, AlgoSpec] = {spec.name: spec for spec in BUILTIN}
_plugins_loaded = False
_algos: dict[str, type] | None = None


def register(spec: AlgoSpec) -> AlgoSpec:
    """Add an algorithm (another package's); a name already taken is an error."""
    if not spec.name or spec.name != spec.name.lower():
        raise ValueError(f"an algorithm name is a non-empty lower-case string, got {spec.name!r}")
    known = _REGISTRY.get(spec.name)
    if known is not None and known != spec:
        raise ValueError(f"the algorithm name {spec.name!r} is taken (by {known.class_name})")
    _REGISTRY[spec.name] = spec
    if _algos is not None:
        _algos[spec.name] = spec.load_class()
    return spec


def _load_plugins() -> None:
    """Register the ``rlzoo.algos`` entry points of installed packages (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = ep.load()
            if not isinstance(spec, AlgoSpec):
                raise TypeError(f"{ep.value} is a {type(spec).__name__}, not an rlzoo AlgoSpec")
            register(spec)
        except Exception as e:  # a broken plugin must not take rlzoo down
            warnings.warn(f"algorithm plugin {ep.name!r} not loaded ({type(e).__name__}: {e})", stacklevel=2)


def specs() -> dict[str, AlgoSpec]:
    """Every algorithm by name: rlzoo's and those of installed plugins."""
    _load_plugins()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> AlgoSpec | None:
    """The algorithm called ``name`` (lower case), or None."""
    return specs().get(name)


def algorithms() -> dict[str, type]:
    """``ALGOS``: name -> class (imports every algorithm on first use). One dict for the process, kept in
    step with :func:`register`; an entry added to it directly is honoured by the zoo too."""
    global _algos
    if _algos is None:
        _algos = {name: spec.load_class() for name, spec in specs().items()}
    return _algos


def class_by_name(class_name: str) -> type | None:
    """The algorithm class called ``class_name`` (``"PPO"``), or None."""
    for spec in specs().values():
        if spec.class_name == class_name:
            return spec.load_class()
    return None


def class_names() -> list[str]:
    """Names of rlzoo's own algorithm classes (without importing them)."""
    return [spec.class_name for spec in BUILTIN]
