"""BatchNorm moving statistics recomputed after a phase that trained them.

In training mode a BatchNormalization layer normalizes with each batch's own statistics and only
drifts its moving mean and variance towards them (`m <- momentum * m + (1 - momentum) * batch`);
inference uses the moving values. With the architectures' momentum (0.99 in Keras' MobileNets and
EfficientNets) and few steps, they never catch up: MobileNetV3-Small from random weights on 245
images, 15 epochs (120 steps), reached 0.82 training accuracy while val sat at the majority class
(the model in inference mode was a constant). After every phase in which BatchNorm layers train
(`schedule.bn: train`, the default for `weights: null`), `recompute` runs one pass over the
training split (no augmentation, file order) in training mode and sets each such layer's moving
statistics to the population mean and variance of that pass, as the network now computes them.
No weight changes (the random layers' seed states are restored too), and the pass is a pure
function of the weights and the data, so a resumed run recomputes the same values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import keras
import numpy as np

from tfft.backbones import all_layers

_BATCH_NORMS = (keras.layers.BatchNormalization,)


def trained_batchnorms(model: keras.Model) -> list[str]:
    """The names of the BatchNormalization layers (nested models included) that train as the
    model's trainable flags stand.

    Example:
    >>> inputs = keras.Input((4, 4, 3))
    >>> model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(inputs))
    >>> trained_batchnorms(model)
    ['bn']
    """
    return [layer.name for layer in all_layers(model) if isinstance(layer, _BATCH_NORMS) and layer.trainable]


def recompute(model: keras.Model, names: Sequence[str], batches: Iterable[Any]) -> int:
    """Set the moving statistics of the BatchNorm layers `names` to their population values over `batches`.

    Each batch runs through the model in training mode with the layers' momentum at 0, so each
    layer's moving mean and variance hold that batch's statistics; they are accumulated in float64,
    weighted by the batch size, into the mean and variance of the whole pass (the variance of all
    the activations the layer saw, between-batch spread included). Everything else the pass
    touches (other variables, the dropout seed states) is restored afterwards.

    Args:
        model: the classifier (its BatchNorm layers may sit in a nested backbone).
        names: the layers to recompute (`trained_batchnorms` at the end of the phase).
        batches: `(images, labels)` batches of the training split, without augmentation.

    Returns:
        The number of images in the pass (0: nothing to do).

    Example:
    >>> inputs = keras.Input((2,))
    >>> model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(inputs))
    >>> data = [(np.array([[0.0, 1.0], [2.0, 3.0]], "float32"), None), (np.array([[4.0, 5.0]], "float32"), None)]
    >>> recompute(model, ["bn"], data)
    3
    >>> [[round(float(v), 4) for v in w.numpy()] for w in model.get_layer("bn").non_trainable_weights]
    [[2.0, 3.0], [2.6667, 2.6667]]
    """
    import tensorflow as tf

    by_name = {layer.name: layer for layer in all_layers(model)}
    layers = [by_name[name] for name in names]
    if not layers:
        return 0
    variables = list(model.variables)
    kept = [np.array(keras.ops.convert_to_numpy(v)) for v in variables]
    settings = [(layer.momentum, layer.trainable) for layer in layers]
    sums = [np.zeros((2,) + tuple(layer.moving_mean.shape), np.float64) for layer in layers]
    count = 0
    try:
        for layer in layers:
            layer.momentum, layer.trainable = 0.0, True  # a frozen BatchNorm would run in inference mode
        step = tf.function(lambda images: model(images, training=True), reduce_retracing=True)
        for images, *_ in batches:
            step(images)
            size = int(images.shape[0])
            for total, layer in zip(sums, layers):
                mean = np.asarray(keras.ops.convert_to_numpy(layer.moving_mean), np.float64)
                var = np.asarray(keras.ops.convert_to_numpy(layer.moving_variance), np.float64)
                total[0] += size * mean
                total[1] += size * (var + mean * mean)
            count += size
    finally:  # every variable as it was (the seed states too); then only the statistics change
        for layer, (momentum, trainable) in zip(layers, settings):
            layer.momentum, layer.trainable = momentum, trainable
        for variable, value in zip(variables, kept):
            variable.assign(value)
    if count == 0:
        return 0
    for total, layer in zip(sums, layers):
        mean = total[0] / count
        var = np.maximum(total[1] / count - mean * mean, 0.0)
        layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(var.astype(layer.moving_variance.dtype))
    return count
