"""BatchNorm statistics recomputed after a phase that trained them; the constant-model warning."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import tiny_config, write_image_folder


@pytest.fixture(scope="module")
def bn_backbone(tmp_path_factory):
    """Three convolutions, each followed by BatchNorm (Keras' default momentum 0.99), no input scaling."""
    import keras

    inputs = keras.Input((None, None, 3))
    x = inputs
    for i, filters in enumerate((8, 16, 16)):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", name=f"conv{i}",
                                kernel_initializer=keras.initializers.GlorotUniform(seed=i))(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU()(x)
    path = tmp_path_factory.mktemp("bn") / "tiny-bn.keras"
    keras.Model(inputs, x, name="tiny_bn").save(str(path))
    keras.backend.clear_session()
    return path


def _config(images, backbone, name="bn"):
    # Six steps of BatchNorm training: the moving statistics keep ~94% of their initial (0, 1).
    return tiny_config(name=name, data={"source": str(images), "val_split": 0.25, "batch_size": 8},
                       model={"backbone": f"keras:{backbone}", "weights": None},
                       schedule={"preset": "full", "epochs": 2, "bn": "train", "lr": 1e-2},
                       training={"steps_per_epoch": 3, "verbose": "quiet", "deterministic": True},
                       evaluate={"splits": ["val"]})


class _StopAtEndOfEpoch2:
    """Interrupts like Ctrl-C after the last epoch's checkpoint, before the phase's end."""

    def __new__(cls):
        import keras

        class Stop(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 1:
                    raise KeyboardInterrupt

        return Stop()


@pytest.mark.slow
def test_a_briefly_trained_batchnorm_model_is_not_a_constant_and_resumes_bitwise(tmp_path, bn_backbone, capsys):
    """Two easy classes, BatchNorm trained six steps from random weights: the val predictions once
    were all one class (accuracy 0.5, the moving statistics still near their initial values). With
    the statistics recomputed at the phase's end they are right; and a run stopped between its
    last epoch and the phase's end recomputes them on resume to the same bits."""
    import keras

    import tfft
    from tests.training.test_resume import _assert_same_run
    from tfft.errors import TrainingInterrupted

    images = write_image_folder(tmp_path / "images", {"red": 16, "blue": 16}, size=32)
    keras.backend.clear_session()
    result = tfft.train(_config(images, bn_backbone), run_dir=str(tmp_path / "straight"))
    confusion = np.array(result.metrics["val"]["confusion_matrix"])
    assert (confusion.sum(axis=0) > 0).all(), confusion  # both classes predicted
    assert result.metrics["val"]["accuracy"] >= 0.75 and "warnings" not in result.metrics["val"]
    assert "batchnorm: moving statistics of 3 layers recomputed over 24 training images" in capsys.readouterr().out

    keras.backend.clear_session()
    with pytest.raises(TrainingInterrupted):
        tfft.train(_config(images, bn_backbone), run_dir=str(tmp_path / "killed"), callbacks=[_StopAtEndOfEpoch2()])
    keras.backend.clear_session()
    tfft.train(_config(images, bn_backbone), run_dir=str(tmp_path / "killed"), resume=True)
    _assert_same_run(tmp_path / "straight", tmp_path / "killed")
    state = json.loads((tmp_path / "killed" / "checkpoints" / "state.json").read_text())
    assert state["bn_recomputed"] == ["bn0", "bn1", "bn2"]


def test_a_constant_model_is_reported(tmp_path, capsys):
    """Validation predictions that are all one class: one console line, and the warning in
    metrics.json and report.md."""
    import keras

    from tfft.reporting.evaluate import evaluate_model
    from tfft.reporting.report import write_report

    inputs = keras.Input((4,))
    constant = keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros",
                                  bias_initializer=keras.initializers.Constant([1.0, 0.0]))(inputs)
    model = keras.Model(inputs, constant)
    data = (np.random.default_rng(0).normal(size=(6, 4)).astype("float32"), np.array([0, 1, 0, 1, 0, 1]))
    metrics = evaluate_model(model, data, ["cat", "dog"], tmp_path)
    assert capsys.readouterr().out.count("warning: every val prediction is 'cat'") == 1
    saved = json.loads((tmp_path / "metrics.json").read_text())["val"]
    assert saved["warnings"] == metrics["warnings"] and "the model is a constant" in saved["warnings"][0]
    assert "**Warning:** every val prediction is 'cat'" in write_report(tmp_path).read_text()
