"""ACKTR (Wu et al. 2017): A2C with the K-FAC natural gradient and its trust region."""
from rlzoo.algos.acktr.acktr import ACKTR

__all__ = ["ACKTR"]
