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


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use.

    Example:
    >>> pyplot().__name__
    'matplotlib.pyplot'
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Write `fig` as a PNG at `path` atomically and close it.

    Example:
    >>> fig = pyplot().figure()
    >>> save_figure(fig, "empty.png").name
    'empty.png'
    """
    plt = pyplot()
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
    plt = pyplot()
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
    return save_figure(fig, path)


def _column(rows: list[dict], key: str) -> np.ndarray:
    values = []
    for row in rows:
        value = row.get(key)
        try:
            values.append(float(value) if value not in (None, "") else np.nan)
        except (TypeError, ValueError):
            values.append(np.nan)
    return np.asarray(values, dtype=np.float64)


def _epochs(rows: list[dict]) -> np.ndarray:
    """The x axis: history.csv's `epoch` column when every row has one, else 1..N."""
    epochs = _column(rows, "epoch")
    return epochs if len(epochs) and np.isfinite(epochs).all() else np.arange(1, len(rows) + 1, dtype=np.float64)


def best_epoch(history_rows: list[dict]) -> Optional[tuple[int, str, float]]:
    """The epoch `training.save: best` keeps: the first lowest `val_loss` (`loss` with no validation).

    Args:
        history_rows: rows of history.csv as dicts (values may be strings).

    Returns:
        `(epoch, monitored key, its value)`, or None when no row has a finite value.

    Example:
    >>> best_epoch([{"epoch": 1, "loss": 0.9, "val_loss": 0.8}, {"epoch": 2, "loss": 0.5, "val_loss": 0.85}])
    (1, 'val_loss', 0.8)
    """
    rows = list(history_rows)
    for key in ("val_loss", "loss"):  # the trainer's monitor: val_loss when there is a val split
        values = _column(rows, key)
        if np.isfinite(values).any():
            i = int(np.nanargmin(values))  # the first minimum: the trainer keeps strict improvements
            return int(_epochs(rows)[i]), key, float(values[i])
    return None


def _phase_spans(rows: list[dict], phases: Optional[list[dict]]) -> list[tuple[str, int, int]]:
    """`(name, first row, last row)` of each phase, from the `phase` column or phases.json."""
    names = [str(r.get("phase") or "") for r in rows]
    if not any(names) and phases:
        names = [str(p.get("name", i)) for i, p in enumerate(phases) for _ in range(int(p.get("epochs", 0)))]
        names = (names + [names[-1]] * len(rows))[: len(rows)] if names else []
    spans: list[tuple[str, int, int]] = []
    for i, name in enumerate(names):
        if spans and name == spans[-1][0] and spans[-1][2] == i - 1:
            spans[-1] = (name, spans[-1][1], i)
        else:
            spans.append((name, i, i))
    return [s for s in spans if s[0]]


_LOSS_PANELS = (("loss", ("loss", "val_loss"), "loss"),
                ("task loss", ("task_loss", "val_task_loss"), "task loss"),
                ("distillation loss", ("distillation_loss", "val_distillation_loss"), "distillation loss"))


