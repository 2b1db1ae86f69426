"""Single-label metrics in plain numpy: accuracy, top-k, loss, per-class P/R/F1, ROC-AUC.

`SingleLabel.metrics_table` is `compute_metrics`; `binary_roc_auc` and `EPSILON` serve the
multi-label table too.

No scikit-learn: the conventions follow it (`zero_division=0`, macro = unweighted mean over
classes, weighted = mean weighted by support, one-vs-rest macro ROC-AUC).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

EPSILON = 1e-7  # the clipping keras.losses.categorical_crossentropy uses


def _rankdata(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank (scipy's `rankdata(method='average')`)."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Start of each run of equal values.
    boundaries = np.concatenate(([True], sorted_values[1:] != sorted_values[:-1]))
    group = np.cumsum(boundaries) - 1
    starts = np.flatnonzero(boundaries)
    ends = np.concatenate((starts[1:], [len(values)]))
    average = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = average[group]
    return ranks


def binary_roc_auc(positive: np.ndarray, scores: np.ndarray) -> Optional[float]:
    """Area under the ROC curve by the rank-sum (Mann-Whitney U) formula, ties counted half.

    Args:
        positive: booleans, True for the positive class.
        scores: higher means more positive.

    Returns:
        The AUC, or None when only one class is present.

    Example:
    >>> binary_roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    positive = np.asarray(positive).astype(bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _rankdata(scores)
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts: rows are true classes, columns predicted classes."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _checked(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> tuple:
    """(int labels [N], float64 probabilities [N, C], names) after checking their shapes agree."""
    y_true = np.asarray(y_true).astype(np.int64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64)
    names = [str(n) for n in class_names]
    if probs.ndim != 2:
        raise ValueError(f"expected probs of shape [N, C], got shape {probs.shape}")
    n, c = probs.shape
    if c != len(names):
        raise ValueError(f"probs has {c} columns but there are {len(names)} class names")
    if len(y_true) != n:
        raise ValueError(f"y_true has {len(y_true)} labels but probs has {n} rows")
    if n and (y_true.min() < 0 or y_true.max() >= c):
        raise ValueError(f"labels must lie in [0, {c - 1}], got {y_true.min()}..{y_true.max()}")
    return y_true, probs, names


def _most_confused(cm: np.ndarray, cm_norm: np.ndarray, names: Sequence[str], limit: int) -> list[dict[str, Any]]:
    """The `limit` most frequent (true, predicted) confusions, most frequent first."""
    pairs = []
    off = cm.copy()
    np.fill_diagonal(off, 0)
    for flat in np.argsort(-off, axis=None, kind="stable")[:limit]:
        i, j = divmod(int(flat), len(names))
        if off[i, j] == 0:
            break
        pairs.append({"true": names[i], "predicted": names[j], "count": int(off[i, j]),
                      "rate": float(cm_norm[i, j])})
    return pairs


def _accuracy_loss_top_k(y_true: np.ndarray, probs: np.ndarray, y_pred: np.ndarray, k: int) -> tuple:
    """(accuracy, mean cross-entropy, top-k accuracy); NaN for an empty split."""
    if not len(y_true):
        return float("nan"), float("nan"), float("nan")
    # Rank of the true class: the count of classes scored strictly higher (ties favour truth).
    true_scores = probs[np.arange(len(y_true)), y_true]
    higher = (probs > true_scores[:, None]).sum(axis=1)
    return (float((y_pred == y_true).mean()), float(-np.log(np.clip(true_scores, EPSILON, 1.0 - EPSILON)).mean()),
            float((higher < k).mean()))


def compute_metrics(
    y_true: np.ndarray,
    probs: np.ndarray,
    class_names: Sequence[str],
    top_k: int = 5,
    max_confused_pairs: int = 10,
) -> dict[str, Any]:
    """Every metric tfft reports for one split, as JSON-ready plain data.

    Args:
        y_true: int labels, shape [N], indexing `class_names`.
        probs: predicted probabilities, shape [N, C] (rows need not sum exactly to 1).
        class_names: C names in output index order.
        top_k: k of the top-k accuracy; clipped to C.
        max_confused_pairs: how many (true, predicted) pairs `most_confused` lists.

    Returns:
        A dict with `accuracy`, `loss` (mean categorical cross-entropy), `top_k`,
        `top_k_accuracy`, `macro_precision|recall|f1`, `weighted_precision|recall|f1`, `roc_auc`
        (binary, or one-vs-rest macro; None if undefined), `per_class` ({name: precision,
        recall, f1, support, roc_auc}), `confusion_matrix` (counts), `confusion_matrix_normalized`
        (rows sum to 1), `most_confused` and `num_examples`, `class_names`.

    Example:
    >>> m = compute_metrics(np.array([0, 1]), np.array([[0.9, 0.1], [0.4, 0.6]]), ["cat", "dog"])
    >>> m["accuracy"], m["macro_f1"], m["roc_auc"]
    (1.0, 1.0, 1.0)
    """
    y_true, probs, names = _checked(y_true, probs, class_names)
    n, c = probs.shape

    k = max(1, min(int(top_k), c))
    y_pred = probs.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    cm = confusion_matrix(y_true, y_pred, c)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    weights = _safe_divide(support, np.full_like(support, support.sum()))

    accuracy, loss, top_k_accuracy = _accuracy_loss_top_k(y_true, probs, y_pred, k)

    aucs: list[Optional[float]] = [binary_roc_auc(y_true == i, probs[:, i]) for i in range(c)]
    if c == 2:
        roc_auc = aucs[1]
    else:
        defined = [a for a in aucs if a is not None]
        roc_auc = float(np.mean(defined)) if defined else None

    row_sums = cm.sum(axis=1, keepdims=True)
    cm_norm = _safe_divide(cm, np.broadcast_to(row_sums, cm.shape))

    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i]), "roc_auc": aucs[i]}
        for i, name in enumerate(names)
    }
    return {
        "num_examples": int(n),
        "accuracy": accuracy,
        "loss": loss,
        "top_k": k,
        "top_k_accuracy": top_k_accuracy,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "weighted_precision": float((precision * weights).sum()),
        "weighted_recall": float((recall * weights).sum()),
        "weighted_f1": float((f1 * weights).sum()),
        "roc_auc": roc_auc,
        "per_class": per_class,
        "class_names": names,
        "confusion_matrix": cm.tolist(),
        "confusion_matrix_normalized": cm_norm.round(6).tolist(),
        "most_confused": _most_confused(cm, cm_norm, names, max_confused_pairs),
    }


