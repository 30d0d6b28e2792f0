"""DQN (Mnih et al. 2015) with double Q, dueling heads and prioritized replay; its Q-network."""
from rlzoo.algos.dqn.dqn import DQN
from rlzoo.algos.dqn.policies import DQNCnnPolicy, DQNMultiInputPolicy, DQNPolicy, QNetwork

__all__ = ["DQN", "DQNPolicy", "DQNCnnPolicy", "DQNMultiInputPolicy", "QNetwork"]
