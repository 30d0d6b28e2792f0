"""Checkpoint and evaluation callbacks: :class:`CheckpointCallback` saves the model (with its
VecNormalize statistics and optionally the replay buffer) every few steps, :class:`EvalCallback`
evaluates it on a separate env, logs ``eval/*``, writes ``evaluations.csv`` and keeps the best model.

The callback protocol and the generic callbacks are in :mod:`rlzoo.common.callbacks`.
"""
from __future__ import annotations

import csv
import os
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from rlzoo.common.callbacks import BaseCallback, EventCallback
from rlzoo.common.evaluation import as_vector_env, evaluate_policy, sync_envs_normalization, unwrap_vec_normalize
from rlzoo.fileio import atomic_path

VECNORMALIZE_SUFFIX = ".vecnormalize.safetensors"


def vecnormalize_path_beside(model_path: str) -> str:
    """The statistics file that goes with a saved model: ``checkpoints/1000.zip`` ->
    ``checkpoints/1000.vecnormalize.safetensors`` (the one rule; the run folder's final model is the
    exception, see ``rlzoo.zoo.experiment.vecnormalize_path``)."""
    stem = model_path[:-4] if model_path.endswith(".zip") else model_path
    return stem + VECNORMALIZE_SUFFIX


def save_vecnormalize_beside(training_env: Any, model_path: str) -> str | None:
    """Save the VecNormalize statistics of ``training_env`` next to ``model_path`` (same stem).

    ``checkpoints/1000.zip`` -> ``checkpoints/1000.vecnormalize.safetensors``. Returns the path, or
    None when the env is not normalized."""
    vec_normalize = unwrap_vec_normalize(training_env) if training_env is not None else None
    if vec_normalize is None:
        return None
    path = vecnormalize_path_beside(model_path)
    vec_normalize.save(path)
    return path


class CheckpointCallback(BaseCallback):
    """Save the model every ``save_freq`` calls (vector steps) as
    ``<save_path>/<name_prefix>_<num_timesteps>_steps.zip`` (``<num_timesteps>.zip`` when
    ``name_prefix`` is empty), each with its own VecNormalize statistics
    (``<same stem>.vecnormalize.safetensors``) and optionally the replay buffer
    (``<same stem>_replay_buffer.npz``).

    A replay buffer can be gigabytes (a million Humanoid transitions: 2.9 GB), so only the newest
    ``keep_replay_buffers`` checkpoints keep theirs (0: all): an older buffer is deleted once a newer
    checkpoint is complete. Resuming needs the newest buffer only; the second is a fallback should
    the newest checkpoint turn out unreadable. Older checkpoints stay loadable as models."""

    def __init__(self, save_freq: int, save_path: str, name_prefix: str = "rl_model", save_vecnormalize: bool = True,
                 save_replay_buffer: bool = False, keep_replay_buffers: int = 2, verbose: int = 0) -> None:
        super().__init__(verbose=verbose)
        if int(save_freq) < 1:
            raise ValueError(f"save_freq must be >= 1, got {save_freq}")
        if int(keep_replay_buffers) < 0:
            raise ValueError(f"keep_replay_buffers must be >= 0, got {keep_replay_buffers}")
        self.keep_replay_buffers = int(keep_replay_buffers)
        self.save_freq = int(save_freq)
        self.save_path = save_path
        self.name_prefix = name_prefix
        self.save_vecnormalize = save_vecnormalize
        self.save_replay_buffer = save_replay_buffer
        self.last_save_path: str | None = None

    def _init_callback(self) -> None:
        os.makedirs(self.save_path, exist_ok=True)

    def checkpoint_stem(self, num_timesteps: int | None = None) -> str:
        """Path without extension of the checkpoint at ``num_timesteps`` (default: now)."""
        steps = self.num_timesteps if num_timesteps is None else num_timesteps
        name = f"{self.name_prefix}_{steps}_steps" if self.name_prefix else f"{steps}"
        return os.path.join(self.save_path, name)

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq == 0:
            # one unit: the side files first, the model last (each write is atomic), so a checkpoint
            # model never exists without its replay buffer and statistics (a failure leaves no model)
            stem = self.checkpoint_stem()
            if self.save_replay_buffer and getattr(self.model, "replay_buffer", None) is not None:
                self.model.save_replay_buffer(stem + "_replay_buffer")
                if self.verbose >= 2:
                    print(f"Saving replay buffer to {stem}_replay_buffer")
            if self.save_vecnormalize:
                saved = save_vecnormalize_beside(self.training_env, stem)
                if saved is not None and self.verbose >= 2:
                    print(f"Saving VecNormalize statistics to {saved}")
            self.model.save(stem + ".zip")
            self.last_save_path = stem + ".zip"
            if self.verbose >= 2:
                print(f"Saving model checkpoint to {stem}.zip")
            if self.save_replay_buffer and self.keep_replay_buffers:
                self._drop_old_replay_buffers()
        return True

    def _drop_old_replay_buffers(self) -> None:
        """Delete the replay buffers of all but the newest ``keep_replay_buffers`` checkpoints (this
        callback's names only; written by this process or an earlier one of the same run)."""
        name = re.escape(self.name_prefix + "_") + r"(\d+)_steps" if self.name_prefix else r"(\d+)"
        pattern = re.compile(name + r"_replay_buffer\.\w+")
        buffers = sorted((int(m.group(1)), entry.path) for entry in os.scandir(self.save_path)
                         if (m := pattern.fullmatch(entry.name)) is not None)
        for _, path in buffers[:-self.keep_replay_buffers]:
            try:
                os.remove(path)
            except FileNotFoundError:  # removed meanwhile: nothing to do
                pass


