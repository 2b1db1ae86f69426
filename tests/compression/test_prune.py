"""`tfft prune`: the asked sparsity in exactly the Conv2D/Dense kernels, a plain model.keras with
exact zeros, pruning.json, and the zeros kept through an int8 TFLite export."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import tiny_config, user_files, write_image_folder
from tests.evaluation.conftest import build_run_dir
from tfft.cli.main import cli
from tfft.compression.prune import (MIN_RECOVERY_STEPS, magnitude_mask, plan_schedule, polynomial_sparsity)
from tfft.errors import UserError

SPARSITY = 0.75
MIN_STEPS = 40  # the tiny run's 25 steps per pass: the data repeats once


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, pets_mini):
    """The evaluation tests' tiny pets-mini run (two Conv2D and the logits Dense), pruned by the CLI."""
    root = tmp_path_factory.mktemp("prune")
    source = build_run_dir(root / "source", pets_mini)
    result = CliRunner().invoke(cli, ["prune", str(source), "--sparsity", str(SPARSITY), "--epochs", "1",
                                      "--min-steps", str(MIN_STEPS), "--out", str(root / "pruned")],
                                catch_exceptions=False)
    return source, root / "pruned", result


def test_schedule_and_masks():
    steps = [polynomial_sparsity(t, 0.9, 30) for t in range(0, 40, 5)]
    assert steps[0] == 0.0 and steps[-2:] == [0.9, 0.9] and steps == sorted(steps)
    assert polynomial_sparsity(15, 0.9, 30) == pytest.approx(0.9 * (1 - 0.5 ** 3))  # cubic: fast, then slow
    kernel = np.random.default_rng(0).normal(size=(3, 3, 8, 16))
    mask = magnitude_mask(kernel, 0.6)
    kept = np.abs(kernel)[mask == 1]
    assert mask.mean() == pytest.approx(0.4, abs=1 / kernel.size)
    assert kept.min() >= np.abs(kernel)[mask == 0].max()  # the smallest magnitudes go


def test_plan_schedule_repeats_ramps_and_recovers():
    # The run: 245 images in batches of 32, 2 epochs = 16 steps, masks every 10.
    schedule = plan_schedule(2, 8)
    assert schedule.steps == 100 and schedule.data_passes == 13 and schedule.steps_per_epoch == 50
    assert schedule.ramp_steps == 75 and schedule.recovery_steps == 25 and schedule.mask_updates >= 10
    assert plan_schedule(10, 30).steps == 300  # long enough already: no repetition
    with pytest.raises(UserError, match="too short") as error:
        plan_schedule(2, 8, min_steps=16)  # the old 16 steps: 4 left to recover
    assert "--min-steps" in error.value.hint
    with pytest.raises(UserError, match="expected at least 4") as error:
        plan_schedule(2, 8, frequency=40)  # masks every 40 steps of a 75-step ramp: a jump
    assert error.value.where == "--frequency"


def test_target_reached_before_recovery_steps(pruned):
    _, out, result = pruned
    assert result.exit_code == 0, result.output
    schedule = json.loads((out / "pruning.json").read_text())["schedule"]
    # 1 epoch of 25 steps is repeated to MIN_STEPS; the ramp ends at the target, then the model recovers.
    assert schedule["steps"] == schedule["steps_run"] == MIN_STEPS and schedule["data_passes"] == 2
    assert schedule["ramp_sparsity"] == pytest.approx(SPARSITY, abs=0.005)
    assert schedule["recovery_steps_run"] == schedule["recovery_steps"] >= MIN_RECOVERY_STEPS
    assert schedule["mask_updates"] >= 4 and schedule["frequency"] < schedule["ramp_steps"]
    assert "the training data repeats" in result.output


def test_too_short_schedule_exits_2(pruned, tmp_path):
    source, _, _ = pruned
    result = CliRunner().invoke(cli, ["prune", str(source), "--sparsity", "0.5", "--epochs", "1", "--min-steps",
                                      "1", "--out", str(tmp_path / "short")], catch_exceptions=False)
    assert result.exit_code == 2 and "too short" in result.output and "--min-steps" in result.output
    assert not (tmp_path / "short").exists()


def test_accuracy_before_and_after(pruned):
    _, out, result = pruned
    report = json.loads((out / "pruning.json").read_text())
    before, after = report["val_accuracy_before"], report["val_accuracy_after"]
    assert 0 < before <= 1 and 0 < after <= 1
    assert f"prune: val accuracy {before:.4f} -> {after:.4f}" in result.output
    # Measured as `tfft evaluate` measures the pruned run (the same val images).
    assert after == pytest.approx(json.loads((out / "metrics.json").read_text())["val"]["accuracy"])
    assert ("warning: pruning" in result.output) == (before - after > 0.03)


