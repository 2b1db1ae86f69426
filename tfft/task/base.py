"""The `Task` interface: everything that depends on the kind of problem a run solves.

A task owns the label encoding the training batches carry, the activation of the model's last
layer (the model ends in a linear `logits` Dense and an `Activation` named `probabilities`), the
loss (label smoothing, class weights), the metrics compiled into `fit`, the decision rule that
turns probabilities into labels, and, after training, the metrics table of a split (metrics.json),
its thresholds (chosen on validation data, or none), `tfft predict`'s rows, what an export's
parity compares and its SavedModel's `label` output, the per-example losses reports rank, the
figures a split's evaluation draws, and which commands it supports. Every method here is plain
numpy / Python (Keras and TensorFlow are imported only inside the methods that build tensors),
and nothing above this floor asks which task it has: the callers call these methods.

Example:
>>> class Toy(Task):
...     name, activation = "toy", "softmax"
>>> Toy().choose_thresholds(None, None) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np

from tfft.errors import UserError

LOGITS_LAYER = "logits"
PROBABILITIES_LAYER = "probabilities"


class Task:
    """What a kind of problem decides. Subclasses set `name` and `activation` and the methods.

    Attributes:
        name: the registered name (a config's `task:` value, metrics.json's `task` when set).
        activation: the `probabilities` layer's Keras activation.
        default_metric: the val metric a study optimises unless told otherwise (`tfft tune`).
        headline: the metrics.json keys a summary shows (cv's summary, the line after training);
            the first and last are cv.png's scores.
        also_summarised, per_class_summarised: what else a cv summary keeps of each fold.
        figures: the names of the figures a split's evaluation draws (`tfft.reporting.figures`).
        refused: command -> (message, hint) of what this task does not support (a `UserError`;
            `{subject}` in the message is `refuse`'s `subject`).
        row_fields: the keys only this task's `prediction_row`s have (how `format_rows` knows
            whose rows it was given).
        data_labels: the `task=` the data layer reads the labels with: `single_label` (a class
            index an image) or `multi_label` (a multi-hot vector [C], `path,labels` manifests).
        thresholded: the task decides at thresholds chosen on validation data (thresholds.json).
    """

    name: str = ""
    activation: str = ""
    default_metric: str = ""
    headline: tuple[str, ...] = ()
    also_summarised: tuple[str, ...] = ()  # more metrics.json keys a cv summary keeps (not in its table)
    per_class_summarised: tuple[str, ...] = ("f1",)  # per-class keys a cv summary keeps (`per_class_<key>`)
    figures: tuple[str, ...] = ()
    refused: Mapping[str, tuple[str, str]] = {}
    row_fields: frozenset[str] = frozenset()  # keys only this task's prediction rows have
    data_labels: str = "single_label"  # how the data layer reads the labels: `single_label` | `multi_label`
    thresholded: bool = False  # decides at thresholds chosen on val (a run's thresholds.json)
    export_note: str = ""  # how an export's user turns `probabilities` into labels (its README)

    @property
    def multi_hot(self) -> bool:
        """The labels are multi-hot vectors [C], not class indices."""
        return self.data_labels == "multi_label"

    # --- training: targets, loss, compiled metrics -------------------------------------------
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

    def balanced(self, counts: Mapping[str, int], class_names: Sequence[str], num_examples: int) -> "Task":
        """The task as `training.class_weight: balanced` trains it (itself when `class_weight` does it)."""
        return self

    def decide(self, probabilities: Any, thresholds: Any = None) -> np.ndarray:
        """Probabilities [N, C] -> the predicted labels (at `thresholds` when the task has them)."""
        raise NotImplementedError

    def epoch_metric(self, metric: str) -> str:
        """The metric `fit` logs every epoch that stands in for the end-of-run `metric` (a
        metrics.json key): what a pruner reads after each epoch (as `val_<name>`)."""
        raise NotImplementedError

    # --- after training: metrics, thresholds, predictions, exports ---------------------------
    def metrics_table(self, y_true: Any, probs: Any, class_names: Sequence[str], thresholds: Any = None,
                      top_k: int = 5) -> dict[str, Any]:
        """One split's metrics, JSON-ready (a metrics.json entry), from labels as the pipeline
        yields them and probabilities [N, C]."""
        raise NotImplementedError

    def format_table(self, metrics: Mapping[str, Any], title: Optional[str] = None) -> str:
        """`metrics_table`'s dict as the terminal table `tfft evaluate` prints."""
        raise NotImplementedError

    def summary(self, metrics: Mapping[str, Any]) -> str:
        """One line of a split's headline metrics (printed after training).

        Example:
        >>> Task.summary(Task(), {"loss": 0.25})
        'loss 0.2500'
        """
        keys = tuple(self.headline) + ("loss",)
        return ", ".join(f"{key} {_number(metrics.get(key))}" for key in dict.fromkeys(keys))

    def choose_thresholds(self, y_val: Any, probs_val: Any, seed: int = 0) -> Optional[tuple[np.ndarray, dict[str, Any]]]:
        """The decision thresholds chosen on validation data and how (written to thresholds.json
        by the caller), or None for a task that decides without thresholds."""
        return None

    def default_thresholds(self, class_names: Sequence[str]) -> Optional[np.ndarray]:
        """The thresholds when there is no validation data (None for a task without them)."""
        return None

    def prediction_row(self, path: str, probabilities: Any, class_names: Sequence[str],
                       thresholds: Any = None, top_k: int = 5) -> dict[str, Any]:
        """`tfft predict`'s row for one image: `path`, `labels`, `probabilities` (and more)."""
        raise NotImplementedError

    def format_predictions(self, rows: Sequence[Mapping[str, Any]], top_k: Optional[int] = None) -> str:
        """`predict`'s rows as CSV (the columns are the task's; `error` is the last one)."""
        raise NotImplementedError

    def parity(self, exported: np.ndarray, reference: np.ndarray, labels: Any = None, thresholds: Any = None,
               class_names: Sequence[str] = ()) -> dict[str, Any]:
        """The task's parity numbers of an export's probabilities against model.keras' (beside the
        top-1 agreement and max abs diff every export reports): e.g. per-label agreement at the
        thresholds, or accuracy on `labels`."""
        return {}

    def serving_label(self, probabilities: Any, labels: Any, thresholds: Any = None) -> Any:
        """In TensorFlow: the SavedModel's `label` output (tf.string [N]) from probabilities [N, C]
        and the class names (tf.string [C])."""
        raise NotImplementedError

    def example_losses(self, probs: Any, labels: Any) -> np.ndarray:
        """Each example's loss as reports rank them ([N], or [N, C] per example and label)."""
        raise NotImplementedError

    def summary_metrics(self) -> tuple[str, ...]:
        """The metrics.json keys a cv summary reports: the headline and the loss.

        Example:
        >>> class Toy(Task):
        ...     headline = ("accuracy",)
        >>> Toy().summary_metrics()
        ('accuracy', 'loss')
        """
        return tuple(dict.fromkeys(tuple(self.headline) + ("loss",)))

    def write_label_issues(self, path: Any, keys: Sequence[str], class_names: Sequence[str], labels: Any,
                           probs: Any, thresholds: Any = None) -> None:
        """label_issues.csv from out-of-fold `probs`: the examples most likely mislabelled first."""
        raise NotImplementedError

    def refuse(self, command: str, where: str, subject: str = "") -> None:
        """Raise the `UserError` for `command` when this task does not support it.

        Example:
        >>> class NoPrune(Task):
        ...     refused = {"prune": ("pruning this run is not implemented", "prune another run")}
        >>> NoPrune().refuse("prune", "runs/x")
        Traceback (most recent call last):
        ...
        tfft.errors.UserError: runs/x: pruning this run is not implemented (hint: prune another run)
        """
        if command in self.refused:
            message, hint = self.refused[command]
            raise UserError(where, message.format(subject=subject), hint)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"
