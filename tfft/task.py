"""The kind of problem a run solves: what depends on it lives in one `Task` object.

A task owns the label encoding the training batches carry, the activation of the model's last
layer (the model ends in a linear `logits` Dense and an `Activation` named `probabilities`), the
loss (label smoothing, class weights), the metrics compiled into `fit`, and the decision rule
that turns probabilities into labels. `SingleLabel` (softmax, categorical cross-entropy, argmax)
and `MultiLabel` (sigmoid, binary cross-entropy, a threshold per label) implement the same
methods; `task_for` picks one.

This module imports Keras and TensorFlow only inside the methods that build tensors or layers.

Example:
>>> task = task_for("auto")
>>> task.name, task.activation
('single_label', 'softmax')
>>> task.decide([[0.2, 0.8], [0.9, 0.1]]).tolist()
[1, 0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np

from tfft.registry import Registry

LOGITS_LAYER = "logits"
PROBABILITIES_LAYER = "probabilities"


class Task:
    """What a kind of problem decides. Subclasses set `name` and `activation` and the methods."""

    name: str = ""
    activation: str = ""
    default_metric: str = ""  # the val metric a study optimises unless told otherwise (`tfft tune`)

    def encode(self, labels: Any, num_classes: int) -> Any:
        """Labels as the pipeline yields them -> the targets the loss takes (a tensor)."""
        raise NotImplementedError

    def loss(self, label_smoothing: float = 0.0) -> Any:
        """The Keras loss on the model's probabilities."""
        raise NotImplementedError

    def metrics(self, num_classes: int, top_k: int) -> list[Any]:
        """The Keras metrics compiled into `fit` (their names become history.csv columns)."""
        raise NotImplementedError

    def class_weight(self, counts: Mapping[str, int], class_names: Sequence[str]) -> Optional[dict[int, float]]:
        """`training.class_weight: balanced` as Keras' `class_weight` (None when not applicable)."""
        raise NotImplementedError

    def decide(self, probabilities: Any) -> np.ndarray:
        """Probabilities [N, C] -> the predicted labels."""
        raise NotImplementedError

    def epoch_metric(self, metric: str) -> str:
        """The metric `fit` logs every epoch that stands in for the end-of-run `metric` (a
        metrics.json key): what a pruner reads after each epoch (as `val_<name>`)."""
        raise NotImplementedError

    def balanced(self, counts: Mapping[str, int], class_names: Sequence[str], num_examples: int) -> "Task":
        """The task as `training.class_weight: balanced` trains it (itself when `class_weight` does it)."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SingleLabel(Task):
    """One class per image: one-hot targets, softmax, categorical cross-entropy, argmax.

    Example:
    >>> task = SingleLabel()
    >>> task.class_weight({"a": 30, "b": 10}, ["a", "b"])
    {0: 0.6666666666666666, 1: 2.0}
    """

    name = "single_label"
    activation = "softmax"
    default_metric = "accuracy"

    def encode(self, labels: Any, num_classes: int) -> Any:
        import tensorflow as tf

        return tf.one_hot(labels, num_classes)

    def loss(self, label_smoothing: float = 0.0) -> Any:
        import keras

        return keras.losses.CategoricalCrossentropy(label_smoothing=float(label_smoothing))

    def metrics(self, num_classes: int, top_k: int) -> list[Any]:
        import keras

        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        k = min(int(top_k), num_classes - 1)
        if k >= 2:
            metrics.append(keras.metrics.TopKCategoricalAccuracy(k=k, name=f"top{k}"))
        return metrics

    def class_weight(self, counts: Mapping[str, int], class_names: Sequence[str]) -> Optional[dict[int, float]]:
        total, k = sum(counts.values()), len(class_names)
        return {i: total / (k * max(counts.get(name, 0), 1)) for i, name in enumerate(class_names)}

    def decide(self, probabilities: Any) -> np.ndarray:
        return np.asarray(probabilities).argmax(axis=-1)

    def epoch_metric(self, metric: str) -> str:
        """`loss`, `accuracy` and `topK` are logged by name; anything else (macro_f1) by accuracy.

        Example:
        >>> SingleLabel().epoch_metric("macro_f1"), SingleLabel().epoch_metric("loss")
        ('accuracy', 'loss')
        """
        return metric if metric in ("loss", "accuracy") or metric.startswith("top") else "accuracy"


class MultiLabel(Task):
    """Any number of labels per image: multi-hot targets, sigmoid, binary cross-entropy, thresholds.

    `training.class_weight: balanced` becomes one positive weight per label (negatives / positives
    in the training split, at most `MAX_POSITIVE_WEIGHT`) inside the loss, since Keras'
    `class_weight` weighs whole examples by one class. The decision rule is per label:
    `probability >= threshold`, with the thresholds chosen on validation data (thresholds.json).

    Example:
    >>> task = MultiLabel()
    >>> task.positive_weights({"a": 10, "b": 40}, ["a", "b"], num_examples=50)
    [4.0, 0.25]
    >>> task.decide([[0.7, 0.2], [0.4, 0.9]], [0.5, 0.3]).tolist()
    [[True, False], [False, True]]
    """

    name = "multi_label"
    activation = "sigmoid"
    default_metric = "mAP"
    MAX_POSITIVE_WEIGHT = 100.0

    def __init__(self, positive_weights: Optional[Sequence[float]] = None):
        self.positive_weights_ = None if positive_weights is None else [float(w) for w in positive_weights]

    def encode(self, labels: Any, num_classes: int) -> Any:
        import tensorflow as tf

        return tf.cast(labels, tf.float32)  # multi-hot [B, C] already

    def loss(self, label_smoothing: float = 0.0) -> Any:
        import keras

        if self.positive_weights_ is None:
            return keras.losses.BinaryCrossentropy(label_smoothing=float(label_smoothing))
        from tfft.losses import WeightedBinaryCrossentropy

        return WeightedBinaryCrossentropy(self.positive_weights_, label_smoothing=float(label_smoothing))

    def metrics(self, num_classes: int, top_k: int) -> list[Any]:
        import keras

        return [keras.metrics.AUC(multi_label=True, num_labels=int(num_classes), name="auc"),
                keras.metrics.F1Score(average="micro", threshold=0.5, name="f1")]

    def class_weight(self, counts: Mapping[str, int], class_names: Sequence[str]) -> Optional[dict[int, float]]:
        return None  # per-label positive weights live in the loss (`balanced`)

    def positive_weights(self, counts: Mapping[str, int], class_names: Sequence[str], num_examples: int) -> list[float]:
        """Negatives / positives per label in the training split (1 for a label with no positive)."""
        weights = []
        for name in class_names:
            positives = int(counts.get(name, 0))
            ratio = (num_examples - positives) / positives if positives else 1.0
            weights.append(float(min(max(ratio, 1.0 / self.MAX_POSITIVE_WEIGHT), self.MAX_POSITIVE_WEIGHT)))
        return weights

    def balanced(self, counts: Mapping[str, int], class_names: Sequence[str], num_examples: int) -> "MultiLabel":
        """The same task whose loss weighs each label's positives (`class_weight: balanced`)."""
        return MultiLabel(self.positive_weights(counts, class_names, num_examples))

    def epoch_metric(self, metric: str) -> str:
        """Per epoch, `fit` logs `auc` (ROC-AUC per label, averaged: threshold-free and ranking-based,
        like mAP) and `f1` (micro F1 at 0.5): `micro_f1` is read as `f1`, `loss` as `loss`,
        everything else (mAP, macro_f1, accuracy) as `auc`.

        Example:
        >>> MultiLabel().epoch_metric("mAP"), MultiLabel().epoch_metric("micro_f1")
        ('auc', 'f1')
        """
        return {"loss": "loss", "micro_f1": "f1", "f1": "f1"}.get(metric, "auc")

    def decide(self, probabilities: Any, thresholds: Any = 0.5) -> np.ndarray:
        probabilities = np.asarray(probabilities, dtype=np.float64)
        return probabilities >= np.broadcast_to(np.asarray(thresholds, dtype=np.float64), probabilities.shape[-1:])


# The kinds of problem, by the name a config's `task` gives (`auto` is resolved before this).
TASKS: Registry[type[Task]] = Registry("task", where="task", hint="use one of: auto, single_label, multi_label")
TASKS.register("single_label", SingleLabel)
TASKS.register("multi_label", MultiLabel)


def task_for(kind: str = "auto") -> Task:
    """The `Task` for a config's `task` value (`auto` is single-label until data says otherwise).

    Raises:
        UserError: `task` names a kind tfft does not implement.
    """
    kind = "single_label" if kind in (None, "auto") else str(kind)
    return TASKS.get(kind)()
