"""One package (or module) per algorithm family; :mod:`rlzoo.algos.registry` declares them.

``ALGOS`` maps lower-case names to classes; ``rlzoo.algos.PPO`` and the other class names are
imported on first access.
"""
from typing import Any

from rlzoo.algos.registry import class_by_name, class_names

__all__ = ["ALGOS", *class_names()]


def __getattr__(name: str) -> Any:
    if name == "ALGOS":
        from rlzoo.algos.registry import algorithms

        return algorithms()
    cls = class_by_name(name) if name[:1].isupper() else None
    if cls is None:
        raise AttributeError(f"module 'rlzoo.algos' has no attribute {name!r}")
    return cls
