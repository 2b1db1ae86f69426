"""`model.backbone: hub:PRESET`: tiny KerasHub presets saved locally train, resume, export.

The presets (a 2-layer ViT and a 2-stage ResNet, 32 px) come from `conftest.py`; nothing is
downloaded. The offline message is tested on a built-in preset name with the network refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import tiny_config, train_whole_and_resumed
from tfft import backbones
from tfft.errors import UserError


def _config(preset: Path, **sections):
    return tiny_config(name="hub", model={"backbone": f"hub:{preset}", "weights": "imagenet"}, **sections)


def test_vit_preset_spec_blocks_pooling_and_preprocessing(tiny_presets):
    spec = backbones.get(f"hub:{tiny_presets['vit']}")
    assert isinstance(spec, backbones.HubSpec)
    assert spec.block_names == ["embed", "layer1", "layer2"]  # the encoder layers are the blocks
    assert (spec.pooling, spec.default_size, spec.preprocess) == ("class_token", 32, "none")
    model = spec.build((32, 32, 3))
    assert model.output.shape == (None, 1, 1, 16)
    assert [layer.name for layer in spec.layers_in_top(model, 1)][0] == "transformer_block_2"
    # raw 0-255 in: the preset's converter (x / 127.5 - 1) is the first layer
    pre = keras.Model(model.inputs, model.get_layer("hub_preprocess").output)
    np.testing.assert_allclose(pre(np.full((1, 32, 32, 3), 255.0, "float32")).numpy(), 1.0, atol=1e-6)
    with pytest.raises(UserError) as info:
        spec.check_size((64, 64, 3))
    assert info.value.where == "data.image_size" and "[32, 32]" in info.value.hint


def test_cnn_preset_blocks_are_its_stages(tiny_presets):
    spec = backbones.get(f"hub:{tiny_presets['cnn']}")
    assert spec.block_names == ["P2", "P3"] and spec.pooling == "average"
    model = spec.build((40, 40, 3), weights=None)  # any size; null re-initialises
    assert len(model.output.shape) == 4
    assert spec.layers_in_top(model, 1)[0].name.startswith("stack1_")


def test_weights_are_the_presets_and_null_reinitialises(tiny_presets):
    import keras_hub

    reference = keras_hub.models.Backbone.from_preset(str(tiny_presets["vit"]))
    want = reference.get_layer("vit_encoder").encoder_layers[1].get_weights()
    spec = backbones.get(f"hub:{tiny_presets['vit']}")
    got = spec.build((32, 32, 3)).get_layer("transformer_block_2").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(want, got))
    fresh = spec.build((32, 32, 3), weights=None).get_layer("transformer_block_2").get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(want, fresh))


def test_offline_message_names_handle_cache_and_how_to_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kaggle"))
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")  # refused at once: no network touched
    monkeypatch.setenv("NO_PROXY", "")
    with pytest.raises(UserError) as info:
        backbones.get("hub:vit_base_patch16_224_imagenet")
    error = info.value
    assert error.where == "model.backbone" and "vit_base_patch16_224_imagenet" in str(error)
    assert str(tmp_path / "kaggle") in error.hint and "save_to_preset" in error.hint
    assert "hub:/path/to/" in error.hint


def test_missing_folder_and_missing_extra_are_user_errors(tmp_path, cli_runner):
    config = tmp_path / "c.yaml"
    import yaml

    config.write_text(yaml.safe_dump(_config(tmp_path / "nope")))
    result = cli_runner("train", config, "--run-dir", tmp_path / "run")
    assert result.exit_code == 2 and "KerasHub preset folder not found" in result.output


def test_models_lists_kerashub_presets(cli_runner):
    result = cli_runner("models", "--json", "--no-count-params", "--hub")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["hub:vit_base_patch16_224_imagenet"]["pooling"] == "class_token"
    assert rows["resnet50"]["pooling"] == "average"
    assert any(name.startswith("hub:resnet") for name in rows)


@pytest.mark.slow  # about 60 s here: two runs of a two-phase ViT schedule, evaluate, TFLite export
def test_vit_two_phase_resumes_bitwise_evaluates_and_exports(tiny_presets, tmp_path, cli_runner, monkeypatch):
    config = _config(tiny_presets["vit"], schedule={"preset": "two_phase", "head_epochs": 1,
                                                      "finetune_epochs": 1, "lr": 1e-3})
    a, b = train_whole_and_resumed(config, tmp_path, monkeypatch, cli_runner)
    run = tmp_path / "resumed"
    # in saved order (a Dropout's seed generator is numbered per process, so names differ)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a.values(), b.values()))
    phases = json.loads((run / "phases.json").read_text())
    assert phases[1]["unfreeze"] == "top:1" and phases[1]["trainable_params"] > phases[0]["trainable_params"]
    report = (run / "report.md").read_text()
    assert "model.keras holds KerasHub layers" in report and "import keras_hub" in report

    result = cli_runner("evaluate", run, "--split", "val")
    assert result.exit_code == 0, result.output
    result = cli_runner("export", run, "--format", "tflite", "--out", tmp_path / "m.tflite")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("parity: top1 agreement 100.00%")


@pytest.mark.slow  # about 40 s here: a gradual schedule on the CNN preset, uninterrupted and resumed
def test_cnn_preset_gradual_schedule_resumes_bitwise(tiny_presets, tmp_path, cli_runner, monkeypatch):
    config = _config(tiny_presets["cnn"], schedule={"preset": "gradual", "gradual_every": 1, "gradual_blocks": 2,
                                                      "lr": 1e-3})
    a, b = train_whole_and_resumed(config, tmp_path, monkeypatch, cli_runner)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a.values(), b.values()))
    phases = json.loads((tmp_path / "resumed" / "phases.json").read_text())
    assert [p["unfreeze"] for p in phases] == ["none", "top:1", "top:2"]
    assert phases[0]["trainable_params"] < phases[1]["trainable_params"] < phases[2]["trainable_params"]


@pytest.mark.parametrize("kind", ["vit", "cnn"])
def test_full_schedule_trains_every_backbone_weight(kind, tiny_presets, tmp_path):
    import tfft

    # no val split: what is checked is which weights trained, not a score (`val` is the other tests')
    config = _config(tiny_presets[kind], data={"val_split": 0.0},
                     schedule={"preset": "full", "epochs": 1, "lr": 1e-2})
    tfft.train(config, run_dir=str(tmp_path / "run"))
    phases = json.loads((tmp_path / "run" / "phases.json").read_text())
    model = backbones.load_saved_model(tmp_path / "run" / "model.keras", "model.keras", "")
    batchnorm = sum(int(np.prod(w.shape)) for layer in backbones.all_layers(model)
                    if isinstance(layer, keras.layers.BatchNormalization) for w in layer.weights)
    # every weight trains but BatchNorm's (schedule.bn: auto keeps a pretrained CNN's BatchNorm frozen)
    assert [p["unfreeze"] for p in phases] == ["all"] and phases[0]["non_trainable_params"] == batchnorm


def test_cnn_preset_trains_two_phase_with_feature_cache(tiny_presets, tmp_path):
    import tfft

    config = _config(tiny_presets["cnn"], schedule={"preset": "two_phase", "head_epochs": 1,
                                                      "finetune_epochs": 1, "lr": 1e-3})
    result = tfft.train(config, run_dir=str(tmp_path / "run"))
    assert (tmp_path / "run" / "model.keras").is_file() and "val" in result.metrics
    model = keras.models.load_model(tmp_path / "run" / "model.keras")  # ResNet: built-in layers only
    assert model.get_layer("backbone").get_layer("hub_preprocess") is not None


def test_saved_model_needs_keras_hub_and_says_so(tiny_presets, tmp_path):
    from tfft.config import ModelConfig
    from tfft.models.build import build_classifier

    model = build_classifier(ModelConfig(backbone=f"hub:{tiny_presets['vit']}"), 2, (32, 32))
    path = tmp_path / "m.keras"
    model.save(path)
    assert backbones.needs_keras_hub(path)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    loaded = backbones.load_saved_model(path, "m", "")
    np.testing.assert_array_equal(loaded(images).numpy(), model(images).numpy())


@pytest.mark.slow  # two folds, or two trials, of a preset: 11-18 s at load 3
@pytest.mark.parametrize("kind, command", [("vit", "cv"), ("cnn", "tune")])
def test_preset_runs_in_cv_or_tune(kind, command, tiny_presets, tmp_path, image_folder):
    """A preset of each kind through a study: the ViT through cv, the CNN through tune (each kind
    through both, four studies, took about 2 minutes here; the studies train their runs alike)."""
    import tfft

    config = _config(tiny_presets[kind], data={"source": str(image_folder), "image_size": [32, 32],
                                               "batch_size": 8, "val_split": 0.25},
                     schedule={"preset": "feature_extraction", "epochs": 1, "lr": 1e-2},
                     training={"steps_per_epoch": 2, "verbose": "quiet"})
    if command == "cv":
        result = tfft.cv(config, folds=2, run_dir=str(tmp_path / "cv"))
        assert (result.run_dir / "cv_summary.json").is_file()
    else:
        tfft.tune(config, {"schedule.lr": {"log_uniform": [1e-4, 1e-2]}}, trials=2,
                  run_dir=str(tmp_path / "tune"), metric="val_loss")
        assert (tmp_path / "tune" / "trials.csv").read_text().count("\n") >= 3
