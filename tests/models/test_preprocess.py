"""In-model preprocessing matches keras.applications.<module>.preprocess_input exactly."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest

from tfft import backbones
from tfft.errors import UserError
from tfft.models.preprocess import apply_preprocessing, preprocessing_layers

MODES = ("caffe", "tf", "torch")


def _raw_images(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, size=(2, 8, 8, 3)).astype("float32")
    images[0, 0, 0] = [0, 0, 0]
    images[0, 0, 1] = [255, 255, 255]
    return images


def _apply(layers, images):
    x = images
    for layer in layers:
        x = layer(x)
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("name", backbones.names())
def test_matches_preprocess_input(name):
    spec = backbones.get(name)
    images = _raw_images()
    if spec.builder is not None:  # a family outside keras.applications: its first layer does it
        assert spec.preprocess == "none" and preprocessing_layers(spec) == []
        model = spec.build((32, 32, 3), weights=None)
        first = model.layers[1]
        assert isinstance(first, keras.layers.Rescaling)
        np.testing.assert_allclose(_apply([first], images), (images - 127.0) / 128.0, atol=1e-6)
        return
    expected = getattr(keras.applications, spec.module).preprocess_input(images.copy())
    expected = keras.ops.convert_to_numpy(expected)
    layers = preprocessing_layers(spec)
    if spec.preprocess == "none":
        assert layers == []
        np.testing.assert_array_equal(expected, images)  # the model really does it inside
        return
    got = _apply(layers, images)
    scale = max(1.0, float(np.abs(expected).max()))
    assert got.dtype == np.float32 and got.shape == images.shape
    assert float(np.abs(got - expected).max()) < 1e-4 * scale


@pytest.mark.parametrize("mode", MODES)
def test_layers_are_builtin_frozen_and_named(mode):
    layers = preprocessing_layers(mode)
    assert len(layers) == 1
    (layer,) = layers
    assert layer.name == "preprocess"
    assert type(layer).__module__.startswith("keras.")
    assert not layer.trainable
    _apply(layers, _raw_images())
    assert layer.trainable_weights == []


def test_caffe_is_exact():
    images = _raw_images(3)
    expected = keras.applications.vgg16.preprocess_input(images.copy())
    np.testing.assert_array_equal(_apply(preprocessing_layers("caffe"), images), expected)


def test_float32_under_mixed_precision():
    images = _raw_images(1)
    expected = keras.applications.resnet.preprocess_input(images.copy())
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        got = _apply(preprocessing_layers("caffe"), images)
    finally:
        keras.config.set_dtype_policy(previous)
    assert got.dtype == np.float32
    assert float(np.abs(got - expected).max()) < 1e-3


def test_unknown_mode():
    with pytest.raises(UserError):
        preprocessing_layers("imagenet")


def test_saved_model_loads_without_tfft(tmp_path):
    inputs = keras.Input((8, 8, 3))
    outputs = [apply_preprocessing(inputs, mode, name=f"preprocess_{mode}") for mode in MODES]
    model = keras.Model(inputs, outputs)
    images = _raw_images(2)
    path = tmp_path / "pre.keras"
    model.save(str(path))
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "expected.npy", np.stack([keras.ops.convert_to_numpy(o)
                                                  for o in model(images)]))
    code = f"""
import sys, numpy as np, keras
model = keras.models.load_model({str(path)!r})
assert not any(m.startswith("tfft") for m in sys.modules)
got = np.stack([keras.ops.convert_to_numpy(o) for o in model(np.load({str(tmp_path / 'images.npy')!r}))])
np.testing.assert_allclose(got, np.load({str(tmp_path / 'expected.npy')!r}), rtol=0, atol=1e-5)
assert not any(layer.trainable for layer in model.layers[1:])
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=tmp_path)
