"""The pipeline's compiled resize is `decode.resize` (TF's ops), bitwise."""

from __future__ import annotations

import platform

import numpy as np
import pytest
import tensorflow as tf

from tfft.data import DecodedBatch, decode, resize_decoded
from tfft.data.pipeline import _resize_decoded_tf


def assert_as_tf_resizes(actual, expected):
    """Bitwise on x86-64, whose TF wheels keep every multiply and add of their resize kernels apart."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        np.testing.assert_array_equal(actual, expected)
    else:  # pragma: no cover - other TF builds may fuse multiply-adds
        np.testing.assert_allclose(actual, expected, atol=0.01)


# Upscaling (TF's bilinear kernel), downscaling (its antialiased ScaleAndTranslate and the clip),
# one side each way, equal sizes, degenerate ones.
RESIZES = [((180, 180), (224, 224)), ((375, 500), (224, 224)), ((12, 200), (32, 40)), ((224, 100), (224, 224)),
           ((32, 40), (32, 40)), ((1, 1), (5, 7)), ((2, 3), (1, 1)), ((97, 1203), (64, 64)), ((301, 223), (96, 97))]


@pytest.mark.parametrize("source, target", RESIZES)
def test_compiled_resize_is_decode_resize(source, target):
    from tfft.data import _resize_kernels

    image = np.random.default_rng(sum(source)).integers(0, 256, (*source, 3), dtype=np.uint8)
    out = np.empty((*target, 3), np.float32)
    _resize_kernels.resize(image, out)
    assert_as_tf_resizes(out, decode.resize(tf.constant(image), target).numpy())


def mixed_decoded_batch(size=(40, 56), seed=1):
    """A `DecodedBatch` of three images (up-, down- and not scaled to `size`), zero padded, and a
    fourth that comes already resized; with the three images and the fourth's resized pixels."""
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(30, 20, 3), (90, 70, 3), (*size, 3)]]
    raw = np.zeros((4, max(image.size for image in images)), np.uint8)
    for i, image in enumerate(images):
        raw[i, :image.size] = image.reshape(-1)
    large = decode.resize(tf.constant(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)), size).numpy()
    resized = np.zeros((4, large.size), np.float32)
    resized[3] = large.reshape(-1)
    shapes = np.array([image.shape for image in images] + [(0, 0, 3)], np.int32)
    return DecodedBatch(tf.constant(raw), tf.constant(shapes), tf.constant(resized)), images, large


def test_resize_decoded_is_decode_resize_per_image():
    size = (40, 56)
    decoded, images, large = mixed_decoded_batch(size)
    compiled = resize_decoded(decoded, size).numpy()
    assert compiled.shape == (4, 40, 56, 3)
    assert_as_tf_resizes(compiled, _resize_decoded_tf(decoded, size).numpy())
    for i, image in enumerate(images):
        assert_as_tf_resizes(compiled[i], decode.resize(tf.constant(image), size).numpy())
    np.testing.assert_array_equal(compiled[3], large)
