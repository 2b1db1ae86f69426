"""The fused warp reproduces ImageDataGenerator's affine transform and fill modes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tensorflow as tf

from tfft.augment import Augmenter, geometry
from tfft.config import AugmentConfig


def _warp_params(x: np.ndarray, fill_mode: str = "nearest", cval: float = 0.0, backend: str = "xla",
                 **params) -> np.ndarray:
    h, w = x.shape[:2]
    m = geometry.idg_params_to_matrix(params, h, w, idg_centre=False)
    return geometry.warp(tf.constant(x[None], tf.float32), m, fill_mode, cval, backend=backend)[0].numpy()


def _ramp(h=32, w=32) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (h, w, 3)).astype(np.float32)


def test_identity_parameters_are_bitwise_identity():
    x = _ramp(24, 40)
    assert np.array_equal(_warp_params(x, theta=0, tx=0, ty=0, shear=0, zx=1, zy=1), x)
    aug = Augmenter(AugmentConfig(horizontal_flip=False, rotation_range=0, zoom_range=[1, 1]), (24, 40), 2)
    out = aug.augment_images(tf.constant(x[None]), tf.constant([1, 2]))
    assert np.array_equal(out[0].numpy(), x)


def test_flips_mirror_exactly():
    x = _ramp(20, 28)
    np.testing.assert_array_equal(_warp_params(x, flip_horizontal=True), x[:, ::-1])
    np.testing.assert_array_equal(_warp_params(x, flip_vertical=True), x[::-1])
    np.testing.assert_array_equal(_warp_params(x, flip_horizontal=True, flip_vertical=True), x[::-1, ::-1])


def test_flip_probability_is_one_half_over_a_batch():
    x = np.tile(_ramp(8, 8)[None], [512, 1, 1, 1])
    aug = Augmenter(AugmentConfig(horizontal_flip=True, vertical_flip=True), (8, 8), 2)
    out = aug.augment_images(tf.constant(x), tf.constant([3, 4])).numpy()
    flipped_h = np.all(out == x[:, :, ::-1], axis=(1, 2, 3)) | np.all(out == x[:, ::-1, ::-1], axis=(1, 2, 3))
    flipped_v = np.all(out == x[:, ::-1], axis=(1, 2, 3)) | np.all(out == x[:, ::-1, ::-1], axis=(1, 2, 3))
    assert 0.42 < flipped_h.mean() < 0.58 and 0.42 < flipped_v.mean() < 0.58


def test_rotation_by_90_matches_rot90():
    x = _ramp(33, 33)
    out = _warp_params(x, theta=90)
    # IDG's theta > 0 turns the content counter-clockwise on screen, as np.rot90(k=1).
    np.testing.assert_allclose(out[1:-1, 1:-1], np.rot90(x, k=1)[1:-1, 1:-1], atol=1e-3)


@pytest.mark.parametrize("frac", [0.25, -0.125])
def test_width_shift_moves_content_by_fraction_of_width(frac):
    h, w = 16, 32
    x = np.zeros((h, w, 3), np.float32)
    x[8, 16] = 255.0
    aug = Augmenter(AugmentConfig(horizontal_flip=False, width_shift_range=[abs(frac)]), (h, w), 2)
    out = aug.augment_images(tf.constant(np.tile(x[None], [16, 1, 1, 1])), tf.constant([5, 6])).numpy()
    cols = {int(np.argwhere(o[..., 0] > 128)[0][1]) - 16 for o in out}
    rows = {int(np.argwhere(o[..., 0] > 128)[0][0]) for o in out}
    assert cols == {int(w * abs(frac)), -int(w * abs(frac))} and rows == {8}


def test_height_shift_moves_content_by_fraction_of_height():
    h, w = 32, 16
    x = np.zeros((h, w, 3), np.float32)
    x[16, 8] = 255.0
    aug = Augmenter(AugmentConfig(horizontal_flip=False, height_shift_range=[0.25]), (h, w), 2)
    out = aug.augment_images(tf.constant(np.tile(x[None], [16, 1, 1, 1])), tf.constant([5, 6])).numpy()
    rows = {int(np.argwhere(o[..., 0] > 128)[0][0]) - 16 for o in out}
    cols = {int(np.argwhere(o[..., 0] > 128)[0][1]) for o in out}
    assert rows == {8, -8} and cols == {8}


def test_zoom_scales_about_the_centre():
    h = w = 33  # centre pixel (16, 16)
    x = np.zeros((h, w, 3), np.float32)
    x[16, 16] = x[16, 24] = x[8, 16] = 255.0
    out = _warp_params(x, zx=0.5, zy=0.5)  # zoom < 1 enlarges content by 1/z
    assert out[16, 16, 0] == 255.0
    assert out[16, 32, 0] == 255.0 and out[0, 16, 0] == 255.0


@pytest.mark.parametrize("mode", ["constant", "nearest", "reflect", "wrap"])
@pytest.mark.parametrize("backend", ["xla", "kernel", "cpu"])
def test_fill_modes(mode, backend):
    x = np.arange(8, dtype=np.float32)[None, :, None] * np.ones((4, 1, 3), np.float32)  # cols 0..7
    out = _warp_params(x, fill_mode=mode, cval=99.0, backend=backend, tx=-3)  # content moves right by 3
    first = out[1, :3, 0].tolist()
    expected = {"constant": [99, 99, 99], "nearest": [0, 0, 0], "reflect": [2, 1, 0], "wrap": [4, 5, 6]}[mode]  # scipy's wrap: period n-1
    assert first == expected
    np.testing.assert_array_equal(out[1, 3:, 0], np.arange(5))


@pytest.mark.parametrize("backend", ["xla", "kernel", "cpu"])
def test_matches_legacy_image_data_generator(backend):
    pytest.importorskip("scipy")
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (40, 56, 3)).astype(np.float32)
    x = np.asarray(tf.image.resize(tf.nn.avg_pool2d(x[None], 3, 1, "SAME"), [40, 56])[0])
    for mode in ["nearest", "reflect", "constant", "wrap"]:
        gen = ImageDataGenerator(fill_mode=mode, cval=10.0)
        diffs = []
        for k in range(6):
            params = dict(theta=rng.uniform(-40, 40), tx=rng.uniform(-8, 8), ty=rng.uniform(-8, 8),
                          shear=rng.uniform(-15, 15), zx=rng.uniform(0.8, 1.2), zy=rng.uniform(0.8, 1.2),
                          flip_horizontal=bool(k % 2), flip_vertical=k == 3)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = gen.apply_transform(x.copy(), params)
            m = geometry.idg_params_to_matrix(params, 40, 56, idg_centre=True)
            ours = geometry.warp(tf.constant(x[None]), m, mode, 10.0, backend=backend)[0].numpy()
            diffs.append(np.abs(ref - ours).mean())
        limit = {"nearest": 1e-3, "reflect": 1e-3, "constant": 1e-3, "wrap": 1e-3}[mode]
        assert max(diffs) < limit, (mode, diffs)
        # identity parameters: bitwise the input in IDG and here
    ref = ImageDataGenerator().apply_transform(x.copy(), {"theta": 0})
    ours = geometry.warp(tf.constant(x[None]), geometry.idg_params_to_matrix({}, 40, 56))[0].numpy()
    np.testing.assert_array_equal(ref, ours)


def test_warp_works_inside_a_jit_compiled_function():
    aug = Augmenter(AugmentConfig(rotation_range=30, zoom_range=0.2), (16, 16), 2)
    x = tf.constant(_ramp(16, 16)[None].repeat(2, 0))
    eager = aug.augment_images(x, tf.constant([1, 2])).numpy()
    compiled = tf.function(lambda a: aug.augment_images(a, tf.constant([1, 2])), jit_compile=True)(x).numpy()
    np.testing.assert_allclose(eager, compiled, atol=1e-3)
