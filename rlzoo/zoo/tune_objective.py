"""The Optuna objective of ``rlzoo optimize``: one trial trains and evaluates its hyperparameters.

:class:`Objective` builds a trial's config (its sampled hyperparameters over the file entry), trains
``n_seeds`` agents one after the other and scores the trial with their mean final evaluation. Its
evaluation callback reports every evaluation to the pruner and stops a pruned or diverging run.
"""
from __future__ import annotations

import functools
import math
import warnings
from pathlib import Path
from typing import Any


def _finite_params(model: Any) -> bool:
    import torch

    with torch.no_grad():
        return all(bool(torch.isfinite(p).all()) for p in model.policy.parameters())


@functools.cache
def _trial_eval_callback_cls() -> type:
    from rlzoo.callbacks import EvalCallback

    class TrialEvalCallback(EvalCallback):
        """EvalCallback that reports each evaluation to the trial and stops on pruning or NaN."""

        def __init__(self, eval_env: Any, trial: Any, step_offset: int, n_eval_episodes: int, eval_freq: int,
                     deterministic: bool, max_evals: int) -> None:
            super().__init__(eval_env, n_eval_episodes=n_eval_episodes, eval_freq=eval_freq,
                             deterministic=deterministic, verbose=0, warn=False)
            self.trial = trial
            self.step_offset = step_offset
            self.n_evals, self.max_evals = 0, max_evals
            self.pruned = False
            self.diverged = False

        def _on_step(self) -> bool:
            if self.eval_freq <= 0 or self.n_calls % self.eval_freq != 0 or self.n_evals >= self.max_evals:
                return True  # (rollouts longer than the budget overshoot it: only max_evals are reported)
            continue_training = super()._on_step()
            value = self.last_mean_reward
            if not math.isfinite(value) or not _finite_params(self.model):
                self.diverged = True
                return False
            self.trial.report(value, self.step_offset + self.n_evals)
            self.n_evals += 1
            if self.trial.should_prune():
                self.pruned = True
                return False
            return continue_training

    return TrialEvalCallback


class Objective:
    """Train and evaluate one trial's hyperparameters (the Optuna objective of a worker)."""

    def __init__(self, algo: str, cls: type, env_id: str, fixed: dict, conf_file: Path | None,
                 n_timesteps: int | None, n_envs: int | None, env_kwargs: dict, n_evaluations: int,
                 eval_episodes: int, n_seeds: int, seed: int, device: str, ctx: Any) -> None:
        self.algo, self.cls, self.env_id = algo, cls, env_id
        self.fixed, self.conf_file = fixed, conf_file
        self.n_timesteps, self.n_envs, self.env_kwargs = n_timesteps, n_envs, env_kwargs
        self.n_evaluations, self.eval_episodes, self.n_seeds = n_evaluations, eval_episodes, n_seeds
        self.seed, self.device, self.ctx = seed, device, ctx
        self.tracking: Any = None  # TrackingOptions: one W&B run per trial (--track)
        self.study_name, self.track_folder = "", Path(".")

    def config(self, hyperparams: dict, full_budget: bool = False) -> Any:
        """The validated experiment config of a trial (its hyperparameters over the file entry);
        ``full_budget``: the file's ``n_timesteps`` instead of the tuning budget ``-n``."""
        from rlzoo.zoo.config import build_config
        from rlzoo.zoo.resolve import is_atari

        return build_config(self.algo, self.cls, self.env_id, atari=is_atari(self.env_id), conf_file=self.conf_file,
                            overrides=hyperparams, n_timesteps=None if full_budget else self.n_timesteps,
                            n_envs=self.n_envs, env_kwargs=self.env_kwargs)

    def __call__(self, trial: Any) -> float:
        import optuna

        from rlzoo.zoo.search_spaces import sample_hyperparams

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            sampled = sample_hyperparams(self.algo, trial, self.cls, self.ctx)
        hyperparams = {**sampled, **self.fixed}
        trial.set_user_attr("hyperparams", hyperparams)
        finals: list[float] = []
        tracker = None
        if self.tracking is not None:
            from rlzoo.zoo.tune_extras import trial_tracker

            tracker = trial_tracker(self.tracking, self.study_name, trial, self.algo, self.env_id, hyperparams,
                                    self.track_folder)
        state, value = "failed", None
        try:
            config = self.config(hyperparams)
            trial.set_user_attr("n_timesteps", config.n_timesteps)
            for s in range(self.n_seeds):
                finals.append(self._train_one(trial, config, self.seed + s, s * self.n_evaluations, tracker))
                trial.set_user_attr("seed_rewards", finals)
            if not all(math.isfinite(f) for f in finals):
                raise optuna.TrialPruned("diverged: non-finite reward")
            value = float(sum(finals) / len(finals))
            state = "complete"
        except optuna.TrialPruned as e:
            trial.set_user_attr("note", str(e))
            state = "pruned"
            raise
        except Exception as e:  # the trial fails (the worker goes on); keep a one-line reason
            trial.set_user_attr("note", " ".join(f"{type(e).__name__}: {e}".split())[:300])
            raise
        finally:
            if tracker is not None:
                tracker.finish(summary={"state": state, "value": value, "seed_rewards": finals},
                               exit_code=0 if state != "failed" else 1)
        return value

    def _train_one(self, trial: Any, config: Any, seed: int, step_offset: int, tracker: Any = None) -> float:
        import optuna

        from rlzoo.evaluation import evaluate_policy
        from rlzoo.zoo.experiment import make_action_noise, make_env, normalize_env
        from rlzoo.zoo.resolve import is_atari

        env = normalize_env(make_env(config, config.n_envs, seed), config)
        eval_env = normalize_env(make_env(config, 1, seed + 10_000), config, training=False)
        try:
            kwargs = dict(config.model_kwargs)
            if config.noise is not None:  # noise_type/noise_std, as rlzoo train builds it
                kwargs["action_noise"] = make_action_noise(config.noise, env.single_action_space)
            model = self.cls(config.policy, env, seed=seed, device=self.device, verbose=0, **kwargs)
            eval_freq = max(config.n_timesteps // (self.n_evaluations * config.n_envs), 1)
            callback = _trial_eval_callback_cls()(eval_env, trial, step_offset, self.eval_episodes, eval_freq,
                                                  deterministic=not is_atari(config.env_id),
                                                  max_evals=self.n_evaluations)
            try:
                with warnings.catch_warnings():  # overflow warnings of a diverging run: it is pruned below
                    warnings.simplefilter("ignore", RuntimeWarning)
                    model.learn(config.n_timesteps,
                                callback=[callback, tracker.callback()] if tracker is not None else callback)
            except Exception as e:  # NaN in a distribution, an exploding loss ...
                if not _finite_params(model):
                    raise optuna.TrialPruned(f"diverged: {type(e).__name__}: {e}") from None
                raise
            if callback.diverged:
                raise optuna.TrialPruned("diverged: non-finite reward or parameters")
            if callback.pruned:
                raise optuna.TrialPruned(f"pruned at evaluation {callback.n_evals} of seed {seed}")
            if callback.n_evals == 0:
                mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=self.eval_episodes,
                                          deterministic=not is_atari(config.env_id))
                assert isinstance(mean, float)  # the (mean, std) form: return_episode_rewards is False
                return float(mean)
            return float(callback.last_mean_reward)
        finally:
            env.close()
            eval_env.close()
