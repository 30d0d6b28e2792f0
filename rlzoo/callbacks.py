"""Training callbacks: see :mod:`rlzoo.common.callbacks`."""
from rlzoo.common.callbacks import (BaseCallback, CallbackList, CheckpointCallback, ConvertCallback, EvalCallback,
                                    EventCallback, EveryNTimesteps, ProgressBarCallback, StopTrainingOnMaxEpisodes,
                                    StopTrainingOnNoModelImprovement, StopTrainingOnRewardThreshold, make_callback)

__all__ = ["BaseCallback", "EventCallback", "CallbackList", "ConvertCallback", "make_callback", "CheckpointCallback",
           "EvalCallback", "StopTrainingOnRewardThreshold", "StopTrainingOnNoModelImprovement",
           "StopTrainingOnMaxEpisodes", "EveryNTimesteps", "ProgressBarCallback"]
