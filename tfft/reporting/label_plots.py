"""Per-label figures (a task with a threshold per label): precision-recall curves, co-occurrence, decisions.

Written like `tfft.reporting.plots` (Agg backend, imported inside, atomic PNG writes).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from tfft.task import thresholds as _metrics
from tfft.reporting.plots import pyplot, save_figure


def plot_pr_curves(y_true: Any, probs: Any, class_names: Sequence[str], path: str | os.PathLike,
                   thresholds: Optional[Any] = None, title: Optional[str] = None) -> Path:
    """One precision-recall curve per label (a grid), with AP, and each label's threshold marked.

    Args:
        y_true: [N, C] multi-hot.
        probs: [N, C] probabilities.
        class_names: C names.
        path: where the PNG goes.
        thresholds: float [C]; the operating point of each label is drawn as a dot.
        title: the figure title.

    Example:
    >>> plot_pr_curves([[1, 0], [0, 1]], [[0.9, 0.2], [0.3, 0.6]], ["cat", "dog"], "/tmp/pr.png")  # doctest: +SKIP
    """
    plt = pyplot()
    y_true = np.asarray(y_true) > 0.5
    probs = np.asarray(probs, dtype=np.float64)
    c = len(class_names)
    cols = min(4, max(1, c))
    rows = int(math.ceil(c / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.9 * rows), squeeze=False)
    for index in range(rows * cols):
        ax = axes[index // cols][index % cols]
        if index >= c:
            ax.axis("off")
            continue
        truth, scores = y_true[:, index], probs[:, index]
        precision, recall, cuts = _metrics.precision_recall_curve(truth, scores)
        ap = _metrics.average_precision(truth, scores)
        if len(cuts):
            ax.step(np.r_[0.0, recall], np.r_[precision[0], precision], where="pre", color="tab:blue")
        if thresholds is not None and truth.any():
            kept = scores >= float(np.asarray(thresholds)[index])
            tp = float((kept & truth).sum())
            ax.plot([tp / truth.sum()], [tp / kept.sum() if kept.any() else 0.0], "o", color="tab:red",
                    label=f"t={float(np.asarray(thresholds)[index]):.2f}")
            ax.legend(loc="lower left", fontsize=7)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{class_names[index]}  AP {'-' if ap is None else f'{ap:.3f}'}  (n={int(truth.sum())})",
                     fontsize=9)
        ax.set_xlabel("recall", fontsize=8)
        ax.set_ylabel("precision", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title or "precision-recall per label")
    fig.tight_layout()
    return save_figure(fig, path)


def cooccurrence(y_true: Any) -> np.ndarray:
    """[C, C] counts of images carrying both labels (the diagonal: images carrying each label).

    Example:
    >>> cooccurrence([[1, 1, 0], [1, 0, 0], [0, 1, 1]]).tolist()
    [[2, 1, 0], [1, 2, 1], [0, 1, 1]]
    """
    y = (np.asarray(y_true) > 0.5).astype(np.int64)
    return y.T @ y


def plot_label_cooccurrence(y_true: Any, class_names: Sequence[str], path: str | os.PathLike,
                            title: Optional[str] = None) -> Path:
    """A heat map of how often two labels appear on the same image, counts written in the cells.

    The diagonal is each label's image count; an off-diagonal cell (i, j) counts the images with
    both i and j. Colours are the share of label i's images that also carry j (row-normalised).

    Example:
    >>> plot_label_cooccurrence([[1, 1], [1, 0]], ["cat", "dog"], "/tmp/co.png")  # doctest: +SKIP
    """
    plt = pyplot()
    counts = cooccurrence(y_true)
    c = counts.shape[0]
    diagonal = np.diag(counts).astype(np.float64)[:, None]
    share = np.divide(counts, diagonal, out=np.zeros(counts.shape), where=diagonal > 0)
    side = min(24.0, max(4.5, 0.45 * c + 2.5))
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    image = ax.imshow(share, cmap="Purples", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the row label's images")
    ticks = np.arange(c)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels(class_names, rotation=45 if c > 4 else 0, ha="right" if c > 4 else "center")
    ax.set_yticklabels(class_names)
    ax.set_title(title or "label co-occurrence (images with both labels)")
    if c <= 30:
        for i in range(c):
            for j in range(c):
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8 if c > 10 else 10,
                        color="white" if share[i, j] > 0.5 else "black")
    return save_figure(fig, path)


def plot_label_confusion(y_true: Any, probs: Any, class_names: Sequence[str], thresholds: Any,
                         path: str | os.PathLike, title: Optional[str] = None) -> Path:
    """The multi-label `confusion_matrix.png`: per label, its 2x2 counts at its threshold.

    Rows are labels, columns true positives, false negatives, false positives, true negatives.
    """
    plt = pyplot()
    y = np.asarray(y_true) > 0.5
    predicted = _metrics.decide(probs, thresholds)
    table = np.stack([(y & predicted).sum(0), (y & ~predicted).sum(0), (~y & predicted).sum(0),
                      (~y & ~predicted).sum(0)], axis=1)
    c = len(class_names)
    fig, ax = plt.subplots(figsize=(6.0, max(2.5, 0.4 * c + 1.5)))
    rates = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(4))
    ax.set_xticklabels(["TP", "FN", "FP", "TN"])
    ax.set_yticks(range(c))
    ax.set_yticklabels(class_names)
    for i in range(c):
        for j in range(4):
            ax.text(j, i, str(int(table[i, j])), ha="center", va="center", fontsize=9,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title or "per-label decisions at the tuned thresholds")
    return save_figure(fig, path)
