"""The ``rlzoo`` command line (a Typer app): train, enjoy, record-gif, plot, list, optimize.

Every command turns bad input into ``error: <one line>`` on stderr and a non-zero exit code
(2 for bad input, 1 for an unexpected failure; ``RLZOO_DEBUG=1`` shows the traceback).
"""
from __future__ import annotations

if __name__ == "__main__":  # `python -m rlzoo.zoo.cli train`: SIGTERM/SIGINT handled before the heavy imports
    import sys as _sys

    if _sys.argv[1:2] == ["train"]:
        from rlzoo.zoo import stop_flag as _stop_flag

        _stop_flag.install()

import os
import sys
import zipfile
from enum import Enum
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import typer
from typer.core import TyperGroup

from rlzoo.zoo.errors import RunFailed, ZooError

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
_CURRENT_ARGS: list[str] = []  # the arguments of the command being run (recorded in run.json)


def _user_errors() -> tuple[type[BaseException], ...]:
    import yaml

    errors: list[type[BaseException]] = [ZooError, ValueError, FileNotFoundError, NotADirectoryError,
                                         IsADirectoryError, PermissionError, zipfile.BadZipFile, yaml.YAMLError]
    from rlzoo.common.save_format import ModelFileError

    return (*errors, ModelFileError)


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

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        """Run the command line; every error becomes one ``error:`` line and an exit code."""
        args = self._expand_multi(list(sys.argv[1:] if args is None else args))
        global _CURRENT_ARGS
        _CURRENT_ARGS = list(args)
        code: int
        try:
            rv = super().main(args=args, prog_name=prog_name or "rlzoo", complete_var=complete_var,
                              standalone_mode=False,
                              windows_expand_args=windows_expand_args, **extra)
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
        except RunFailed as e:  # the run could not go on (disk full, diverged); run.json says so
            _fail(str(e))
            code = EXIT_INTERNAL
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


class CurveSource(str, Enum):
    """Where the curves of ``rlzoo plot`` come from."""

    train = "train"
    eval = "eval"


class YAxis(str, Enum):
    """Y axis of the curves."""

    reward = "reward"
    length = "length"
    success = "success"


# ----------------------------------------------------------------------------- shared options
ALGO = typer.Option(..., "--algo", help="Algorithm name (see `rlzoo list`).")
ENV = typer.Option(..., "--env", help="Gymnasium env id (`package:EnvId` imports the package first).")
LOG_FOLDER = typer.Option("logs", "-f", "--log-folder", help="Root folder of the run folders.")
EXP_ID = typer.Option(0, "--exp-id", help="Run number N of <EnvId>_N (0: the latest run).")
GYM_PACKAGES = typer.Option(None, "--gym-packages", help="Modules to import that register custom envs.")
ENV_KWARGS = typer.Option(None, "--env-kwargs", help="key=value arguments for gymnasium.make (values are YAML).")
SEED = typer.Option(None, "--seed", help="Random seed (default: drawn at random and recorded).")


