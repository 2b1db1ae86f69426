"""`SingleLabel`: one class per image (one-hot targets, softmax, categorical cross-entropy, argmax).

Its metrics table is `tfft.task.scores.compute_metrics` (accuracy, top-k, per-class P/R/F1,
ROC-AUC, the confusion matrix); `tfft predict` gives the top-k classes of each image.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np

from tfft.task import label_issues
from tfft.task.base import Task
from tfft.task.scores import EPSILON, compute_metrics, format_table


class SingleLabel(Task):
    """One class per image: one-hot targets, softmax, categorical cross-entropy, argmax.

    Example:
    >>> task = SingleLabel()
    >>> task.class_weight({"a": 30, "b": 10}, ["a", "b"])
    {0: 0.6666666666666666, 1: 2.0}
    >>> task.prediction_row("a.jpg", [0.2, 0.7, 0.1], ["cat", "dog", "fox"], top_k=2)
    {'path': 'a.jpg', 'labels': ['dog', 'cat'], 'probabilities': [0.7, 0.2]}
    """

    name = "single_label"
    activation = "softmax"
    default_metric = "accuracy"
    headline = ("accuracy", "macro_f1")
    figures = ("confusion_matrix", "confusion_matrix_normalized", "worst")
    export_note = "Single-label: the label is the class of the highest probability."

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

    def decide(self, probabilities: Any, thresholds: Any = None) -> np.ndarray:
        return np.asarray(probabilities).argmax(axis=-1)

    def epoch_metric(self, metric: str) -> str:
        """`loss`, `accuracy` and `topK` are logged by name; anything else (macro_f1) by accuracy.

        Example:
        >>> SingleLabel().epoch_metric("macro_f1"), SingleLabel().epoch_metric("loss")
        ('accuracy', 'loss')
        """
        return metric if metric in ("loss", "accuracy") or metric.startswith("top") else "accuracy"

    def metrics_table(self, y_true: Any, probs: Any, class_names: Sequence[str], thresholds: Any = None,
                      top_k: int = 5) -> dict[str, Any]:
        """`compute_metrics` on int labels (one-hot rows are read by their argmax).

        Example:
        >>> m = SingleLabel().metrics_table(np.array([0, 1]), np.array([[0.9, 0.1], [0.4, 0.6]]), ["cat", "dog"])
        >>> m["accuracy"], m["macro_f1"]
        (1.0, 1.0)
        """
        return compute_metrics(self.class_indices(y_true), probs, class_names, top_k=top_k)

    def format_table(self, metrics: Mapping[str, Any], title: Optional[str] = None) -> str:
        return format_table(dict(metrics), title=title)

    def summary(self, metrics: Mapping[str, Any]) -> str:
        """The line printed after training.

        Example:
        >>> SingleLabel().summary({"accuracy": 0.75, "loss": 0.5, "macro_f1": 0.7})
        'accuracy 0.7500, loss 0.5000, macro F1 0.7000'
        """
        return f"accuracy {metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}, macro F1 {metrics['macro_f1']:.4f}"

    @staticmethod
    def class_indices(labels: Any) -> np.ndarray:
        """Int class indices [N] from int labels ([N] or [N, 1]) or one-hot / soft rows [N, C]."""
        labels = np.asarray(labels)
        if labels.ndim == 2:
            labels = labels.argmax(axis=-1) if labels.shape[1] > 1 else labels[:, 0]
        return labels.astype(np.int64).reshape(-1)

    def prediction_row(self, path: str, probabilities: Any, class_names: Sequence[str],
                       thresholds: Any = None, top_k: int = 5) -> dict[str, Any]:
        p = np.asarray(probabilities, dtype=np.float64)
        top = np.argsort(-p, kind="stable")[:max(1, min(int(top_k), len(class_names)))]
        return {"path": path, "labels": [class_names[i] for i in top],
                "probabilities": [round(float(p[i]), 6) for i in top]}

    def format_predictions(self, rows: Sequence[Mapping[str, Any]], top_k: Optional[int] = None) -> str:
        """CSV `path,label_1,prob_1,...,error`: `top_k` pairs (default: the widest row).

        Example:
        >>> print(SingleLabel().format_predictions([{"path": "a.jpg", "labels": ["dog"], "probabilities": [0.9]}]))
        path,label_1,prob_1,error
        a.jpg,dog,0.900000,
        """
        k = top_k if top_k is not None else max([len(r["labels"]) for r in rows] + [1])
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        header = ["path"]
        for i in range(1, k + 1):
            header += [f"label_{i}", f"prob_{i}"]
        writer.writerow(header + ["error"])
        for row in rows:
            cells = [row["path"]]
            for i in range(k):
                if i < len(row["labels"]):
                    cells += [row["labels"][i], f"{row['probabilities'][i]:.6f}"]
                else:
                    cells += ["", ""]
            writer.writerow(cells + [row.get("error") or ""])
        return buffer.getvalue().rstrip("\n")

    def parity(self, exported: np.ndarray, reference: np.ndarray, labels: Any = None, thresholds: Any = None,
               class_names: Sequence[str] = ()) -> dict[str, Any]:
        """Accuracy % of the export and of model.keras on `labels` (when given).

        Example:
        >>> SingleLabel().parity(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([[0.8, 0.2], [0.3, 0.7]]), [0, 1])
        {'accuracy': 50.0, 'reference_accuracy': 100.0}
        """
        if labels is None:
            return {}
        truth = np.asarray(labels)
        return {"accuracy": float((np.asarray(exported).argmax(axis=1) == truth).mean() * 100.0),
                "reference_accuracy": float((np.asarray(reference).argmax(axis=1) == truth).mean() * 100.0)}

    def write_label_issues(self, path: Any, keys: Sequence[str], class_names: Sequence[str], labels: Any,
                           probs: Any, thresholds: Any = None) -> None:
        """Confident learning (`tfft.task.label_issues.rank`): `path,given,suggested,score,...`."""
        label_issues.write_csv(path, keys, class_names, label_issues.rank(self.class_indices(labels), probs))

    def serving_label(self, probabilities: Any, labels: Any, thresholds: Any = None) -> Any:
        import tensorflow as tf

        return tf.gather(labels, tf.argmax(probabilities, axis=-1))

    def example_losses(self, probs: Any, labels: Any) -> np.ndarray:
        """[N] cross-entropy of each example's given class.

        Example:
        >>> SingleLabel().example_losses(np.array([[0.5, 0.5], [0.1, 0.9]]), np.array([0, 1])).round(4).tolist()
        [0.6931, 0.1054]
        """
        y = self.class_indices(labels)
        return -np.log(np.clip(np.asarray(probs, np.float64)[np.arange(len(y)), y], EPSILON, 1.0))
