"""Training callbacks (the Stable-Baselines3 protocol).

The algorithm calls ``init_callback(model)``, ``on_training_start(locals_, globals_)``, then for
each rollout ``on_rollout_start()``, after every vector-env step ``update_locals(locals_)`` and
``on_step()`` (False stops training), ``on_rollout_end()``, and finally ``on_training_end()``.
Subclasses override the underscored hooks (``_on_step`` ...).

The checkpoint and evaluation callbacks are in :mod:`rlzoo.common.eval_callbacks`.
"""
from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class BaseCallback:
    """Base class: keeps ``model``, ``n_calls`` (vector steps seen), ``num_timesteps``, ``locals``,
    ``globals``, ``parent``; ``logger`` and ``training_env`` are the model's current ones."""

    def __init__(self, verbose: int = 0) -> None:
        self.verbose = verbose
        self.model: Any = None
        self.n_calls = 0
        self.num_timesteps = 0
        self.locals: dict[str, Any] = {}
        self.globals: dict[str, Any] = {}
        self.parent: BaseCallback | None = None
        self._logger: Any = None
        self._training_env: Any = None

    @property
    def logger(self) -> Any:
        """The model's logger (or one set explicitly)."""
        if self._logger is not None:
            return self._logger
        return getattr(self.model, "logger", None)

    @logger.setter
    def logger(self, value: Any) -> None:
        self._logger = value

    @property
    def training_env(self) -> Any:
        """The vector env the model trains on."""
        if self._training_env is not None:
            return self._training_env
        return self.model.get_env() if self.model is not None else None

    @training_env.setter
    def training_env(self, value: Any) -> None:
        self._training_env = value

    # public hooks, called by the algorithm -------------------------------------------------
    def init_callback(self, model: Any) -> None:
        """Attach to ``model`` (called at the start of every ``learn``)."""
        self.model = model
        self._init_callback()

    def on_training_start(self, locals_: dict[str, Any], globals_: dict[str, Any]) -> None:
        """Called once before the first rollout."""
        self.locals = locals_
        self.globals = globals_
        self.num_timesteps = self.model.num_timesteps
        self._on_training_start()

    def on_rollout_start(self) -> None:
        """Called before collecting each rollout."""
        self._on_rollout_start()

    def on_step(self) -> bool:
        """Called after every vector-env step; returning False stops training."""
        self.n_calls += 1
        self.num_timesteps = self.model.num_timesteps
        return self._on_step()

    def on_rollout_end(self) -> None:
        """Called after each rollout, before the update."""
        self._on_rollout_end()

    def on_training_end(self) -> None:
        """Called once when ``learn`` finishes."""
        self._on_training_end()

    def update_locals(self, locals_: dict[str, Any]) -> None:
        """Refresh ``self.locals`` with the algorithm's variables (and those of child callbacks)."""
        self.locals.update(locals_)
        self.update_child_locals(locals_)

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        """Forward ``update_locals`` to child callbacks."""

    # overridable hooks ----------------------------------------------------------------------
    def _init_callback(self) -> None:
        pass

    def _on_training_start(self) -> None:
        pass

    def _on_rollout_start(self) -> None:
        pass

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        pass

    def _on_training_end(self) -> None:
        pass


class EventCallback(BaseCallback):
    """A callback that triggers a child ``callback`` on some event (its ``_on_event``)."""

    def __init__(self, callback: BaseCallback | None = None, verbose: int = 0) -> None:
        super().__init__(verbose=verbose)
        self.callback = callback
        if callback is not None:
            callback.parent = self

    def init_callback(self, model: Any) -> None:
        super().init_callback(model)
        if self.callback is not None:
            self.callback.init_callback(model)

    def _on_training_start(self) -> None:
        if self.callback is not None:
            self.callback.on_training_start(self.locals, self.globals)

    def _on_event(self) -> bool:
        return self.callback.on_step() if self.callback is not None else True

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        if self.callback is not None:
            self.callback.update_locals(locals_)


class CallbackList(BaseCallback):
    """Several callbacks run in order; training stops if any of them says so."""

    def __init__(self, callbacks: Sequence[BaseCallback]) -> None:
        super().__init__()
        if not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"CallbackList takes a list of callbacks, got {type(callbacks).__name__}")
        self.callbacks: list[BaseCallback] = list(callbacks)

    def _init_callback(self) -> None:
        for callback in self.callbacks:
            callback.init_callback(self.model)

    def _on_training_start(self) -> None:
        for callback in self.callbacks:
            callback.on_training_start(self.locals, self.globals)

    def _on_rollout_start(self) -> None:
        for callback in self.callbacks:
            callback.on_rollout_start()

    def _on_step(self) -> bool:
        results = [callback.on_step() for callback in self.callbacks]  # every callback sees the step
        return all(results)

    def _on_rollout_end(self) -> None:
        for callback in self.callbacks:
            callback.on_rollout_end()

    def _on_training_end(self) -> None:
        for callback in self.callbacks:
            callback.on_training_end()

    def update_child_locals(self, locals_: dict[str, Any]) -> None:
        for callback in self.callbacks:
            callback.update_locals(locals_)


