"""The options of ``rlzoo train`` as one frozen object, built once by the CLI and passed down.

``--resume`` reuses the run options recorded in ``run.json`` (:data:`RUN_OPTIONS`) unless they are
given again on the command line: :meth:`TrainOptions.with_stored` returns the options with those
values, and :func:`check_run_options` holds them to the command line's rules.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlzoo.zoo.config import parse_key_values
from rlzoo.zoo.errors import ZooError

if TYPE_CHECKING:
    from rlzoo.zoo.tracking import TrackingOptions

#: ``--vec-env`` choices (see :func:`rlzoo.envs.make_vec_env`)
VEC_ENV_KINDS = ("auto", "native", "envpool", "dummy", "subproc")

#: Options of ``rlzoo train`` recorded in run.json and reused by ``--resume`` unless given again.
RUN_OPTIONS = ("vec_env", "device", "tensorboard_log", "eval_freq", "eval_episodes", "save_freq", "progress",
               "verbose", "n_eval_envs", "eval_env_kwargs", "num_threads", "log_interval")


@dataclass(frozen=True)
class TrainOptions:
    """Everything ``rlzoo train`` was asked to do (defaults: those of the command line).

    ``hyperparams``, ``env_kwargs`` and ``eval_env_kwargs`` are ``key=value`` strings (values are
    YAML); ``track`` is where a tracked run goes (None: not tracked); ``argv`` is the command's
    arguments (recorded in run.json); ``given`` names the options given on the command line.
    """

    algo: str
    env_id: str
    n_timesteps: int | None = None
    seed: int | None = None
    log_folder: str = "logs"
    n_envs: int | None = None
    vec_env: str = "auto"
    device: str = "auto"
    tensorboard_log: str | None = None
    eval_freq: int = 10_000
    eval_episodes: int = 5
    save_freq: int = 0
    hyperparams: tuple[str, ...] = ()
    env_kwargs: tuple[str, ...] = ()
    conf_file: Path | None = None
    trained_agent: Path | None = None
    resume: Path | None = None
    progress: bool = True
    gym_packages: tuple[str, ...] = ()
    verbose: int = 0
    n_eval_envs: int = 1
    eval_env_kwargs: tuple[str, ...] = ()
    num_threads: int | None = None
    log_interval: int | None = None
    uuid: bool = False
    track: TrackingOptions | None = None
    argv: tuple[str, ...] = ()
    given: frozenset[str] = frozenset()

    def stored(self) -> dict[str, Any]:
        """The run options recorded in run.json: those ``--resume`` reuses."""
        out = {name: getattr(self, name) for name in RUN_OPTIONS}
        out["eval_env_kwargs"] = list(out["eval_env_kwargs"])
        return out

    def with_stored(self, stored: Mapping[str, Any]) -> TrainOptions:
        """These options with the run options of ``stored`` (a run's run.json) not given on the command line.

        The values are taken as they are: :func:`check_run_options` validates them."""
        reused = {name: stored[name] for name in RUN_OPTIONS if name not in self.given and name in stored}
        return dataclasses.replace(self, **reused)


def check_run_options(opts: TrainOptions) -> dict[str, Any]:
    """Hold the run options (maybe read back from run.json) to the command line's rules.

    Returns the parsed ``eval_env_kwargs``."""
    for name in ("eval_freq", "save_freq", "eval_episodes", "verbose"):
        value = getattr(opts, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "eval_episodes" else 0):
            raise ZooError(f"run option {name} must be a {'positive' if name == 'eval_episodes' else 'non-negative'}"
                           f" integer, got {value!r}")
    if opts.vec_env not in VEC_ENV_KINDS:
        raise ZooError(f"run option vec_env must be one of {', '.join(VEC_ENV_KINDS)}, got {opts.vec_env!r}")
    for name in ("n_eval_envs", "num_threads", "log_interval"):
        value = getattr(opts, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ZooError(f"run option {name} must be a positive integer, got {value!r}")
    if opts.n_eval_envs is None:
        raise ZooError("run option n_eval_envs must be a positive integer, got None")
    kwargs = opts.eval_env_kwargs
    if not isinstance(kwargs, (list, tuple)) or not all(isinstance(k, str) for k in kwargs):
        raise ZooError(f"run option eval_env_kwargs must be a list of key=value strings, got {kwargs!r}")
    return parse_key_values(list(kwargs), "--eval-env-kwargs")
