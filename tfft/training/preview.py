"""`tfft augment preview`: a grid of a resolved run's training images as its augmenter changes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from tfft.atomic import check_output
from tfft.config import Config
from tfft.training.assembly import resolve


PREVIEW = "augment_preview.png"  # the default file, in the working directory


def preview_augmentation(config: Union[Config, dict, str, None], out_path: Union[str, Path, None] = None,
                         per_class: int = 8, seed: Optional[int] = None, overwrite: bool = False) -> tuple[Path, str]:
    """Write a PNG grid of training images augmented as `tfft train` would: one row per class,
    its first training image as decoded ("original"), then `per_class` augmented copies of it.

    The config is resolved as for training (the same checks), the training split listed and
    decoded by `tfft.data` in its fixed order, and the augmenter's image steps applied.

    Args:
        config: a `Config`, a dict, a YAML path or text.
        out_path: the PNG to write (default `augment_preview.png`, replaced freely); an existing
            folder gets `augment_preview.png` inside; an existing file is refused without `overwrite`.
        per_class: augmented copies per row.
        seed: the augmentation seed (default: the config's seed).
        overwrite: replace an existing `out_path`.

    Returns:
        `(path, description)`: the PNG written and the augmenter's one-line description.

    Example:
    >>> path, text = preview_augmentation({"data": {"image_size": [32, 32], "builtin_per_class": 4},
    ...                                    "augment": {"rotation_range": 20}}, "grid.png", per_class=2)
    >>> path.name, text
    ('grid.png', 'augment: rotation +-20deg...')
    """
    from tfft import data
    from tfft.augment import build_augmenter, preview_grid

    out_path = Path(PREVIEW) if out_path is None else check_output(out_path, overwrite=overwrite, file_name=PREVIEW)
    run = resolve(config)
    cfg = run.config
    splits = data.load_splits(cfg.data, seed=cfg.seed)
    class_names = list(splits.class_names)
    wanted = {c: 1 for c in range(len(class_names))}  # each class's first image, copied per_class times
    images: list[Any] = []
    labels: list[int] = []
    for batch_images, batch_labels in data.make_dataset(splits, "train", cfg.data, seed=cfg.seed, training=False):
        for image, label in zip(batch_images.numpy(), batch_labels.numpy()):
            if wanted.get(int(label), 0) > 0:
                wanted[int(label)] -= 1
                images.append(image)
                labels.append(int(label))
        if not any(wanted.values()):
            break
    path = preview_grid(cfg.augment, np.stack(images), np.asarray(labels), class_names,
                        cfg.seed if seed is None else seed, out_path, per_class=per_class)
    augmenter = build_augmenter(cfg.augment, run.image_size, len(class_names))
    return path, augmenter.describe() if augmenter is not None else "augment: none"
