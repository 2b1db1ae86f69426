"""A PNG grid of augmented samples per class, for checking a config by eye."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tfft.atomic import atomic_path
from tfft.config import AugmentConfig


def preview_figure(cfg_augment: AugmentConfig, images, labels, class_names: Sequence[str], seed,
                   per_class: int = 8) -> Any:
    """The figure `preview_grid` saves: per class, its first image un-augmented ("original"),
    then `per_class` augmented copies of that same image.

    Args:
        cfg_augment: the `augment` section.
        images: float32 [N, H, W, 3] raw 0-255 (un-augmented).
        labels: int [N] class indices; each class's first image is shown.
        class_names: names in index order (row labels).
        seed: an int or a [2] int seed.
        per_class: augmented copies per row.

    Returns:
        A matplotlib Figure (close it with `matplotlib.pyplot.close` when done).

    Example:
    >>> fig = preview_figure(AugmentConfig(rotation_range=30), x, [0, 1], ["a", "b"], 1)  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tensorflow as tf

    from tfft.augment.augmenter import build_augmenter

    images = np.asarray(images, np.float32)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    seed_t = tf.constant([int(seed), 0] if np.ndim(seed) == 0 else list(seed), tf.int64)
    height, width = images.shape[1:3]
    augmenter = build_augmenter(cfg_augment, (height, width), len(class_names))
    classes = [c for c in range(len(class_names)) if np.any(labels == c)]
    originals = images[[int(np.flatnonzero(labels == c)[0]) for c in classes]] if classes else images[:0]
    copies = np.repeat(originals, per_class, axis=0)  # one batch: each copy gets its own random draw
    if augmenter is not None and len(copies):
        # Mixing would blend classes and hide what each row shows: preview the image steps only.
        copies = augmenter.augment_images(tf.constant(copies), seed_t).numpy()
    rows, cols = max(len(classes), 1), per_class + 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.7 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, c in enumerate(classes):
        axes[r, 0].imshow(np.clip(originals[r], 0, 255).astype(np.uint8))
        axes[r, 0].set_title(f"{class_names[c]}: original", loc="left", fontsize=8, fontweight="bold")
        for j in range(per_class):
            axes[r, j + 1].imshow(np.clip(copies[r * per_class + j], 0, 255).astype(np.uint8))
        axes[r, 1].set_title("augmented copies", loc="left", fontsize=8)
    title = augmenter.describe() if augmenter is not None else "augment: none"
    fig.suptitle(textwrap.fill(title, width=int(22 * cols)), fontsize=7)
    fig.tight_layout()
    return fig


def preview_grid(cfg_augment: AugmentConfig, images, labels, class_names: Sequence[str], seed,
                 out_path, per_class: int = 8) -> Path:
    """Write a grid: one row per class, its first image un-augmented then `per_class` augmented
    copies of it (see `preview_figure` for the arguments).

    Returns:
        The path written.

    Example:
    >>> import numpy as np, tempfile, os
    >>> from tfft.config import AugmentConfig
    >>> x = np.random.uniform(0, 255, [4, 16, 16, 3]).astype("float32")
    >>> p = preview_grid(AugmentConfig(rotation_range=30), x, [0, 0, 1, 1], ["a", "b"], 1,
    ...                  os.path.join(tempfile.mkdtemp(), "g.png"), per_class=2)
    >>> p.exists()
    True
    """
    fig = preview_figure(cfg_augment, images, labels, class_names, seed, per_class=per_class)
    import matplotlib.pyplot as plt  # after preview_figure chose the Agg backend

    out = Path(out_path)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out
