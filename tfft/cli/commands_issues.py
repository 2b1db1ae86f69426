"""`tfft data issues CONFIG [--folds K] [--top N] [--out DIR]`: likely label errors and duplicates."""

from __future__ import annotations

import click

from tfft.cli.options import load_cli_config, overrides_option


@click.command("issues")
@click.argument("config", type=str)
@click.option("--folds", type=int, default=5, show_default=True, help="Folds of the quick cross-validation.")
@click.option("--top", type=int, default=24, show_default=True, help="Suspects shown in label_issues.png and here.")
@click.option("--out", "out", default=None, help="Output folder (default: runs/NAME-issues).")
@overrides_option
@click.option("--full", is_flag=True, help="Cross-validate the config as given (default: frozen backbone, head only).")
@click.option("--resume", is_flag=True, help="Finish an interrupted run of the same command.")
@click.option("--overwrite", is_flag=True, help="Write into an --out that holds other files (they stay).")
def issues(config: str, folds: int, top: int, out: str | None, overrides: tuple[str, ...], full: bool,
           resume: bool, overwrite: bool) -> None:
    """Label errors (out-of-fold confident learning) and near-duplicates within and across splits."""
    cfg = load_cli_config(config, overrides)  # checked before TensorFlow is imported
    import tfft

    result = tfft.data_issues(cfg, folds=folds, top=top, out=out, quick=not full, resume=resume,
                        overwrite=overwrite)
    width = max([len(name) for name in result.class_names] + [5])
    click.echo(f"{'rank':>4}  {'score':>6}  {'given':<{width}}  {'suggested':<{width}}  flagged  path")
    for position, issue in enumerate(result.ranking[:top], start=1):
        click.echo(f"{position:>4}  {issue.score:>6.3f}  {result.class_names[issue.given]:<{width}}  "
                   f"{result.class_names[issue.suggested]:<{width}}  {'yes' if issue.is_issue else 'no':>7}  "
                   f"{result.paths[issue.index]}")
    click.echo(f"run dir: {result.out}")


def register(cli: click.Group) -> None:
    """Add `issues` to the `data` group of the tfft CLI."""
    group = cli.commands.get("data")
    if isinstance(group, click.Group):
        group.add_command(issues)