class ConvertCallback(BaseCallback):
    """Wraps a plain function ``f(locals_, globals_)``: returning False stops training (None continues)."""

    def __init__(self, callback: Callable[[dict[str, Any], dict[str, Any]], Any] | None, verbose: int = 0) -> None:
        super().__init__(verbose=verbose)
        self.callback = callback

    def _on_step(self) -> bool:
        if self.callback is None:
            return True
        return self.callback(self.locals, self.globals) is not False


CallbackLike = BaseCallback | Callable | Sequence[Any] | None


def make_callback(callback: CallbackLike = None, progress_bar: bool = False) -> BaseCallback:
    """Turn None, a callback, a plain function or a list of those into one callback.

    With ``progress_bar=True`` a :class:`ProgressBarCallback` is added."""
    if isinstance(callback, BaseCallback):
        result = callback
    elif callback is None:
        result = CallbackList([])
    elif isinstance(callback, (list, tuple)):
        result = CallbackList([make_callback(c) for c in callback])
    elif callable(callback):
        result = ConvertCallback(callback)
    else:
        raise TypeError(f"callback must be a BaseCallback, a function f(locals_, globals_) or a list of them, "
                        f"got {type(callback).__name__}")
    if progress_bar:
        result = CallbackList([result, ProgressBarCallback()])
    return result


class StopTrainingOnRewardThreshold(BaseCallback):
    """Use as ``EvalCallback(callback_on_new_best=...)``: stop once the best mean reward reaches
    ``reward_threshold``."""

    def __init__(self, reward_threshold: float, verbose: int = 0) -> None:
        super().__init__(verbose=verbose)
        self.reward_threshold = float(reward_threshold)

    def _on_step(self) -> bool:
        if self.parent is None or not hasattr(self.parent, "best_mean_reward"):
            raise ValueError("StopTrainingOnRewardThreshold must be given to EvalCallback as callback_on_new_best")
        continue_training = bool(self.parent.best_mean_reward < self.reward_threshold)
        if not continue_training and self.verbose >= 1:
            print(f"Stopping training: best mean reward {self.parent.best_mean_reward:.2f} "
                  f"reached the threshold {self.reward_threshold:.2f}")
        return continue_training


class StopTrainingOnNoModelImprovement(BaseCallback):
    """Use as ``EvalCallback(callback_after_eval=...)``: stop after ``max_no_improvement_evals``
    evaluations in a row without a new best (not counting the first ``min_evals``)."""

    def __init__(self, max_no_improvement_evals: int, min_evals: int = 0, verbose: int = 0) -> None:
        super().__init__(verbose=verbose)
        self.max_no_improvement_evals = max_no_improvement_evals
        self.min_evals = min_evals
        self.last_best_mean_reward = -np.inf
        self.no_improvement_evals = 0

    def _on_step(self) -> bool:
        if self.parent is None or not hasattr(self.parent, "best_mean_reward"):
            raise ValueError("StopTrainingOnNoModelImprovement must be given to EvalCallback as callback_after_eval")
        if self.n_calls > self.min_evals:
            if self.parent.best_mean_reward > self.last_best_mean_reward:
                self.no_improvement_evals = 0
            else:
                self.no_improvement_evals += 1
        self.last_best_mean_reward = self.parent.best_mean_reward
        continue_training = self.no_improvement_evals <= self.max_no_improvement_evals
        if not continue_training and self.verbose >= 1:
            print(f"Stopping training: no new best model in the last {self.no_improvement_evals} evaluations")
        return continue_training


def _episode_ends(locals_: dict[str, Any]) -> np.ndarray | None:
    """Per-env episode-end flags of the last step from the algorithm's locals."""
    dones = locals_.get("dones")
    if dones is None:
        terminated = locals_.get("terminated", locals_.get("terminations"))
        truncated = locals_.get("truncated", locals_.get("truncations"))
        if terminated is None:
            return None
        dones = terminated if truncated is None else np.logical_or(terminated, truncated)
    return np.asarray(dones)


class StopTrainingOnMaxEpisodes(BaseCallback):
    """Stop after ``max_episodes`` episodes per env (``max_episodes * n_envs`` in total)."""

    def __init__(self, max_episodes: int, verbose: int = 0) -> None:
        super().__init__(verbose=verbose)
        self.max_episodes = int(max_episodes)
        self._total_max_episodes = self.max_episodes
        self.n_episodes = 0

    def _init_callback(self) -> None:
        self._total_max_episodes = self.max_episodes * int(getattr(self.model, "n_envs", 1))

    def _on_step(self) -> bool:
        dones = _episode_ends(self.locals)
        if dones is None:
            raise ValueError("StopTrainingOnMaxEpisodes needs 'dones' (or 'terminated'/'truncated') in the "
                             "algorithm's callback locals")
        self.n_episodes += int(np.sum(dones))
        continue_training = self.n_episodes < self._total_max_episodes
        if not continue_training and self.verbose >= 1:
            print(f"Stopping training: {self.n_episodes} episodes reached the limit of {self._total_max_episodes}")
        return continue_training


