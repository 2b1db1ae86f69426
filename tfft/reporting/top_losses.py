"""Top losses with heatmaps: the losses and their ranking that `tfft interpret` uses, and the small
figure every training run puts in its report.html (`write_run_top_losses`).

The losses are the task's (`Task.example_losses`). One loss an image (single-label: -log p(given
class)): its heatmap is the predicted class's. One loss an (image, label) pair (multi-label: its
binary cross-entropy): each pair is ranked on its own, its heatmap the label's, its prediction the
label's probability against the run's threshold (thresholds.json).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from tfft import atomic, layout
from tfft.task import Task, task_for

RUN_TOP = 8  # top losses drawn at the end of training (one batch of heatmaps)
RUN_SCAN = 1024  # val images scanned for them at most (the caption says when val has more)


def rank(losses: np.ndarray, top: int) -> np.ndarray:
    """Indices of the `top` largest losses, largest first (ties: first seen first).

    Example:
    >>> rank(np.array([0.1, 2.0, 0.5]), 2).tolist()
    [1, 2]
    """
    return np.argsort(-np.asarray(losses).ravel(), kind="stable")[: int(top)]


def tiles(images: np.ndarray, maps: np.ndarray) -> list[np.ndarray]:
    """Each image beside its heatmap overlay, one tile [H, 2W, 3] 0-255."""
    from tfft.models.heatmaps import overlay

    return [np.concatenate([image, overlay(image, heat)], axis=1) for image, heat in zip(images, maps)]


def pair_names(names: Sequence[str]) -> list[str]:
    """Multi-label tile captions for (label, absent/present): index 2 * label + value."""
    return [f"{name}: {value}" for name in names for value in ("no", "yes")]


def _batch_probs(model: Any, images: np.ndarray, labels: np.ndarray, scored: Optional[tuple], seen: int) -> np.ndarray:
    """The probabilities of one val batch: the evaluation's rows for it when they are given and
    their labels are this batch's (the same val, in the same order), else the model's."""
    if scored is not None:
        y, probs = scored
        rows = slice(seen, seen + len(images))
        given = np.asarray(y[rows])
        if given.ndim == 2 and labels.ndim == 1:  # one-hot rows (cached features) against class indices
            given = given.argmax(axis=1)
        if len(y) >= rows.stop and np.array_equal(given, labels):
            return np.asarray(probs[rows], np.float32)
    return np.asarray(model.predict_on_batch(images), np.float32)


def _scan(model: Any, dataset: Any, task: Task, top: int, scored: Optional[tuple] = None) -> tuple:
    """Stream val once keeping the `top` worst: (images, probs rows, labels rows, label index or None, losses,
    images scanned, whether val had more than RUN_SCAN). `scored`: the evaluation's (labels,
    probabilities) of this val, whose rows spare running the model over it again."""
    kept: list = []  # (loss, image, probs, labels, label index)
    seen, more = 0, False
    for batch in dataset:
        if seen >= RUN_SCAN:
            more = True
            break
        images, labels = np.asarray(batch[0], np.float32), np.asarray(batch[1])
        probs = _batch_probs(model, images, labels, scored, seen)
        losses = task.example_losses(probs, labels)
        pairs = losses.ndim == 2  # one loss an (image, label) pair
        if pairs:
            rows, cols = np.unravel_index(rank(losses, top), losses.shape)
        else:
            ys = labels.argmax(axis=1) if labels.ndim == 2 else labels
            rows, cols = rank(losses, top), np.full(top, -1)
        for r, c in zip(rows.tolist(), cols.tolist()):
            label = labels[r] if pairs else int(ys[r])
            kept.append((float(losses[r, c] if pairs else losses[r]), images[r], probs[r], label, c))
        kept = sorted(kept, key=lambda item: -item[0])[:top]
        seen += len(images)
    return kept, seen, more


def write_run_top_losses(model: Any, dataset: Optional[Any], class_names: Sequence[str],
                         run_dir: str | os.PathLike, task: Optional[Task] = None, top: int = RUN_TOP,
                         thresholds: Optional[Sequence[float]] = None,
                         scored: Optional[tuple] = None) -> Optional[Path]:
    """The `top` val losses with heatmaps for report.html: RUN_DIR/top_losses.png and top_losses.json.

    Args:
        model: the trained classifier (raw 0-255 RGB in, probabilities out).
        dataset: the val batches `(images, labels[, weights])`, not shuffled; None when there is no
            val split (top_losses.json then only says so, and no figure is drawn).
        class_names: labels.txt order.
        run_dir: where to write.
        task: the run's task (default single-label); a task with a loss per (image, label) pair
            ranks the pairs, each decided at its label's threshold.
        top: how many.
        thresholds: the run's thresholds in labels.txt order (default: the task's).
        scored: `(labels, probabilities)` the run's evaluation already computed over this val, in
            its order (`tfft.reporting.evaluate.collect`): the scan then only reads the images
            (a batch whose labels are not the rows' is scored by the model).

    Returns:
        The PNG's path, or None when skipped.

    Example:
    >>> write_run_top_losses(model, None, ["cat", "dog"], "/tmp/run")  # doctest: +SKIP
    """
    from tfft.errors import UserError
    from tfft.models.heatmaps import heatmaps
    from tfft.reporting.tile_grid import draw_tile_grid

    root = Path(run_dir)
    if dataset is None:
        atomic.write_json(root / layout.TOP_LOSSES_JSON, {"split": None, "note": "no val split: top losses skipped"})
        return None
    names = list(class_names)
    task = task or task_for()
    kept, seen, more = _scan(model, dataset, task, int(top), scored)
    if not kept:
        atomic.write_json(root / layout.TOP_LOSSES_JSON, {"split": "val", "note": "val is empty: top losses skipped"})
        return None
    losses = np.asarray([k[0] for k in kept])
    images = np.stack([k[1] for k in kept])
    probs = np.stack([k[2] for k in kept])
    if kept[0][4] >= 0:  # (image, label) pairs
        label_of = np.asarray([k[4] for k in kept])
        given = np.asarray([int(k[3][c]) for k, c in zip(kept, label_of)])
        thresholds = np.asarray(task.default_thresholds(names) if thresholds is None else thresholds, np.float64)
        decided = (probs[np.arange(len(kept)), label_of] >= thresholds[label_of]).astype(np.int64)
        explained = label_of
        truth, guess, shown = 2 * label_of + given, 2 * label_of + decided, probs[np.arange(len(kept)), label_of]
        captions, what = pair_names(names), "(image, label) losses (heatmap of that label)"
        rows = [{"label": names[c], "given": int(g), "predicted": int(d), "probability": round(float(p), 6),
                 "loss": round(float(v), 6)} for c, g, d, p, v in zip(label_of, given, decided, shown, losses)]
    else:
        truth, guess = np.asarray([k[3] for k in kept]), probs.argmax(axis=1)
        explained = guess
        shown, captions, what = probs, names, "losses (heatmap of the predicted class)"
        rows = [{"label": names[t], "predicted": names[g], "probability": round(float(p[g]), 6),
                 "loss": round(float(v), 6)} for t, g, p, v in zip(truth, guess, probs, losses)]
    try:
        maps = heatmaps(model, images, class_index=explained)
    except UserError as error:  # e.g. a backbone with no spatial feature map: the report says so
        atomic.write_json(root / layout.TOP_LOSSES_JSON, {"split": "val", "note": f"no heatmaps: {error}",
                                                          "top_losses": rows})
        return None
    scope = f"the first {seen} val images" if more else f"all {seen} val images"
    lines = [[f"given {captions[t]}", f"predicted {captions[g]}",
              f"p {float(p if np.ndim(p) == 0 else p[g]):.2f}  loss {v:.2f}"]
             for t, g, p, v in zip(truth, guess, shown, losses)]
    path = draw_tile_grid(tiles(images, maps), lines, [int(t) == int(g) for t, g in zip(truth, guess)],
                          root / layout.TOP_LOSSES, title=f"val: top {len(kept)} {what}, of {scope}")
    atomic.write_json(root / layout.TOP_LOSSES_JSON, {"split": "val", "scanned": seen, "more": more,
                                                      "top_losses": rows})
    return path
