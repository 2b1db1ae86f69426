"""IDG's standardizations as built-in Keras layers that live inside the SAVED model.

`featurewise_center` / `featurewise_std_normalization` and `samplewise_center` /
`samplewise_std_normalization` are not augmentations: IDG applies them to every image it yields,
so tfft applies them at inference too, as layers placed right after the model's input.

IDG's `standardize` order is rescale -> samplewise -> featurewise, with (legacy source):

* samplewise: `x -= mean(x)` over the whole image (all pixels and channels);
  `x /= std(x) + 1e-6`;
* featurewise: `x -= mean[c]`, `x /= std[c] + 1e-6`, per channel, both fitted over axes
  (0, 1, 2) of the training data (`fit` computes std after centering: the population std);
* `featurewise_std_normalization` implies `featurewise_center`, and
  `samplewise_std_normalization` implies `samplewise_center` (IDG forces them, with a warning).

Built-in layers used:

* featurewise -> `keras.layers.Normalization(axis=-1, mean=mean, variance=(std + 1e-6)**2)`
  (`(x - mean) / sqrt(variance)`: exactly IDG), variance 1 for center-only;
* samplewise center + std -> `keras.layers.LayerNormalization(axis=[1, 2, 3], center=False,
  scale=False, epsilon=1e-12)`: `(x - mean) / sqrt(var + 1e-12)` vs IDG's `/ (std + 1e-6)`; the
  relative difference is about `1e-6 / std` (< 1e-5 for any non-flat image in 0..255);
* samplewise center only -> a nested functional `keras.Model` named `samplewise_center` made of
  `Reshape`, `GlobalAveragePooling3D(keepdims=True)` and `Subtract` (exact); it loads with
  `keras.models.load_model` without tfft.

`rescale` is ignored (with a warning from `build_augmenter`): tfft models take raw 0-255 images
and contain the backbone's own preprocessing, so a `rescale=1/255` in the pipeline or in front
of the model would feed 0-1 images to a preprocessing that expects 0-255. Statistics are
therefore fitted on 0-255 data. Note that any standardization changes the value range the
backbone's preprocessing sees; with ImageNet weights that is a domain shift (the model builder
should warn or place these layers where it sees fit).
"""

from __future__ import annotations

from typing import Any, Iterable

import keras
import numpy as np

from tfft.config import AugmentConfig

IDG_EPSILON = 1e-6


def wants_featurewise(cfg: AugmentConfig) -> bool:
    return bool(cfg.featurewise_center or cfg.featurewise_std_normalization)


def wants_samplewise(cfg: AugmentConfig) -> bool:
    return bool(cfg.samplewise_center or cfg.samplewise_std_normalization)


def fit_statistics(augment_cfg: AugmentConfig, images_dataset: Iterable) -> dict[str, Any]:
    """Per-channel mean and std of the training images, streamed over batches (IDG's `fit`).

    Sums and sums of squares are accumulated in float64 one batch at a time, so memory stays at
    one batch whatever the dataset size. `std` is the population std (numpy's `np.std`, as IDG).

    Args:
        augment_cfg: the `augment` section; nothing is computed unless a featurewise flag is on.
        images_dataset: an iterable of batches: `images` or `(images, labels, ...)` with images
            `[B, H, W, C]` 0-255 (a `tf.data.Dataset`, un-augmented, e.g. the train split).

    Returns:
        `{"mean": [C floats], "std": [C floats], "count": pixels per channel}`, or `{}` when no
        featurewise flag is set.

    Example:
    >>> import numpy as np
    >>> from tfft.config import AugmentConfig
    >>> stats = fit_statistics(AugmentConfig(featurewise_center=True), [np.ones([2, 4, 4, 3])])
    >>> stats["mean"]
    [1.0, 1.0, 1.0]
    """
    if not wants_featurewise(augment_cfg):
        return {}
    total = total_sq = None
    count = 0
    for batch in images_dataset:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        x = np.asarray(images, dtype=np.float64)
        x = x.reshape(-1, x.shape[-1])
        s, sq = x.sum(axis=0), np.square(x).sum(axis=0)
        total = s if total is None else total + s
        total_sq = sq if total_sq is None else total_sq + sq
        count += x.shape[0]
    if not count:
        from tfft.errors import DataError

        raise DataError("augment.featurewise_center", "no training images to fit the statistics on")
    mean = total / count
    var = np.maximum(total_sq / count - np.square(mean), 0.0)
    return {"mean": mean.tolist(), "std": np.sqrt(var).tolist(), "count": int(count)}


def samplewise_center_block(name: str = "samplewise_center") -> keras.Model:
    """A nested functional model: `x - mean(x)` per image over H, W and C (built-in layers).

    Example:
    >>> import numpy as np
    >>> block = samplewise_center_block()
    >>> float(np.abs(block(np.full([1, 4, 4, 3], 7.0, "float32"))).max())
    0.0
    """
    inputs = keras.Input(shape=(None, None, None), name=f"{name}_in")
    expanded = keras.layers.Reshape((-1, 1, 1, 1))(inputs)  # [B, H*W*C, 1, 1, 1]
    mean = keras.layers.GlobalAveragePooling3D(keepdims=True)(expanded)  # [B, 1, 1, 1, 1]
    mean = keras.layers.Reshape((1, 1, 1))(mean)
    outputs = keras.layers.Subtract()([inputs, mean])
    return keras.Model(inputs, outputs, name=name)


def standardization_layers(augment_cfg: AugmentConfig, stats: dict[str, Any] | None = None) -> list[keras.layers.Layer]:
    """The layers, in IDG's order, that put the configured standardizations in the saved model.

    Apply them in sequence right after the raw 0-255 input (before the backbone's own
    preprocessing): `for layer in layers: x = layer(x)`.

    Args:
        augment_cfg: the `augment` section.
        stats: `fit_statistics(...)`'s result; required when a featurewise flag is on.

    Returns:
        A list of built-in Keras layers (possibly empty).

    Example:
    >>> from tfft.config import AugmentConfig
    >>> [type(l).__name__ for l in standardization_layers(AugmentConfig(samplewise_std_normalization=True))]
    ['LayerNormalization']
    """
    layers: list[keras.layers.Layer] = []
    if augment_cfg.samplewise_std_normalization:
        layers.append(keras.layers.LayerNormalization(
            axis=[1, 2, 3], center=False, scale=False, epsilon=1e-12, name="samplewise_std"))
    elif augment_cfg.samplewise_center:
        layers.append(samplewise_center_block())
    if wants_featurewise(augment_cfg):
        if not stats or "mean" not in stats:
            from tfft.errors import UserError

            raise UserError("augment.featurewise_center",
                            "featurewise standardization needs statistics of the training data",
                            "call tfft.augment.fit_statistics(cfg.augment, train_images) first")
        mean = np.asarray(stats["mean"], np.float32)
        if augment_cfg.featurewise_std_normalization:
            variance = np.square(np.asarray(stats["std"], np.float64) + IDG_EPSILON).astype(np.float32)
        else:
            variance = np.ones_like(mean)
        layers.append(keras.layers.Normalization(axis=-1, mean=mean.tolist(),
                                                 variance=variance.tolist(), name="featurewise"))
    return layers
