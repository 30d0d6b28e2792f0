"""One module per algorithm; ``ALGOS`` maps lower-case names to classes."""
from rlzoo.algos.a2c import A2C
from rlzoo.algos.acer import ACER
from rlzoo.algos.acktr import ACKTR
from rlzoo.algos.ppo import PPO
from rlzoo.algos.trpo import TRPO

ALGOS = {"a2c": A2C, "acer": ACER, "ppo": PPO, "trpo": TRPO, "acktr": ACKTR}

__all__ = ["A2C", "ACER", "PPO", "TRPO", "ACKTR", "ALGOS"]
