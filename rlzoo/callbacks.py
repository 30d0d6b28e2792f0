"""Training callbacks: see :mod:`rlzoo.common.callbacks` and :mod:`rlzoo.common.eval_callbacks`."""
from rlzoo.common.callbacks import (BaseCallback, CallbackList, ConvertCallback, EventCallback, EveryNTimesteps,
                                    ProgressBarCallback, StopTrainingOnMaxEpisodes, StopTrainingOnNoModelImprovement,
                                    StopTrainingOnRewardThreshold, make_callback)
from rlzoo.common.eval_callbacks import CheckpointCallback, EvalCallback

__all__ = ["BaseCallback", "EventCallback", "CallbackList", "ConvertCallback", "make_callback", "CheckpointCallback",
           "EvalCallback", "StopTrainingOnRewardThreshold", "StopTrainingOnNoModelImprovement",
           "StopTrainingOnMaxEpisodes", "EveryNTimesteps", "ProgressBarCallback"]
