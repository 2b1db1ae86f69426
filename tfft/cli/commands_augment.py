"""`tfft augment preview CONFIG --out grid.png`: a PNG of augmented training samples per class."""

from __future__ import annotations

import click


@click.group("augment")
def augment_group() -> None:
    """Inspect the augmentation a config asks for."""


@augment_group.command("preview")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key.")
@click.option("--out", "out_path", default="augment_preview.png", show_default=True,
              type=click.Path(dir_okay=False), help="Where to write the PNG grid.")
@click.option("--per-class", default=8, show_default=True, type=click.IntRange(1, 32),
              help="Samples per class (one row per class).")
@click.option("--seed", default=None, type=int, help="Augmentation seed (default: the config's seed).")
def preview(config: str, overrides: tuple[str, ...], out_path: str, per_class: int, seed: int | None) -> None:
    """Write a grid of augmented train images of CONFIG, one row per class."""
    from tfft.config import load_config

    cfg = load_config(config, overrides=list(overrides))
    import numpy as np

    from tfft import data as tfft_data
    from tfft.augment import build_augmenter, preview_grid

    splits = tfft_data.load_splits(cfg.data, seed=cfg.seed)
    class_names = list(splits.class_names)
    wanted = {c: per_class for c in range(len(class_names))}
    images, labels = [], []
    for batch_images, batch_labels in tfft_data.make_dataset(splits, "train", cfg.data, seed=cfg.seed,
                                                               training=False):
        for image, label in zip(batch_images.numpy(), batch_labels.numpy()):
            if wanted.get(int(label), 0) > 0:
                wanted[int(label)] -= 1
                images.append(image)
                labels.append(int(label))
        if not any(wanted.values()):
            break
    path = preview_grid(cfg.augment, np.stack(images), np.asarray(labels), class_names,
                        cfg.seed if seed is None else seed, out_path, per_class=per_class)
    augmenter = build_augmenter(cfg.augment, tuple(cfg.data.image_size), len(class_names))
    click.echo(augmenter.describe() if augmenter is not None else "augment: none")
    click.echo(f"wrote {path}")


def register(cli: click.Group) -> None:
    """Add the `augment` group to the tfft CLI."""
    cli.add_command(augment_group)
