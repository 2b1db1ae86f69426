"""Options that several commands share, defined once."""

from __future__ import annotations

import click

config_argument = click.argument("config", type=click.Path(dir_okay=False))

overrides_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override a config key, e.g. --set data.batch_size=16 (repeatable).")


def load_cli_config(config: str, overrides: tuple[str, ...], check: bool = True):
    """CONFIG with its `--set` overrides, validated (`tfft.config.load_config`).

    With `check`, its paths and sizes are checked too (`tfft.training.preflight.check_config`):
    a missing data folder is refused in a second, before TensorFlow is imported.
    """
    from tfft import load_config
    from tfft.training.preflight import check_config

    cfg = load_config(config, overrides=list(overrides))
    if check:
        check_config(cfg)
    return cfg