def test_pruned_run_directory(pruned):
    source, out, result = pruned
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == f"run dir: {out}"
    for name in ("model.keras", "pruning.json", "metrics.json", "history.csv", "config.yaml", "labels.txt"):
        assert (out / name).is_file(), name
    report = json.loads((out / "pruning.json").read_text())
    assert report["target_sparsity"] == SPARSITY and abs(report["sparsity"] - SPARSITY) <= 0.01
    assert sorted(report["layers"]) == ["conv1", "conv2", "logits"]  # every Conv2D and Dense, nothing else
    assert all(abs(value - SPARSITY) <= 0.01 for value in report["layers"].values())
    assert 0 < report["gzip_bytes"]["pruned"] < 0.6 * report["gzip_bytes"]["dense"]
    assert "accuracy" in json.loads((out / "metrics.json").read_text())["val"]
    assert "sparsity" in (out / "history.csv").read_text().splitlines()[0]

    model = keras.models.load_model(out / "model.keras", compile=False)
    assert all(type(layer).__module__.startswith("keras.") for layer in model.layers)  # no mask wrappers
    for layer in model.get_layer("backbone").layers + model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel = keras.ops.convert_to_numpy(layer.kernel)
            assert (kernel == 0).mean() == pytest.approx(report["layers"][layer.name])
            assert np.count_nonzero(keras.ops.convert_to_numpy(layer.bias)) > 0  # biases are not pruned


def test_zeros_survive_int8_tflite_export(pruned, tmp_path):
    import tensorflow as tf

    from tfft.evaluation.export import export

    _, out, _ = pruned
    result = export(out, format="tflite", quantize="int8", out=tmp_path / "m.tflite", parity_images=40)
    assert result.parity_line().startswith("parity: top1 agreement ")
    model = keras.models.load_model(out / "model.keras", compile=False)
    kernels = [keras.ops.convert_to_numpy(layer.kernel) for layer in model.get_layer("backbone").layers + model.layers
               if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "m.tflite"))
    interpreter.allocate_tensors()
    int8 = []
    for detail in interpreter.get_tensor_details():
        if detail["dtype"] == np.int8 and detail["shape"].size >= 2:
            try:
                int8.append(interpreter.get_tensor(detail["index"]))
            except ValueError:  # activations have no data before invoke
                continue
    for kernel in kernels:  # each kernel is an int8 constant with the same zeros (0 quantizes to 0)
        same = [t for t in int8 if t.size == kernel.size]
        assert same and max(float((t == 0).mean()) for t in same) >= (kernel == 0).mean() - 1e-9


def test_bad_sparsity_is_exit_2(pruned):
    source, _, _ = pruned
    result = CliRunner().invoke(cli, ["prune", str(source), "--sparsity", "1.5"], catch_exceptions=False)
    assert result.exit_code == 2 and "--sparsity" in result.output
    result = CliRunner().invoke(cli, ["prune", str(Path(source).parent / "missing"), "--sparsity", "0.5"],
                                catch_exceptions=False)
    assert result.exit_code == 2 and "run directory not found" in result.output


@pytest.mark.slow
def test_large_accuracy_drop_warns(tmp_path, cli_runner):
    """A tiny colour classifier pruned to 99%: the logits kernel is all zeros, so accuracy falls to chance."""
    from tfft.training.run import train

    images = write_image_folder(tmp_path / "images", {"red": 16, "green": 16, "blue": 16}, size=32)
    config = tiny_config(schedule={"preset": "full", "epochs": 8, "lr": 1e-2}, training={"verbose": "quiet"})
    config["data"] = {"source": str(images), "image_size": [32, 32], "batch_size": 16, "val_split": 0.25}
    del config["training"]["steps_per_epoch"]
    source = train(config, run_dir=str(tmp_path / "run")).run_dir
    result = cli_runner("prune", source, "--sparsity", 0.99, "--epochs", 1, "--min-steps", MIN_STEPS,
                        "--out", tmp_path / "pruned")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "pruned" / "pruning.json").read_text())
    assert report["val_accuracy_before"] - report["val_accuracy_after"] > 0.03, report
    assert "warning: pruning to sparsity 0.99 cost" in result.output
    assert "more --epochs" in result.output and "lower --sparsity" in result.output


def test_out_with_user_files_is_refused_and_overwrite_keeps_them(pruned, user_folder):
    source, _, _ = pruned
    args = ["prune", str(source), "--sparsity", "0.5", "--epochs", "1"]
    for out in (user_folder, Path(source).parent):  # a folder of the user's, and the one holding the run
        result = CliRunner().invoke(cli, args + ["--out", str(out)], catch_exceptions=False)
        assert result.exit_code == 2 and "--overwrite" in result.output, result.output
    assert user_files(user_folder) == ["notes.txt", "photos/a.jpg"]
    assert (Path(source) / "model.keras").is_file()
    result = CliRunner().invoke(cli, args + ["--out", str(user_folder), "--overwrite"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert {"notes.txt", "photos/a.jpg", "model.keras", "pruning.json"} <= set(user_files(user_folder))
