"""The per-image CPU warp of the input pipeline agrees with the batched XLA warp."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfft.augment import Augmenter, cpu_warp, geometry
from tfft.config import AugmentConfig

STRONG = dict(rotation_range=90, width_shift_range=0.4, height_shift_range=0.4, shear_range=30,
              zoom_range=0.5, horizontal_flip=True, vertical_flip=True)


def _batch(n=6, h=40, w=56, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(0, 255, (n, h, w, 3)), tf.float32)


def test_numba_loop_is_available():
    assert cpu_warp.available()  # numba is a dependency: the fast path is the one tested


@pytest.mark.parametrize("projective", [False, True])
@pytest.mark.parametrize("mode", ["nearest", "constant", "reflect", "wrap"])
def test_agrees_with_the_xla_warp(mode, projective):
    x = _batch()
    m = Augmenter(AugmentConfig(**STRONG), (40, 56), 2).sample_matrices(6, 40, 56, tf.constant([3, 4]))
    if projective:
        m = m + tf.constant([[0, 0, 0], [0, 0, 0], [4e-4, -3e-4, 0]], tf.float32)
    xla = geometry.warp(x, m, mode, 17.0).numpy()
    per_image = np.stack([cpu_warp.warp_image(x[i], m[i], mode, 17.0).numpy() for i in range(6)])
    batched = geometry.warp(x, m, mode, 17.0, backend="cpu").numpy()
    np.testing.assert_array_equal(per_image, batched)
    # float32 rounding of the sample coordinates only (values span 0..255)
    assert np.abs(per_image - xla).max() < 0.01
    assert np.abs(per_image - x.numpy()).mean() > 10  # it did move the content


def test_identity_is_bitwise_and_uint8_sources_work():
    x = _batch(1)[0]
    np.testing.assert_array_equal(cpu_warp.warp_image(x, tf.eye(3)).numpy(), x.numpy())
    as_uint8 = tf.cast(tf.round(x), tf.uint8)
    out = cpu_warp.warp_image(as_uint8, tf.eye(3))
    assert out.dtype == tf.float32
    np.testing.assert_array_equal(out.numpy(), tf.cast(as_uint8, tf.float32).numpy())


def test_unknown_fill_mode_and_oversized_images_are_rejected():
    with pytest.raises(ValueError, match="fill_mode"):
        cpu_warp.warp_image(_batch(1)[0], tf.eye(3), "mirror")
    # The kernel's flat offsets are int32: an image of 2**31 values or more is refused at trace time.
    huge = tf.function(lambda image: cpu_warp.warp_image(image, tf.eye(3)),
                       input_signature=[tf.TensorSpec([32768, 32768, 3], tf.float32)])
    with pytest.raises(ValueError, match="2\\*\\*31"):
        huge.get_concrete_function()


def test_per_image_warp_draws_the_batch_matrices():
    aug = Augmenter(AugmentConfig(**STRONG), (40, 56), 2)
    seed = tf.constant([9, 11])
    x = _batch(5)
    step = aug.per_image_warp()
    rows = step.sample(seed, 5)
    warped = tf.stack([step.apply(x[i], rows[i]) for i in range(5)])
    a = aug.augment_images(warped, seed, warped=True).numpy()
    b = aug.augment_images(x, seed).numpy()
    assert np.abs(a - b).max() < 0.01
    assert Augmenter(AugmentConfig(horizontal_flip=True), (40, 56), 2).per_image_warp() is None
