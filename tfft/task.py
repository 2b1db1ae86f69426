"""The kind of problem a run solves: what depends on it lives in one `Task` object.

A task owns the label encoding the training batches carry, the activation of the model's last
layer (the model ends in a linear `logits` Dense and an `Activation` named `probabilities`), the
loss (label smoothing, class weights), the metrics compiled into `fit`, and the decision rule
that turns probabilities into labels. `SingleLabel` (softmax, categorical cross-entropy, argmax)
is the only kind so far; a multi-label task (sigmoid, binary cross-entropy, per-class thresholds)
is another implementation of the same methods, picked by `task_for`.

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

from tfft.errors import UserError

LOGITS_LAYER = "logits"
PROBABILITIES_LAYER = "probabilities"


class Task:
    """What a kind of problem decides. Subclasses set `name` and `activation` and the methods."""

    name: str = ""
    activation: str = ""

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


TASKS: dict[str, type[Task]] = {"single_label": SingleLabel}


def task_for(kind: str = "auto") -> Task:
    """The `Task` for a config's `task` value (`auto` is single-label until data says otherwise).

    Raises:
        UserError: `task` names a kind tfft does not implement.
    """
    kind = "single_label" if kind in (None, "auto") else str(kind)
    if kind not in TASKS:
        raise UserError("task", f"{kind!r} is not implemented", f"use one of: auto, {', '.join(TASKS)}")
    return TASKS[kind]()
