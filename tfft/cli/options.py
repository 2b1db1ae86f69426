"""Options that several commands share, defined once."""

from __future__ import annotations

import click

config_argument = click.argument("config", type=click.Path(dir_okay=False))

overrides_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override a config key, e.g. --set data.batch_size=16 (repeatable).")


def load_cli_config(config: str, overrides: tuple[str, ...]):
    """CONFIG with its `--set` overrides, validated (`tfft.config.load_config`)."""
    from tfft.config import load_config

    return load_config(config, overrides=list(overrides))