def _nonneg(name: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise ZooError(f"{name} must be >= 0, got {value}")


@app.command()
def train(
    ctx: typer.Context,
    algo: str = ALGO,
    env: str = ENV,
    n_timesteps: int | None = typer.Option(None, "-n", "--n-timesteps", help="Total timesteps (overrides the file)."),
    seed: int | None = SEED,
    log_folder: str = LOG_FOLDER,
    n_envs: int | None = typer.Option(None, "--n-envs", help="Number of parallel envs (overrides the file)."),
    vec_env: VecEnvKind = typer.Option(VecEnvKind.auto, "--vec-env",
                                       help="auto (native when it gives the same observations, e.g. CartPole; "
                                            "else dummy), native, envpool, dummy (in-process) or subproc."),
    device: Device = typer.Option(Device.auto, "--device", help="Torch device."),
    compile_: bool = typer.Option(False, "--compile",
                                  help="Run the update's networks as torch.compile'd graphs (the hyperparameter "
                                       "compile: true; slower on CPU, see the README's Speed section)."),
    tensorboard_log: str | None = typer.Option(None, "-tb", "--tensorboard-log",
                                                  help="TensorBoard folder (default: <run>/tb)."),
    eval_freq: int = typer.Option(10_000, "--eval-freq", help="Evaluate every K timesteps (0: never)."),
    eval_episodes: int = typer.Option(5, "--eval-episodes", help="Episodes per evaluation."),
    save_freq: int = typer.Option(0, "--save-freq", help="Checkpoint every K timesteps (0: never)."),
    hyperparams: list[str] | None = typer.Option(None, "--hyperparams", "-params",
                                                    help="key=value overrides (values are YAML: lin_3e-4, [64, 64])."),
    env_kwargs: list[str] | None = ENV_KWARGS,
    conf_file: Path | None = typer.Option(None, "--conf-file", "-conf",
                                             help="YAML file used instead of hyperparams/<algo>.yml "
                                                  "(flat like config.yml, or keyed by env id)."),
    trained_agent: Path | None = typer.Option(None, "-i", "--trained-agent", help="Start from this model.zip."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue an interrupted run folder."),
    resume_or_new: bool = typer.Option(
        False, "--resume-or-new", help="Continue this algo/env/seed's unfinished run in -f, skip it if it "
                                       "finished or another process runs it, else start it (needs --seed)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show training progress."),
    gym_packages: list[str] | None = GYM_PACKAGES,
    verbose: int = typer.Option(0, "--verbose", "-v", help="Library log level (0: quiet, 1: training tables)."),
    storage: str | None = typer.Option(None, "--storage", help="Optuna storage of a study (with --trial-id)."),
    study_name: str | None = typer.Option(None, "--study-name", help="Optuna study name (with --trial-id)."),
    trial_id: int | None = typer.Option(None, "--trial-id", help="Train with this trial's hyperparameters."),
    n_eval_envs: int = typer.Option(1, "--n-eval-envs", help="Parallel envs of the evaluation."),
    eval_env_kwargs: list[str] | None = typer.Option(
        None, "--eval-env-kwargs", help="key=value for the evaluation env only (over --env-kwargs)."),
    num_threads: int | None = typer.Option(None, "--num-threads", help="Torch CPU threads (default: torch's)."),
    log_interval: int | None = typer.Option(None, "--log-interval",
                                               help="Log every K updates (on-policy) or K episodes (off-policy)."),
    uuid: bool = typer.Option(False, "--uuid", help="Run folder <EnvId>_<N>_<uuid4>: unique names for array jobs."),
    track: bool = typer.Option(False, "--track",
                               help="Log the run to Weights & Biases (pip install 'rlzoo[tracking]')."),
    wandb_project: str = typer.Option("rlzoo", "--wandb-project", "--wandb-project-name", help="W&B project."),
    wandb_entity: str | None = typer.Option(None, "--wandb-entity", help="W&B entity (user or team)."),
    wandb_tags: list[str] | None = typer.Option(None, "--wandb-tags", help="W&B tags of the run."),
) -> None:
    """Train an agent; writes a run folder logs/<algo>/<EnvId>_<N>."""
    from rlzoo.zoo import experiment
    from rlzoo.zoo.options import TrainOptions

    if trial_id is not None or storage is not None or study_name is not None:  # rlzoo optimize's trial K
        from rlzoo.zoo.tune import trial_overrides

        if resume is not None:
            raise ZooError("--resume continues a run with its own configuration; drop --trial-id")
        hyperparams = trial_overrides(algo, env, storage, study_name, trial_id, log_folder) + list(hyperparams or [])

    _nonneg("--eval-freq", eval_freq)
    _nonneg("--save-freq", save_freq)
    for name, value in (("--eval-episodes", eval_episodes), ("--n-eval-envs", n_eval_envs),
                        ("--num-threads", num_threads), ("--log-interval", log_interval)):
        if value is not None and value <= 0:
            raise ZooError(f"{name} must be positive, got {value}")
    tracking = None
    if track:
        from rlzoo.zoo.tracking import TrackingOptions, require_wandb

        require_wandb()
        tracking = TrackingOptions(project=wandb_project, entity=wandb_entity, tags=list(wandb_tags or []))
    elif wandb_entity or wandb_tags:
        raise ZooError("--wandb-entity and --wandb-tags need --track")
    if resume_or_new:
        resume = _resume_or_new(algo, env, seed, log_folder, n_timesteps, resume, gym_packages)
        if resume is not None:  # the run's own configuration: the options that would change it are dropped
            hyperparams, conf_file, trained_agent, n_envs, env_kwargs, compile_ = None, None, None, None, None, False
    if resume is not None:
        conflicts = [name for name, value in (("--hyperparams", hyperparams), ("--conf-file", conf_file),
                                              ("-i", trained_agent), ("--n-envs", n_envs),
                                              ("--env-kwargs", env_kwargs), ("--compile", compile_)) if value]
        if conflicts:
            raise ZooError(f"--resume continues a run with its own configuration; drop {', '.join(conflicts)}")
    if compile_:
        hyperparams = [*(hyperparams or []), "compile=true"]
    opts = TrainOptions(
        algo=algo, env_id=env, n_timesteps=n_timesteps, seed=seed, log_folder=log_folder, n_envs=n_envs,
        vec_env=vec_env.value, device=device.value, tensorboard_log=tensorboard_log, eval_freq=eval_freq,
        eval_episodes=eval_episodes, save_freq=save_freq, hyperparams=tuple(hyperparams or ()),
        env_kwargs=tuple(env_kwargs or ()), conf_file=conf_file, trained_agent=trained_agent, resume=resume,
        progress=progress, gym_packages=tuple(gym_packages or ()), verbose=verbose, n_eval_envs=n_eval_envs,
        eval_env_kwargs=tuple(eval_env_kwargs or ()), num_threads=num_threads, log_interval=log_interval,
        uuid=uuid, track=tracking, argv=tuple(_argv()), given=frozenset(_given_options(ctx)),
    )
    experiment.train(opts)


def _resume_or_new(algo: str, env: str, seed: int | None, log_folder: str, n_timesteps: int | None,
                   resume: Path | None, gym_packages: list[str] | None) -> Path | None:
    """``--resume-or-new``: the run folder to continue, or None for a new run; exits 0 (``skipped: ...``)
    when the job finished or another process runs it."""
    from rlzoo.zoo.resolve import resolve_algo, resolve_env
    from rlzoo.zoo.sweep import SweepJob, resume_or_new

    if seed is None:
        raise ZooError("--resume-or-new needs --seed: it continues the run of this algo, env and seed")
    if resume is not None:
        raise ZooError("use either --resume RUN_DIR or --resume-or-new, not both")
    job = SweepJob(resolve_algo(algo)[0], resolve_env(env, gym_packages or []), seed)
    run_dir, skip = resume_or_new(job, os.path.abspath(log_folder), n_timesteps)
    if skip is not None:
        print(f"skipped: {skip}", flush=True)
        raise typer.Exit(0)
    return run_dir


def _given_options(ctx: typer.Context) -> set[str]:
    """Names of the options given on the command line (the others are defaults; --resume reuses the run's)."""
    return {name for name in ctx.params
            if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")}


@app.command()
def enjoy(
    algo: str = ALGO,
    env: str = ENV,
    log_folder: str = LOG_FOLDER,
    exp_id: int = EXP_ID,
    load_best: bool = typer.Option(False, "--load-best", help="Load best_model.zip (best evaluation)."),
    load_checkpoint: int | None = typer.Option(None, "--load-checkpoint", help="Load checkpoints/<K>.zip."),
    n_timesteps: int = typer.Option(1000, "-n", "--n-timesteps", help="Number of env steps to run."),
    render: bool = typer.Option(True, "--render/--no-render", help="Show the agent in a window."),
    deterministic: bool | None = typer.Option(
        None, "--deterministic/--stochastic",
        help="Action selection (default: stochastic on Atari, else deterministic)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the evaluation env."),
    env_kwargs: list[str] | None = ENV_KWARGS,
    gym_packages: list[str] | None = GYM_PACKAGES,
    device: Device = typer.Option(Device.auto, "--device", help="Torch device."),
    n_envs: int = typer.Option(1, "--n-envs", help="Parallel envs (episodes of all of them are counted)."),
    norm_reward: bool = typer.Option(False, "--norm-reward",
                                     help="Report rewards normalized by the run's VecNormalize (as trained)."),
    load_last_checkpoint: bool = typer.Option(False, "--load-last-checkpoint", help="Load the latest checkpoint."),
    reward_log: Path | None = typer.Option(None, "--reward-log", help="Folder for the episodes' monitor CSV."),
) -> None:
    """Run a trained agent and print its mean ± std episode reward and length."""
    from rlzoo.zoo import enjoy as _enjoy

    if n_timesteps <= 0:
        raise ZooError(f"the number of timesteps must be positive, got {n_timesteps}")
    if (load_best, load_checkpoint is not None, load_last_checkpoint).count(True) > 1:
        raise ZooError("use either --load-best or --load-checkpoint K or --load-last-checkpoint, not several")
    if n_envs <= 0:
        raise ZooError(f"--n-envs must be positive, got {n_envs}")
    _nonneg("--exp-id", exp_id)
    _enjoy.enjoy(algo=algo, env_id=env, log_folder=log_folder, exp_id=exp_id, load_best=load_best,
                 load_checkpoint=load_checkpoint, n_timesteps=n_timesteps, render=render,
                 deterministic=deterministic, seed=seed, env_kwargs=env_kwargs or [],
                 gym_packages=gym_packages or [], device=device.value, n_envs=n_envs, norm_reward=norm_reward,
                 load_last_checkpoint=load_last_checkpoint, reward_log=reward_log)


@app.command("record-gif")
def record_gif(
    algo: str = ALGO,
    env: str = ENV,
    log_folder: str = LOG_FOLDER,
    exp_id: int = EXP_ID,
    load_best: bool = typer.Option(False, "--load-best", help="Load best_model.zip (best evaluation)."),
    load_checkpoint: int | None = typer.Option(None, "--load-checkpoint", help="Load checkpoints/<K>.zip."),
    n_timesteps: int = typer.Option(500, "-n", "--n-timesteps", help="Number of frames (env steps) to record."),
    output: Path | None = typer.Option(None, "-o", "--output", help="GIF path (default: <run>/<algo>-<EnvId>.gif)."),
    fps: int | None = typer.Option(None, "--fps", help="Frames per second (default: the env's render_fps or 30)."),
    deterministic: bool | None = typer.Option(
        None, "--deterministic/--stochastic",
        help="Action selection (default: stochastic on Atari, else deterministic)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the recorded env."),
    env_kwargs: list[str] | None = ENV_KWARGS,
    gym_packages: list[str] | None = GYM_PACKAGES,
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
    log_folder: list[str] = typer.Option(["logs"], "-f", "--log-folder", help="Log folder(s) to scan."),
    algo: list[str] | None = typer.Option(None, "--algo", help="Algorithms to plot (default: all)."),
    env: list[str] | None = typer.Option(None, "--env", help="Env ids to plot (default: all)."),
    output: Path = typer.Option(Path("curves.png"), "-o", "--output", help="PNG or SVG file to write (by suffix)."),
    window: int = typer.Option(10, "-w", "--window", help="Smoothing window in episodes (1: none)."),
    x_axis: XAxis = typer.Option(XAxis.timesteps, "-x", "--x-axis", help="timesteps, episodes or walltime."),
    title: str | None = typer.Option(None, "--title", help="Figure title."),
    source: CurveSource = typer.Option(CurveSource.train, "--source",
                                       help="train: training episodes (monitor/); eval: evaluations.csv."),
    y_axis: YAxis = typer.Option(YAxis.reward, "-y", "--y-axis",
                                 help="reward, length or success (with --source eval)."),
    aggregate_: bool = typer.Option(False, "--aggregate",
                                    help="IQM/median/mean with stratified-bootstrap CIs and performance profiles "
                                         "of the final scores, across envs and seeds."),
    score_bounds: list[str] | None = typer.Option(None, "--score-bounds",
                                                     help="ENV=LOW:HIGH score normalization of an env for --aggregate "
                                                          "(default: worst and best run)."),
    bootstrap_reps: int = typer.Option(2000, "--bootstrap-reps", help="Bootstrap resamplings of --aggregate."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap of --aggregate."),
) -> None:
    """Plot learning or evaluation curves of runs (seeds as mean ± std band), or --aggregate them (PNG/SVG)."""
    from rlzoo.zoo import plot as _plot

    if window < 1:
        raise ZooError(f"--window must be >= 1, got {window}")
    if aggregate_:
        if bootstrap_reps < 10:
            raise ZooError(f"--bootstrap-reps must be >= 10, got {bootstrap_reps}")
        text = _plot.plot_aggregate_runs(log_folders=log_folder, algos=algo or [], envs=env or [], output=output,
                                         bounds=_score_bounds(score_bounds or []), reps=bootstrap_reps, seed=seed,
                                         title=title)
        typer.echo(text)
        typer.echo(f"wrote {output}")
        return
    if score_bounds:
        raise ZooError("--score-bounds is for --aggregate")
    path = _plot.plot_runs(log_folders=log_folder, algos=algo or [], envs=env or [], output=output,
                           window=window, x_axis=x_axis.value, title=title, source=source.value, y_axis=y_axis.value)
    typer.echo(f"wrote {path}")


def _score_bounds(items: list[str]) -> dict[str, tuple[float, float]]:
    """``ENV=LOW:HIGH`` items -> ``{env folder name: (low, high)}``."""
    from rlzoo.zoo.run_folder import env_folder_name

    out = {}
    for item in items:
        env, sep, rest = item.partition("=")
        low, sep2, high = rest.partition(":")
        try:
            bounds = (float(low), float(high))
        except ValueError:
            bounds = None
        if not sep or not sep2 or bounds is None or bounds[0] == bounds[1]:
            raise ZooError(f"--score-bounds expects ENV=LOW:HIGH with LOW != HIGH, got '{item}'")
        out[env_folder_name(env)] = bounds
    return out


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


def _register_commands() -> None:
    """``optimize``, ``sweep`` and ``benchmark`` live in their own zoo modules, each adding its command here."""
    from rlzoo.zoo import benchmark, sweep, tune, video

    for module in (tune, sweep, benchmark, video):
        module.register(app)


_register_commands()


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point ``rlzoo``."""
    from rlzoo.zoo import stop_flag

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["train"]:
        stop_flag.install()  # signals during start-up are recorded and acted on by train
    command = typer.main.get_command(app)
    command.main(args=args, prog_name="rlzoo")


if __name__ == "__main__":  # pragma: no cover
    main()
