"""Losses Keras does not ship: binary cross-entropy with a weight on each label's positives.

`keras.losses.BinaryCrossentropy` weighs every label alike, and Keras' `class_weight` weighs whole
examples by one class, so neither can balance multi-label data where each label has its own
positive rate. `WeightedBinaryCrossentropy` takes one positive weight per label (as
`torch.nn.BCEWithLogitsLoss(pos_weight=...)` does) on the model's probabilities, with the same
clipping and label smoothing as Keras' own loss.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras


@keras.saving.register_keras_serializable(package="tfft")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy on probabilities with a weight on each label's positive term.

    `loss = -mean_c [w_c * y_c * log(p_c) + (1 - y_c) * log(1 - p_c)]`, with `y` smoothed to
    `y * (1 - s) + s / 2` as `keras.losses.BinaryCrossentropy(label_smoothing=s)` does. With every
    weight 1 it equals Keras' loss.

    Args:
        positive_weights: one weight per label (C floats).
        label_smoothing: `s` in [0, 1).
        name: the loss name.

    Example:
    >>> loss = WeightedBinaryCrossentropy([1.0, 1.0])
    >>> y, p = [[1.0, 0.0]], [[0.8, 0.3]]
    >>> bool(abs(float(loss(y, p)) - float(keras.losses.BinaryCrossentropy()(y, p))) < 1e-6)
    True
    """

    def __init__(self, positive_weights: Sequence[float], label_smoothing: float = 0.0,
                 name: str = "weighted_binary_crossentropy", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.positive_weights = [float(w) for w in positive_weights]
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        ops = keras.ops
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        if self.label_smoothing:
            y_true = y_true * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        epsilon = keras.config.epsilon()
        p = ops.clip(y_pred, epsilon, 1.0 - epsilon)
        weights = ops.cast(ops.convert_to_tensor(self.positive_weights), y_pred.dtype)
        terms = weights * y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p)
        return -ops.mean(terms, axis=-1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(positive_weights=list(self.positive_weights), label_smoothing=self.label_smoothing)
        return config
