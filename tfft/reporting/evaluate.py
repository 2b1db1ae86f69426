"""Scoring a model's split for any task: probabilities collected, thresholds chosen on val and
written (thresholds.json, threshold_intervals.json), the split's metrics merged into
metrics.json and its figures drawn (the task's `figures`).

Below training (the trainer's end-of-training evaluation) and below the run-directory commands
(`tfft evaluate` and the ensembles reuse `evaluate_split`). The numbers are the task's
(`Task.metrics_table`, `Task.choose_thresholds`); this module writes them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from tfft import layout
from tfft.atomic import write_json, write_json_entry
from tfft.reporting import figures as _figures
from tfft.reporting.figures import worst_examples
from tfft.task import Task, task_for
from tfft.task.thresholds import thresholds_document

THRESHOLDS_FILE = layout.THRESHOLDS


def collect(model: Any, data: Any, width: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Run `model` over `data`: (labels as the batches hold them, probabilities [N, C]).

    Args:
        model: a Keras model taking raw 0-255 RGB images and returning probabilities.
        data: a `tf.data.Dataset` of batches `(images, labels[, ...])`, or a tuple
            `(images [N, H, W, 3], labels [N])` of arrays.
        width: C when there may be no batch (default: the model's output width).
    """
    probs, ys = [], []
    if isinstance(data, (tuple, list)) and len(data) == 2 and not hasattr(data, "element_spec"):
        images, labels = np.asarray(data[0]), np.asarray(data[1])
        for start in range(0, len(images), 64):
            probs.append(np.asarray(model.predict_on_batch(images[start:start + 64]), np.float32))
        ys.append(labels)
    else:
        for batch in data:
            probs.append(np.asarray(model.predict_on_batch(batch[0]), np.float32))
            ys.append(np.asarray(batch[1]))
    if not probs:
        width = int(width if width is not None else model.output_shape[-1])
        return np.zeros((0,), np.int64), np.zeros((0, width), np.float32)
    return np.concatenate(ys), np.concatenate(probs)


def choose_thresholds(task: Task, y_val: Optional[np.ndarray], probs_val: Optional[np.ndarray],
                      class_names: Sequence[str], run_dir: str | os.PathLike, seed: int = 0) -> Optional[np.ndarray]:
    """The task's thresholds chosen on validation data (`Task.choose_thresholds`), written to
    RUN_DIR/thresholds.json with each one's interval in RUN_DIR/threshold_intervals.json; None
    (and nothing written) for a task without thresholds.

    Example:
    >>> choose_thresholds(task_for("multi_label"), y_val, p_val, ["cat", "dog"], "runs/x")  # doctest: +SKIP
    array([0.41, 0.27])
    """
    has_val = y_val is not None and probs_val is not None and len(y_val) > 0
    chosen = task.choose_thresholds(y_val if has_val else None, probs_val if has_val else None, seed=seed)
    if chosen is None:
        return None
    cuts, details = chosen
    if not has_val:
        cuts = task.default_thresholds(class_names)
        print(f"warning: no validation images: every label's threshold stays {cuts[0] if len(cuts) else 0.5:g}")
    else:
        print(format_threshold_intervals(class_names, cuts, details))
    write_thresholds(run_dir, class_names, cuts, details)
    return cuts


def write_thresholds(run_dir: str | os.PathLike, class_names: Sequence[str], thresholds: Any,
                     details: dict[str, Any]) -> None:
    """RUN_DIR/thresholds.json (`{label: threshold}`, what predict and export read) and, beside it,
    RUN_DIR/threshold_intervals.json: `method` and per label its `threshold`, and what `details`
    holds per label (`robust_thresholds`: `f1_best`, `positives`, `weight`, `interval`)."""
    names = [str(n) for n in class_names]
    per_label = {name: {"threshold": float(t)} for name, t in zip(names, np.asarray(thresholds).reshape(-1))}
    for key, values in details.items():
        if isinstance(values, list) and len(values) == len(names):
            for name, value in zip(names, values):
                per_label[name][key] = value
    write_json(Path(run_dir) / THRESHOLDS_FILE, thresholds_document(names, thresholds))
    write_json(Path(run_dir) / layout.THRESHOLD_INTERVALS, {"method": details.get("method", ""), "labels": per_label})


def format_threshold_intervals(class_names: Sequence[str], thresholds: Any, details: dict[str, Any],
                               shown: int = 8) -> str:
    """One line: each label's threshold with its bootstrap interval and positives (the `shown`
    widest intervals when there are more labels).

    Example:
    >>> format_threshold_intervals(["cat"], [0.46], {"interval": [[0.3, 0.7]], "positives": [6], "f1_best": [0.8]})
    'thresholds (90% bootstrap interval, val positives, F1-best cut): cat 0.46 [0.30, 0.70] 6 pos, F1-best 0.80'
    """
    rows = list(zip(class_names, np.asarray(thresholds).reshape(-1), details["interval"], details["positives"],
                    details["f1_best"]))
    if len(rows) > shown:
        rows = sorted(rows, key=lambda r: r[2][0] - r[2][1])[:shown]
    text = "; ".join(f"{name} {t:.2f} [{low:.2f}, {high:.2f}] {n} pos, F1-best {best:.2f}"
                     for name, t, (low, high), n, best in rows)
    more = f" (the {shown} widest of {len(class_names)}; all in {layout.THRESHOLD_INTERVALS})" \
        if len(class_names) > shown else ""
    return f"thresholds (90% bootstrap interval, val positives, F1-best cut): {text}{more}"


