"""Evaluating an in-memory model: the metrics of a split, merged into metrics.json, and its plots.

Below training (the trainer's end-of-training evaluation) and below the run-directory commands
(`tfft evaluate` reuses `write_split` and `worst_examples`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tfft import layout
from tfft.atomic import write_json_entry
from tfft.reporting.metrics import compute_metrics
from tfft.reporting.plots import plot_confusion_matrix
from tfft.wording import plural


def worst_examples(y: np.ndarray, probs: np.ndarray, limit: int = 16) -> tuple[np.ndarray, str]:
    """Indices of the most confident mistakes (or, without mistakes, the least confident hits)."""
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y)
    if len(wrong):
        order = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")]
        return order[:limit], "most confident mistakes"
    order = np.argsort(probs[np.arange(len(y)), y], kind="stable")
    return order[:limit], "no mistakes: least confident correct predictions"


def write_split(out_dir: Path, split: str, metrics: dict[str, Any], cm_name: str,
                 merge: bool) -> None:
    write_json_entry(out_dir / layout.METRICS, split, metrics, merge=merge)
    plot_confusion_matrix(metrics["confusion_matrix"], metrics["class_names"], out_dir / cm_name,
                          title=f"confusion matrix ({split}, {plural(metrics['num_examples'], 'image')})")


def evaluate_model(model, data: Any, class_names: Sequence[str], out_dir: str | os.PathLike,
                   top_k: int = 5, split: str = "val") -> dict[str, Any]:
    """Evaluate an in-memory model and merge the split into OUT_DIR/metrics.json.

    The trainer calls this once per evaluated split at the end of training; the `val` split also
    draws `confusion_matrix.png` (other splits: `confusion_matrix_<split>.png`).

    Args:
        model: a Keras model taking raw 0-255 RGB images and returning probabilities.
        data: a `tf.data.Dataset` of batches `(images, labels[, weights])` (labels int [B] or
            one-hot [B, C]), or a tuple `(images [N, H, W, 3], labels [N])` of arrays.
        class_names: in output index order.
        out_dir: the run directory.
        top_k: k of the top-k accuracy.
        split: the key under which metrics.json holds the result.

    Returns:
        The split's metrics (see `compute_metrics`).

    Example:
    >>> evaluate_model(model, val_ds, ["cat", "dog"], "runs/x", top_k=5)  # doctest: +SKIP
    """
    probs, ys = [], []
    if isinstance(data, (tuple, list)) and len(data) == 2 and not hasattr(data, "element_spec"):
        images, labels = np.asarray(data[0]), np.asarray(data[1])
        for start in range(0, len(images), 64):
            probs.append(np.asarray(model.predict_on_batch(images[start:start + 64]), np.float32))
        ys.append(labels)
    else:
        for batch in data:
            images, labels = batch[0], batch[1]
            probs.append(np.asarray(model.predict_on_batch(images), np.float32))
            ys.append(np.asarray(labels))
    probs_all = np.concatenate(probs) if probs else np.zeros((0, len(class_names)), np.float32)
    y = np.concatenate([l.reshape(len(l), -1) if l.ndim > 1 else l for l in ys]) if ys else np.zeros(0)
    if y.ndim == 2:  # one-hot or smoothed labels
        y = y.argmax(axis=1) if y.shape[1] > 1 else y[:, 0]
    metrics = compute_metrics(y.astype(np.int64), probs_all, class_names, top_k=top_k)
    metrics["split"] = split
    predicted = np.unique(probs_all.argmax(axis=1))
    if len(predicted) == 1 and len(np.unique(y)) > 1:  # looks trained (train accuracy may be high), is not
        warning = (f"every {split} prediction is {class_names[int(predicted[0])]!r}: the model is a constant "
                   "(trained from scratch too briefly? set model.bn_momentum, train longer or use pretrained weights)")
        metrics["warnings"] = [warning]
        print(f"warning: {warning}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cm_name = "confusion_matrix.png" if split == "val" else f"confusion_matrix_{split}.png"
    write_split(out, split, metrics, cm_name, merge=True)
    return metrics