def curves_figure(history_rows: list[dict], phases: Optional[list[dict]] = None,
                  best: Optional[int] = None, saved: Optional[str] = None) -> Any:
    """The figure `plot_curves` saves: one panel per quantity, epochs on a shared integer axis.

    Panels: loss (with distillation, `loss` is the mix and the task and distillation losses get
    a panel each), accuracy, learning rate. Dashed lines separate phases, each named above its
    epochs; a dotted line and a star (artists with gid `best_epoch`) mark the best epoch.

    Args:
        history_rows: rows of history.csv as dicts (`epoch, phase, loss, val_loss, lr`, metrics);
            values may be strings.
        phases: phases.json's list; only used for names when rows carry no `phase` column.
        best: the epoch to mark as best (the trainer's `best_epoch`); default `best_epoch(rows)`.
        saved: `training.save` ("best" or "last") to say which epoch model.keras holds; None
            says nothing about it.

    Returns:
        A matplotlib Figure (close it with `matplotlib.pyplot.close` when done).

    Example:
    >>> fig = curves_figure([{"epoch": 1, "loss": 0.9, "val_loss": 0.8, "lr": 1e-3}])  # doctest: +SKIP
    """
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    rows = list(history_rows)
    x = _epochs(rows)
    keys = set().union(*[r.keys() for r in rows]) if rows else set()
    has = lambda key: key in keys and np.isfinite(_column(rows, key)).any()  # noqa: E731
    loss_panels = [p for p in _LOSS_PANELS if any(has(k) for k in p[1])] or [_LOSS_PANELS[0]]
    acc_keys = [k for k in ("accuracy", "val_accuracy") if has(k)]
    panels = loss_panels + ([("accuracy", acc_keys, "accuracy")] if acc_keys else [])
    panels += [("lr", ("lr",), "learning rate")] if has("lr") else []
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, (2.8 if len(panels) < 4 else 2.3) * len(panels)),
                             sharex=True, squeeze=False)
    axes = axes[:, 0]
    marked = best_epoch(rows)
    if best is not None and marked is not None and best in x:
        key = marked[1]
        marked = (int(best), key, float(_column(rows, key)[int(np.flatnonzero(x == best)[0])]))
    for ax, (panel, panel_keys, ylabel) in zip(axes, panels):
        for key in panel_keys:
            if has(key):
                style = dict(color="tab:green", marker=".") if key == "lr" else dict(marker="o", ms=3)
                ax.plot(x, _column(rows, key), label=key, **style)
        if panel == "lr" and np.nanmin(np.where(_column(rows, "lr") > 0, _column(rows, "lr"), np.nan),
                                       initial=np.inf) < np.inf:
            ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if marked is not None:
            ax.axvline(marked[0], color="tab:red", linestyle=":", linewidth=1.2, gid="best_epoch")
    if marked is not None:
        epoch, key, value = marked
        held = {"best": epoch, "last": int(x[-1])}.get(saved or "")  # the epoch model.keras holds
        where = "" if held is None else " = model.keras" if held == epoch else f" (model.keras: epoch {held}, the last)"
        axes[0].plot([epoch], [value], marker="*", ms=13, color="tab:red", linestyle="none", gid="best_epoch",
                     label=f"best {key} {value:.4g}, epoch {epoch}{where}")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
    # Phases: a dashed line between them, each name centred over its epochs inside the top panel.
    if len(x):
        axes[-1].set_xlim(x[0] - 0.5, x[-1] + 0.5)
    for name, first, last in _phase_spans(rows, phases):
        for ax in axes:
            if first > 0:
                ax.axvline(x[first] - 0.5, color="gray", linestyle="--", linewidth=1)
        axes[0].annotate(name, xy=((x[first] + x[last]) / 2, 1.0), xycoords=axes[0].get_xaxis_transform(),
                         xytext=(0, 3), textcoords="offset points", ha="center", va="bottom", fontsize=8,
                         color="dimgray", annotation_clip=False)
    if 0 < len(x) <= 20:
        axes[-1].set_xticks(x)  # every epoch (MaxNLocator falls back to fractions on short runs)
    else:
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("epoch")
    return fig


def plot_curves(history_rows: list[dict], path: str | os.PathLike,
                phases: Optional[list[dict]] = None, best: Optional[int] = None,
                saved: Optional[str] = None) -> Path:
    """Loss, accuracy and learning rate per epoch, phase boundaries and the best epoch marked.

    Args:
        history_rows: rows of history.csv as dicts (`epoch, phase, loss, val_loss, lr`, metrics);
            values may be strings.
        path: where the PNG goes.
        phases: phases.json's list; only used for labels when rows carry no `phase` column.
        best: the epoch to mark as best; default `best_epoch(history_rows)`.
        saved: `training.save`, to say which epoch model.keras holds (see `curves_figure`).

    Returns:
        The path of the PNG.

    Example:
    >>> rows = [{"epoch": 1, "phase": "head", "loss": 0.9, "val_loss": 0.8, "lr": 1e-3}]
    >>> plot_curves(rows, "/tmp/curves.png")  # doctest: +SKIP
    """
    return save_figure(curves_figure(history_rows, phases, best=best, saved=saved), path)


