"""``rlzoo record-video`` and ``rlzoo record-training``: MP4 (H.264) videos of trained agents.

Frames come from the env's ``rgb_array`` rendering (no window: works on headless machines; for MuJoCo
set ``MUJOCO_GL=egl``, or ``MUJOCO_GL=osmesa`` without a GPU), through the same rollout as
``record-gif`` (:func:`rlzoo.zoo.gif.render_frames`). Encoding uses the ffmpeg binary shipped by
``imageio-ffmpeg`` (``pip install "rlzoo[video]"``): H.264, yuv420p, playable in browsers.

``record-training`` renders one clip per checkpoint of a run (``checkpoints/<steps>.zip``, then the
final model) and joins them in time, each frame captioned with the checkpoint's training steps, so
one video shows the agent learning.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from rlzoo.fileio import atomic_path
from rlzoo.zoo import run_folder as rf
from rlzoo.zoo.enjoy import Agent, load_agent
from rlzoo.zoo.errors import ZooError
from rlzoo.zoo.gif import prepare_headless, render_frames, write_gif

MISSING_FFMPEG = "writing mp4 videos needs imageio-ffmpeg: pip install 'rlzoo[video]'"


def require_ffmpeg() -> Any:
    """Import ``imageio_ffmpeg`` or fail with a one-line error naming the extra."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ZooError(MISSING_FFMPEG) from None
    return imageio_ffmpeg


