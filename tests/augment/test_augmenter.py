"""Sampling ranges, determinism, placement equality, modern policies."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfft.augment import AugmentLayer, Augmenter, batch_seed, build_augmenter, sample_shift
from tfft.config import AugmentConfig

SEED_RECIPE = dict(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2,
                   zoom_range=0.2, horizontal_flip=True, fill_mode="nearest")


def _images(n=4, h=32, w=32, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(0, 255, (n, h, w, 3)), tf.float32)


def test_build_returns_none_when_nothing_is_on():
    assert build_augmenter(AugmentConfig(horizontal_flip=False), (32, 32), 2) is None
    assert build_augmenter(AugmentConfig(), (32, 32), 2) is not None  # horizontal_flip defaults on


def test_rescale_is_ignored_with_a_warning():
    with pytest.warns(UserWarning, match="rescale"):
        build_augmenter(AugmentConfig(rescale=1 / 255), (32, 32), 2)


def test_same_seed_same_output_different_seed_different_output():
    aug = build_augmenter(AugmentConfig(**SEED_RECIPE, channel_shift_range=10), (32, 32), 3)
    x, y = _images(), tf.constant([0, 1, 2, 0])
    a = aug(x, y, tf.constant([7, 8]))[0].numpy()
    b = aug(x, y, tf.constant([7, 8], tf.int64))[0].numpy()
    c = aug(x, y, tf.constant([7, 9]))[0].numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1.0


def test_pipeline_and_model_placement_agree():
    aug = build_augmenter(AugmentConfig(**SEED_RECIPE, brightness_range=(0.8, 1.2)), (32, 32), 2)
    x, y = _images(8), tf.zeros([8], tf.int32)
    seed = batch_seed(42, 3, 5)
    ds = tf.data.Dataset.from_tensors((x, y)).map(lambda a, b: aug(a, b, seed))
    piped = next(iter(ds))[0].numpy()
    layer = AugmentLayer(aug)
    import keras

    inp, seed_in = keras.Input((32, 32, 3)), keras.Input((2,), dtype="int64")
    model = keras.Model([inp, seed_in], layer([inp, seed_in]))
    in_model = model([x, tf.tile(seed[None], [8, 1])], training=True).numpy()
    np.testing.assert_allclose(piped, in_model, atol=1e-4)
    traced = tf.function(lambda a, s: aug(a, y, s)[0])(x, seed).numpy()
    np.testing.assert_allclose(piped, traced, atol=1e-4)
    # what `tfft train` runs in the pipeline: resize and warp (CPU loop) on the batch as decoded, the rest after
    from tfft.data import DecodedBatch

    whole = tf.round(x)  # decoded images are uint8
    decoded = DecodedBatch(tf.reshape(tf.cast(whole, tf.uint8), [8, -1]), tf.constant([[32, 32, 3]] * 8),
                           tf.zeros([8, 0]))
    on_decoded, on_batch = aug.pipeline_steps()
    fused = on_batch(on_decoded(decoded, seed), y, seed)[0].numpy()
    layer_on_whole = model([whole, tf.tile(seed[None], [8, 1])], training=True).numpy()
    assert np.abs(fused - layer_on_whole).max() < 0.01  # float32 rounding of the sample coordinates
    # inference: untouched
    np.testing.assert_array_equal(model([x, tf.tile(seed[None], [8, 1])], training=False).numpy(), x.numpy())


def test_layer_counter_mode_advances():
    aug = build_augmenter(AugmentConfig(rotation_range=30), (16, 16), 2)
    layer = AugmentLayer(aug, base_seed=1)
    x = _images(2, 16, 16)
    a = layer(x, training=True).numpy()
    b = layer(x, training=True).numpy()
    assert int(layer.counter.numpy()) == 2 and np.abs(a - b).mean() > 0.1
    np.testing.assert_array_equal(a, aug.augment_images(x, tf.constant([1, 0], tf.int64)).numpy())


def test_parameter_ranges_follow_idg():
    aug = Augmenter(AugmentConfig(**SEED_RECIPE), (32, 48), 2)
    n = 2000
    rng = np.random.default_rng(0)
    u, u_sign = (tf.constant(rng.uniform(0, 1, n), tf.float32) for _ in range(2))
    tx = sample_shift(0.2, 48, u, u_sign).numpy()
    assert np.abs(tx).max() <= 0.2 * 48 and np.abs(tx).max() > 0.18 * 48 and abs(tx.mean()) < 0.5
    px = sample_shift(3.0, 48, u, u_sign).numpy()  # float >= 1: pixels
    assert np.abs(px).max() <= 3.0 and np.abs(px).max() > 2.8
    ints = sample_shift(3, 48, u, u_sign).numpy()  # int: choice(range(3)) * sign
    assert set(np.unique(ints)) == {-2.0, -1.0, 0.0, 1.0, 2.0}
    listed = sample_shift([0.1, 0.25], 40, u, u_sign).numpy()
    assert set(np.unique(listed)) == {-10.0, -4.0, 4.0, 10.0}
    assert sample_shift(3, 48, tf.constant([0.9999]), tf.constant([0.9]))[0] == 2.0  # never v itself
    s = tf.constant([1, 1], tf.int64)
    m = aug.sample_matrices(n, 32, 48, s).numpy()
    assert np.all(np.isfinite(m)) and m.shape == (n, 3, 3)
    # rotation: the linear part of a zoom-free, shear-free draw is a rotation within +-40 degrees
    rot = Augmenter(AugmentConfig(rotation_range=40, horizontal_flip=False), (32, 48), 2)
    r = rot.sample_matrices(n, 32, 48, s).numpy()
    theta = np.degrees(np.arctan2(r[:, 1, 0], r[:, 0, 0]))
    assert np.abs(theta).max() <= 40 + 1e-3 and np.abs(theta).max() > 39 and theta.std() > 20


def test_matrices_do_not_depend_on_the_batch_size():
    aug = Augmenter(AugmentConfig(**SEED_RECIPE, vertical_flip=True, random_resized_crop=(0.5, 1.0),
                                  rand_augment=(2, 9)), (32, 48), 2)
    s = tf.constant([3, 9], tf.int64)
    # the same draws; the batched matrix products may round differently in the last bit
    np.testing.assert_allclose(aug.sample_matrices(3, 32, 48, s).numpy(),
                               aug.sample_matrices(8, 32, 48, s).numpy()[:3], rtol=1e-6, atol=1e-4)


def test_channel_shift_and_brightness_clip_like_idg():
    x = _images(64, 16, 16)
    aug = Augmenter(AugmentConfig(horizontal_flip=False, channel_shift_range=100.0), (16, 16), 2)
    out = aug.augment_images(x, tf.constant([2, 3])).numpy()
    lo, hi = x.numpy().min(axis=(1, 2, 3)), x.numpy().max(axis=(1, 2, 3))
    assert np.all(out.min(axis=(1, 2, 3)) >= lo) and np.all(out.max(axis=(1, 2, 3)) <= hi)
    delta = (out - x.numpy())[np.abs(out - x.numpy()) > 0]
    assert delta.size
    aug = Augmenter(AugmentConfig(horizontal_flip=False, brightness_range=(0.5, 1.5)), (16, 16), 2)
    out = aug.augment_images(x, tf.constant([2, 3])).numpy()
    ratio = out[..., 0] / np.maximum(x.numpy()[..., 0], 1e-3)
    assert out.min() >= 0 and out.max() <= 255
    unclipped = out[..., 0] < 254
    assert np.all((ratio[unclipped] > 0.49) & (ratio[unclipped] < 1.51))


@pytest.mark.parametrize("policy", [dict(mixup=0.4), dict(cutmix=1.0), dict(mixup=0.4, cutmix=1.0)])
def test_mixup_cutmix_labels_sum_to_one(policy):
    aug = build_augmenter(AugmentConfig(horizontal_flip=False, **policy), (16, 16), 5)
    assert aug.needs_one_hot
    x, y = _images(32, 16, 16), tf.constant(np.arange(32) % 5, tf.int32)
    out, soft = aug(x, y, tf.constant([4, 2]))
    soft = soft.numpy()
    assert soft.shape == (32, 5) and np.allclose(soft.sum(1), 1.0, atol=1e-5) and soft.min() >= 0
    assert (soft.max(1) < 0.999).any()
    _, soft2 = aug(x, tf.one_hot(y, 5), tf.constant([4, 2]))
    np.testing.assert_allclose(soft, soft2.numpy())


def test_modern_policies_run_stateless_and_in_range():
    cfg = AugmentConfig(**SEED_RECIPE, random_resized_crop=(0.2, 1.0), color_jitter=0.5,
                        rand_augment=(2, 9), random_erasing=0.5, channel_shift_range=20,
                        brightness_range=(0.7, 1.3))
    aug = build_augmenter(cfg, (32, 32), 2)
    x, y = _images(16), tf.zeros([16], tf.int32)
    a = aug(x, y, tf.constant([9, 9]))[0].numpy()
    b = aug(x, y, tf.constant([9, 9]))[0].numpy()
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 255 and np.isfinite(a).all()
    assert "rand_augment" in aug.describe()


def test_random_resized_crop_full_scale_is_near_identity():
    aug = build_augmenter(AugmentConfig(horizontal_flip=False, random_resized_crop=(1.0, 1.0)), (24, 24), 2)
    x = _images(4, 24, 24)
    out = aug(x, tf.zeros([4], tf.int32), tf.constant([1, 1]))[0].numpy()
    # area 1 with ratio != 1 clips one side: at most a mild stretch, never a crop of 1 - scale
    assert np.abs(out - x.numpy()).mean() < 60


def test_unbatched_size_and_partial_batch_work_in_tf_data():
    aug = build_augmenter(AugmentConfig(**SEED_RECIPE), (32, 32), 2)
    ds = tf.data.Dataset.from_tensor_slices((_images(5), tf.zeros([5], tf.int32))).batch(2)
    ds = ds.enumerate().map(lambda i, b: aug(b[0], b[1], batch_seed(1, 0, i)))
    shapes = [x.shape[0] for x, _ in ds]
    assert shapes == [2, 2, 1]
