"""rlzoo: reinforcement-learning algorithms and a command-line training zoo on PyTorch and Gymnasium.

The algorithms are imported lazily (on first access of ``rlzoo.PPO``, ``rlzoo.ALGOS``, ...), so
``import rlzoo.envs`` in a subprocess env worker does not pay for torch and every algorithm.
"""
from typing import Any

from rlzoo.version import __version__

_ALGO_NAMES = ("A2C", "ACER", "ACKTR", "DDPG", "DQN", "PPO", "SAC", "TD3", "TRPO")
__all__ = ["ALGOS", "__version__", *_ALGO_NAMES]


def __getattr__(name: str) -> Any:
    if name == "ALGOS" or name in _ALGO_NAMES:
        import rlzoo.algos as algos

        if not hasattr(algos, name):
            raise AttributeError(f"rlzoo has no algorithm {name} in this version")
        return getattr(algos, name)
    raise AttributeError(f"module 'rlzoo' has no attribute {name!r}")