def _even(frame: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p needs even width and height: repeat the last row/column when odd."""
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)


def write_mp4(path: Path, frames: list[np.ndarray], fps: int, quality: int = 23) -> None:
    """Encode RGB frames as an H.264 MP4 (``quality``: the x264 CRF, lower is better)."""
    imageio_ffmpeg = require_ffmpeg()
    first = _even(frames[0])
    size = (first.shape[1], first.shape[0])
    writer = imageio_ffmpeg.write_frames(str(path), size, fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=1, ffmpeg_log_level="error",
                                         output_params=["-crf", str(int(quality)), "-movflags", "+faststart"])
    writer.send(None)
    try:
        for frame in frames:
            frame = _even(frame)
            if (frame.shape[1], frame.shape[0]) != size:
                raise ZooError(f"frame size changed from {size} to {(frame.shape[1], frame.shape[0])}")
            writer.send(frame)
    finally:
        writer.close()


def read_video(path: Path) -> tuple[dict[str, Any], int]:
    """``(metadata, frame count)`` of a video, by decoding every frame (``metadata["size"]`` = (w, h))."""
    imageio_ffmpeg = require_ffmpeg()
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    count = sum(1 for _ in reader)
    return meta, count


def _save(output: Path, frames: list[np.ndarray], fps: int) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output, suffix=output.suffix) as tmp:
        if output.suffix.lower() == ".gif":
            write_gif(Path(tmp), frames, fps)
        else:
            write_mp4(Path(tmp), frames, fps)
    size = output.stat().st_size / 1e6
    print(f"wrote {output} ({len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}, {fps} fps, "
          f"{size:.2f} MB)", flush=True)
    return output


def _check_output(output: Path | None) -> None:
    if output is not None and Path(output).suffix.lower() not in (".mp4", ".gif"):
        raise ZooError(f"the output file must end with .mp4 (or .gif), got '{output}'")


# ----------------------------------------------------------------------------- loading
def agent_from_file(model_path: Path, env_id: str | None = None, device: str = "auto",
                    gym_packages: list[str] | None = None) -> Agent:
    """An :class:`Agent` from a model file. Inside a run folder (``<run>/model.zip``, ``best_model.zip``,
    ``checkpoints/K.zip``) it uses the run's ``config.yml`` and VecNormalize statistics; elsewhere the
    plain env ``env_id`` (with the statistics saved next to the model, if any)."""
    from rlzoo.common.save_format import read_model_zip
    from rlzoo.zoo.config import ZooConfig
    from rlzoo.zoo.experiment import load_run_config, vecnormalize_path
    from rlzoo.zoo.resolve import env_modules, is_atari, resolve_algo, resolve_env

    model_path = Path(model_path)
    if not model_path.is_file():
        raise ZooError(f"model file '{model_path}' does not exist")
    metadata, _ = read_model_zip(str(model_path))
    cls: Any
    algo, cls = resolve_algo(str(metadata.get("algo", "")))
    run_dir = model_path.parent.parent if model_path.parent.name == rf.CHECKPOINT_DIR else model_path.parent
    in_run = (run_dir / rf.CONFIG_FILE).is_file() and (run_dir / rf.RUN_FILE).is_file()
    modules = list(gym_packages or [])
    if in_run:
        info = rf.read_run_info(run_dir)
        modules = list(info.get("gym_packages", [])) + modules
        env_id = env_id or str(info.get("env", ""))
    if not env_id:
        raise ZooError(f"{model_path} is not inside a run folder: give the env with --env")
    modules = env_modules(env_id, modules)
    env_id = resolve_env(env_id.split(":", 1)[-1], modules)
    if in_run:
        config = load_run_config(run_dir, algo, cls, env_id)
    else:
        config = ZooConfig(algo=algo, env_id=env_id, source=str(model_path), hyperparams={"n_timesteps": 1})
    config.env_modules = tuple(modules)
    stats = vecnormalize_path(model_path) if config.normalize is not None or not in_run else None
    if stats is not None and not stats.is_file():
        fallback = run_dir / rf.VECNORMALIZE_FILE
        stats = fallback if in_run and fallback.is_file() else None
        if in_run and stats is None:
            raise ZooError(f"VecNormalize statistics for {model_path} are missing")
    if stats is not None and config.normalize is None:
        config.hyperparams["normalize"] = True  # statistics found next to a loose model file
    model = cls.load(str(model_path), device=device)
    return Agent(run_dir if in_run else model_path.parent, model_path, model, config, stats, is_atari(env_id))


# ----------------------------------------------------------------------------- commands
def record_video(algo: str | None = None, env_id: str | None = None, log_folder: str = "logs", exp_id: int = 0,
                 load_best: bool = False, load_checkpoint: int | None = None, load_last_checkpoint: bool = False,
                 model: Path | None = None, n_timesteps: int = 1000, output: Path | None = None,
                 fps: int | None = None, deterministic: bool | None = None, seed: int = 0,
                 env_kwargs: list[str] | None = None, gym_packages: list[str] | None = None,
                 device: str = "auto") -> Path:
    """Record ``n_timesteps`` frames of a trained agent (run folder, or ``model`` file) as an MP4."""
    _check_output(output)
    if output is None or Path(output).suffix.lower() == ".mp4":
        require_ffmpeg()
    prepare_headless()
    if model is not None:
        agent = agent_from_file(Path(model), env_id, device, gym_packages)
    else:
        if not algo or not env_id:
            raise ZooError("give --algo and --env (a run folder under -f), or --model FILE")
        agent = load_agent(algo, env_id, log_folder, exp_id, load_best, load_checkpoint, device, gym_packages,
                           load_last_checkpoint)
    frames, fps = render_frames(agent, n_timesteps, deterministic, seed, env_kwargs, fps)
    if output is None:
        stem = f"{agent.config.algo}-{rf.env_folder_name(agent.config.env_id)}"
        if agent.model_path.name != rf.MODEL_FILE:
            stem += f"-{agent.model_path.stem}"
        output = agent.run_dir / "videos" / f"{stem}.mp4"
    return _save(Path(output), frames, fps)


def caption(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` with ``text`` on a dark band in its top-left corner."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(np.ascontiguousarray(frame[..., :3]))
    draw = ImageDraw.Draw(image)
    size = max(12, image.height // 18)
    try:
        font: Any = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        font = ImageFont.load_default()
    _left, _top, right, bottom = draw.textbbox((6, 4), text, font=font)
    draw.rectangle((0, 0, right + 6, bottom + 4), fill=(0, 0, 0))
    draw.text((6, 4), text, fill=(255, 255, 255), font=font)
    return np.asarray(image)


def record_training(algo: str, env_id: str, log_folder: str = "logs", exp_id: int = 0, n_timesteps: int = 200,
                    output: Path | None = None, fps: int | None = None, deterministic: bool | None = None,
                    seed: int = 0, env_kwargs: list[str] | None = None, gym_packages: list[str] | None = None,
                    device: str = "auto", include_final: bool = True, captions: bool = True) -> Path:
    """One clip of ``n_timesteps`` frames per checkpoint (and the final model), joined in time."""
    _check_output(output)
    if output is None or Path(output).suffix.lower() == ".mp4":
        require_ffmpeg()
    prepare_headless()
    run_dir = rf.find_run(log_folder, algo.lower(), env_id, exp_id)
    checkpoints = rf.list_checkpoints(run_dir)
    models: list[tuple[str, int | None]] = [(f"{steps:,} steps", steps) for steps, _ in checkpoints]
    if include_final and (run_dir / rf.MODEL_FILE).is_file():
        from rlzoo.common.save_format import read_model_zip

        metadata, _ = read_model_zip(str(run_dir / rf.MODEL_FILE))
        final_steps = int(metadata.get("num_timesteps", 0))
        if not checkpoints or final_steps > checkpoints[-1][0]:
            models.append((f"{final_steps:,} steps (final)", None))
    if not models:
        raise ZooError(f"{run_dir} has no checkpoints or model (train with --save-freq > 0)")
    exp = int(run_dir.name.split("_")[-1]) if run_dir.name.split("_")[-1].isdigit() else exp_id
    frames: list[np.ndarray] = []
    clip_fps = fps
    for label, steps in models:
        agent = load_agent(algo, env_id, log_folder, exp, load_checkpoint=steps, device=device,
                           gym_packages=gym_packages)
        clip, clip_fps = render_frames(agent, n_timesteps, deterministic, seed, env_kwargs, clip_fps)
        if frames and clip[0].shape != frames[0].shape:
            raise ZooError("the checkpoints render frames of different sizes")
        frames.extend(caption(f, label) if captions else f for f in clip)
        print(f"clip {label}: {len(clip)} frames", file=sys.stderr, flush=True)
    if output is None:
        output = run_dir / "videos" / f"{agent.config.algo}-{rf.env_folder_name(agent.config.env_id)}-training.mp4"
    return _save(Path(output), frames, int(clip_fps or 30))


def register(app: Any) -> None:
    """Add ``rlzoo record-video`` and ``rlzoo record-training`` to the Typer app."""
    import typer

    from rlzoo.zoo.errors import ZooError as _Err

    def _checks(n: int, fps: int | None, exp_id: int) -> None:
        if n <= 0:
            raise _Err(f"the number of frames must be positive, got {n}")
        if fps is not None and fps <= 0:
            raise _Err(f"--fps must be positive, got {fps}")
        if exp_id < 0:
            raise _Err(f"--exp-id must be >= 0, got {exp_id}")

    @app.command("record-video")
    def record_video_command(
        algo: str | None = typer.Option(None, "--algo", help="Algorithm of the run (not needed with --model)."),
        env: str | None = typer.Option(None, "--env", help="Env id of the run (with --model: the env to use)."),
        log_folder: str = typer.Option("logs", "-f", "--log-folder", help="Root folder of the run folders."),
        exp_id: int = typer.Option(0, "--exp-id", help="Run number N of <EnvId>_N (0: the latest run)."),
        model: Path | None = typer.Option(None, "--model", "-i", help="A model .zip file instead of a run."),
        load_best: bool = typer.Option(False, "--load-best", help="Load best_model.zip (best evaluation)."),
        load_checkpoint: int | None = typer.Option(None, "--load-checkpoint", help="Load checkpoints/<K>.zip."),
        load_last_checkpoint: bool = typer.Option(False, "--load-last-checkpoint", help="Load the latest checkpoint."),
        n_timesteps: int = typer.Option(1000, "-n", "--n-timesteps", help="Number of frames (env steps)."),
        output: Path | None = typer.Option(None, "-o", "--output",
                                              help="MP4 path (default: <run>/videos/<algo>-<EnvId>.mp4)."),
        fps: int | None = typer.Option(None, "--fps", help="Frames per second (default: the env's render_fps or 30)."),
        deterministic: bool | None = typer.Option(
            None, "--deterministic/--stochastic",
            help="Action selection (default: stochastic on Atari, else deterministic)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the recorded env."),
        env_kwargs: list[str] | None = typer.Option(None, "--env-kwargs", help="key=value for gymnasium.make."),
        gym_packages: list[str] | None = typer.Option(None, "--gym-packages", help="Modules registering envs."),
        device: str = typer.Option("auto", "--device", help="Torch device."),
    ) -> None:
        """Record an MP4 (H.264) of a trained agent, headless (rgb_array frames)."""
        _checks(n_timesteps, fps, exp_id)
        if (load_best, load_checkpoint is not None, load_last_checkpoint).count(True) > 1:
            raise _Err("use either --load-best or --load-checkpoint K or --load-last-checkpoint, not several")
        if model is not None and (load_best or load_checkpoint is not None or load_last_checkpoint):
            raise _Err("--model names the file to record; drop --load-best/--load-checkpoint/--load-last-checkpoint")
        record_video(algo, env, log_folder, exp_id, load_best, load_checkpoint, load_last_checkpoint, model,
                     n_timesteps, output, fps, deterministic, seed, env_kwargs or [], gym_packages or [], device)

    @app.command("record-training")
    def record_training_command(
        algo: str = typer.Option(..., "--algo", help="Algorithm of the run."),
        env: str = typer.Option(..., "--env", help="Env id of the run."),
        log_folder: str = typer.Option("logs", "-f", "--log-folder", help="Root folder of the run folders."),
        exp_id: int = typer.Option(0, "--exp-id", help="Run number N of <EnvId>_N (0: the latest run)."),
        n_timesteps: int = typer.Option(200, "-n", "--n-timesteps", help="Frames per checkpoint clip."),
        output: Path | None = typer.Option(None, "-o", "--output",
                                              help="MP4 path (default: <run>/videos/<algo>-<EnvId>-training.mp4)."),
        fps: int | None = typer.Option(None, "--fps", help="Frames per second (default: the env's render_fps or 30)."),
        deterministic: bool | None = typer.Option(
            None, "--deterministic/--stochastic",
            help="Action selection (default: stochastic on Atari, else deterministic)."),
        captions: bool = typer.Option(True, "--captions/--no-captions", help="Write the training steps on each frame."),
        seed: int = typer.Option(0, "--seed", help="Seed of the recorded env (the same for every clip)."),
        env_kwargs: list[str] | None = typer.Option(None, "--env-kwargs", help="key=value for gymnasium.make."),
        gym_packages: list[str] | None = typer.Option(None, "--gym-packages", help="Modules registering envs."),
        device: str = typer.Option("auto", "--device", help="Torch device."),
    ) -> None:
        """One clip per checkpoint of a run (train with --save-freq), joined in time: watch it learn."""
        _checks(n_timesteps, fps, exp_id)
        record_training(algo, env, log_folder, exp_id, n_timesteps, output, fps, deterministic, seed,
                        env_kwargs or [], gym_packages or [], device, True, captions)
