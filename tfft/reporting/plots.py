"""Figures for people: confusion matrix, training curves, a gallery of the worst mistakes.

matplotlib (Agg backend) is imported inside each function; every PNG is written under a
temporary name in its folder and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from tfft.atomic import write_bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    write_bytes(path, buffer.getvalue())
    return Path(path)


def plot_confusion_matrix(cm: Any, class_names: Sequence[str], path: str | os.PathLike,
                          normalize: bool = False, title: Optional[str] = None) -> Path:
    """Draw a confusion matrix (rows true, columns predicted) to a PNG.

    Args:
        cm: [C, C] counts.
        class_names: C names.
        path: where the PNG goes.
        normalize: divide each row by its total (recall on the diagonal).
        title: the figure title (default says counts or normalised).

    Example:
    >>> plot_confusion_matrix([[5, 1], [2, 7]], ["cat", "dog"], "/tmp/cm.png")  # doctest: +SKIP
    """
    plt = _pyplot()
    cm = np.asarray(cm, dtype=np.float64)
    c = cm.shape[0]
    if normalize:
        rows = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    side = min(24.0, max(4.5, 0.45 * c + 2.5))
    fig, ax = plt.subplots(figsize=(side, side * 0.9))
    image = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1.0 if normalize else max(1.0, cm.max()))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(c)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels(class_names, rotation=45 if c > 4 else 0, ha="right" if c > 4 else "center")
    ax.set_yticklabels(class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix"))
    if c <= 30:
        threshold = (1.0 if normalize else max(cm.max(), 1.0)) / 2.0
        for i in range(c):
            for j in range(c):
                text = f"{cm[i, j]:.2f}" if normalize else f"{int(round(cm[i, j]))}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8 if c > 10 else 10,
                        color="white" if cm[i, j] > threshold else "black")
    return _save(fig, path)


def _column(rows: list[dict], key: str) -> np.ndarray:
    values = []
    for row in rows:
        value = row.get(key)
        try:
            values.append(float(value) if value not in (None, "") else np.nan)
        except (TypeError, ValueError):
            values.append(np.nan)
    return np.asarray(values, dtype=np.float64)


def plot_curves(history_rows: list[dict], path: str | os.PathLike,
                phases: Optional[list[dict]] = None) -> Path:
    """Loss, accuracy and learning rate per epoch, with a line at each phase boundary.

    Args:
        history_rows: rows of history.csv as dicts (`epoch, phase, loss, val_loss, lr`, metrics);
            values may be strings.
        path: where the PNG goes.
        phases: phases.json's list; only used for labels when rows carry no `phase` column.

    Example:
    >>> rows = [{"epoch": 1, "phase": "head", "loss": 0.9, "val_loss": 0.8, "lr": 1e-3}]
    >>> plot_curves(rows, "/tmp/curves.png")  # doctest: +SKIP
    """
    plt = _pyplot()
    rows = list(history_rows)
    x = np.arange(1, len(rows) + 1, dtype=np.float64)
    keys = set().union(*[r.keys() for r in rows]) if rows else set()
    acc_keys = [k for k in ("accuracy", "val_accuracy") if k in keys]
    panels = ["loss"] + (["accuracy"] if acc_keys else []) + (["lr"] if "lr" in keys else [])
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.8 * len(panels)), sharex=True,
                             squeeze=False)
    axes = axes[:, 0]
    for ax, panel in zip(axes, panels):
        if panel == "loss":
            for key in ("loss", "val_loss"):
                if key in keys:
                    ax.plot(x, _column(rows, key), marker="o", ms=3, label=key)
            ax.set_ylabel("loss")
        elif panel == "accuracy":
            for key in acc_keys:
                ax.plot(x, _column(rows, key), marker="o", ms=3, label=key)
            ax.set_ylabel("accuracy")
        else:
            lr = _column(rows, "lr")
            ax.plot(x, lr, color="tab:green", marker=".", label="lr")
            if np.nanmin(np.where(lr > 0, lr, np.nan), initial=np.inf) < np.inf:
                ax.set_yscale("log")
            ax.set_ylabel("learning rate")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
    # Phase boundaries: where the `phase` column changes (or from phases.json's epoch counts).
    names = [str(r.get("phase", "")) for r in rows]
    if not any(names) and phases:
        names = [str(p.get("name", i)) for i, p in enumerate(phases) for _ in range(int(p.get("epochs", 0)))]
        names = (names + [names[-1]] * len(rows))[: len(rows)] if names else []
    starts = [i for i, name in enumerate(names) if name and (i == 0 or name != names[i - 1])]
    for i in starts:
        for ax in axes:
            if i > 0:
                ax.axvline(i + 0.5, color="gray", linestyle="--", linewidth=1)
        axes[0].text(i + 0.6, 1.0, names[i], transform=axes[0].get_xaxis_transform(),
                     va="bottom", ha="left", fontsize=8, color="dimgray")
    axes[-1].set_xlabel("epoch")
    return _save(fig, path)


def plot_gallery(paths_or_images: Sequence[Any], true: Sequence[int], pred: Sequence[int],
                 probs: Any, class_names: Sequence[str], path: str | os.PathLike,
                 max_images: int = 16, title: Optional[str] = None) -> Path:
    """A grid of images titled `true -> predicted (p)`, e.g. the worst misclassified ones.

    Args:
        paths_or_images: file paths, or arrays [H, W, 3] in 0..255.
        true: true label indices.
        pred: predicted label indices.
        probs: [N, C] probabilities (or [N] probabilities of the predicted class).
        class_names: C names.
        path: where the PNG goes.
        max_images: at most this many are drawn, in the order given.
        title: a figure title.

    Example:
    >>> plot_gallery(["a.jpg"], [0], [1], [[0.2, 0.8]], ["cat", "dog"], "/tmp/worst.png")  # doctest: +SKIP
    """
    plt = _pyplot()
    items = list(paths_or_images)[:max_images]
    probs = np.asarray(probs, dtype=np.float64)
    n = len(items)
    cols = min(4, max(1, n))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for index, item in enumerate(items):
        ax = axes.ravel()[index]
        image = _as_image(item)
        if image is not None:
            ax.imshow(image)
        p = probs[index] if probs.ndim == 1 else probs[index, int(pred[index])]
        good = int(true[index]) == int(pred[index])
        ax.set_title(f"{class_names[int(true[index])]} -> {class_names[int(pred[index])]} ({p:.2f})",
                     fontsize=9, color="green" if good else "red")
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "no images", ha="center", va="center")
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi=72)


def _as_image(item: Any) -> Optional[np.ndarray]:
    if isinstance(item, (str, os.PathLike)):
        try:
            from PIL import Image

            with Image.open(item) as img:
                return np.asarray(img.convert("RGB"))
        except Exception:  # an unreadable file gets an empty tile
            return None
    array = np.asarray(item, dtype=np.float64)
    return np.clip(array / 255.0, 0.0, 1.0)
