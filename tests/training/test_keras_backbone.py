"""A user's own saved model as the backbone (`keras:PATH[#layer]`): train, resume, evaluate, export.

The path holds slashes, spaces and dots (Keras refuses `/` in model names and TF `:` and spaces
in scope names); the saved models are a tiny network and a real pretrained EfficientNet-Lite0.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from tests.conftest import interrupt_second_phase, tiny_config
from tfft.errors import TrainingInterrupted


def _awkward_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "my nets" / "v1.2 final.d"
    folder.mkdir(parents=True)
    return folder


def _tiny(path: Path) -> Path:
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255, name="scale")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c1")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c3")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(5, activation="softmax", name="head")(x)
    keras.Model(inputs, outputs, name="tiny net").save(path)
    return path


def test_keras_file_backbone_trains_resumes_evaluates_exports(tmp_path, cli_runner, monkeypatch):
    import tfft
    from tfft.backbones import KerasFileSpec

    saved = _tiny(_awkward_dir(tmp_path) / "tiny.net.v2.keras")
    loads = []
    real_load = keras.models.load_model
    monkeypatch.setattr(keras.models, "load_model",
                        lambda path, *a, **k: loads.append(str(path)) or real_load(path, *a, **k))

    config = tiny_config(
        name="own",
        model={"backbone": f"keras:{saved}#c3", "weights": "imagenet"},
        schedule={"preset": "two_phase", "head_epochs": 1, "finetune_epochs": 1, "lr": 1e-3},
    )
    run = tmp_path / "runs" / "own run.1"
    interrupt_second_phase(monkeypatch, run)
    with pytest.raises(TrainingInterrupted):
        tfft.train(config, run_dir=str(run))
    assert loads.count(str(saved)) == 1  # resolved once, built from the same load
    monkeypatch.undo()

    config_path = run / "config.yaml"
    assert yaml.safe_load(config_path.read_text())["model"]["backbone"] == f"keras:{saved}#c3"
    result = cli_runner("train", config_path, "--run-dir", run, "--resume")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == f"run dir: {run}"
    phases = json.loads((run / "phases.json").read_text())
    assert [p["name"] for p in phases] == ["head", "finetune"]
    assert phases[1]["trainable_params"] > phases[0]["trainable_params"]

    model = keras.models.load_model(run / "model.keras")
    assert model.name.startswith("tfft_") and "/" not in model.name
    assert isinstance(tfft.backbones.get(f"keras:{saved}#c3"), KerasFileSpec)

    result = cli_runner("evaluate", run, "--split", "val")
    assert result.exit_code == 0, result.output
    assert (run / "eval" / "val" / "metrics.json").is_file()
    result = cli_runner("export", run, "--format", "tflite", "--out", tmp_path / "out dir.v1" / "m.tflite")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("parity: top1 agreement 100.00%")


@pytest.mark.slow  # about 40 s here: tracing Lite0's graph for the feature pass and evaluation
def test_pretrained_lite0_saved_by_a_user_is_a_backbone(tmp_path, cli_runner):
    """A real pretrained network saved as .keras: its own preprocessing inside, cut before its head."""
    from tfft.pretrained import efficientnet_lite

    net = efficientnet_lite.build("efficientnet_lite0", (None, None, 3), include_top=True)
    efficientnet_lite.load_imagenet("efficientnet_lite0", net)
    saved = _awkward_dir(tmp_path) / "lite0.imagenet.keras"
    net.save(saved)
    reference = net.get_layer("block4a_dwconv").get_weights()[0]
    keras.backend.clear_session()

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(
        name="lite0-own",
        data={"image_size": [64, 64]},
        model={"backbone": f"keras:{saved}", "weights": "imagenet"},
        schedule={"preset": "feature_extraction", "epochs": 6, "lr": 1e-2},
        training={"steps_per_epoch": None},
    )))
    run = tmp_path / "run"
    result = cli_runner("train", config, "--run-dir", run)
    assert result.exit_code == 0, result.output
    model = keras.models.load_model(run / "model.keras")
    backbone = model.get_layer("backbone")
    assert backbone.layers[-1].name == "top_activation"  # the default cut: the last 4-D layer
    np.testing.assert_array_equal(backbone.get_layer("block4a_dwconv").get_weights()[0], reference)
    metrics = json.loads((run / "metrics.json").read_text())["val"]
    assert metrics["accuracy"] >= 0.7, metrics  # 8 classes of shapes: chance is 0.125
    assert "feature cache: on" in result.output  # a cut model's frozen features are cached too