def format_table(metrics: dict[str, Any], title: Optional[str] = None) -> str:
    """A terminal table: summary line, then precision/recall/F1/support per class.

    The summary shows top-k accuracy only when k is below the number of classes (with k equal
    to it, every true class is among the top k: always 1.0).

    Args:
        metrics: from `compute_metrics` (or one split of metrics.json).
        title: printed first, e.g. "val (240 images)".

    Example:
    >>> m = compute_metrics(np.array([0, 1]), np.array([[0.9, 0.1], [0.4, 0.6]]), ["cat", "dog"])
    >>> print(format_table(m).splitlines()[0])
    accuracy 1.0000  loss 0.3081  macro F1 1.0000  ROC-AUC 1.0000
    """
    def num(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = [] if title is None else [title]
    per_class = metrics.get("per_class", {})
    num_classes = len(metrics.get("class_names") or per_class)
    k = metrics.get("top_k")
    top_k = (f"top-{k} accuracy {num(metrics.get('top_k_accuracy'))}  "
             if isinstance(k, int) and k < num_classes and "top_k_accuracy" in metrics else "")
    lines.append(
        f"accuracy {num(metrics.get('accuracy'))}  loss {num(metrics.get('loss'))}  {top_k}"
        f"macro F1 {num(metrics.get('macro_f1'))}  ROC-AUC {num(metrics.get('roc_auc'))}"
    )
    width = max([len("class"), len("weighted avg")] + [len(n) for n in per_class])
    lines.append(f"{'class':<{width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>8}")
    for name, row in per_class.items():
        lines.append(f"{name:<{width}}  {row['precision']:>9.4f}  {row['recall']:>9.4f}  "
                     f"{row['f1']:>9.4f}  {row['support']:>8d}")
    total = sum(int(r["support"]) for r in per_class.values())
    for label, key in (("macro avg", "macro"), ("weighted avg", "weighted")):
        if f"{key}_f1" in metrics:
            lines.append(f"{label:<{width}}  {metrics[f'{key}_precision']:>9.4f}  "
                         f"{metrics[f'{key}_recall']:>9.4f}  {metrics[f'{key}_f1']:>9.4f}  {total:>8d}")
    pairs = metrics.get("most_confused") or []
    if pairs:
        lines.append("most confused: " + ", ".join(
            f"{p['true']} -> {p['predicted']} ({p['count']})" for p in pairs[:5]))
    return "\n".join(lines)
