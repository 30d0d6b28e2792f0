"""rlzoo: reinforcement-learning algorithms and a command-line training zoo on PyTorch and Gymnasium.

The algorithms are imported lazily (on first access of ``rlzoo.PPO``, ``rlzoo.ALGOS``, ...), so
``import rlzoo.envs`` in a subprocess env worker does not pay for torch and every algorithm. The
algorithms are declared once, in :mod:`rlzoo.algos.registry`.
"""
from typing import Any

from rlzoo.algos.registry import class_names
from rlzoo.version import __version__

__all__ = ["ALGOS", "__version__", *class_names()]


def __getattr__(name: str) -> Any:
    if name[:1].isupper():
        import rlzoo.algos as algos

        try:
            return getattr(algos, name)
        except AttributeError:
            pass
    raise AttributeError(f"module 'rlzoo' has no attribute {name!r}")
