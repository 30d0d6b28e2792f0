"""Names the user types: algorithms (``rlzoo.ALGOS``), env ids (gymnasium registry), import paths."""
from __future__ import annotations

import importlib
import re
from typing import Any

from rlzoo.algos import registry
from rlzoo.zoo.errors import ZooError, did_you_mean

_MODULE_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_OBJECT_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*([.:][A-Za-z_]\w*)$")


def algorithms() -> dict[str, type[Any]]:
    """``rlzoo.ALGOS``: every algorithm (rlzoo's and installed plugins'), by lower-case name."""
    return registry.algorithms()


def resolve_algo(name: str) -> tuple[str, type[Any]]:
    """``(name, class)`` of an algorithm; an unknown name is an error with a suggestion."""
    algos = registry.algorithms()
    key = name.strip().lower()
    if key not in algos:
        raise ZooError(
            f"unknown algorithm '{name}'{did_you_mean(key, algos)} (available: {', '.join(sorted(algos))})"
        )
    return key, algos[key]


def import_module_path(path: str, what: str = "module") -> Any:
    """Import a module from a validated dotted name (never evaluates code strings)."""
    if not _MODULE_RE.match(path):
        raise ZooError(f"invalid {what} name '{path}' (expected a dotted module name like 'my_pkg.envs')")
    try:
        return importlib.import_module(path)
    except ImportError as e:
        raise ZooError(f"cannot import {what} '{path}': {e}") from None
    except SystemExit as e:  # a module that calls exit() on import must not end the command silently
        raise ZooError(f"{what} '{path}' called exit({e.code!r}) while being imported") from None
    except Exception as e:  # noqa: BLE001 - any error raised by the user's module while importing it
        raise ZooError(f"{what} '{path}' raised {type(e).__name__} while being imported: "
                       f"{' '.join(str(e).split())[:200]}") from None


def import_object(path: str, what: str = "object") -> Any:
    """Import ``"pkg.module.Name"`` or ``"pkg.module:Name"`` with importlib after validating the path."""
    if not isinstance(path, str) or not _OBJECT_RE.match(path):
        raise ZooError(f"invalid {what} path {path!r} (expected an import path like 'my_pkg.wrappers.MyWrapper')")
    if ":" in path:
        module_part, attr_part = path.split(":", 1)
        candidates = [(module_part, attr_part.split("."))]
    else:
        parts = path.split(".")
        # try the longest importable module prefix first: a.b.C, then a.B.C (nested attribute)
        candidates = [(".".join(parts[:i]), parts[i:]) for i in range(len(parts) - 1, 0, -1)]
    last_error: Exception | None = None
    for module_name, attrs in candidates:
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            last_error = e
            if e.name and not module_name.startswith(e.name):  # an import *inside* the module failed
                raise ZooError(f"cannot import {what} '{path}': {e}") from None
            continue
        except ImportError as e:
            raise ZooError(f"cannot import {what} '{path}': {e}") from None
        try:
            for attr in attrs:
                obj = getattr(obj, attr)
        except AttributeError:
            raise ZooError(f"cannot import {what} '{path}': '{module_name}' has no attribute "
                           f"'{'.'.join(attrs)}'") from None
        return obj
    raise ZooError(f"cannot import {what} '{path}': {last_error}")


def import_gym_packages(packages: list[str] | None) -> None:
    """Import user modules that register custom gymnasium envs (``--gym-packages``)."""
    for package in packages or []:
        import_module_path(package, "--gym-packages module")


def _register_ale() -> None:
    try:
        import ale_py
        import gymnasium as gym

        gym.register_envs(ale_py)
    except ImportError:
        pass


def is_atari(env_id: str) -> bool:
    """True for ALE env ids (``PongNoFrameskip-v4``, ``ALE/Pong-v5``)."""
    from rlzoo.envs import is_atari_env_id

    return bool(is_atari_env_id(env_id))


def env_modules(env_id: str, gym_packages: list[str] | None = None) -> list[str]:
    """Modules to import before making ``env_id``: ``--gym-packages`` and a ``package:`` prefix."""
    modules = list(gym_packages or [])
    if ":" in env_id:
        modules.append(env_id.split(":", 1)[0])
    return modules


def resolve_env(env_id: str, gym_packages: list[str] | None = None) -> str:
    """Check that ``env_id`` is registered (importing ``--gym-packages`` and a ``package:EnvId`` prefix).

    Returns the plain env id. An unknown id is an error with the closest registered ids.
    """
    import gymnasium as gym

    import_gym_packages(gym_packages)
    if ":" in env_id:
        package, env_id = env_id.split(":", 1)
        import_module_path(package, "gym package")
    registry = gym.envs.registry
    if env_id not in registry:
        _register_ale()
    if env_id not in registry:
        hint = did_you_mean(env_id, registry.keys(), n=3)
        raise ZooError(f"unknown environment '{env_id}'{hint}")
    return env_id
