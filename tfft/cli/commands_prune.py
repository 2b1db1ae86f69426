"""`tfft prune RUN_DIR --sparsity S [--epochs E] [--out DIR]`: magnitude pruning with fine-tuning."""

from __future__ import annotations

import click


@click.command("prune")
@click.argument("run_dir")
@click.option("--sparsity", type=float, required=True, help="Fraction of each Conv2D/Dense kernel set to 0.")
@click.option("--epochs", type=int, default=2, show_default=True, help="Fine-tuning epochs while pruning.")
@click.option("--out", "out", default=None, help="The pruned run directory (default RUN_DIR-pruned-<S%>).")
@click.option("--lr", type=float, default=None, help="Fine-tuning rate (default: the run's smallest).")
@click.option("--min-steps", type=int, default=None,
              help="At least this many pruning steps; the data repeats to reach them (default 100).")
@click.option("--frequency", type=int, default=None,
              help="Recompute the masks every this many steps (default: from the schedule's length).")
@click.option("--bn", type=click.Choice(["train", "frozen"]), default="train", show_default=True,
              help="BatchNorm while pruning: train (its statistics follow the pruned kernels) or frozen.")
@click.option("--overwrite", is_flag=True, help="Replace --out when it already holds files.")
def prune(run_dir: str, sparsity: float, epochs: int, out: str | None, lr: float | None, min_steps: int | None,
          frequency: int | None, bn: str, overwrite: bool) -> None:
    """Prune RUN_DIR's model to SPARSITY while fine-tuning; writes a new run directory."""
    import tfft

    result = tfft.prune(run_dir, sparsity, epochs=epochs, out=out, lr=lr, bn=bn, overwrite=overwrite,
                        frequency=frequency, min_steps=min_steps)
    sizes = result.gzip_bytes
    click.echo(f"sparsity {result.sparsity:.4f} (target {result.target_sparsity:g}) over "
               f"{len(result.layers)} Conv2D/Dense kernels; gzip {sizes['dense']:,} -> {sizes['pruned']:,} bytes")
    click.echo(f"run dir: {result.run_dir}")


def register(cli: click.Group) -> None:
    """Add `prune` to the tfft CLI."""
    cli.add_command(prune)
