"""Knowledge distillation (`distill:`): the loss is the formula, the student is saved alone, the
teacher's logits are cached with the features, mistakes name `distill.teacher`, resume is exact."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import checkpoint_weights, tiny_config
from tfft.errors import UserError
from tfft.training.distill import DistillationModel, distillation_loss
from tfft.training.run import train

T, ALPHA = 2.0, 0.3


def _dense(units: int, seed: int, inputs: int = 4) -> keras.Model:
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(units)])
    model.layers[0].set_weights([rng.normal(0, 1.5, (inputs, units)), rng.normal(0, 0.5, units)])
    return model


def test_loss_is_the_formula_on_a_hand_made_batch():
    x = np.random.default_rng(0).normal(0, 1, (6, 4)).astype("float32")
    labels = np.eye(3, dtype="float32")[[0, 1, 2, 2, 1, 0]]
    student, teacher = _dense(3, 1), _dense(3, 2)
    expected = distillation_loss(teacher(x), student(x), labels, T, ALPHA)
    kd = distillation_loss(teacher(x), student(x), labels, T, 0.0)
    task = distillation_loss(teacher(x), student(x), labels, T, 1.0)
    assert expected == pytest.approx(ALPHA * task + (1 - ALPHA) * kd) and kd > 0.05  # a real KL term

    # The teacher inside the model (uncached phases), and its logits carried in the targets (cached).
    for model, targets in ((DistillationModel(student, teacher, T, ALPHA, 3), labels),
                           (DistillationModel(student, None, T, ALPHA, 3),
                            np.concatenate([labels, keras.ops.convert_to_numpy(teacher(x))], axis=1))):
        model.compile(loss=keras.losses.CategoricalCrossentropy(), metrics=["accuracy"])
        logs = model.evaluate(x, targets, batch_size=6, verbose=0, return_dict=True)
        assert logs["loss"] == pytest.approx(expected, rel=1e-5)
        assert logs["task_loss"] == pytest.approx(task, rel=1e-5)
        assert logs["distillation_loss"] == pytest.approx(kd, rel=1e-4)


def _backbone_file(folder: Path, size: int) -> str:
    """A three-convolution backbone for `size`x`size` images (blocks part1..part3: `top:1` is the
    last convolution; a fixed input size lets the fine-tuning phase cache the activations entering it)."""
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    for i, filters in enumerate((8, 16, 16)):
        x = keras.layers.Conv2D(filters, 3, strides=2, activation="relu", name=f"conv{i + 1}")(x)
    keras.Model(inputs, x, name="tiny").save(folder / f"tiny{size}.keras")
    return f"keras:{folder / f'tiny{size}.keras'}"


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> str:
    return _backbone_file(tmp_path_factory.mktemp("backbone"), 32)


def _config(backbone: str, **sections) -> dict:
    model = {"backbone": backbone, "weights": None, **sections.pop("model", {})}
    evaluate = {"splits": ["val"], **sections.pop("evaluate", {})}
    return tiny_config(model=model, evaluate=evaluate, **sections)


def _student(teacher: Path, backbone: str, **sections) -> dict:
    return _config(backbone, name="student", distill={"teacher": str(teacher), "temperature": T, "alpha": ALPHA},
                   schedule={"preset": "two_phase", "head_epochs": 1, "finetune_epochs": 1},
                   training={"deterministic": True, "verbose": "quiet"}, **sections)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    """A finished run at 40x40 (the students train at 32x32: the teacher resizes inside)."""
    folder = tmp_path_factory.mktemp("distill")
    config = _config(_backbone_file(folder, 40), name="teacher", data={"image_size": [40, 40]},
                     schedule={"preset": "full", "epochs": 2, "lr": 1e-2}, training={"verbose": "quiet"})
    return train(config, run_dir=str(folder / "teacher")).run_dir


@pytest.fixture(scope="module")
def cached_student(teacher_dir, backbone, tmp_path_factory):
    """The default two_phase preset with the feature cache on and no augmentation: the head phase
    trains on pooled features, the fine-tuning phase on the frozen bottom's activations."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = train(_student(teacher_dir, backbone, performance={"cache_features": "on"}),
                       run_dir=str(tmp_path_factory.mktemp("distill") / "cached"))
    return result, out.getvalue()


