"""Grad-CAM heatmaps on tfft classifiers (nested and flat backbones) and on ensembles."""

from __future__ import annotations

import numpy as np
import pytest

from tfft.config import ModelConfig
from tfft.errors import UserError
from tfft.models.build import build_classifier
from tfft.models.heatmaps import heatmaps


@pytest.fixture(scope="module")
def models(tiny_backbone):
    spec = f"keras:{tiny_backbone}"
    return (build_classifier(ModelConfig(backbone=spec, weights=None), 3, (48, 48)),
            build_classifier(ModelConfig(backbone=spec, weights=None), 3, (32, 32)))


def _patch_images(count: int, size: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (count, size, size, 3)).astype(np.float32)


def test_shape_range_and_given_class(models):
    model = models[0]
    images = _patch_images(5)
    maps = heatmaps(model, images)
    assert maps.shape == (5, 48, 48) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert np.isclose(maps.reshape(5, -1).max(axis=1), 1.0).any()  # each map peaks at 1 unless all-zero
    per_class = [heatmaps(model, images, class_index=c) for c in range(3)]
    assert not np.allclose(per_class[0], per_class[1])  # the class matters
    predicted = model.predict_on_batch(images).argmax(axis=1)
    chosen = np.stack([per_class[c][i] for i, c in enumerate(predicted)])
    np.testing.assert_allclose(maps, chosen, atol=1e-5)  # default: the predicted class


def test_flat_backbone_model():
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(2, name="logits")(x)
    model = keras.Model(inputs, keras.layers.Activation("softmax", name="probabilities")(x))
    maps = heatmaps(model, _patch_images(2, 32), class_index=1)
    assert maps.shape == (2, 32, 32) and maps.max() <= 1.0


def test_ensemble_averages_members(models, tmp_path):
    import keras

    from tfft.studies.ensemble import build_ensemble_model

    big, small = models
    ensemble, _ = build_ensemble_model([big, small], [["a", "b", "c"], ["b", "a", "c"]], (48, 48), ["a", "b", "c"])
    ensemble.save(tmp_path / "e.keras")
    loaded = keras.models.load_model(tmp_path / "e.keras")
    images = _patch_images(3)
    maps = heatmaps(loaded, images, class_index=0)
    assert maps.shape == (3, 48, 48) and 0.0 <= maps.min() and maps.max() <= 1.0
    # member 1 takes the ensemble's input as it is: its map is the big model's own
    first = heatmaps(loaded, images, class_index=0, member=1)
    np.testing.assert_allclose(first, heatmaps(big, images, class_index=0), atol=1e-5)
    # member 2 lists b before a (its class 1 is the ensemble's class 0); the ensemble's map is the mean
    second = heatmaps(loaded, images, class_index=0, member=2)
    assert not np.allclose(first, second)
    mean = first + second
    np.testing.assert_allclose(maps, mean / mean.reshape(3, -1).max(axis=1)[:, None, None], atol=1e-5)
    with pytest.raises(UserError, match="2 member"):
        heatmaps(loaded, images, member=3)


def test_maps_come_back_at_the_images_size(models):
    maps = heatmaps(models[0], _patch_images(2, 96), class_index=0)  # the model takes 48x48
    assert maps.shape == (2, 96, 96) and maps.max() <= 1.0


def test_wrong_input_is_a_user_error(models):
    with pytest.raises(UserError, match="expected"):
        heatmaps(models[0], _patch_images(1)[0])
    with pytest.raises(UserError, match="3 classes"):
        heatmaps(models[0], _patch_images(1), class_index=7)


def test_ensemble_member_maps_follow_its_class_order(models, tiny_backbone):
    from tfft.studies.ensemble import build_ensemble_model

    other = build_classifier(ModelConfig(backbone=f"keras:{tiny_backbone}", weights=None, dropout=0.1), 3, (48, 48))
    ensemble, _ = build_ensemble_model([models[0], other], [["a", "b", "c"], ["b", "a", "c"]], (48, 48),
                                       ["a", "b", "c"])
    images = _patch_images(2, seed=3)
    np.testing.assert_allclose(heatmaps(ensemble, images, class_index=0, member=2),
                               heatmaps(other, images, class_index=1), atol=1e-5)  # its "a" is output 1


