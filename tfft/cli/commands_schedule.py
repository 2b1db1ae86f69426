"""Schedule commands: `tfft lr-find`."""

from __future__ import annotations

import click

from tfft.cli.options import config_argument, load_cli_config, overrides_option
from tfft.cli.runtime import device_line


@click.command("lr-find")
@config_argument
@overrides_option
@click.option("--phase", default=None, metavar="NAME|INDEX",
              help="The phase to test: its name or index (from 0, as in schedule.phases[INDEX]). "
                   "Default: the first (the head phase: on cached features where the backbone is frozen).")
@click.option("--steps", type=int, default=None,
              help="Batches to train, one rate each (the training set repeats as needed). "
                   "Default: 4 passes over the training data, within 30..100.")
@click.option("--start-lr", type=float, default=1e-7, show_default=True, help="The first rate.")
@click.option("--end-lr", type=float, default=10.0, show_default=True, help="The last rate.")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Where to write lr_find.png and lr_find.json (default: runs/NAME-lr-find).")
def lr_find(config: str, overrides: tuple[str, ...], phase: str | None, steps: int | None, start_lr: float,
            end_lr: float, run_dir: str | None) -> None:
    """Learning-rate range test: train a throwaway model with a growing rate and suggest one.

    Prints `suggested lr: X` (the steepest descent of the smoothed loss) and the plot's path.
    """
    cfg = load_cli_config(config, overrides)  # checked before TensorFlow is imported
    click.echo(device_line())
    from tfft import find_lr

    find_lr(cfg, phase=phase, start_lr=start_lr, end_lr=end_lr, steps=steps, run_dir=run_dir)


def register(cli: click.Group) -> None:
    cli.add_command(lr_find)