class _EvaluationStopped(Exception):
    """Raised inside an evaluation when ``EvalCallback.stop_check`` asks to stop."""


class EvalCallback(EventCallback):
    """Evaluate the agent every ``eval_freq`` calls on ``eval_env`` (VecNormalize statistics are
    copied from the training env first), log ``eval/*``, append a row to
    ``<log_path>/evaluations.csv`` and keep ``<best_model_save_path>/best_model.zip``.

    ``callback_on_new_best`` runs on each new best mean reward, ``callback_after_eval`` after
    every evaluation; either can stop training. ``stop_check`` (a function returning True to stop) is
    read after every evaluation step, so a stop request during a long evaluation is acted on at once:
    the evaluation is abandoned (nothing recorded) and training stops.

    ``on_timesteps=True`` counts from the model's own step count rather than from this ``learn`` call,
    so a run resumed from a checkpoint evaluates at the same timesteps as an uninterrupted one;
    ``eval_at_end=True`` also evaluates the final model when training ends past the last evaluation
    (not after a stop request), so the last row of ``evaluations.csv`` is always the final model."""

    def __init__(self, eval_env: Any, callback_on_new_best: BaseCallback | None = None,
                 callback_after_eval: BaseCallback | None = None, n_eval_episodes: int = 5,
                 eval_freq: int = 10000, log_path: str | None = None, best_model_save_path: str | None = None,
                 deterministic: bool = True, render: bool = False, verbose: int = 1, warn: bool = True,
                 stop_check: Callable[[], bool] | None = None, on_timesteps: bool = False,
                 eval_at_end: bool = False) -> None:
        super().__init__(callback_after_eval, verbose=verbose)
        self.on_timesteps = on_timesteps
        self.eval_at_end = eval_at_end
        self._stopped = False
        self.stop_check = stop_check  # read after every evaluation step: True abandons the evaluation
        self.callback_on_new_best = callback_on_new_best
        if callback_on_new_best is not None:
            callback_on_new_best.parent = self
        self.eval_env = as_vector_env(eval_env)
        self.n_eval_episodes = n_eval_episodes
        self.eval_freq = int(eval_freq)
        self.log_path = log_path
        self.best_model_save_path = best_model_save_path
        self.deterministic = deterministic
        self.render = render
        self.warn = warn
        self.best_mean_reward = -np.inf
        self.last_mean_reward = -np.inf
        self.evaluations_timesteps: list[int] = []
        self.evaluations_results: list[list[float]] = []
        self.evaluations_length: list[list[int]] = []
        self._rows: list[dict[str, Any]] = []
        self._is_success_buffer: list[bool] = []

    @property
    def csv_path(self) -> str | None:
        """``<log_path>/evaluations.csv`` (None without log_path)."""
        return None if self.log_path is None else os.path.join(self.log_path, "evaluations.csv")

    def _init_callback(self) -> None:
        train_env = self.training_env
        if self.warn and train_env is not None:
            if (unwrap_vec_normalize(train_env) is None) != (unwrap_vec_normalize(self.eval_env) is None):
                warnings.warn("EvalCallback: only one of the training and evaluation envs is wrapped in "
                              "VecNormalize; the evaluation will see differently scaled observations", UserWarning,
                              stacklevel=2)
        for folder in (self.best_model_save_path, self.log_path):
            if folder is not None:
                os.makedirs(folder, exist_ok=True)
        if self.csv_path is not None and os.path.exists(self.csv_path) and not self._rows:
            self._load_history()
        if self.callback_on_new_best is not None:
            self.callback_on_new_best.init_callback(self.model)

    def _load_history(self) -> None:
        """Keep the rows of an earlier (interrupted) run up to the model's current timestep."""
        path = self.csv_path
        assert path is not None  # only called with a log_path
        try:
            with open(path, newline="", encoding="utf-8") as f:
                rows = [row for row in csv.DictReader(f)
                        if (row.get("timesteps") or "").isdigit() and int(row["timesteps"]) <= self.model.num_timesteps]
            best = max((float(row["mean_reward"]) for row in rows), default=-np.inf)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.warn(f"EvalCallback: ignoring unreadable {path} ({exc}); starting it over", UserWarning,
                          stacklevel=2)
            rows, best = [], -np.inf
        self._rows = rows
        self.best_mean_reward = best

    def _on_training_start(self) -> None:
        super()._on_training_start()
        if self.on_timesteps and self.training_env is not None:  # vector steps already taken by the model
            self.n_calls = self.model.num_timesteps // self.training_env.num_envs
        if self.callback_on_new_best is not None:
            self.callback_on_new_best.on_training_start(self.locals, self.globals)

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        super().update_child_locals(locals_)
        if self.callback_on_new_best is not None:
            self.callback_on_new_best.update_locals(locals_)

    def _log_success(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        if self.stop_check is not None and locals_["i"] == 0 and self.stop_check():
            raise _EvaluationStopped
        if locals_["done"] and "is_success" in locals_["info"]:
            self._is_success_buffer.append(bool(locals_["info"]["is_success"]))

    def _write_csv(self) -> None:
        n_rewards = max(sum(k.startswith("reward_") for k in row) for row in self._rows)
        header = ["timesteps", "mean_reward", "std_reward", "mean_ep_length"]
        if any("success_rate" in row for row in self._rows):  # envs reporting info["is_success"]
            header.append("success_rate")
        header += [f"reward_{i}" for i in range(n_rewards)]
        path = self.csv_path
        assert path is not None  # only called with a log_path
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=header, restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self._rows)

    def _on_step(self) -> bool:
        if self.eval_freq <= 0 or self.n_calls % self.eval_freq != 0:
            return True
        return self._evaluate()

    def _on_training_end(self) -> None:
        super()._on_training_end()
        if not self.eval_at_end or self.eval_freq <= 0 or self._stopped:
            return
        finished = self.model.num_timesteps >= self.model._total_timesteps  # not stopped early, not crashed
        last = (self.evaluations_timesteps[-1] if self.evaluations_timesteps
                else int(self._rows[-1]["timesteps"]) if self._rows else None)
        if finished and last != self.num_timesteps and not (self.stop_check is not None and self.stop_check()):
            self._evaluate()

    def _evaluate(self) -> bool:
        """One evaluation of the current model: log it, record it, keep the best model."""
        sync_envs_normalization(self.training_env, self.eval_env)
        self._is_success_buffer = []
        try:
            episode_rewards, episode_lengths = evaluate_policy(
                self.model, self.eval_env, n_eval_episodes=self.n_eval_episodes, deterministic=self.deterministic,
                render=self.render, callback=self._log_success, return_episode_rewards=True, warn=self.warn)
        except _EvaluationStopped:  # stop_check said stop: no partial evaluation is recorded
            self._stopped = True
            return False
        mean_reward, std_reward = float(np.mean(episode_rewards)), float(np.std(episode_rewards))
        mean_length = float(np.mean(episode_lengths))
        self.last_mean_reward = mean_reward
        self.evaluations_timesteps.append(self.num_timesteps)
        self.evaluations_results.append(list(episode_rewards))
        self.evaluations_length.append(list(episode_lengths))
        if self.csv_path is not None:
            row = {"timesteps": self.num_timesteps, "mean_reward": mean_reward, "std_reward": std_reward,
                   "mean_ep_length": mean_length}
            if self._is_success_buffer:
                row["success_rate"] = float(np.mean(self._is_success_buffer))
            row.update({f"reward_{i}": r for i, r in enumerate(episode_rewards)})
            self._rows.append(row)
            self._write_csv()

        if self.verbose >= 1:
            print(f"Eval num_timesteps={self.num_timesteps}, episode_reward={mean_reward:.2f} +/- {std_reward:.2f}")
            print(f"Episode length: {mean_length:.2f} +/- {np.std(episode_lengths):.2f}")
        if self.logger is not None:
            self.logger.record("eval/mean_reward", mean_reward)
            self.logger.record("eval/mean_ep_length", mean_length)
            if self._is_success_buffer:
                self.logger.record("eval/success_rate", float(np.mean(self._is_success_buffer)))
            self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
            self.logger.dump(self.num_timesteps)

        continue_training = True
        if mean_reward > self.best_mean_reward:
            if self.verbose >= 1:
                print("New best mean reward!")
            self.best_mean_reward = mean_reward
            if self.best_model_save_path is not None:
                path = os.path.join(self.best_model_save_path, "best_model.zip")
                self.model.save(path)
                save_vecnormalize_beside(self.training_env, path)
            if self.callback_on_new_best is not None:
                continue_training = self.callback_on_new_best.on_step()
        if self.callback is not None:
            continue_training = self._on_event() and continue_training
        return continue_training