def evaluate_split(task: Task, y: np.ndarray, probs: np.ndarray, class_names: Sequence[str],
                   out_dir: str | os.PathLike, split: str = "val", thresholds: Any = None, top_k: int = 5,
                   merge: bool = True, suffix: str = "", extra: Optional[dict[str, Any]] = None,
                   images: Optional[Callable[[Sequence[int]], list]] = None, detail: bool = False,
                   gallery: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Score a split (`task.metrics_table`), merge it into OUT_DIR/metrics.json and draw the
    task's figures (`task.figures`; with `detail`, those `tfft evaluate` adds).

    Args:
        task: the run's task.
        y: labels as the pipeline yields them; probs: [N, C] probabilities.
        class_names: labels.txt order.
        out_dir: where metrics.json and the figures go.
        split: the key in metrics.json.
        thresholds: the task's thresholds (None for a task without them).
        top_k: k of a top-k accuracy.
        merge: keep the other splits already in metrics.json.
        suffix: appended to the figures' names (e.g. `_test`).
        extra: more fields for the split's entry (e.g. `data`, `skipped`).
        images: index list -> images or paths, for galleries; gallery: `plot_gallery` arguments.

    Returns:
        The split's metrics plus `split` and `extra`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = task.metrics_table(y, probs, class_names, thresholds=thresholds, top_k=top_k)
    metrics["split"] = split
    metrics.update(extra or {})
    _constant_warning(task, metrics, y, probs, class_names, thresholds, split)
    _figures.draw(task.figures, _figures.SplitFigures(
        np.asarray(y), np.asarray(probs), list(class_names), metrics, out, split, suffix, thresholds, images,
        dict(gallery or {})), detail=detail)
    write_json_entry(out / layout.METRICS, split, metrics, merge=merge)  # last: a run's metrics.json marks it finished
    return metrics


def _constant_warning(task: Task, metrics: dict[str, Any], y: np.ndarray, probs: np.ndarray,
                      class_names: Sequence[str], thresholds: Any, split: str) -> None:
    """Warn when a one-decision-per-image task decides one class for every image of varied labels."""
    decided = np.asarray(task.decide(probs, thresholds)) if len(probs) else np.zeros(0)
    if decided.ndim != 1:  # several decisions per image
        return
    y = np.asarray(y)
    truth = (y.argmax(axis=1) if y.shape[1] > 1 else y[:, 0]) if y.ndim == 2 else y
    predicted = np.unique(decided)
    if len(predicted) == 1 and len(np.unique(truth)) > 1:  # looks trained (train accuracy may be high), is not
        warning = (f"every {split} prediction is {class_names[int(predicted[0])]!r}: the model is a constant "
                   "(trained from scratch too briefly? set model.bn_momentum, train longer or use pretrained weights)")
        metrics["warnings"] = [warning]
        print(f"warning: {warning}")


def evaluate_model(model, data: Any, class_names: Sequence[str], out_dir: str | os.PathLike,
                   top_k: int = 5, split: str = "val", task: Optional[Task] = None) -> dict[str, Any]:
    """Evaluate an in-memory model and merge the split into OUT_DIR/metrics.json.

    The `val` split draws `confusion_matrix.png` (other splits: `confusion_matrix_<split>.png`),
    or the figures of `task` (default: single-label).

    Args:
        model: a Keras model taking raw 0-255 RGB images and returning probabilities.
        data: a `tf.data.Dataset` of batches `(images, labels[, weights])` (labels int [B] or
            one-hot [B, C]), or a tuple `(images [N, H, W, 3], labels [N])` of arrays.
        class_names: in output index order.
        out_dir: the run directory.
        top_k: k of the top-k accuracy.
        split: the key under which metrics.json holds the result.
        task: the run's task (default: single-label).

    Returns:
        The split's metrics (see `Task.metrics_table`).

    Example:
    >>> evaluate_model(model, val_ds, ["cat", "dog"], "runs/x", top_k=5)  # doctest: +SKIP
    """
    task = task or task_for()
    y, probs = collect(model, data, width=len(class_names))
    return evaluate_split(task, y, probs, class_names, out_dir, split=split, top_k=top_k,
                          suffix="" if split == "val" else f"_{split}")


__all__ = ["THRESHOLDS_FILE", "choose_thresholds", "collect", "evaluate_model", "evaluate_split",
           "format_threshold_intervals", "worst_examples", "write_thresholds"]
