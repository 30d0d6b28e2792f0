"""Logger: stdout table, CSV with changing keys, TensorBoard events, value conversion, run folders."""
from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch

from rlzoo.common.logger import Logger, configure, configure_logger, get_latest_run_id


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_new_keys_add_columns(tmp_path):
    logger = configure(str(tmp_path), ["csv"])
    logger.record("a", 1)
    logger.dump(0)
    logger.record("a", 2)
    logger.record("b", 0.5)
    logger.dump(1)
    logger.record("b", 3.0)
    logger.record("hidden", 9, exclude=("csv",))
    logger.dump(2)
    logger.close()
    assert _rows(tmp_path / "progress.csv") == [["a", "b"], ["1", ""], ["2", "0.5"], ["", "3.0"]]
    # continuing the same file keeps its columns
    logger = configure(str(tmp_path), ["csv"], append=True)
    logger.record("c", 7)
    logger.dump(3)
    assert _rows(tmp_path / "progress.csv")[0] == ["a", "b", "c"]
    assert _rows(tmp_path / "progress.csv")[-1] == ["", "", "7"]
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_stdout_table_groups_and_excludes(capsys):
    logger = configure(None, ["stdout"])
    logger.record("rollout/ep_rew_mean", np.float32(212.34))
    logger.record("train/loss", torch.tensor(0.125))
    logger.record("time/fps", 3521)
    logger.record("time/total_timesteps", 1000, exclude="stdout")
    logger.dump(1000)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("+-") and lines[-1] == lines[0]
    assert all(len(line) == len(lines[0]) for line in lines)  # aligned
    assert "rollout/" in out and "ep_rew_mean" in out and "212.3" in out and "0.125" in out and "3521" in out
    assert "total_timesteps" not in out
    assert out.index("rollout/") < out.index("time/") < out.index("train/")
    assert logger.name_to_value == {}  # cleared by dump
    logger.dump(1)
    assert capsys.readouterr().out == ""  # nothing recorded, nothing printed


def test_values_converted_at_dump_and_record_mean(tmp_path):
    logger = configure(str(tmp_path), ["json"])
    for v in (1.0, 2.0, 6.0):
        logger.record_mean("train/entropy", torch.tensor(v))
    logger.record_mean("train/kl", 0.5)
    logger.record_mean("train/kl", np.float64(1.5))
    logger.record("train/n_updates", torch.tensor(12))
    logger.record("train/flag", torch.tensor(True))
    logger.record("train/clip", np.float32(0.2))
    logger.record("info/name", "ppo")
    assert isinstance(logger.name_to_value["train/entropy"], torch.Tensor)  # still a tensor before dump
    logger.dump(5)
    logger.close()
    row = json.loads(open(tmp_path / "progress.json").read().splitlines()[0])
    assert row == {"train/entropy": 3.0, "train/kl": 1.0, "train/n_updates": 12, "train/flag": True,
                   "train/clip": 0.2, "info/name": "ppo"}


def test_tensorboard_scalars_readable(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = configure(str(tmp_path), ["tensorboard"])
    for step in (10, 20):
        logger.record("train/loss", torch.tensor(step / 10.0))
        logger.record("time/total_timesteps", step, exclude="tensorboard")
        logger.dump(step)
    logger.close()
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path))
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert "train/loss" in acc.Tags()["scalars"] and "time/total_timesteps" not in acc.Tags()["scalars"]
    events = acc.Scalars("train/loss")
    assert [e.step for e in events] == [10, 20]
    assert [e.value for e in events] == pytest.approx([1.0, 2.0])


def test_log_file_and_levels(tmp_path):
    logger = configure(str(tmp_path), ["log"])
    logger.record("train/loss", 0.5)
    logger.dump(0)
    logger.info("hello")
    logger.debug("hidden")
    logger.close()
    text = open(tmp_path / "log.txt").read()
    assert "loss" in text and "hello" in text and "hidden" not in text
    assert logger.get_dir() == str(tmp_path)


def test_configure_errors_and_defaults(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown log format"):
        configure(str(tmp_path), ["stdout", "xml"])
    monkeypatch.setenv("RLZOO_LOGDIR", str(tmp_path))
    logger = configure(None, ["csv"])  # a fresh folder is made for file formats
    assert os.path.dirname(logger.get_dir()) == str(tmp_path)
    assert configure(None, ["stdout"]).get_dir() is None


def test_configure_logger_run_numbering(tmp_path):
    tb = str(tmp_path / "tb")
    silent = configure_logger(verbose=0)
    assert silent.output_formats == [] and silent.get_dir() is None
    first = configure_logger(verbose=1, tensorboard_log=tb, tb_log_name="PPO")
    assert first.get_dir() == os.path.join(tb, "PPO_1")
    assert [f.name for f in first.output_formats] == ["stdout", "tensorboard"]
    first.close()
    second = configure_logger(verbose=0, tensorboard_log=tb, tb_log_name="PPO")
    assert second.get_dir() == os.path.join(tb, "PPO_2")
    second.close()
    cont = configure_logger(verbose=0, tensorboard_log=tb, tb_log_name="PPO", reset_num_timesteps=False)
    assert cont.get_dir() == os.path.join(tb, "PPO_2")
    cont.close()
    os.makedirs(os.path.join(tb, "PPO_x"))
    os.makedirs(os.path.join(tb, "A2C_7"))
    assert get_latest_run_id(tb, "PPO") == 2 and get_latest_run_id(tb, "A2C") == 7
    assert get_latest_run_id(str(tmp_path / "missing"), "PPO") == 0
    fresh = configure_logger(verbose=0, tensorboard_log=str(tmp_path / "tb2"), tb_log_name="DQN",
                             reset_num_timesteps=False)
    assert fresh.get_dir() == os.path.join(str(tmp_path / "tb2"), "DQN_1")
    fresh.close()


def test_logger_without_formats_still_collects():
    logger = Logger(None, [])
    logger.record("a", 1)
    assert logger.name_to_value["a"] == 1
    logger.dump(0)
    assert logger.name_to_value == {}
