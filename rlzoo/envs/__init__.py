"""Vector environments and wrappers: gymnasium vector API with same-step autoreset.

``obs, infos = env.reset(seed=0)``; ``obs, rewards, terminated, truncated, infos = env.step(a)``;
the last observation of a finished episode is in ``infos["final_obs"]`` (see :func:`final_observations`)
and its Monitor record in ``infos["final_info"]["episode"]`` (see :func:`episode_stats`).
"""

from rlzoo.envs.atari import AtariWrapper, is_atari_env_id, make_atari_env
from rlzoo.envs.frame_stack import VecFrameStack
from rlzoo.envs.make import UnknownEnvError, get_env_spec, make_vec_env
from rlzoo.envs.monitor import Monitor, load_results, plot_results, ts2xy
from rlzoo.envs.partially_observable import (
    MaskVelocityWrapper,
    register_partially_observable_envs,
)
from rlzoo.envs.native import AtariNativeVecEnv, CartPoleNativeVecEnv, EnvPoolVecEnv
from rlzoo.envs.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnvWrapper,
    episode_stats,
    final_observations,
    is_image_space,
    is_image_space_channels_first,
    unwrap_vec_wrapper,
)
from rlzoo.envs.vec_normalize import RunningMeanStd, VecNormalize, unwrap_vec_normalize

__all__ = [
    "AtariNativeVecEnv",
    "AtariWrapper",
    "CartPoleNativeVecEnv",
    "DummyVecEnv",
    "MaskVelocityWrapper",
    "EnvPoolVecEnv",
    "Monitor",
    "RunningMeanStd",
    "SubprocVecEnv",
    "UnknownEnvError",
    "VecEnvWrapper",
    "VecFrameStack",
    "VecNormalize",
    "episode_stats",
    "final_observations",
    "get_env_spec",
    "is_atari_env_id",
    "is_image_space",
    "is_image_space_channels_first",
    "load_results",
    "make_atari_env",
    "make_vec_env",
    "plot_results",
    "ts2xy",
    "unwrap_vec_normalize",
    "unwrap_vec_wrapper",
]

register_partially_observable_envs()