class EveryNTimesteps(EventCallback):
    """Trigger ``callback`` every ``n_steps`` environment timesteps."""

    def __init__(self, n_steps: int, callback: BaseCallback) -> None:
        super().__init__(callback)
        if int(n_steps) < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        self.n_steps = int(n_steps)
        self.last_time_trigger = 0

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last_time_trigger >= self.n_steps:
            self.last_time_trigger = self.num_timesteps
            return self._on_event()
        return True


def _hms(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


class ProgressBarCallback(BaseCallback):
    """Progress of ``learn``: timesteps done/total, steps/s, ETA and mean episode reward.

    On a terminal (or in Jupyter) a live ``rich`` bar; otherwise (cluster logs) plain lines every
    ``print_fraction`` of the run or every ``print_interval`` seconds, whichever comes first:
    ``steps 40000/100000 (40%) | 3521 steps/s | ETA 0:00:17 | mean reward 212.3``.
    """

    def __init__(self, plain: bool | None = None, print_fraction: float = 0.1, print_interval: float = 30.0,
                 refresh_interval: float = 0.1) -> None:
        super().__init__()
        self.plain = plain
        self.print_fraction = print_fraction
        self.print_interval = print_interval
        self.refresh_interval = refresh_interval
        self._progress: Any = None
        self._task: Any = None

    # statistics ---------------------------------------------------------------------------
    def _stats(self, now: float) -> dict[str, Any]:
        elapsed = max(now - self._t0, 1e-9)
        fps = (self.num_timesteps - self._start_steps) / elapsed
        remaining = (self._total - self.num_timesteps) if self._total else None
        eta = remaining / fps if (remaining is not None and fps > 0) else None
        buffer = getattr(self.model, "ep_info_buffer", None)
        mean_reward = float(np.mean([info["r"] for info in buffer])) if buffer else None
        return {"fps": fps, "eta": eta, "elapsed": elapsed, "reward": mean_reward}

    def _describe(self, stats: dict[str, Any], final: bool = False) -> list[str]:
        parts = [f"{stats['fps']:.0f} steps/s"]
        if final:
            parts.append(f"done in {_hms(stats['elapsed'])}")
        elif stats["eta"] is not None:
            parts.append(f"ETA {_hms(stats['eta'])}")
        if stats["reward"] is not None:
            parts.append(f"mean reward {stats['reward']:.4g}")
        return parts

    def _line(self, stats: dict[str, Any], final: bool = False) -> str:
        if self._total:
            head = f"steps {self.num_timesteps}/{self._total} ({100 * self.num_timesteps / self._total:.0f}%)"
        else:
            head = f"steps {self.num_timesteps}"
        return " | ".join([head] + self._describe(stats, final))

    # hooks --------------------------------------------------------------------------------
    def _on_training_start(self) -> None:
        self._total = int(getattr(self.model, "_total_timesteps", 0) or 0)
        self._start_steps = self.num_timesteps
        self._t0 = time.monotonic()
        use_plain = self.plain
        if use_plain is None:
            from rich.console import Console

            console = Console(file=sys.stdout)
            use_plain = not (console.is_terminal or console.is_jupyter)
        self._use_plain = use_plain
        step = max(int(self._total * self.print_fraction), 1) if self._total else 0
        self._print_step = step
        self._next_step = (self.num_timesteps // step + 1) * step if step else None
        if use_plain:
            self._next_time = self._t0 + self.print_interval
        else:
            self._start_rich()

    def _start_rich(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                                  console=Console(file=sys.stdout), refresh_per_second=10)
        self._progress.start()
        self._task = self._progress.add_task("training", total=self._total or None,
                                             completed=self.num_timesteps, info="")
        self._next_time = self._t0 + self.refresh_interval

    def _on_step(self) -> bool:
        now = time.monotonic()
        if self._use_plain:
            if now >= self._next_time or (self._next_step is not None and self.num_timesteps >= self._next_step):
                print(self._line(self._stats(now)), flush=True)
                self._next_time = now + self.print_interval
                if self._next_step is not None:
                    self._next_step = (self.num_timesteps // self._print_step + 1) * self._print_step
        elif now >= self._next_time:
            self._progress.update(self._task, completed=self.num_timesteps,
                                  info=" • ".join(self._describe(self._stats(now))))
            self._next_time = now + self.refresh_interval
        return True

    def _on_training_end(self) -> None:
        stats = self._stats(time.monotonic())
        if self._use_plain:
            print(self._line(stats, final=True), flush=True)
        elif self._progress is not None:
            self._progress.update(self._task, completed=self.num_timesteps,
                                  info=" • ".join(self._describe(stats, final=True)))
            self._progress.stop()
            self._progress = None

    def __del__(self) -> None:  # leave the terminal clean if training raised
        progress = getattr(self, "_progress", None)
        if progress is not None:
            try:
                progress.stop()
            except Exception:
                pass
