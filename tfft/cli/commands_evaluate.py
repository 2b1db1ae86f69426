"""Commands that read a finished run: evaluate, predict, export."""

from __future__ import annotations

import click

from tfft.cli.options import LazyChoice


@click.command()
@click.argument("run_dir", type=str)
@click.option("--data", "data", default=None, metavar="SPEC",
              help="Evaluate on this data instead of the run's data.source.")
@click.option("--split", default="val", show_default=True, help="train | val | test.")
@click.option("--top-k", "top_k", type=int, default=None, help="k of top-k accuracy (default: evaluate.top_k).")
@click.option("--batch-size", type=int, default=None, help="Default: the run's data.batch_size.")
def evaluate(run_dir: str, data: str | None, split: str, top_k: int | None, batch_size: int | None) -> None:
    """Metrics of RUN_DIR's model on a split; writes RUN_DIR/eval/<split>/ (--data: eval/<data name>-<split>/)."""
    import tfft

    metrics = tfft.evaluate(run_dir, data=data, split=split, batch_size=batch_size, top_k=top_k)
    skipped = len(metrics.get("skipped") or [])
    title = f"{split}: {metrics['num_examples']} images" + (f" ({skipped} unreadable skipped)" if skipped else "")
    click.echo(tfft.format_metrics(metrics, title=title))
    click.echo(f"wrote {metrics['out_dir']}")


@click.command()
@click.argument("run_dir", type=str)
@click.argument("paths", nargs=-1, required=True)
@click.option("--top-k", "top_k", type=int, default=3, show_default=True, help="Labels per image.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--tta", is_flag=True, help="Average with the horizontally flipped image.")
@click.option("--batch-size", type=int, default=32, show_default=True)
def predict(run_dir: str, paths: tuple[str, ...], top_k: int, fmt: str, tta: bool, batch_size: int) -> None:
    """Top-k labels for images: files, folders (recursive) or globs."""
    from tfft.errors import UserError
    from tfft.wording import plural
    import tfft

    rows = tfft.predict(run_dir, list(paths), top_k=top_k, tta=tta, batch_size=batch_size)
    click.echo(tfft.format_predictions(rows, fmt))
    failed = sum(1 for row in rows if row.get("error"))
    if rows and failed == len(rows):
        raise UserError(" ".join(paths), f"none of the {plural(len(rows), 'file')} could be read (the error "
                        "column above says why for each)", "run `tfft data check` on them")
    click.echo(f"predict: {plural(len(rows), 'file')}, {failed} failed" +
               (" (the error column says why)" if failed else ""), err=True)


def _export_formats() -> list[str]:
    """The registered export formats and `all` (`tfft.export_formats()`)."""
    from tfft import export_formats

    return export_formats() + ["all"]


@click.command()
@click.argument("run_dir", type=str)
@click.option("--format", "fmt", type=LazyChoice(_export_formats), required=True,
              help="A format, or all: every installed format and quantization into one folder, with a table.")
@click.option("--quantize", type=click.Choice(["none", "dynamic", "float16", "int8"]), default=None,
              help="tflite: dynamic | float16 | int8; onnx: dynamic | int8; openvino: int8 (NNCF). "
                   "Default none (--format all: every quantization).")
@click.option("--out", default=None,
              help="Where to write (default: RUN_DIR/export/...); an existing folder gets model.tflite inside.")
@click.option("--overwrite", is_flag=True,
              help="Write into an --out that already holds files (only the export's own files are replaced).")
@click.option("--threads", type=int, default=None, help="The runtime's threads for the latency (default: every core).")
def export(run_dir: str, fmt: str, quantize: str | None, out: str | None, overwrite: bool,
           threads: int | None) -> None:
    """Export RUN_DIR's model, checked in its own runtime; the last line is the parity check against model.keras."""
    from tfft import export as run_export, export_all

    if fmt == "all":
        summary = export_all(run_dir, out=out, quantize=quantize, overwrite=overwrite, threads=threads)
        click.echo(summary.table())
        for line in summary.skipped:
            click.echo(f"skipped {line}")
        click.echo(f"wrote {summary.folder}")
        return
    result = run_export(run_dir, format=fmt, quantize=quantize or "none", out=out, overwrite=overwrite,
                        threads=threads)
    click.echo(f"wrote {result.path}")
    click.echo(f"size: {result.size_bytes / 1e6:.3f} MB ({result.size_bytes} bytes), gzip {result.gzip_bytes / 1e6:.3f} MB")
    click.echo(f"latency: {result.latency_ms:.3f} ms per image (median of 20, batch 1, {result.threads} threads, "
               f"{result.runtime}, this CPU)")
    click.echo(result.parity_line())


def register(cli: click.Group) -> None:
    cli.add_command(evaluate)
    cli.add_command(predict)
    cli.add_command(export)
