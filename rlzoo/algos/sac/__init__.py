"""SAC (Haarnoja et al. 2018) and its squashed Gaussian actor."""
from rlzoo.algos.sac.policies import SACCnnPolicy, SACMultiInputPolicy, SACPolicy, SquashedGaussianActor
from rlzoo.algos.sac.sac import SAC

__all__ = ["SAC", "SACPolicy", "SACCnnPolicy", "SACMultiInputPolicy", "SquashedGaussianActor"]
