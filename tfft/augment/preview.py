"""A PNG grid of augmented samples per class, for checking a config by eye."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

from tfft.atomic import atomic_path
from tfft.config import AugmentConfig


def preview_grid(cfg_augment: AugmentConfig, images, labels, class_names: Sequence[str], seed,
                 out_path, per_class: int = 8) -> Path:
    """Augment `images` once with `seed` and write a grid: one row per class, `per_class` columns.

    Args:
        cfg_augment: the `augment` section.
        images: float32 [N, H, W, 3] raw 0-255 (un-augmented).
        labels: int [N] class indices.
        class_names: names in index order (row titles).
        seed: an int or a [2] int seed.
        out_path: where to write the PNG.
        per_class: columns per row (fewer when a class has fewer images).

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
    if augmenter is not None:
        # Mixing would blend classes and hide what each row shows: preview the image steps only.
        shown = augmenter.augment_images(tf.constant(images), seed_t).numpy()
    else:
        shown = images
    rows = [(c, np.flatnonzero(labels == c)[:per_class]) for c in range(len(class_names))]
    rows = [(c, idx) for c, idx in rows if idx.size]
    cols = max((idx.size for _, idx in rows), default=1)
    fig, axes = plt.subplots(max(len(rows), 1), cols, figsize=(1.6 * cols, 1.7 * max(len(rows), 1)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, (c, idx) in enumerate(rows):
        for j, i in enumerate(idx):
            axes[r, j].imshow(np.clip(shown[i], 0, 255).astype(np.uint8))
        axes[r, 0].set_title(str(class_names[c]), loc="left", fontsize=9)
    title = augmenter.describe() if augmenter is not None else "augment: none"
    fig.suptitle(textwrap.fill(title, width=int(22 * cols)), fontsize=7)
    fig.tight_layout()
    out = Path(out_path)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out
