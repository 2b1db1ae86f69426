"""`tfft cv`: K-fold cross-validation of a config."""

from __future__ import annotations

import click

from tfft.cli.options import config_argument, load_cli_config, overrides_option
from tfft.cli.runtime import device_line


@click.command("cv")
@config_argument
@click.option("--folds", type=int, default=5, show_default=True, help="Number of folds K (at least 2).")
@overrides_option
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Where to write the study (default: runs/NAME-cv, numbered if taken).")
@click.option("--resume", is_flag=True, help="Finish the interrupted study in --run-dir (or the latest runs/NAME-cv*).")
@click.option("--ensemble", is_flag=True, help="Also average the fold models into DIR/ensemble/.")
def cv(config: str, folds: int, overrides: tuple[str, ...], run_dir: str | None, resume: bool,
       ensemble: bool) -> None:
    """Stratified (per label for multi-label data), grouped K-fold cross-validation of CONFIG's train+val
    images; prints `run dir: DIR` last."""
    cfg = load_cli_config(config, overrides)  # checked before TensorFlow is imported
    click.echo(device_line())
    import tfft

    result = tfft.cv(cfg, folds=folds, run_dir=run_dir, resume=resume, ensemble=ensemble)
    click.echo(f"run dir: {result.run_dir}")


def register(cli: click.Group) -> None:
    cli.add_command(cv)
