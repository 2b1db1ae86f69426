"""`MultiLabel`: any number of labels per image (multi-hot targets, sigmoid, binary
cross-entropy, a threshold per label chosen on validation data).

Its metrics table is `compute_multilabel_metrics` (per-label AP, mAP, micro / macro F1 at the
thresholds and at 0.5, exact match, Hamming accuracy); the thresholds are
`tfft.task.thresholds.robust_thresholds`; `tfft predict` gives every label at or above its
threshold; an export's parity is per label, at the thresholds.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np

from tfft.task import label_issues
from tfft.task.base import Task
from tfft.task.scores import EPSILON, binary_roc_auc
from tfft.task.thresholds import DEFAULT_THRESHOLD, average_precision, decide, label_matrix, robust_thresholds


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
    headline = ("mAP", "micro_f1", "macro_f1")
    # F1 at 0.5, which no image chose: the tuned F1s are decided at thresholds each fold chose on its
    # own val images, so they are optimistic.
    also_summarised = ("micro_f1_at_0.5", "macro_f1_at_0.5")
    per_class_summarised = ("f1", "ap")
    figures = ("pr_curves", "label_cooccurrence", "label_confusion")
    refused = {
        "distill": ("distillation of a multi-label run",
                    "distillation here matches softmax distributions: use it with single-label data"),
        "prune": ("pruning a multi-label run is not implemented", "prune a single-label run"),
        "issues": ("tfft data issues ranks single-label errors by confident learning; {subject} is multi-label",
                   "run `tfft cv CONFIG`: its label_issues.csv ranks each image by per-label "
                   "out-of-fold disagreement (missing and extra labels)"),
    }
    row_fields = frozenset({"all_probabilities"})
    data_labels = "multi_label"
    thresholded = True
    export_note = ("Multi-label: a label applies when its probability is at or above its threshold "
                   "(`thresholds` in export.json).")

    def metrics_table(self, y_true: Any, probs: Any, class_names: Sequence[str], thresholds: Any = None,
                      top_k: int = 5) -> dict[str, Any]:
        """`compute_multilabel_metrics` at `thresholds` (None: 0.5 for every label)."""
        return compute_multilabel_metrics(y_true, probs, class_names, thresholds)

    def format_table(self, metrics: Mapping[str, Any], title: Optional[str] = None) -> str:
        return format_multilabel_table(dict(metrics), title=title)

    def summary(self, metrics: Mapping[str, Any]) -> str:
        """The line printed after training: mAP, micro / macro F1 at the tuned thresholds and at 0.5, loss."""
        m = metrics
        return (f"mAP {m['mAP'] if m['mAP'] is None else round(m['mAP'], 4)}, micro F1 {m['micro_f1']:.4f}, "
                f"macro F1 {m['macro_f1']:.4f} at the tuned thresholds (at 0.5: {m['micro_f1_at_0.5']:.4f}, "
                f"{m['macro_f1_at_0.5']:.4f}), loss {m['loss']:.4f}")

    def choose_thresholds(self, y_val: Any, probs_val: Any, seed: int = 0) -> Optional[tuple[np.ndarray, dict[str, Any]]]:
        """`robust_thresholds` on validation data; 0.5 for every label when there is none."""
        if y_val is None or probs_val is None or not len(y_val):
            width = 0 if probs_val is None else np.asarray(probs_val).shape[-1]
            return np.full(width, DEFAULT_THRESHOLD), {"method": "0.5 for every label: no validation images"}
        return robust_thresholds(y_val, probs_val, seed=seed)

    def default_thresholds(self, class_names: Sequence[str]) -> Optional[np.ndarray]:
        return np.full(len(class_names), DEFAULT_THRESHOLD)

    def prediction_row(self, path: str, probabilities: Any, class_names: Sequence[str],
                       thresholds: Any = None, top_k: int = 5) -> dict[str, Any]:
        """The labels at or above their thresholds (most probable first) with their probabilities,
        and every label's probability.

        Example:
        >>> MultiLabel().prediction_row("a.jpg", np.array([0.9, 0.2, 0.6]), ["cat", "dog", "sofa"], np.array([0.5, 0.5, 0.4]))
        {'path': 'a.jpg', 'labels': ['cat', 'sofa'], 'probabilities': [0.9, 0.6], 'all_probabilities': {'cat': 0.9, 'dog': 0.2, 'sofa': 0.6}}
        """
        p = np.asarray(probabilities, dtype=np.float64)
        cuts = self.default_thresholds(class_names) if thresholds is None else np.asarray(thresholds)
        chosen = [i for i in np.argsort(-p, kind="stable") if p[i] >= cuts[i]]
        return {"path": path, "labels": [class_names[i] for i in chosen],
                "probabilities": [round(float(p[i]), 6) for i in chosen],
                "all_probabilities": {name: round(float(p[i]), 6) for i, name in enumerate(class_names)}}

    def format_predictions(self, rows: Sequence[Mapping[str, Any]], top_k: Optional[int] = None) -> str:
        """CSV `path,labels,p_<label>...,error` (labels space-separated; `error` empty for a
        classified file).

        Example:
        >>> task = MultiLabel()
        >>> row = task.prediction_row("a.jpg", np.array([0.9, 0.2]), ["cat", "dog"], np.array([0.5, 0.5]))
        >>> print(task.format_predictions([row]))
        path,labels,p_cat,p_dog,error
        a.jpg,cat,0.900000,0.200000,
        """
        class_names = next((list(r["all_probabilities"]) for r in rows if r.get("all_probabilities")), [])
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["path", "labels"] + [f"p_{name}" for name in class_names] + ["error"])
        for row in rows:
            scores = row.get("all_probabilities") or {}
            cells = [row["path"], " ".join(row["labels"])]
            cells += [f"{scores[name]:.6f}" if name in scores else "" for name in class_names]
            writer.writerow(cells + [row.get("error") or ""])
        return buffer.getvalue().rstrip("\n")

    def parity(self, exported: np.ndarray, reference: np.ndarray, labels: Any = None, thresholds: Any = None,
               class_names: Sequence[str] = ()) -> dict[str, Any]:
        """`parity_labels`: % of images on which the export decides each label as model.keras
        does, at the thresholds.

        Example:
        >>> MultiLabel().parity(np.array([[0.6, 0.1], [0.4, 0.2]]), np.array([[0.7, 0.2], [0.6, 0.1]]),
        ...                     thresholds=np.array([0.5, 0.5]), class_names=["cat", "dog"])
        {'parity_labels': {'cat': 50.0, 'dog': 100.0}}
        """
        cuts = self.default_thresholds(class_names) if thresholds is None else np.asarray(thresholds)
        same = np.asarray(exported >= cuts) == np.asarray(reference >= cuts)
        return {"parity_labels": {name: float(same[:, i].mean() * 100.0) for i, name in enumerate(class_names)}}

    def write_label_issues(self, path: Any, keys: Sequence[str], class_names: Sequence[str], labels: Any,
                           probs: Any, thresholds: Any = None) -> None:
        """Per-label out-of-fold disagreement at `thresholds` (`label_issues.rank_multilabel`)."""
        cuts = self.default_thresholds(class_names) if thresholds is None else np.asarray(thresholds)
        label_issues.write_multilabel_csv(path, keys, class_names, label_issues.rank_multilabel(labels, probs, cuts))

    def serving_label(self, probabilities: Any, labels: Any, thresholds: Any = None) -> Any:
        """The labels at or above their thresholds, in labels.txt order, joined by a space (`""`
        for none): tf.string [N]."""
        import tensorflow as tf

        keep = probabilities >= tf.cast(thresholds, probabilities.dtype)[None, :]
        names = tf.broadcast_to(labels[None, :], tf.shape(keep))
        return tf.strings.reduce_join(tf.ragged.boolean_mask(names, keep), axis=-1, separator=" ")

    def example_losses(self, probs: Any, labels: Any) -> np.ndarray:
        """[N, C] binary cross-entropy of each (example, label) pair.

        Example:
        >>> MultiLabel().example_losses(np.array([[0.5, 1.0]]), np.array([[1, 1]])).round(4).tolist()
        [[0.6931, 0.0]]
        """
        p = np.clip(np.asarray(probs, np.float64), EPSILON, 1 - EPSILON)
        y = np.asarray(labels).astype(np.float64)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))

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

    def decide(self, probabilities: Any, thresholds: Any = None) -> np.ndarray:
        thresholds = DEFAULT_THRESHOLD if thresholds is None else thresholds
        probabilities = np.asarray(probabilities, dtype=np.float64)
        return probabilities >= np.broadcast_to(np.asarray(thresholds, dtype=np.float64), probabilities.shape[-1:])


def _f1_scores(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    tp = (y_true & predicted).sum(axis=0).astype(np.float64)
    fp = (~y_true & predicted).sum(axis=0).astype(np.float64)
    fn = (y_true & ~predicted).sum(axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    total = 2 * tp.sum() + fp.sum() + fn.sum()
    return {"precision": precision, "recall": recall, "f1": f1,
            "micro_f1": float(2 * tp.sum() / total) if total > 0 else 0.0,
            "micro_precision": float(tp.sum() / (tp.sum() + fp.sum())) if tp.sum() + fp.sum() > 0 else 0.0,
            "micro_recall": float(tp.sum() / (tp.sum() + fn.sum())) if tp.sum() + fn.sum() > 0 else 0.0}


def compute_multilabel_metrics(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str],
                               thresholds: Optional[Any] = None) -> dict[str, Any]:
    """Every metric tfft reports for one multi-label split, as JSON-ready plain data.

    Args:
        y_true: [N, C] multi-hot (0/1; soft targets are cut at 0.5).
        probs: [N, C] sigmoid probabilities.
        class_names: C names in output index order.
        thresholds: the per-label decision thresholds (float [C]); None means 0.5 for every label.
            Float [N, C] gives every example its own (out-of-fold predictions, each decided at
            the thresholds of the fold that made it); `per_class` then reports their mean.

    Returns:
        A dict with `mAP` (mean AP over labels with a positive example; None if none has),
        `micro_f1`, `macro_f1`, `micro_precision`, `micro_recall`, `macro_precision`,
        `macro_recall` (at the thresholds), `micro_f1_at_0.5` and `macro_f1_at_0.5`,
        `accuracy` (exact match: every label right), `hamming_accuracy` (the share of
        image-label decisions that are right), `loss` (mean binary cross-entropy),
        `per_class` ({name: ap, f1, precision, recall, threshold, support, roc_auc}),
        `num_examples`, `class_names` and `task: "multi_label"`.

    Example:
    >>> y = np.array([[1, 0], [0, 1], [1, 1]])
    >>> m = compute_multilabel_metrics(y, np.array([[0.9, 0.2], [0.3, 0.7], [0.6, 0.8]]), ["cat", "dog"])
    >>> m["mAP"], m["micro_f1"], m["accuracy"]
    (1.0, 1.0, 1.0)
    """
    y_true, probs = label_matrix(y_true, probs)
    n, c = probs.shape
    names = [str(name) for name in class_names]
    if len(names) != c:
        raise ValueError(f"probs has {c} columns but there are {len(names)} class names")
    cuts = np.full(c, DEFAULT_THRESHOLD) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    if cuts.shape not in ((c,), (n, c)):
        raise ValueError(f"expected {c} thresholds (or one row of them per example), got {cuts.shape}")
    label_cuts = cuts if cuts.ndim == 1 else cuts.mean(axis=0)
    predicted = decide(probs, cuts)
    tuned = _f1_scores(y_true, predicted)
    at_half = _f1_scores(y_true, probs >= DEFAULT_THRESHOLD)
    aps = [average_precision(y_true[:, i], probs[:, i]) for i in range(c)]
    defined = [ap for ap in aps if ap is not None]
    clipped = np.clip(probs, EPSILON, 1.0 - EPSILON)
    bce = -(y_true * np.log(clipped) + (~y_true) * np.log(1.0 - clipped))
    support = y_true.sum(axis=0)
    per_class = {
        name: {"ap": aps[i], "f1": float(tuned["f1"][i]), "precision": float(tuned["precision"][i]),
               "recall": float(tuned["recall"][i]), "threshold": float(label_cuts[i]), "support": int(support[i]),
               "f1_at_0.5": float(at_half["f1"][i]), "roc_auc": binary_roc_auc(y_true[:, i], probs[:, i])}
        for i, name in enumerate(names)
    }
    nan = float("nan")
    return {
        "task": "multi_label",
        "num_examples": int(n),
        "mAP": float(np.mean(defined)) if defined else None,
        "micro_f1": tuned["micro_f1"],
        "macro_f1": float(tuned["f1"].mean()) if c else 0.0,
        "micro_precision": tuned["micro_precision"],
        "micro_recall": tuned["micro_recall"],
        "macro_precision": float(tuned["precision"].mean()) if c else 0.0,
        "macro_recall": float(tuned["recall"].mean()) if c else 0.0,
        "micro_f1_at_0.5": at_half["micro_f1"],
        "macro_f1_at_0.5": float(at_half["f1"].mean()) if c else 0.0,
        "accuracy": float((predicted == y_true).all(axis=1).mean()) if n else nan,
        "hamming_accuracy": float((predicted == y_true).mean()) if n else nan,
        "loss": float(bce.mean()) if n else nan,
        "per_class": per_class,
        "class_names": names,
    }


def format_multilabel_table(metrics: dict[str, Any], title: Optional[str] = None) -> str:
    """A terminal table: a summary line, then AP / F1 / threshold / support per label.

    Example:
    >>> y = np.array([[1, 0], [0, 1]])
    >>> m = compute_multilabel_metrics(y, np.array([[0.9, 0.2], [0.3, 0.7]]), ["cat", "dog"])
    >>> print(format_multilabel_table(m).splitlines()[0])
    mAP 1.0000  micro F1 1.0000  macro F1 1.0000  (at 0.5: micro 1.0000, macro 1.0000)  exact match 1.0000  loss 0.2605
    """
    def num(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = [] if title is None else [title]
    lines.append(f"mAP {num(metrics.get('mAP'))}  micro F1 {num(metrics.get('micro_f1'))}  "
                 f"macro F1 {num(metrics.get('macro_f1'))}  (at 0.5: micro {num(metrics.get('micro_f1_at_0.5'))}, "
                 f"macro {num(metrics.get('macro_f1_at_0.5'))})  exact match {num(metrics.get('accuracy'))}  "
                 f"loss {num(metrics.get('loss'))}")
    per_class = metrics.get("per_class", {})
    width = max([len("label")] + [len(name) for name in per_class])
    lines.append(f"{'label':<{width}}  {'AP':>7}  {'F1':>7}  {'prec':>7}  {'recall':>7}  {'thresh':>7}  {'support':>7}")
    for name, row in per_class.items():
        lines.append(f"{name:<{width}}  {num(row['ap']):>7.7}  {row['f1']:>7.4f}  {row['precision']:>7.4f}  "
                     f"{row['recall']:>7.4f}  {row['threshold']:>7.4f}  {row['support']:>7d}")
    return "\n".join(lines)
