"""`tfft interpret`: top losses, most confused classes and Grad-CAM heatmaps of a finished run."""

from __future__ import annotations

import click


@click.command()
@click.argument("run_dir", type=str)
@click.option("--split", default="val", show_default=True, help="train | val | test.")
@click.option("--data", "data", default=None, metavar="SPEC",
              help="Interpret on this data instead of the run's data.source.")
@click.option("--top", "top", type=int, default=16, show_default=True, help="N top losses.")
@click.option("--out", default=None, metavar="DIR", help="Default: RUN_DIR/interpret/<split>/.")
@click.option("--batch-size", type=int, default=None, help="Default: the run's data.batch_size.")
@click.option("--member", type=int, default=None, metavar="K",
              help="Ensembles: draw member K's heatmaps (default: the members' mean).")
@click.option("--method", default="gradcam", show_default=True, type=click.Choice(["gradcam", "gradcam++", "scorecam"]),
              help="How the heatmaps weight the feature map (benchmarks/RESULTS.md compares them).")
def interpret(run_dir: str, split: str, data: str | None, top: int, out: str | None, batch_size: int | None,
              member: int | None, method: str) -> None:
    """Where RUN_DIR's model looks (Grad-CAM) on its worst and most confused images."""
    from tfft import interpret as run_interpret
    from tfft import write_html_report

    result = run_interpret(run_dir, split=split, data=data, top=top, out=out, batch_size=batch_size,
                           member=member, method=method)
    for row in result.most_confused[:5]:
        click.echo(f"confused: {row['label']} -> {row['predicted']}: {row['count']}")
    worst = result.losses[0] if len(result.losses) else float("nan")
    click.echo(f"top {len(result.losses)} losses (worst {worst:.3f}): {result.files['top_losses']}")
    if out is None:
        click.echo(f"report: {write_html_report(run_dir)}")
    click.echo(f"wrote {result.out_dir}")


def register(cli: click.Group) -> None:
    cli.add_command(interpret)
