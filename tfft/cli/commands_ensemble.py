"""`tfft ensemble RUN_DIR RUN_DIR... --out DIR`: average finished runs into one run directory."""

from __future__ import annotations

import click


@click.command("ensemble")
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR RUN_DIR...")
@click.option("--out", "out", required=True, help="The ensemble's run directory.")
@click.option("--data", "data", default=None, metavar="SPEC",
              help="Evaluate on this data instead of the members' common validation images.")
@click.option("--split", default="val", show_default=True, help="The split to evaluate: train | val | test.")
@click.option("--overwrite", is_flag=True, help="Replace --out when it already holds files.")
def ensemble(run_dirs: tuple[str, ...], out: str, data: str | None, split: str, overwrite: bool) -> None:
    """One model averaging the probabilities of RUN_DIRs (backbones and sizes may differ)."""
    import tfft

    result = tfft.ensemble(list(run_dirs), out, data=data, split=split, overwrite=overwrite)
    if result.metrics:
        width = max(len(m["run_dir"]) for m in result.members)
        score = result.score
        click.echo(f"{split}: {result.num_examples} images")
        click.echo(f"  {'member':<{width}}  {'size':>9}  {score:>8}  {'loss':>7}")
        for member in result.members:
            size = "x".join(str(s) for s in member["image_size"])
            click.echo(f"  {member['run_dir']:<{width}}  {size:>9}  {member[score]:>8.4f}  {member['loss']:>7.4f}")
        sizes = {tuple(member["image_size"]) for member in result.members}
        if len(sizes) > 1:
            largest = f"{max(h for h, _ in sizes)}x{max(w for _, w in sizes)}"
            click.echo(f"  (each member on the images resized once to its own size, as its own metrics.json; "
                       f"the ensemble takes {largest} and resizes it inside the model to each member's size)")
        click.echo(tfft.format_metrics(result.metrics, title=f"ensemble of {len(result.members)}:"))
    else:
        click.echo(f"not evaluated: {result.evaluated_on}; "
                   f"run `tfft evaluate {result.run_dir} --data SPEC`")
    if result.thresholds is not None:
        click.echo(f"thresholds: {result.thresholds_from}")
    click.echo(f"run dir: {result.run_dir}")


def register(cli: click.Group) -> None:
    """Add `ensemble` to the tfft CLI."""
    cli.add_command(ensemble)
