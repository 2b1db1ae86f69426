"""Failures in the middle of a run end with exit 2, a hint, and the last good checkpoint kept."""

from __future__ import annotations

import errno

import numpy as np
import yaml

from tests.conftest import TINY_BACKBONE, checkpoint_weights, tiny_config


def _config(tmp_path, **sections):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(**sections)))
    return path


def _one_error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def test_nan_loss_stops_with_the_rate_named_and_no_nan_checkpoint(tmp_path, cli_runner):
    # The tiny backbone (no normalisation to hold the activations back) reaches a NaN loss within
    # a few steps at this rate.
    config = _config(tmp_path, schedule={"preset": "full", "epochs": 2, "optimizer": "sgd", "lr": 1e9},
                     training={"steps_per_epoch": 4, "checkpoint_steps": 1})
    run = tmp_path / "run"
    result = cli_runner("train", config, "--run-dir", run)
    assert result.exit_code == 2, result.output
    line = _one_error_line(result.output)
    assert "schedule.phases[0].lr" in line and "NaN" in line and "lower the rate" in line
    if (run / "checkpoints" / "last.npz").exists():  # a step checkpoint taken before the loss broke
        for name, value in checkpoint_weights(run).items():
            assert np.isfinite(value).all() if value.dtype.kind == "f" else True, name
    assert not (run / "model.keras").exists()


def test_disk_full_while_saving_names_the_run_and_the_resume_command(tmp_path, cli_runner, monkeypatch):
    from tfft.training import checkpoint

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write", full)
    run = tmp_path / "run"
    # A progress bar cut mid-line by the error: the error still gets a line of its own.
    result = cli_runner("train", _config(tmp_path, training={"verbose": "bar"}, model={"backbone": TINY_BACKBONE}), "--run-dir", run)
    assert result.exit_code == 2, result.output
    line = _one_error_line(result.output)
    assert "disk is full" in line and str(run) in line and "--resume" in line


def test_out_of_memory_hints_at_batch_size_and_precision(tmp_path, cli_runner, monkeypatch):
    import keras
    import tensorflow as tf

    def oom(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(keras.Model, "fit", oom)
    result = cli_runner("train", _config(tmp_path), "--run-dir", tmp_path / "run")
    assert result.exit_code == 2, result.output
    line = _one_error_line(result.output)
    assert "data.batch_size" in line and "out of memory" in line and "mixed_float16" in line
