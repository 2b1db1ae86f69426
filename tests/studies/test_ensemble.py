"""`tfft ensemble`: the averaged model, its run directory and the user's mistakes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_BACKBONE, tiny_config, user_files, write_image_folder

# Two members of one backbone (few layers: saving, loading and exporting stay quick; their layer
# names clash, as fold members' do), two input sizes.
SIZES = {"a": (TINY_BACKBONE, 32), "b": (TINY_BACKBONE, 40)}


def _write_run(run_dir: Path, folder: Path, backbone: str, size: int, seed: int) -> Path:
    """A finished run directory as `tfft train` lays it out, with tfft's own classifier whose
    head is drawn at random (large weights, so the probabilities differ from image to image)."""
    import keras

    from tfft.config import load_config
    from tfft.data import load_splits
    from tfft.models.build import build_classifier
    from tfft.task import LOGITS_LAYER

    cfg = load_config(tiny_config(name=run_dir.name, seed=seed,
                                  data={"source": str(folder), "image_size": [size, size], "batch_size": 8},
                                  model={"backbone": backbone, "weights": None}))
    class_names = load_splits(cfg.data, cfg.seed).class_names
    keras.utils.set_random_seed(seed)
    model = build_classifier(cfg.model, len(class_names), cfg.data.image_size)
    head = model.get_layer(LOGITS_LAYER)
    kernel, bias = head.get_weights()
    rng = np.random.default_rng(seed)
    head.set_weights([rng.normal(0, 3.0, kernel.shape).astype(np.float32), bias])
    run_dir.mkdir(parents=True)
    model.save(run_dir / "model.keras")
    (run_dir / "labels.txt").write_text("\n".join(class_names) + "\n")
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    (run_dir / "metrics.json").write_text(json.dumps({"val": {}}))
    return run_dir


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ensemble")
    folder = write_image_folder(root / "images", {"red": 8, "green": 8, "blue": 8}, size=40)
    runs = {name: _write_run(root / name, folder, backbone, size, seed)
            for seed, (name, (backbone, size)) in enumerate(SIZES.items(), start=1)}
    runs["folder"] = folder
    return runs


@pytest.fixture(scope="module")
def built(members, tmp_path_factory) -> Path:
    from tfft.studies.ensemble import ensemble

    out = tmp_path_factory.mktemp("out") / "ab"
    result = ensemble([members["a"], members["b"]], out)
    assert result.run_dir == out and result.num_examples > 0
    return out


def _images(size: int, n: int = 5) -> np.ndarray:
    return np.random.default_rng(7).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def member_models(members) -> dict:
    import keras

    return {name: keras.models.load_model(members[name] / "model.keras", compile=False) for name in SIZES}


def _member_mean(member_models, images: np.ndarray, reorder_b=None) -> np.ndarray:
    import tensorflow as tf

    outputs = []
    for name, (_, size) in SIZES.items():
        x = images if images.shape[1] == size else tf.image.resize(images, (size, size), method="bilinear").numpy()
        probs = np.asarray(member_models[name].predict_on_batch(x))
        if name == "b" and reorder_b is not None:
            probs = probs[:, reorder_b]
        outputs.append(probs)
    return np.mean(outputs, axis=0)


def test_ensemble_equals_the_mean_of_its_members(member_models, built):
    import keras

    model = keras.models.load_model(built / "model.keras", compile=False, safe_mode=True)
    assert model.input_shape == (None, 40, 40, 3)
    images = _images(40)
    np.testing.assert_allclose(model.predict_on_batch(images), _member_mean(member_models, images), atol=1e-5)


def test_run_directory_files(members, built):
    assert (built / "labels.txt").read_text() == (members["a"] / "labels.txt").read_text()
    metrics = json.loads((built / "metrics.json").read_text())
    assert 0.0 <= metrics["val"]["accuracy"] <= 1.0 and metrics["val"]["num_examples"] > 0
    info = json.loads((built / "ensemble.json").read_text())
    assert [m["image_size"] for m in info["members"]] == [[32, 32], [40, 40]]
    assert all("accuracy" in m for m in info["members"])
    assert info["input_size"] == [40, 40] and "common" in info["evaluated_on"]
    from tfft.config import load_config

    assert list(load_config(built / "config.yaml").data.image_size) == [40, 40]
    assert (built / "confusion_matrix.png").stat().st_size > 0


def test_loads_in_a_python_that_never_imports_tfft(member_models, built, tmp_path):
    images = _images(40, 3)
    np.save(tmp_path / "x.npy", images)
    script = (
        "import sys, numpy as np, keras\n"
        f"m = keras.models.load_model({str(built / 'model.keras')!r}, compile=False, safe_mode=True)\n"
        f"p = m.predict_on_batch(np.load({str(tmp_path / 'x.npy')!r}))\n"
        "assert not [k for k in sys.modules if k.split('.')[0] == 'tfft'], 'tfft was imported'\n"
        f"np.save({str(tmp_path / 'p.npy')!r}, np.asarray(p))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), _member_mean(member_models, images), atol=1e-5)


def test_members_with_classes_in_another_order_are_reordered(members, member_models):
    import keras

    from tfft.studies.ensemble import build_ensemble_model

    names = (members["b"] / "labels.txt").read_text().split()
    order = [names[i] for i in (2, 0, 1)]  # as if b's labels.txt listed the classes so
    clones = [keras.models.clone_model(member_models[n]) for n in SIZES]
    for clone, name in zip(clones, SIZES):
        clone.set_weights(member_models[name].get_weights())
    model, _ = build_ensemble_model(clones, [names, order], (40, 40), names)
    images = _images(40)
    # b's output column j means order[j]; the ensemble's column i is names[i].
    np.testing.assert_allclose(model.predict_on_batch(images),
                               _member_mean(member_models, images, reorder_b=[order.index(n) for n in names]),
                               atol=1e-5)


@pytest.mark.slow  # two exports with their parity checks: about a minute here
def test_evaluate_predict_and_export_accept_the_ensemble(members, built, cli_runner, tmp_path):
    run = tmp_path / "ab"
    shutil.copytree(built, run)
    result = cli_runner("evaluate", run)
    assert result.exit_code == 0, result.output
    assert (run / "eval" / "val" / "metrics.json").is_file()
    image = next((members["folder"] / "red").glob("*.png"))
    result = cli_runner("predict", run, image, "--top-k", "1")
    assert result.exit_code == 0 and str(image) in result.output
    for fmt in ("savedmodel", "tflite"):
        result = cli_runner("export", run, "--format", fmt)
        assert result.exit_code == 0, result.output
        line = result.output.strip().splitlines()[-1]
        assert line.startswith("parity: top1 agreement 100.00%"), line


def test_user_mistakes_exit_2_with_one_line(members, tmp_path, cli_runner):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(members["a"], unfinished)
    (unfinished / "metrics.json").unlink()
    other = tmp_path / "other_labels"
    shutil.copytree(members["b"], other)
    (other / "labels.txt").write_text("cat\ndog\nfox\n")
    cases = [
        ((members["a"],), "at least 2 run directories"),
        ((members["a"], members["a"]), "given twice"),
        ((members["a"], unfinished), "not finished"),
        ((members["a"], other), "['cat', 'dog', 'fox']"),
        ((members["a"], tmp_path / "missing"), "run directory not found"),
    ]
    for runs, expected in cases:
        result = cli_runner("ensemble", *runs, "--out", tmp_path / "never")
        assert result.exit_code == 2, (runs, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and "hint" in lines[0], result.stderr
    assert "['blue', 'green', 'red']" in cli_runner("ensemble", members["a"], other, "--out", tmp_path / "x").stderr
    assert not (tmp_path / "never").exists()


def test_resizing_branch_with_a_large_downscale_antialiases():
    import keras
    import tensorflow as tf

    from tfft.studies.ensemble import build_ensemble_model

    def tiny(size: int, seed: int) -> keras.Model:
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((size, size, 3))
        x = keras.layers.Conv2D(4, 3)(keras.layers.Rescaling(1 / 255)(inputs))
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))

    small, large = tiny(16, 1), tiny(40, 2)
    model, with_members = build_ensemble_model([small, large], [["x", "y"]] * 2, (40, 40), ["x", "y"])
    images = _images(40)
    shrunk = tf.image.resize(images, (16, 16), method="bilinear", antialias=True).numpy()
    expected = (small.predict_on_batch(shrunk) + large.predict_on_batch(images)) / 2
    np.testing.assert_allclose(model.predict_on_batch(images), expected, atol=1e-5)
    assert len(with_members.outputs) == 3


def test_member_that_safe_mode_refuses_exits_2_with_one_line(members, tmp_path, cli_runner):
    from tests.training.test_distill import save_lambda_model

    unsafe = Path(shutil.copytree(members["b"], tmp_path / "unsafe"))
    save_lambda_model(unsafe / "model.keras", 40, 3)
    result = cli_runner("ensemble", members["a"], unsafe, "--out", tmp_path / "never")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "safe mode" in lines[0] and "hint" in lines[0], result.stderr
    assert not (tmp_path / "never").exists()


def test_out_with_user_files_is_refused_and_overwrite_keeps_them(members, user_folder, cli_runner):
    runs = (members["a"], members["b"])
    for out in (user_folder, members["a"].parent):  # the user's folder, and the one holding the members
        result = cli_runner("ensemble", *runs, "--out", out)
        assert result.exit_code == 2 and "--overwrite" in result.stderr, result.output
    assert user_files(user_folder) == ["notes.txt", "photos/a.jpg"]
    result = cli_runner("ensemble", *runs, "--out", user_folder, "--overwrite")
    assert result.exit_code == 0, result.output
    assert {"notes.txt", "photos/a.jpg", "model.keras", "metrics.json"} <= set(user_files(user_folder))


@pytest.fixture(scope="module")
def built_2x(members, tmp_path_factory) -> Path:
    """An ensemble of the 32x32 member and a 64x64 one: the small branch shrinks 2x (antialiased)."""
    from tfft.studies.ensemble import ensemble

    root = tmp_path_factory.mktemp("ensemble2x")
    large = _write_run(root / "c", members["folder"], TINY_BACKBONE, 64, seed=3)
    return ensemble([members["a"], large], root / "ac").run_dir


def test_tflite_export_of_members_2x_apart_runs_on_builtin_ops(built_2x, tmp_path):
    import tensorflow as tf

    from tfft.evaluation.export import export

    result = export(built_2x, format="tflite", out=tmp_path / "m.tflite", parity_images=16)
    assert result.parity_top1 == 100.0 and result.parity_max_abs_diff < 1e-4
    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "m.tflite"))
    assert list(interpreter.get_input_details()[0]["shape"][1:]) == [64, 64, 3]
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not [op for op in ops if op.startswith("Flex")], ops  # no TF Select ops needed


def test_members_accuracy_printed_equals_their_metrics_json(members, tmp_path, cli_runner):
    """Members of different sizes are scored on images resized once to their own size (as their
    own evaluation does), not through the ensemble's input (resized twice)."""
    import tfft

    runs = []
    for size in (32, 64):
        config = tiny_config(name=f"m{size}", data={"source": str(members["folder"]), "image_size": [size, size],
                                                   "batch_size": 8}, training={"steps_per_epoch": 3, "verbose": "quiet"})
        runs.append(tfft.train(config, run_dir=str(tmp_path / f"m{size}")).run_dir)
    result = cli_runner("ensemble", *runs, "--out", tmp_path / "ens")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for run in runs:
        own = json.loads((run / "metrics.json").read_text())["val"]
        row = next(line.split() for line in lines if line.strip().startswith(str(run) + " "))
        assert row[2] == f"{own['accuracy']:.4f}" and row[3] == f"{own['loss']:.4f}", (row, own)
    assert "resized once to its own size" in result.stdout
