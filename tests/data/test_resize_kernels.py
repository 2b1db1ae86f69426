"""The pipeline's compiled resize is `decode.resize` (TF's ops), bitwise."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfft.data import decode, resize_decoded
from tfft.data.decoded_batch import resize_decoded_tf

from tests.data.conftest import assert_as_tf_resizes, mixed_decoded_batch


# Upscaling (TF's bilinear kernel), downscaling (its antialiased ScaleAndTranslate and the clip),
# one side each way, equal sizes, degenerate ones.
RESIZES = [((180, 180), (224, 224)), ((375, 500), (224, 224)), ((12, 200), (32, 40)), ((224, 100), (224, 224)),
           ((32, 40), (32, 40)), ((1, 1), (5, 7)), ((2, 3), (1, 1)), ((97, 1203), (64, 64)), ((301, 223), (96, 97))]


@pytest.mark.parametrize("source, target", RESIZES)
def test_compiled_resize_is_decode_resize(source, target):
    from tfft.data import resize_kernels

    image = np.random.default_rng(sum(source)).integers(0, 256, (*source, 3), dtype=np.uint8)
    out = np.empty((*target, 3), np.float32)
    resize_kernels.resize(image, out)
    assert_as_tf_resizes(out, decode.resize(tf.constant(image), target).numpy())


def test_resize_decoded_is_decode_resize_per_image():
    size = (40, 56)
    decoded, images, large = mixed_decoded_batch(size)
    compiled = resize_decoded(decoded, size).numpy()
    assert compiled.shape == (4, 40, 56, 3)
    assert_as_tf_resizes(compiled, resize_decoded_tf(decoded, size).numpy())
    for i, image in enumerate(images):
        assert_as_tf_resizes(compiled[i], decode.resize(tf.constant(image), size).numpy())
    np.testing.assert_array_equal(compiled[3], large)
