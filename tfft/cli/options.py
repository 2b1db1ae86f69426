"""Options that several commands share, defined once."""

from __future__ import annotations

import click

config_argument = click.argument("config", type=click.Path(dir_okay=False))

overrides_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override a config key, e.g. --set data.batch_size=16 (repeatable).")


def load_cli_config(config: str, overrides: tuple[str, ...], check: bool = True):
    """CONFIG with its `--set` overrides, validated (`tfft.config.load_config`).

    With `check`, its paths and sizes are checked too (`tfft.check_config`): a missing data
    folder is refused in a second, before TensorFlow is imported.
    """
    from tfft import check_config, load_config

    cfg = load_config(config, overrides=list(overrides))
    if check:
        check_config(cfg)
    return cfg


class LazyChoice(click.Choice):
    """A `click.Choice` whose names come from `names()` when first needed (parsing, --help), so
    that importing the CLI does not import the registry's module (e.g. every exporter)."""

    def __init__(self, names, case_sensitive: bool = True):
        self._names = names
        self._choices: tuple[str, ...] | None = None
        self.case_sensitive = case_sensitive

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        # Asked each time, not kept: an entry registered after the CLI was first used (a plug-in,
        # or a test's `registered` block) is offered too.
        if self._choices is None:
            return tuple(self._names())
        return self._choices

    @choices.setter
    def choices(self, value) -> None:
        self._choices = tuple(value)
