"""The input pipeline's CPU warp agrees with the batched XLA warp; its resize is `decode.resize`, bitwise."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfft.augment import Augmenter, cpu_warp, geometry
from tfft.config import AugmentConfig

from tests.data.conftest import assert_as_tf_resizes, mixed_decoded_batch

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


def test_decoded_warp_draws_the_batch_matrices():
    from tfft.data import DecodedBatch

    aug = Augmenter(AugmentConfig(**STRONG), (40, 56), 2)
    seed = tf.constant([9, 11])
    x = tf.round(_batch(5))
    decoded = DecodedBatch(tf.reshape(tf.cast(x, tf.uint8), [5, -1]), tf.constant([[40, 56, 3]] * 5),
                           tf.zeros([5, 0]))
    a = aug.augment_images(aug.decoded_warp()(decoded, seed), seed, warped=True).numpy()
    b = aug.augment_images(x, seed).numpy()
    assert np.abs(a - b).max() < 0.01
    assert Augmenter(AugmentConfig(horizontal_flip=True), (40, 56), 2).decoded_warp() is None


@pytest.mark.parametrize("mode", ["nearest", "constant", "reflect", "wrap"])
def test_resize_and_warp_batch_is_resize_then_warp(mode):
    """Padded raw images of three sizes and one that comes already resized, in one call."""
    from tfft.data.decoded_batch import resize_decoded_tf

    size = (40, 56)
    decoded, _, _ = mixed_decoded_batch(size)
    m = Augmenter(AugmentConfig(**STRONG), size, 2).sample_matrices(4, *size, tf.constant([3, 4]))
    fused = cpu_warp.resize_and_warp_batch(decoded, m, size, mode, 17.0).numpy()
    resized_by_tf = resize_decoded_tf(decoded, size)
    assert_as_tf_resizes(fused, cpu_warp.warp_batch(resized_by_tf, m, mode, 17.0).numpy())
    assert np.abs(fused - resized_by_tf.numpy()).mean() > 10  # it did move the content


def test_fused_pipeline_matches_resize_then_xla_warp(tmp_path):
    """`tfft train`'s pipeline (resize and warp fused, per batch as decoded) against the resize alone
    and the batched XLA warp of model placement: photos of mixed sizes, one too large to pass as
    decoded, and the odd files PIL decodes (CMYK, EXIF-rotated, 16-bit)."""
    from PIL import Image

    from tfft.augment import build_augmenter
    from tfft.config import DataConfig
    from tfft.data import load_splits, make_dataset

    from tests.data.conftest import write_odd_images

    rng = np.random.default_rng(2)
    folder = tmp_path / "data" / "a"
    folder.mkdir(parents=True)
    for i, (h, w) in enumerate([(30, 20), (90, 70), (40, 56), (12, 300), (400, 300)]):
        smooth = np.kron(rng.integers(0, 256, (h // 2 + 1, w // 2 + 1, 3)), np.ones((2, 2, 1)))[:h, :w]
        Image.fromarray(smooth.astype(np.uint8)).save(folder / f"{i}.png")
    odd = write_odd_images(tmp_path / "odd")
    for name in ("cmyk.jpg", "rotated.jpg", "deep16.png"):
        (folder / name).write_bytes(odd[name]["path"].read_bytes())
    cfg = DataConfig(source=str(tmp_path / "data"), image_size=(40, 56), batch_size=3, val_split=0.0)
    splits = load_splits(cfg, seed=0)
    assert len(splits.splits["train"]) == 8
    aug = build_augmenter(AugmentConfig(**STRONG, fill_mode="reflect"), (40, 56), 1)
    on_decoded, on_batch = aug.pipeline_steps()
    kwargs = dict(seed=3, training=True, epochs=range(0, 2))
    fused = [x.numpy() for x, _ in make_dataset(splits, "train", cfg, on_decoded=on_decoded, augment_fn=on_batch,
                                                **kwargs)]
    xla = [x.numpy() for x, _ in make_dataset(splits, "train", cfg, augment_fn=aug, **kwargs)]
    assert [x.shape[0] for x in fused] == [x.shape[0] for x in xla] == [3, 3, 2] * 2
    for a, b in zip(fused, xla):
        assert np.abs(a - b).max() < 0.01  # float32 rounding of the sample coordinates
