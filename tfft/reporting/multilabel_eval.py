"""Evaluating a multi-label model: thresholds chosen on validation data, metrics.json, figures.

`evaluate_multilabel` scores one split's probabilities at the run's thresholds and writes the
split into `metrics.json` with `pr_curves.png`, `label_cooccurrence.png` and a per-label
`confusion_matrix.png`; `choose_thresholds` chooses them on validation data and writes
`thresholds.json` and `threshold_intervals.json`. The arithmetic is in `tfft.reporting.multilabel`
(numpy). Below training (the trainer calls it); the run-directory commands' side is
`tfft.evaluation.multilabel_eval`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from tfft import layout
from tfft.atomic import write_json, write_json_entry
from tfft.reporting import multilabel as _metrics
from tfft.reporting import multilabel_plots as _plots
from tfft.wording import plural

THRESHOLDS_FILE = layout.THRESHOLDS


def collect(model: Any, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Run `model` over batches `(images, labels[, ...])`: (labels [N, C], probabilities [N, C])."""
    ys, probs = [], []
    for batch in dataset:
        images, labels = batch[0], batch[1]
        probs.append(np.asarray(model.predict_on_batch(images), np.float32))
        ys.append(np.asarray(labels))
    width = int(model.output_shape[-1])
    if not probs:
        return np.zeros((0, width), np.int32), np.zeros((0, width), np.float32)
    return np.concatenate(ys), np.concatenate(probs)


def choose_thresholds(y_val: Optional[np.ndarray], probs_val: Optional[np.ndarray], class_names: Sequence[str],
                      run_dir: str | os.PathLike, seed: int = 0) -> np.ndarray:
    """Thresholds per label chosen on validation data (`robust_thresholds`), written to
    RUN_DIR/thresholds.json, with each one's bootstrap interval in RUN_DIR/threshold_intervals.json.

    Without validation data every label keeps 0.5 (and a warning says so).

    Example:
    >>> choose_thresholds(y_val, p_val, ["cat", "dog"], "runs/x")  # doctest: +SKIP
    array([0.41, 0.27])
    """
    if y_val is None or probs_val is None or not len(y_val):
        print("warning: no validation images: every label's threshold stays 0.5")
        cuts = np.full(len(class_names), _metrics.DEFAULT_THRESHOLD)
        details = {"method": "0.5 for every label: no validation images"}
    else:
        cuts, details = _metrics.robust_thresholds(y_val, probs_val, seed=seed)
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
    write_json(Path(run_dir) / THRESHOLDS_FILE, _metrics.thresholds_document(names, thresholds))
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


def evaluate_multilabel(y: np.ndarray, probs: np.ndarray, class_names: Sequence[str], thresholds: Any,
                        out_dir: str | os.PathLike, split: str = "val", merge: bool = True,
                        suffix: str = "", extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Score a split at `thresholds`, merge it into OUT_DIR/metrics.json and draw its figures.

    Writes `pr_curves{suffix}.png`, `label_cooccurrence{suffix}.png` and
    `confusion_matrix{suffix}.png` (per label: TP, FN, FP, TN at its threshold).

    Args:
        y: [N, C] multi-hot truth.
        probs: [N, C] probabilities.
        class_names: labels.txt order.
        thresholds: float [C].
        out_dir: where metrics.json and the figures go.
        split: the key in metrics.json.
        merge: keep the other splits already in metrics.json.
        suffix: appended to the figures' names (e.g. `_test`).
        extra: more fields for the split's entry (e.g. `data`, `skipped`).

    Returns:
        The split's metrics (`compute_multilabel_metrics`) plus `split`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = _metrics.compute_multilabel_metrics(y, probs, class_names, thresholds)
    metrics["split"] = split
    metrics.update(extra or {})
    write_json_entry(out / layout.METRICS, split, metrics, merge=merge)
    title = f"{split}, {plural(len(y), 'image')}"
    _plots.plot_pr_curves(y, probs, class_names, out / f"pr_curves{suffix}.png", thresholds=thresholds,
                          title=f"precision-recall per label ({title})")
    _plots.plot_label_cooccurrence(y, class_names, out / f"label_cooccurrence{suffix}.png",
                                   title=f"label co-occurrence ({title})")
    _plots.plot_label_confusion(y, probs, class_names, thresholds, out / f"confusion_matrix{suffix}.png",
                                title=f"per-label decisions at the thresholds ({title})")
    return metrics
