"""TRPO (Schulman et al. 2015): a conjugate-gradient natural-gradient step with a KL line search."""
from rlzoo.algos.trpo.trpo import TRPO

__all__ = ["TRPO"]
