"""`tfft tune`: hyperparameter search (tfft/studies/tune.py)."""

from __future__ import annotations

import click

from tfft.cli.options import config_argument, load_cli_config, overrides_option
from tfft.cli.runtime import device_line


@click.command()
@config_argument
@click.option("--space", "space", required=True, type=click.Path(dir_okay=False),
              help="SPACE.yaml: dotted config keys to {uniform|log_uniform|int|choice: ...}.")
@click.option("--trials", type=int, required=True,
              help="N: the study's total of finished trials, over every process sharing --storage/--study.")
@click.option("--storage", default=None, metavar="URL",
              help="Optuna storage URL (default sqlite:///DIR/study.db); a PostgreSQL/MySQL URL lets many machines share the study.")
@click.option("--study", "study", default=None, metavar="NAME", help="Study name in the storage (default: the config's name).")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="DIR for trials.csv, best_config.yaml, tune.png, trials/ (default runs/NAME-tune).")
@click.option("--metric", default=None,
              help="The val metric to optimise (metrics.json's val keys; default accuracy, mAP for multi-label data); "
                   "val_loss/loss is minimised, others maximised.")
@click.option("--keep", type=int, default=None, metavar="K", help="Keep only the best K trials' run directories.")
@click.option("--pruner", type=click.Choice(["median", "none"]), default="median", show_default=True,
              help="Stop hopeless trials early from their per-epoch val metric.")
@click.option("--heartbeat", type=int, default=None, metavar="SECONDS",
              help="Seconds between a running trial's heartbeats in the storage (default: tfft.studies.storage.HEARTBEAT_S); "
                   "a killed process's trial is failed and replaced 2 x this later.")
@overrides_option
@click.option("--verbose", "-v", is_flag=True, help="Show each trial's training output (default: its train.log).")
def tune(config: str, space: str, trials: int, storage: str | None, study: str | None, run_dir: str | None,
         metric: str | None, keep: int | None, pruner: str, heartbeat: int | None, overrides: tuple[str, ...], verbose: bool) -> None:
    """Search SPACE around CONFIG with Optuna until the study has N finished trials; prints `run dir: DIR` last."""
    cfg = load_cli_config(config, overrides)  # checked before TensorFlow is imported
    click.echo(device_line())
    import tfft

    result = tfft.tune(cfg, space, trials, storage=storage, study=study, run_dir=run_dir, metric=metric,
                      keep=keep, pruner=pruner, verbose=verbose, heartbeat=heartbeat)
    if result.best_config is not None:
        click.echo(f"best config: {result.best_config}")
    click.echo(f"run dir: {result.run_dir}")


def register(cli: click.Group) -> None:
    cli.add_command(tune)
