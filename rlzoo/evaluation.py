"""Policy evaluation: see :mod:`rlzoo.common.evaluation`."""
from rlzoo.common.evaluation import evaluate_policy, sync_envs_normalization

__all__ = ["evaluate_policy", "sync_envs_normalization"]
