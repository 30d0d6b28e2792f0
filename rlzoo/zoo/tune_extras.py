"""What ``rlzoo optimize`` adds around Optuna's loop: the ``auto`` sampler, the report plots
(``--optimization-log-path``) and one W&B run per trial (``--track``).

``--sampler auto`` (Optuna's own AutoSampler lives in the separate ``optunahub`` package) decides
once, before the first trial, from the algorithm's search space and the budget:

* **GP** (``optuna.samplers.GPSampler``, Gaussian-process Bayesian optimization) when every tuned
  hyperparameter is numeric (float or int, no categorical choice) and the budget is at most
  :data:`GP_MAX_TRIALS` trials: with few trials over a smooth numeric space it is the most
  sample-efficient choice, and its cost (cubic in the number of trials) stays small;
* **TPE** (multivariate, with the constant liar for parallel workers) otherwise: categorical and
  conditional spaces (network sizes, activations, batch sizes: every built-in rlzoo space) and
  large budgets. The choice and its reason are printed.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

GP_MAX_TRIALS = 100


def search_space_kinds(algo: str, cls: type, ctx: Any, fixed: dict) -> dict[str, str]:
    """``{name: distribution kind}`` of the hyperparameters the search space of ``algo`` suggests
    (probed with one trial of a throw-away in-memory study; ``fixed`` ones are not tuned)."""
    import optuna

    from rlzoo.zoo.search_spaces import sample_hyperparams

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample_hyperparams(algo, trial, cls, ctx)
    kinds = {}
    for name, dist in trial.distributions.items():
        if name in fixed:
            continue
        kinds[name] = type(dist).__name__.replace("Distribution", "").lower()
    return kinds


def auto_sampler(algo: str, cls: type, ctx: Any, fixed: dict, budget: int | None, n_startup_trials: int,
                 seed: int | None, tpe: Any) -> tuple[Any, str]:
    """``(sampler, description)`` for ``--sampler auto`` (see the module docstring);
    ``tpe`` builds rlzoo's TPE sampler."""
    import optuna

    kinds = search_space_kinds(algo, cls, ctx, fixed)
    categorical = sorted(name for name, kind in kinds.items() if kind == "categorical")
    if categorical:
        reason = f"categorical {', '.join(categorical[:3])}{'...' if len(categorical) > 3 else ''}"
        return tpe(), f"auto -> tpe: {reason}"
    if budget is None or budget > GP_MAX_TRIALS:
        return tpe(), f"auto -> tpe: budget {'open' if budget is None else budget} > {GP_MAX_TRIALS} trials"
    sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials)
    return sampler, f"auto -> gp: {len(kinds)} numeric hyperparameters, {budget} trials"


# ----------------------------------------------------------------------------- report plots
def write_optimization_plots(study: Any, folder: Path) -> list[Path]:
    """Optuna's optimization history and hyperparameter importance plots of ``study`` in ``folder``:
    PNG (``optuna.visualization.matplotlib``), plus interactive HTML when plotly is installed.
    Plots that need more trials than the study has are skipped with a note."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.trial import TrialState

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    written: list[Path] = []
    plots: dict[str, Any] = {"history": optuna.visualization.matplotlib.plot_optimization_history,
             "importance": optuna.visualization.matplotlib.plot_param_importances}
    needed = {"history": 1, "importance": 2}
    try:
        import plotly  # noqa: F401

        html: dict[str, Any] = {"history": optuna.visualization.plot_optimization_history,
                "importance": optuna.visualization.plot_param_importances}
    except ImportError:
        html = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, draw in plots.items():
            if len(complete) < needed[name]:
                print(f"optimization plots: {name} needs {needed[name]} complete trial(s), the study has "
                      f"{len(complete)}", flush=True)
                continue
            ax = draw(study)
            fig = ax.figure if hasattr(ax, "figure") else ax
            path = folder / f"{study.study_name}_{name}.png"
            fig.set_size_inches(9, 5)
            fig.tight_layout()
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
            if name in html:
                path = folder / f"{study.study_name}_{name}.html"
                html[name](study).write_html(str(path))
                written.append(path)
    return written


# ----------------------------------------------------------------------------- tracking
def trial_tracker(options: Any, study_name: str, trial: Any, algo: str, env_id: str, hyperparams: dict,
                  folder: Path) -> Any:
    """The W&B run of one trial: grouped by study, named ``<study>_trial_<N>``."""
    from dataclasses import replace

    from rlzoo.zoo.tracking import Tracker, plain_config

    options = replace(options, group=options.group or study_name)
    config = {"algo": algo, "env": env_id, "study": study_name, "trial": trial.number, **plain_config(hyperparams)}
    return Tracker(options, f"{study_name}_trial_{trial.number}", config, folder, job_type="optimize")
