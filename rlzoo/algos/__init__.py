"""One module per algorithm; ``ALGOS`` maps lower-case names to classes."""
from rlzoo.algos.a2c import A2C
from rlzoo.algos.ppo import PPO

ALGOS = {"a2c": A2C, "ppo": PPO}

__all__ = ["A2C", "PPO", "ALGOS"]
