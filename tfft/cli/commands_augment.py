"""`tfft augment preview CONFIG --out grid.png`: a PNG of augmented training samples per class."""

from __future__ import annotations

import click

from tfft.cli.options import config_argument, load_cli_config, overrides_option


@click.group("augment")
def augment_group() -> None:
    """Inspect the augmentation a config asks for."""


@augment_group.command("preview")
@config_argument
@overrides_option
@click.option("--out", "out_path", default=None, type=click.Path(),
              help="Where to write the PNG grid (default: augment_preview.png; a folder gets augment_preview.png inside).")
@click.option("--per-class", default=8, show_default=True, type=click.IntRange(1, 32),
              help="Augmented copies per class (one row per class: its first image, then the copies).")
@click.option("--seed", default=None, type=int, help="Augmentation seed (default: the config's seed).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
def preview(config: str, overrides: tuple[str, ...], out_path: str | None, per_class: int, seed: int | None,
            overwrite: bool) -> None:
    """Write a grid of CONFIG's train images, one row per class: the original, then augmented copies."""
    cfg = load_cli_config(config, overrides)  # checked before TensorFlow is imported
    from tfft import preview_augmentation

    path, description = preview_augmentation(cfg, out_path, per_class=per_class, seed=seed, overwrite=overwrite)
    click.echo(description)
    click.echo(f"wrote {path}")


def register(cli: click.Group) -> None:
    """Add the `augment` group to the tfft CLI."""
    cli.add_command(augment_group)