@pytest.mark.parametrize("method", ["gradcam++", "scorecam"])
def test_other_methods_follow_the_same_contract(models, method):
    images = _patch_images(3)
    maps = heatmaps(models[0], images, class_index=[0, 1, 2], method=method, upsampling="bilinear")
    assert maps.shape == (3, 48, 48) and maps.dtype == np.float32
    assert 0.0 <= maps.min() and maps.max() <= 1.0


def _spot_model(tokens: bool, class_token: bool = False):
    """Input 32x32 -> 4x4 patches of 8 px (a positive 8x8 convolution, no bias) -> [N, 4, 4, 2] or, as
    tokens, [N, 16 (+1), 2] -> mean -> logits: the only live cell is the one under a bright spot."""
    import keras

    inputs = keras.Input((32, 32, 3))
    patches = keras.layers.Conv2D(2, 8, strides=8, use_bias=False, kernel_initializer="ones", name="embed")(inputs)
    x = patches
    if tokens:
        x = keras.layers.Reshape((16, 2))(patches)
        if class_token:
            first = keras.layers.Reshape((1, 2))(keras.layers.GlobalAveragePooling1D()(x))
            x = keras.layers.Concatenate(axis=1)([first, x])
    backbone = keras.Model(inputs, x, name="backbone")
    outer = keras.Input((32, 32, 3))
    pooled = (keras.layers.GlobalAveragePooling1D() if tokens else keras.layers.GlobalAveragePooling2D())(backbone(outer))
    logits = keras.layers.Dense(2, kernel_initializer="ones", name="logits")(pooled)
    return keras.Model(outer, keras.layers.Activation("softmax")(logits))


@pytest.mark.parametrize("tokens,class_token", [(False, False), (True, False), (True, True)])
def test_token_feature_maps_are_laid_out_on_their_grid(tokens, class_token):
    """ViT-like backbones: [N, tokens, C] with a square grid of patch tokens (+ a class token)."""
    images = np.zeros((1, 32, 32, 3), np.float32)
    images[0, 16:24, 8:16] = 200.0  # patch (row 2, column 1)
    maps = heatmaps(_spot_model(tokens, class_token), images, class_index=0, upsampling="bilinear")
    assert maps.shape == (1, 32, 32)
    peak = np.unravel_index(int(maps[0].argmax()), (32, 32))
    assert 16 <= peak[0] < 24 and 8 <= peak[1] < 16
    assert maps[0, 16:24, 8:16].sum() > 0.5 * maps[0].sum()


def test_aligned_upsampling_centres_cells_on_their_receptive_fields():
    import keras

    from tfft.models import cam

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(2, 3, strides=2, padding="same", kernel_initializer="ones")(inputs)
    x = keras.layers.Conv2D(2, 3, strides=2, padding="same", kernel_initializer="ones")(x)
    offset, stride = cam.receptive_field_centres(keras.Model(inputs, x), (32, 32))
    np.testing.assert_allclose(stride, [4, 4])
    np.testing.assert_allclose(offset, [3, 3], atol=0.05)  # TF 'same' pads after: cell i sees rows 4i..4i+6
    one = np.zeros((1, 8, 8))
    one[0, 2, 5] = 1.0
    up = cam.upsample(one, (32, 32), "aligned", offset, stride)
    assert np.unravel_index(int(up[0].argmax()), (32, 32)) == (11, 23)  # 3 + 4 * (2, 5)


def test_layer_picks_an_earlier_finer_map(tiny_backbone):
    import keras

    model = build_classifier(ModelConfig(backbone=f"keras:{tiny_backbone}", weights=None), 2, (32, 32))
    inner = [layer.name for layer in model.get_layer("backbone").layers if isinstance(layer, keras.layers.Conv2D)]
    maps = heatmaps(model, _patch_images(2, 32), class_index=0, layer=inner[0])
    assert maps.shape == (2, 32, 32) and 0.0 <= maps.min() and maps.max() <= 1.0
    with pytest.raises(UserError, match="no such layer"):
        heatmaps(model, _patch_images(1, 32), layer="nope")
    with pytest.raises(UserError, match="method"):
        heatmaps(model, _patch_images(1, 32), method="lime")
