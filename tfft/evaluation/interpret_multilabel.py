"""`tfft interpret` for multi-label runs: every (image, label) pair is explained on its own.

A pair's loss is its binary cross-entropy, its prediction the label's probability against the
run's threshold (thresholds.json), its heatmap the Grad-CAM of that label's logit. "Most confused"
counts, per pair of labels (a, b), the images where a was missed while b was wrongly predicted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from tfft import atomic
from tfft.evaluation.interpret_figures import (INTERPRET_JSON, MAX_CLASS_GALLERIES, TOP_LOSSES_PNG,
                                              InterpretResult, slug, tiles)
from tfft.runs.thresholds import read_run_thresholds
from tfft.reporting.plots import plot_gallery
from tfft.reporting.top_losses import pair_names, rank
from tfft.task import Task, task_for


def _draw(explain: Callable, fetch: Callable, images_of: np.ndarray, labels_of: np.ndarray, y: np.ndarray,
          decided: np.ndarray, probs: np.ndarray, names: list, path: Path, title: str) -> tuple:
    """A gallery of (image, label) pairs, each image beside its label's heatmap."""
    images = fetch(images_of)
    maps = explain(images, labels_of)
    truth = 2 * labels_of + y[images_of, labels_of]
    guess = 2 * labels_of + decided[images_of, labels_of]
    plot_gallery(tiles(images, maps), truth, guess, probs[images_of, labels_of], pair_names(names), path,
                 max_images=len(images_of), title=title)
    return images, maps


def interpret_multilabel(run: Any, explain: Callable, probs: np.ndarray, y: np.ndarray, fetch: Callable,
                         paths: Optional[list], top: int, out_dir: Path, split: str,
                         method: str = "gradcam", task: Optional[Task] = None) -> InterpretResult:
    """The multi-label half of `tfft.evaluation.interpret.interpret` (same outputs, per label);
    `explain(images, classes)` gives the heatmaps; `task` (default multi-label) the losses."""
    task = task or task_for("multi_label")
    names = list(run.class_names)
    y = np.asarray(y).astype(np.int64)
    thresholds = read_run_thresholds(run.run_dir, names)
    decided = (probs >= thresholds[None, :]).astype(np.int64)
    losses = task.example_losses(probs, y)
    flat = rank(losses, top)
    rows_of, labels_of = np.unravel_index(flat, losses.shape)
    files = {"top_losses": out_dir / TOP_LOSSES_PNG}
    images, maps = _draw(explain, fetch, rows_of, labels_of, y, decided, probs, names, files["top_losses"],
                         f"{split}: top {len(flat)} (image, label) losses (Grad-CAM of that label)")
    rows = [{"path": paths[i] if paths else None, "index": int(i), "label": names[c], "given": int(y[i, c]),
             "predicted": int(decided[i, c]), "probability": round(float(probs[i, c]), 6),
             "loss": round(float(losses[i, c]), 6)} for i, c in zip(rows_of.tolist(), labels_of.tolist())]
    atomic.write_csv(out_dir / "top_losses.csv", rows,
                     ["path", "index", "label", "given", "predicted", "probability", "loss"])
    files["top_losses_csv"] = out_dir / "top_losses.csv"
    missed, extra = (y == 1) & (decided == 0), (y == 0) & (decided == 1)
    counts = missed.T.astype(np.int64) @ extra.astype(np.int64)  # [a, b]: a missed while b was predicted
    pairs = sorted(((int(counts[a, b]), a, b) for a in range(len(names)) for b in range(len(names))
                    if a != b and counts[a, b] > 0), reverse=True)[:5]
    confused = [{"label": names[a], "predicted": names[b], "count": n} for n, a, b in pairs]
    count = min(top, 8)
    for c in range(min(len(names), MAX_CLASS_GALLERIES)):
        ranked = np.argsort(-probs[:, c], kind="stable")
        right = [k for k in ranked if decided[k, c] and y[k, c]][: max(1, count // 2)]
        wrong = [k for k in ranked if decided[k, c] and not y[k, c]][: max(1, count - len(right))]
        chosen = np.asarray(right + wrong, np.int64)
        if len(chosen):
            files[f"class_{c}"] = out_dir / f"class_{c}_{slug(names[c])}.png"
            _draw(explain, fetch, chosen, np.full(len(chosen), c), y, decided, probs, names, files[f"class_{c}"],
                  f"predicted {names[c]}: {len(right)} most confident right, {len(wrong)} wrong")
    atomic.write_json(out_dir / INTERPRET_JSON, {
        "split": split, "method": method, "task": task.name, "images": int(len(y)),
        "thresholds": {n: float(t) for n, t in zip(names, thresholds)}, "top_losses": rows, "most_confused": confused,
        "class_galleries_left_out": max(0, len(names) - MAX_CLASS_GALLERIES),
        "files": {k: v.name for k, v in files.items()}})
    files["json"] = out_dir / INTERPRET_JSON
    return InterpretResult(out_dir=out_dir, paths=[r["path"] for r in rows], labels=y[rows_of, labels_of],
                           predicted=decided[rows_of, labels_of], probabilities=probs[rows_of, labels_of],
                           losses=losses[rows_of, labels_of], images=images, heatmaps=maps, most_confused=confused,
                           files=files, label=labels_of)
