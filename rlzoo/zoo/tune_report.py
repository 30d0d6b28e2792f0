"""What ``rlzoo optimize`` shows and writes: the trial progress bar with one line per finished
trial, the worker's closing summary, and the ``<study>_trials.csv`` and ``<study>_best.yml`` reports.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from rlzoo.zoo import run_folder as rf
from rlzoo.zoo.study_storage import count_used_trials


# ----------------------------------------------------------------------------- progress display
class TrialReporter:
    """Optuna callback: a rich progress bar of trials and one line per finished trial."""

    def __init__(self, n_trials: int | None, cap: int | None, enabled: bool, fixed: Any = ()) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                   TimeElapsedColumn)

        self.console = Console(highlight=False)
        self.cap, self.n_trials, self.own = cap, n_trials, 0
        self.fixed = set(fixed)  # hyperparameters given with --hyperparams: their sampled twins are not shown
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, disable=not enabled, transient=True)
        self.task = self.progress.add_task("trials", total=cap or n_trials)

    def __enter__(self) -> TrialReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        self.own += 1
        seconds = trial.duration.total_seconds() if trial.duration is not None else float("nan")
        value = f"{trial.value:.4g}" if trial.value is not None else "-"
        params = " ".join(f"{k}={_short(v)}" for k, v in trial.params.items() if k not in self.fixed)
        note = trial.user_attrs.get("note", "")
        self.console.print(f"trial {trial.number:>3} {trial.state.name:<8} value {value:>9} ({seconds:.1f} s) "
                           f"{params}{'  ' + note if note else ''}", soft_wrap=True)
        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.is_finished()]
        complete = [t for t in finished if t.state == TrialState.COMPLETE]
        best = max(complete, key=lambda t: t.value) if complete else None
        done = count_used_trials(finished) if self.cap else self.own
        best_text = f"best {best.value:.4g} (trial {best.number})" if best else "no complete trial yet"
        self.progress.update(self.task, completed=done, description=f"trials · {best_text}")


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# ----------------------------------------------------------------------------- reports
def write_report(study: Any, out_dir: Path, algo: str, env_id: str, base_entry: dict,
                 tuning_timesteps: int | None) -> tuple[Path, Path | None]:
    """Write ``<study>_trials.csv`` and (with a complete trial) ``<study>_best.yml`` into ``out_dir``."""
    import yaml
    from optuna.trial import TrialState

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", study.study_name)
    trials = study.get_trials(deepcopy=False)
    param_names = sorted({name for t in trials for name in t.params})
    header = ["number", "state", "value", "duration_s", "datetime_start", "retry_of", "n_reports",
              "seed_rewards"] + [f"params_{n}" for n in param_names]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for t in trials:
        writer.writerow([t.number, t.state.name, "" if t.value is None else t.value,
                         "" if t.duration is None else round(t.duration.total_seconds(), 2),
                         "" if t.datetime_start is None else t.datetime_start.isoformat(timespec="seconds"),
                         t.system_attrs.get("failed_trial", ""), len(t.intermediate_values),
                         json.dumps(t.user_attrs.get("seed_rewards", []))]
                        + [t.params.get(n, "") for n in param_names])
    csv_path = out_dir / f"{stem}_trials.csv"
    rf.atomic_write_text(csv_path, buffer.getvalue())

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        return csv_path, None
    best = max(complete, key=lambda t: t.value)
    entry = {**base_entry, **best.user_attrs.get("hyperparams", {})}
    budget = f", {tuning_timesteps} timesteps per seed while tuning" if tuning_timesteps else ""
    text = (f"# Best trial of study '{study.study_name}': trial {best.number}, mean final evaluation reward "
            f"{best.value:.4g}{budget}.\n"
            f"# Paste this entry into hyperparams/{algo}.yml, or train with it directly:\n"
            f"#   rlzoo train --algo {algo} --env {env_id} --conf-file {stem}_best.yml\n"
            + yaml.safe_dump({env_id: entry}, sort_keys=True, default_flow_style=False))
    yml_path = out_dir / f"{stem}_best.yml"
    rf.atomic_write_text(yml_path, text)
    return csv_path, yml_path


def print_summary(study: Any, reporter: TrialReporter, reason: str, csv_path: Path, yml_path: Path | None) -> None:
    """Print why this worker stopped, the study's trial counts, its best trials and the report paths."""
    from collections import Counter

    from optuna.trial import TrialState
    from rich.table import Table

    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    console = reporter.console
    console.print(f"worker done ({reason}): this worker ran {reporter.own} trial(s); study has {len(trials)} trial(s): "
                  + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())), soft_wrap=True)
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value, reverse=True)
    if complete:
        table = Table(title=f"best trials of '{study.study_name}'")
        for column in ("trial", "value", "hyperparameters"):
            table.add_column(column)
        for t in complete[:5]:
            table.add_row(str(t.number), f"{t.value:.4g}", " ".join(f"{k}={_short(v)}" for k, v in t.params.items()))
        console.print(table)
    console.print(f"trials report: {csv_path}", soft_wrap=True)
    if yml_path is not None:
        console.print(f"best hyperparameters: {yml_path}", soft_wrap=True)