def _history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_cached_student_history_and_plain_model(cached_student, tmp_path):
    result, _ = cached_student
    details = (result.run_dir / "run.log").read_text()  # the details `tfft --verbose` prints
    assert "the teacher's logits are cached beside the features" in details
    assert "the frozen backbone's activations entering" in details  # the partial-backbone cache
    rows = _history(result.run_dir)
    assert [r["phase"] for r in rows] == ["head", "finetune"]
    for row in rows:
        task, kd = float(row["task_loss"]), float(row["distillation_loss"])
        assert float(row["loss"]) == pytest.approx(ALPHA * task + (1 - ALPHA) * kd, rel=1e-4)
        assert float(row["val_loss"]) == pytest.approx(
            ALPHA * float(row["val_task_loss"]) + (1 - ALPHA) * float(row["val_distillation_loss"]), rel=1e-4)
    # curves.png draws the two parts of the loss apart, from the names the run logged.
    import matplotlib.pyplot as plt

    from tfft.reporting.plots import curves_figure

    fig = curves_figure(rows)
    assert [ax.get_ylabel() for ax in fig.axes[:3]] == ["loss", "task loss", "distillation loss"]
    assert fig.axes[2].get_legend_handles_labels()[1] == ["distillation_loss", "val_distillation_loss"]
    plt.close(fig)

    # model.keras is the student alone: a plain classifier that loads in a Python without tfft.
    script = textwrap.dedent(f"""
        import sys, keras
        model = keras.models.load_model({str(result.run_dir / "model.keras")!r})
        names = [layer.name for layer in model.layers]
        assert not any("teacher" in name or "distill" in name for name in names), names
        print(model.input_shape[1], model.output_shape[1], model.count_params())
        assert "tfft" not in sys.modules
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    size, classes, params = map(int, proc.stdout.split()[-3:])
    import tfft

    plain = tfft.build_model(_config(cached_student_backbone(result)), num_classes=classes)  # never distilled
    assert (size, params) == (32, plain.count_params())


def test_cached_teacher_logits_match_the_uncached_run(cached_student, teacher_dir, backbone, tmp_path):
    """The teacher's cached logits stay aligned with the cached features: without the cache (the
    teacher on every batch) the same run gives the same history."""
    result, _ = cached_student
    plain = train(_student(teacher_dir, backbone, performance={"cache_features": "off"}), run_dir=str(tmp_path / "r"))
    keys = ("loss", "task_loss", "distillation_loss", "val_loss", "val_distillation_loss")
    for a, b in zip(_history(result.run_dir), _history(plain.run_dir), strict=True):
        assert [float(a[k]) for k in keys] == pytest.approx([float(b[k]) for k in keys], rel=1e-4, abs=1e-6)


def cached_student_backbone(result) -> str:
    import yaml

    return yaml.safe_load((result.run_dir / "config.yaml").read_text())["model"]["backbone"]


def test_teacher_mistakes_name_distill_teacher(teacher_dir, backbone, tmp_path, cli_runner):
    unfinished = Path(shutil.copytree(teacher_dir, tmp_path / "unfinished"))
    (unfinished / "metrics.json").unlink()
    with pytest.raises(UserError, match=r"distill\.teacher.*not a finished run"):
        train(_student(unfinished, backbone), run_dir=str(tmp_path / "a"))
    config = tmp_path / "student.yaml"
    import yaml

    config.write_text(yaml.safe_dump(_student(unfinished, backbone)))
    cli = cli_runner("train", config, "--run-dir", tmp_path / "b")
    assert cli.exit_code == 2 and "distill.teacher" in cli.output and "Traceback" not in cli.output

    relabelled = Path(shutil.copytree(teacher_dir, tmp_path / "relabelled"))
    names = (relabelled / "labels.txt").read_text().split()
    (relabelled / "labels.txt").write_text("\n".join(names[::-1]) + "\n")
    with pytest.raises(UserError, match=r"distill\.teacher.*trained on the labels"):
        train(_student(relabelled, backbone), run_dir=str(tmp_path / "c"))


class _StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("stopped on purpose")


def test_distilled_run_resumes_to_the_uninterrupted_result(teacher_dir, backbone, tmp_path):
    # Flips on: the cache is off in distilled phases (the teacher sees each augmented batch).
    config = _student(teacher_dir, backbone, augment={"horizontal_flip": True})
    whole = train(config, run_dir=str(tmp_path / "whole"))
    with pytest.raises(RuntimeError, match="stopped on purpose"):
        train(config, run_dir=str(tmp_path / "cut"), callbacks=[_StopAfterFirstEpoch()])
    assert len(_history(tmp_path / "cut")) == 1
    resumed = train(config, run_dir=str(tmp_path / "cut"), resume=True)
    keys = ("loss", "task_loss", "distillation_loss", "val_loss", "accuracy")
    for a, b in zip(_history(whole.run_dir), _history(resumed.run_dir), strict=True):
        assert [float(a[k]) for k in keys] == pytest.approx([float(b[k]) for k in keys], rel=1e-5)
    # In saved order (the names of Dropout's seed generators carry this process's counter).
    left, right = checkpoint_weights(whole.run_dir), checkpoint_weights(resumed.run_dir)
    assert len(left) == len(right) > 5
    for (path, a), b in zip(left.items(), right.values()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=path)


def save_lambda_model(path: Path, size: int, classes: int) -> Path:
    """A .keras file with a Lambda layer: safe-mode loading refuses it."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x)).save(path)
    return path


def test_teacher_that_safe_mode_refuses_exits_2_naming_distill_teacher(teacher_dir, backbone, tmp_path, cli_runner):
    import yaml

    unsafe = Path(shutil.copytree(teacher_dir, tmp_path / "unsafe"))
    classes = len((unsafe / "labels.txt").read_text().split())
    save_lambda_model(unsafe / "model.keras", 40, classes)
    config = tmp_path / "student.yaml"
    config.write_text(yaml.safe_dump(_student(unsafe, backbone)))
    cli = cli_runner("train", config, "--run-dir", tmp_path / "student")
    assert cli.exit_code == 2, cli.output
    assert "distill.teacher" in cli.stderr and "safe mode" in cli.stderr and "Traceback" not in cli.output
