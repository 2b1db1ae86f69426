"""Top losses with heatmaps: the losses and their ranking that `tfft interpret` uses, and the small
figure every training run puts in its report.html (`write_run_top_losses`).

Single-label: an image's loss is -log p(given class) and its heatmap the predicted class's.
Multi-label: every (image, label) pair is ranked on its own binary cross-entropy, its heatmap the
label's, its prediction the label's probability against the run's threshold (thresholds.json).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from tfft import atomic, layout

EPS = 1e-7
RUN_TOP = 8  # top losses drawn at the end of training (one batch of heatmaps)
RUN_SCAN = 1024  # val images scanned for them at most (the caption says when val has more)


def single_label_losses(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[M] cross-entropy of each image's given class."""
    y = np.asarray(y).astype(np.int64)
    return -np.log(np.clip(np.asarray(probs, np.float64)[np.arange(len(y)), y], EPS, 1.0))


def multi_label_losses(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[M, C] binary cross-entropy of each (image, label) pair."""
    p = np.clip(np.asarray(probs, np.float64), EPS, 1 - EPS)
    y = np.asarray(y).astype(np.float64)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


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


def _scan(model: Any, dataset: Any, multi: bool, top: int) -> tuple:
    """Stream val once keeping the `top` worst: (images, probs rows, labels rows, label index or None, losses,
    images scanned, whether val had more than RUN_SCAN)."""
    kept: list = []  # (loss, image, probs, labels, label index)
    seen, more = 0, False
    for batch in dataset:
        if seen >= RUN_SCAN:
            more = True
            break
        images, labels = np.asarray(batch[0], np.float32), np.asarray(batch[1])
        probs = np.asarray(model.predict_on_batch(images), np.float32)
        if multi:
            losses = multi_label_losses(probs, labels)
            rows, cols = np.unravel_index(rank(losses, top), losses.shape)
        else:
            ys = labels.argmax(axis=1) if labels.ndim == 2 else labels
            losses = single_label_losses(probs, ys)
            rows, cols = rank(losses, top), np.full(top, -1)
        for r, c in zip(rows.tolist(), cols.tolist()):
            label = labels[r] if multi else int(ys[r])
            kept.append((float(losses[r, c] if multi else losses[r]), images[r], probs[r], label, c))
        kept = sorted(kept, key=lambda item: -item[0])[:top]
        seen += len(images)
    return kept, seen, more


def write_run_top_losses(model: Any, dataset: Optional[Any], class_names: Sequence[str],
                         run_dir: str | os.PathLike, multi_label: bool = False, top: int = RUN_TOP) -> Optional[Path]:
    """The `top` val losses with heatmaps for report.html: RUN_DIR/top_losses.png and top_losses.json.

    Args:
        model: the trained classifier (raw 0-255 RGB in, probabilities out).
        dataset: the val batches `(images, labels[, weights])`, not shuffled; None when there is no
            val split (top_losses.json then only says so, and no figure is drawn).
        class_names: labels.txt order.
        run_dir: where to write.
        multi_label: rank (image, label) pairs at the thresholds of RUN_DIR/thresholds.json.
        top: how many.

    Returns:
        The PNG's path, or None when skipped.

    Example:
    >>> write_run_top_losses(model, None, ["cat", "dog"], "/tmp/run")  # doctest: +SKIP
    """
    from tfft.errors import UserError
    from tfft.models.heatmaps import heatmaps
    from tfft.reporting.multilabel import DEFAULT_THRESHOLD, read_thresholds
    from tfft.reporting.tile_grid import draw_tile_grid

    root = Path(run_dir)
    if dataset is None:
        atomic.write_json(root / layout.TOP_LOSSES_JSON, {"split": None, "note": "no val split: top losses skipped"})
        return None
    names = list(class_names)
    kept, seen, more = _scan(model, dataset, multi_label, int(top))
    if not kept:
        atomic.write_json(root / layout.TOP_LOSSES_JSON, {"split": "val", "note": "val is empty: top losses skipped"})
        return None
    losses = np.asarray([k[0] for k in kept])
    images = np.stack([k[1] for k in kept])
    probs = np.stack([k[2] for k in kept])
    if multi_label:
        label_of = np.asarray([k[4] for k in kept])
        given = np.asarray([int(k[3][c]) for k, c in zip(kept, label_of)])
        saved = root / layout.THRESHOLDS  # the run's thresholds.json (0.5 per label without one)
        thresholds = (read_thresholds(saved.read_text(encoding="utf-8"), names, str(saved)) if saved.is_file()
                      else np.full(len(names), DEFAULT_THRESHOLD))
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
