"""TD3 (Fujimoto et al. 2018) and DDPG (Lillicrap et al. 2016, TD3 with its tricks switched off, plus
parameter noise); their deterministic actor and critics."""
from rlzoo.algos.td3.ddpg import DDPG
from rlzoo.algos.td3.policies import Actor, TD3CnnPolicy, TD3MultiInputPolicy, TD3Policy
from rlzoo.algos.td3.td3 import TD3

__all__ = ["TD3", "DDPG", "TD3Policy", "TD3CnnPolicy", "TD3MultiInputPolicy", "Actor"]
