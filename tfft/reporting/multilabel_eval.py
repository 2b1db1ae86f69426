"""Evaluating a multi-label model: thresholds chosen on validation data, metrics.json, figures.

`evaluate_multilabel` scores one split's probabilities at the run's thresholds and writes the
split into `metrics.json` with `pr_curves.png`, `label_cooccurrence.png` and a per-label
`confusion_matrix.png`; `choose_thresholds` tunes them on validation data and writes
`thresholds.json`. The arithmetic is in `tfft.reporting.multilabel` (numpy). Below training
(the trainer calls it); the run-directory commands' side is `tfft.evaluation.multilabel_eval`.
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
from tfft.reporting.wording import plural

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
                      run_dir: str | os.PathLike) -> np.ndarray:
    """The F1-best threshold per label on validation data, written to RUN_DIR/thresholds.json.

    Without validation data every label keeps 0.5 (and a warning says so).

    Example:
    >>> choose_thresholds(y_val, p_val, ["cat", "dog"], "runs/x")  # doctest: +SKIP
    array([0.41, 0.27])
    """
    if y_val is None or probs_val is None or not len(y_val):
        print("warning: no validation images: every label's threshold stays 0.5")
        cuts = np.full(len(class_names), _metrics.DEFAULT_THRESHOLD)
    else:
        cuts = _metrics.tune_thresholds(y_val, probs_val)
    write_json(Path(run_dir) / THRESHOLDS_FILE, _metrics.thresholds_document(class_names, cuts))
    return cuts


def read_run_thresholds(run_dir: str | os.PathLike, class_names: Sequence[str]) -> np.ndarray:
    """A run's thresholds.json in labels.txt order (0.5 for every label when the file is absent)."""
    from tfft.errors import UserError

    path = Path(run_dir) / THRESHOLDS_FILE
    if not path.is_file():
        return np.full(len(class_names), _metrics.DEFAULT_THRESHOLD)
    try:
        return _metrics.read_thresholds(path.read_text(encoding="utf-8"), class_names, str(path))
    except ValueError as exc:
        raise UserError(str(path), str(exc), "re-run `tfft train`, or write one threshold per label in [0, 1]") from None


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