def _short_name(path: str, width: int = 28) -> str:
    """A file's name, its middle elided when longer than `width` characters."""
    name = os.path.basename(os.fspath(path))
    return name if len(name) <= width else name[: width // 2 - 1] + "..." + name[-(width - width // 2 - 2):]


def gallery_figure(paths_or_images: Sequence[Any], true: Sequence[int], pred: Sequence[int],
                   probs: Any, class_names: Sequence[str], max_images: int = 16,
                   title: Optional[str] = None, image_size: Sequence[int] = (128, 128),
                   fast_decode: bool = True) -> Any:
    """The figure `plot_gallery` saves: one tile per image, captioned with its file name and
    `true -> predicted (p)`; files decoded by `tfft.data`'s training decoder.

    Args:
        paths_or_images: file paths, or arrays [H, W, 3] in 0..255.
        true: true label indices.
        pred: predicted label indices.
        probs: [N, C] probabilities (or [N] probabilities of the predicted class).
        class_names: C names.
        max_images: at most this many are drawn, in the order given.
        title: a figure title.
        image_size: (height, width) files are decoded and resized to: pass the run's
            `data.image_size` to show what the model saw.
        fast_decode: the run's `data.fast_decode` (False: every JPEG pixel decoded).

    Returns:
        A matplotlib Figure (close it with `matplotlib.pyplot.close` when done).

    Example:
    >>> fig = gallery_figure(["a.jpg"], [0], [1], [[0.2, 0.8]], ["cat", "dog"])  # doctest: +SKIP
    """
    plt = pyplot()
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
        image = _as_image(item, image_size, fast_decode)
        if image is None:  # a grey tile of the same shape, so that the rows stay aligned
            image = np.full((int(image_size[0]), int(image_size[1]), 3), 0.9)
            ax.text(0.5, 0.5, "unreadable", ha="center", va="center", transform=ax.transAxes)
        ax.imshow(image)
        p = probs[index] if probs.ndim == 1 else probs[index, int(pred[index])]
        good = int(true[index]) == int(pred[index])
        caption = f"{class_names[int(true[index])]} -> {class_names[int(pred[index])]} ({p:.2f})"
        if isinstance(item, (str, os.PathLike)):
            caption = f"{_short_name(item)}\n{caption}"
        ax.set_title(caption, fontsize=8, color="green" if good else "red")
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "no images", ha="center", va="center")
    fig.subplots_adjust(top=1.0 - 0.4 / (2.6 * rows))  # room for the top row's two-line captions only
    if title:  # above the figure, so that it never meets those captions
        fig.suptitle(title, y=1.0, va="bottom")
    return fig


def plot_gallery(paths_or_images: Sequence[Any], true: Sequence[int], pred: Sequence[int],
                 probs: Any, class_names: Sequence[str], path: str | os.PathLike,
                 max_images: int = 16, title: Optional[str] = None,
                 image_size: Sequence[int] = (128, 128), fast_decode: bool = True) -> Path:
    """A grid of images captioned `file name` and `true -> predicted (p)`, e.g. the worst mistakes.

    Files are decoded as training decodes them (EXIF rotation applied, 16-bit PNGs reduced to
    8 bits, CMYK converted) at `image_size`; see `gallery_figure` for the arguments.

    Returns:
        The path of the PNG.

    Example:
    >>> plot_gallery(["a.jpg"], [0], [1], [[0.2, 0.8]], ["cat", "dog"], "/tmp/worst.png")  # doctest: +SKIP
    """
    return save_figure(gallery_figure(paths_or_images, true, pred, probs, class_names, max_images=max_images,
                                title=title, image_size=image_size, fast_decode=fast_decode), path, dpi=72)


def _as_image(item: Any, image_size: Sequence[int], fast_decode: bool) -> Optional[np.ndarray]:
    """A tile's pixels in 0..1: a file decoded by the training decoder, or an array in 0..255."""
    if isinstance(item, (str, os.PathLike)):
        from tfft.data.files import read_image

        try:
            array = read_image(item, image_size, fast_decode=fast_decode)
        except Exception:  # an unreadable file gets a tile that says so
            return None
    else:
        array = np.asarray(item, dtype=np.float64)
    return np.clip(np.asarray(array, dtype=np.float64) / 255.0, 0.0, 1.0)
