"""Public utilities: seeding and schedules."""
from rlzoo.common.utils import (ConstantSchedule, LinearSchedule, explained_variance, get_device,
                                get_schedule_fn, linear_schedule, set_global_seeds)

__all__ = ["set_global_seeds", "linear_schedule", "LinearSchedule", "ConstantSchedule",
           "get_schedule_fn", "get_device", "explained_variance"]
