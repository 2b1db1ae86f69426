"""Featurewise/samplewise standardization as built-in layers, the preview grid, the CLI command."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfft.augment import fit_statistics, preview_grid, standardization_layers
from tfft.config import AugmentConfig


def _data(n=10, size=8, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def _idg():
    pytest.importorskip("scipy")
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    return ImageDataGenerator


def test_fit_statistics_streams_and_matches_idg():
    x = _data(12)
    cfg = AugmentConfig(featurewise_center=True, featurewise_std_normalization=True)
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(12, np.int32))).batch(5)
    stats = fit_statistics(cfg, ds)
    gen = _idg()(featurewise_center=True, featurewise_std_normalization=True)
    gen.fit(x)
    np.testing.assert_allclose(stats["mean"], gen.mean.ravel(), rtol=1e-5)
    np.testing.assert_allclose(stats["std"], gen.std.ravel(), rtol=1e-4)
    assert fit_statistics(AugmentConfig(), ds) == {}


@pytest.mark.parametrize("flags", [
    dict(featurewise_center=True),
    dict(featurewise_center=True, featurewise_std_normalization=True),
    dict(samplewise_center=True),
    dict(samplewise_center=True, samplewise_std_normalization=True),
    dict(samplewise_center=True, samplewise_std_normalization=True, featurewise_center=True,
         featurewise_std_normalization=True),
])
def test_layers_match_idg_standardize_and_survive_save_load(flags, tmp_path):
    x = _data(6)
    cfg = AugmentConfig(**flags)
    stats = fit_statistics(cfg, [x[:3], x[3:]])
    gen = _idg()(**flags)
    if stats:
        gen.fit(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = np.stack([gen.standardize(im.copy()) for im in x])
    inp = keras.Input((8, 8, 3))
    out = inp
    for layer in standardization_layers(cfg, stats):
        out = layer(out)
    model = keras.Model(inp, out)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)


def test_featurewise_without_stats_is_a_user_error():
    from tfft.errors import UserError

    with pytest.raises(UserError):
        standardization_layers(AugmentConfig(featurewise_center=True), None)


def test_preview_grid_writes_png(tmp_path):
    x = _data(6, 24)
    out = preview_grid(AugmentConfig(rotation_range=30, mixup=0.2), x, [0, 0, 0, 1, 1, 1], ["a", "b"], 3,
                       tmp_path / "grid.png", per_class=3)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_preview_shows_the_original_next_to_its_augmented_copies(tmp_path, cli_runner):
    import matplotlib.pyplot as plt
    from PIL import Image

    from tfft.augment.preview import preview_figure

    x = _data(6, 24)
    fig = preview_figure(AugmentConfig(rotation_range=40, brightness_range=(0.5, 1.5)), x, [0, 0, 0, 1, 1, 1],
                         ["a", "b"], 3, per_class=3)
    tiles = np.asarray(fig.axes).reshape(2, 4)  # a row per class: the original, then 3 copies
    for row, (name, first) in enumerate((("a", 0), ("b", 3))):
        assert tiles[row, 0].get_title(loc="left") == f"{name}: original"
        shown = [np.asarray(ax.images[0].get_array()) for ax in tiles[row]]
        assert np.array_equal(shown[0], np.clip(x[first], 0, 255).astype(np.uint8))  # un-augmented
        for copy in shown[1:]:
            assert copy.shape == shown[0].shape and not np.array_equal(copy, shown[0])
        assert not np.array_equal(shown[1], shown[2])  # each copy its own draw
    plt.close(fig)

    # The command: one row per class of the config's data, per_class copies plus the original.
    config = tmp_path / "c.yaml"
    config.write_text("data: {image_size: [32, 32], builtin_per_class: 4}\n"
                      "augment: {rotation_range: 20}\n")
    result = cli_runner("augment", "preview", config, "--out", tmp_path / "grid.png", "--per-class", 2)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "grid.png") as png:
        assert png.size[0] == pytest.approx(100 * 1.6 * 3, abs=2)  # 3 columns at 1.6 inches, 100 dpi
