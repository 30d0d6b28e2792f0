"""Public face of the exploration noises (implementation in :mod:`rlzoo.common.noise`)."""
from rlzoo.common.noise import (ActionNoise, AdaptiveParamNoiseSpec, NormalActionNoise, OrnsteinUhlenbeckActionNoise,
                                VectorizedActionNoise)

__all__ = ["ActionNoise", "NormalActionNoise", "OrnsteinUhlenbeckActionNoise", "VectorizedActionNoise",
           "AdaptiveParamNoiseSpec"]
