"""The ``rlzoo`` command line (a Typer app): train, enjoy, record-gif, plot, list, optimize.

Every command turns bad input into ``error: <one line>`` on stderr and a non-zero exit code
(2 for bad input, 1 for an unexpected failure; ``RLZOO_DEBUG=1`` shows the traceback).
"""
from __future__ import annotations

import os
import sys
import zipfile
from enum import Enum
from pathlib import Path
from typing import Any, List, Optional, Sequence

import typer
from typer.core import TyperGroup

from rlzoo.zoo.errors import ZooError

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
_CURRENT_ARGS: list[str] = []  # the arguments of the command being run (recorded in run.json)


def _user_errors() -> tuple[type[BaseException], ...]:
    import yaml

    errors: list[type[BaseException]] = [ZooError, ValueError, FileNotFoundError, NotADirectoryError,
                                         IsADirectoryError, PermissionError, zipfile.BadZipFile, yaml.YAMLError]
    try:
        from rlzoo.common.save_format import ModelFileError

        errors.append(ModelFileError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def _fail(message: str) -> None:
    typer.echo(f"error: {_one_line(message)}", err=True)


class ZooGroup(TyperGroup):
    """Typer group with the zoo's global error handler and space-separated multi-value options.

    ``--hyperparams a=1 b=2`` is read as ``--hyperparams a=1 --hyperparams b=2`` for every option
    declared as a list (``multiple``), so commands accept argparse-style value lists.
    """

    def _expand_multi(self, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            return args
        command = self.commands[args[0]]
        multi = {opt for p in command.params if getattr(p, "multiple", False) for opt in getattr(p, "opts", ())}
        out, i = [args[0]], 1
        while i < len(args):
            token = args[i]
            out.append(token)
            i += 1
            if token == "--":
                out.extend(args[i:])
                break
            if token in multi:
                first = True
                while i < len(args) and (first or not args[i].startswith("-")):
                    if not first:
                        out.append(token)
                    out.append(args[i])
                    first = False
                    i += 1
        return out

    def main(self, args: Optional[Sequence[str]] = None, prog_name: Optional[str] = None,
             complete_var: Optional[str] = None, standalone_mode: bool = True, **extra: Any) -> Any:
        """Run the command line; every error becomes one ``error:`` line and an exit code."""
        args = self._expand_multi(list(sys.argv[1:] if args is None else args))
        global _CURRENT_ARGS
        _CURRENT_ARGS = list(args)
        code: int
        try:
            rv = super().main(args=args, prog_name=prog_name or "rlzoo", complete_var=complete_var,
                              standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except typer.TyperException as e:  # usage errors: unknown option/command, bad choice, missing option
            ctx = getattr(e, "ctx", None)
            name = getattr(ctx, "command_path", None) or "rlzoo"
            _fail((f"{name}: " if name != "rlzoo" else "") + e.format_message())
            code = getattr(e, "exit_code", EXIT_BAD_INPUT) or EXIT_BAD_INPUT
        except typer.Abort:
            _fail("aborted")
            code = 130
        except KeyboardInterrupt:
            _fail("interrupted")
            code = 130
        except _user_errors() as e:
            if os.environ.get("RLZOO_DEBUG"):
                raise
            _fail(str(e) or type(e).__name__)
            code = EXIT_BAD_INPUT
        except Exception as e:  # noqa: BLE001 - the global handler: one line, no traceback
            if os.environ.get("RLZOO_DEBUG"):
                raise
            _fail(f"unexpected {type(e).__name__}: {e} (set RLZOO_DEBUG=1 for the traceback)")
            code = EXIT_INTERNAL
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=ZooGroup,
    name="rlzoo",
    help="Train, evaluate, record and plot reinforcement-learning agents (rlzoo).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class VecEnvKind(str, Enum):
    """Vector env class: auto (native if the env has one that gives the same observations, else
    dummy), native (numpy/C++ batch), envpool, dummy (in-process) or subproc (one process per env)."""

    auto = "auto"
    native = "native"
    envpool = "envpool"
    dummy = "dummy"
    subproc = "subproc"


class Device(str, Enum):
    """Torch device."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class XAxis(str, Enum):
    """X axis of the learning curves."""

    timesteps = "timesteps"
    episodes = "episodes"
    walltime = "walltime"


# ----------------------------------------------------------------------------- shared options
ALGO = typer.Option(..., "--algo", help="Algorithm name (see `rlzoo list`).")
ENV = typer.Option(..., "--env", help="Gymnasium env id (`package:EnvId` imports the package first).")
LOG_FOLDER = typer.Option("logs", "-f", "--log-folder", help="Root folder of the run folders.")
EXP_ID = typer.Option(0, "--exp-id", help="Run number N of <EnvId>_N (0: the latest run).")
GYM_PACKAGES = typer.Option(None, "--gym-packages", help="Modules to import that register custom envs.")
ENV_KWARGS = typer.Option(None, "--env-kwargs", help="key=value arguments for gymnasium.make (values are YAML).")
SEED = typer.Option(None, "--seed", help="Random seed (default: drawn at random and recorded).")


def _nonneg(name: str, value: Optional[int]) -> None:
    if value is not None and value < 0:
        raise ZooError(f"{name} must be >= 0, got {value}")


@app.command()
def train(
    algo: str = ALGO,
    env: str = ENV,
    n_timesteps: Optional[int] = typer.Option(None, "-n", "--n-timesteps", help="Total timesteps (overrides the file)."),
    seed: Optional[int] = SEED,
    log_folder: str = LOG_FOLDER,
    n_envs: Optional[int] = typer.Option(None, "--n-envs", help="Number of parallel envs (overrides the file)."),
    vec_env: VecEnvKind = typer.Option(VecEnvKind.auto, "--vec-env",
                                       help="auto (native when it gives the same observations, e.g. CartPole; "
                                            "else dummy), native, envpool, dummy (in-process) or subproc."),
    compile_update: bool = typer.Option(False, "--compile", help="torch.compile the update step (compile=True)."),
    device: Device = typer.Option(Device.auto, "--device", help="Torch device."),
    tensorboard_log: Optional[str] = typer.Option(None, "-tb", "--tensorboard-log",
                                                  help="TensorBoard folder (default: <run>/tb)."),
    eval_freq: int = typer.Option(10_000, "--eval-freq", help="Evaluate every K timesteps (0: never)."),
    eval_episodes: int = typer.Option(5, "--eval-episodes", help="Episodes per evaluation."),
    save_freq: int = typer.Option(0, "--save-freq", help="Checkpoint every K timesteps (0: never)."),
    hyperparams: Optional[List[str]] = typer.Option(None, "--hyperparams", "-params",
                                                    help="key=value overrides (values are YAML: lin_3e-4, [64, 64])."),
    env_kwargs: Optional[List[str]] = ENV_KWARGS,
    conf_file: Optional[Path] = typer.Option(None, "--conf-file", "-conf",
                                             help="YAML file used instead of hyperparams/<algo>.yml "
                                                  "(flat like config.yml, or keyed by env id)."),
    trained_agent: Optional[Path] = typer.Option(None, "-i", "--trained-agent", help="Start from this model.zip."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run folder."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show training progress."),
    gym_packages: Optional[List[str]] = GYM_PACKAGES,
    verbose: int = typer.Option(0, "--verbose", "-v", help="Library log level (0: quiet, 1: training tables)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage of a study (with --trial-id)."),
    study_name: Optional[str] = typer.Option(None, "--study-name", help="Optuna study name (with --trial-id)."),
    trial_id: Optional[int] = typer.Option(None, "--trial-id", help="Train with this trial's hyperparameters."),
) -> None:
    """Train an agent; writes a run folder logs/<algo>/<EnvId>_<N>."""
    from rlzoo.zoo import experiment

    if trial_id is not None or storage is not None or study_name is not None:  # rlzoo optimize's trial K
        from rlzoo.zoo.tune import trial_overrides

        if resume is not None:
            raise ZooError("--resume continues a run with its own configuration; drop --trial-id")
        hyperparams = trial_overrides(algo, env, storage, study_name, trial_id, log_folder) + list(hyperparams or [])

    _nonneg("--eval-freq", eval_freq)
    _nonneg("--save-freq", save_freq)
    if eval_episodes <= 0:
        raise ZooError(f"--eval-episodes must be positive, got {eval_episodes}")
    if resume is not None:
        conflicts = [name for name, value in (("--hyperparams", hyperparams), ("--conf-file", conf_file),
                                              ("-i", trained_agent), ("--n-envs", n_envs),
                                              ("--env-kwargs", env_kwargs)) if value]
        if conflicts:
            raise ZooError(f"--resume continues a run with its own configuration; drop {', '.join(conflicts)}")
    if compile_update:
        hyperparams = [*(hyperparams or []), "compile=True"]
    experiment.train(
        algo=algo, env_id=env, n_timesteps=n_timesteps, seed=seed, log_folder=log_folder, n_envs=n_envs,
        vec_env=vec_env.value, device=device.value, tensorboard_log=tensorboard_log, eval_freq=eval_freq,
        eval_episodes=eval_episodes, save_freq=save_freq, hyperparams=hyperparams or [],
        env_kwargs=env_kwargs or [], conf_file=conf_file, trained_agent=trained_agent, resume=resume,
        progress=progress, gym_packages=gym_packages or [], verbose=verbose, argv=_argv(),
    )


@app.command()
def enjoy(
    algo: str = ALGO,
    env: str = ENV,
    log_folder: str = LOG_FOLDER,
    exp_id: int = EXP_ID,
    load_best: bool = typer.Option(False, "--load-best", help="Load best_model.zip (best evaluation)."),
    load_checkpoint: Optional[int] = typer.Option(None, "--load-checkpoint", help="Load checkpoints/<K>.zip."),
    n_timesteps: int = typer.Option(1000, "-n", "--n-timesteps", help="Number of env steps to run."),
    render: bool = typer.Option(True, "--render/--no-render", help="Show the agent in a window."),
    deterministic: Optional[bool] = typer.Option(
        None, "--deterministic/--stochastic", help="Action selection (default: stochastic on Atari, else deterministic)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the evaluation env."),
    env_kwargs: Optional[List[str]] = ENV_KWARGS,
    gym_packages: Optional[List[str]] = GYM_PACKAGES,
    device: Device = typer.Option(Device.auto, "--device", help="Torch device."),
) -> None:
    """Run a trained agent and print its mean ± std episode reward and length."""
    from rlzoo.zoo import enjoy as _enjoy

    if n_timesteps <= 0:
        raise ZooError(f"the number of timesteps must be positive, got {n_timesteps}")
    if load_best and load_checkpoint is not None:
        raise ZooError("use either --load-best or --load-checkpoint, not both")
    _nonneg("--exp-id", exp_id)
    _enjoy.enjoy(algo=algo, env_id=env, log_folder=log_folder, exp_id=exp_id, load_best=load_best,
                 load_checkpoint=load_checkpoint, n_timesteps=n_timesteps, render=render,
                 deterministic=deterministic, seed=seed, env_kwargs=env_kwargs or [],
                 gym_packages=gym_packages or [], device=device.value)


@app.command("record-gif")
def record_gif(
    algo: str = ALGO,
    env: str = ENV,
    log_folder: str = LOG_FOLDER,
    exp_id: int = EXP_ID,
    load_best: bool = typer.Option(False, "--load-best", help="Load best_model.zip (best evaluation)."),
    load_checkpoint: Optional[int] = typer.Option(None, "--load-checkpoint", help="Load checkpoints/<K>.zip."),
    n_timesteps: int = typer.Option(500, "-n", "--n-timesteps", help="Number of frames (env steps) to record."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="GIF path (default: <run>/<algo>-<EnvId>.gif)."),
    fps: Optional[int] = typer.Option(None, "--fps", help="Frames per second (default: the env's render_fps or 30)."),
    deterministic: Optional[bool] = typer.Option(
        None, "--deterministic/--stochastic", help="Action selection (default: stochastic on Atari, else deterministic)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the recorded env."),
    env_kwargs: Optional[List[str]] = ENV_KWARGS,
    gym_packages: Optional[List[str]] = GYM_PACKAGES,
    device: Device = typer.Option(Device.auto, "--device", help="Torch device."),
) -> None:
    """Record an animated GIF of a trained agent (rgb_array frames)."""
    from rlzoo.zoo import gif

    if n_timesteps <= 0:
        raise ZooError(f"the number of frames must be positive, got {n_timesteps}")
    if fps is not None and fps <= 0:
        raise ZooError(f"--fps must be positive, got {fps}")
    if load_best and load_checkpoint is not None:
        raise ZooError("use either --load-best or --load-checkpoint, not both")
    _nonneg("--exp-id", exp_id)
    gif.record_gif(algo=algo, env_id=env, log_folder=log_folder, exp_id=exp_id, load_best=load_best,
                   load_checkpoint=load_checkpoint, n_timesteps=n_timesteps, output=output, fps=fps,
                   deterministic=deterministic, seed=seed, env_kwargs=env_kwargs or [],
                   gym_packages=gym_packages or [], device=device.value)


@app.command()
def plot(
    log_folder: List[str] = typer.Option(["logs"], "-f", "--log-folder", help="Log folder(s) to scan."),
    algo: Optional[List[str]] = typer.Option(None, "--algo", help="Algorithms to plot (default: all)."),
    env: Optional[List[str]] = typer.Option(None, "--env", help="Env ids to plot (default: all)."),
    output: Path = typer.Option(Path("curves.png"), "-o", "--output", help="PNG file to write."),
    window: int = typer.Option(10, "-w", "--window", help="Smoothing window in episodes (1: none)."),
    x_axis: XAxis = typer.Option(XAxis.timesteps, "-x", "--x-axis", help="timesteps, episodes or walltime."),
    title: Optional[str] = typer.Option(None, "--title", help="Figure title."),
) -> None:
    """Plot learning curves (episode reward) of runs as a PNG; seeds as mean ± std band."""
    from rlzoo.zoo import plot as _plot

    if window < 1:
        raise ZooError(f"--window must be >= 1, got {window}")
    path = _plot.plot_runs(log_folders=log_folder, algos=algo or [], envs=env or [], output=output,
                           window=window, x_axis=x_axis.value, title=title)
    typer.echo(f"wrote {path}")


@app.command("list")
def list_(
    envs: bool = typer.Option(False, "--all-envs", help="Also list every registered gymnasium env id."),
) -> None:
    """List algorithms, their action spaces and the envs with tuned hyperparameters."""
    from rich.console import Console
    from rich.table import Table

    from rlzoo.zoo.hyperparams_files import hyperparams_file, tuned_envs
    from rlzoo.zoo.resolve import algorithms

    table = Table(title="rlzoo algorithms")
    table.add_column("algo", style="bold cyan")
    table.add_column("class")
    table.add_column("action spaces")
    table.add_column("tuned envs (hyperparams/<algo>.yml)")
    for name, cls in sorted(algorithms().items()):
        spaces_ = ", ".join(s.__name__ for s in getattr(cls, "supported_action_spaces", ()))
        entries = tuned_envs(name) if hyperparams_file(name).is_file() else []
        table.add_row(name, cls.__name__, spaces_ or "?", ", ".join(entries) or "(no file: use --conf-file)")
    console = Console()
    console.print(table)
    if envs:
        import gymnasium as gym

        from rlzoo.zoo.resolve import _register_ale

        _register_ale()
        console.print(", ".join(sorted(gym.envs.registry)))


def _argv() -> list[str]:
    return list(_CURRENT_ARGS)


def _register_plugins() -> None:
    """Commands living in other zoo modules (``rlzoo.zoo.tune``: optimize, sweep, ...) add themselves here."""
    import importlib
    import inspect

    for name in ("rlzoo.zoo.tune", "rlzoo.zoo.sweep", "rlzoo.zoo.benchmark"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        register = getattr(module, "register", None)
        if register is None:
            continue
        before = len(app.registered_commands)
        try:
            register(app)
            for info in app.registered_commands[before:]:  # what typer will need to build the command
                inspect.signature(info.callback, eval_str=True)
        except Exception as e:  # a broken plugin must not take the whole CLI down
            del app.registered_commands[before:]
            print(f"warning: commands of {name} not loaded ({type(e).__name__}: {e})", file=sys.stderr)


_register_plugins()


def _has_command(name: str) -> bool:
    return any((c.name or getattr(c.callback, "__name__", "").replace("_", "-")) == name
               for c in app.registered_commands)


if not _has_command("optimize"):

    @app.command()
    def optimize(
        algo: str = ALGO,
        env: str = ENV,
        n_trials: int = typer.Option(..., "--n-trials", help="Number of trials."),
        storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL or journal FILE.log."),
        study_name: Optional[str] = typer.Option(None, "--study-name", help="Study name."),
    ) -> None:
        """Tune hyperparameters with Optuna (needs rlzoo.zoo.tune)."""
        raise ZooError("hyperparameter optimization is not available in this version of rlzoo")


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Console-script entry point ``rlzoo``."""
    command = typer.main.get_command(app)
    command.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="rlzoo")


if __name__ == "__main__":  # pragma: no cover
    main()
