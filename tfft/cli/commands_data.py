"""`tfft data check PATH [--json] [--strict] [--near-duplicates]` and `tfft data pack SOURCE --out DIR`: inspect, pack a dataset."""

from __future__ import annotations

import json
import sys

import click


@click.group("data")
def data_group() -> None:
    """Inspect datasets."""


@data_group.command("check")
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")
@click.option("--strict", is_flag=True, help="Exit 1 when any image file is unreadable or train would warn.")
@click.option("--no-duplicates", is_flag=True, help="Skip hashing files to find exact duplicates.")
@click.option("--near-duplicates", is_flag=True,
              help="Also group resized, re-encoded or lightly edited copies (perceptual hash; no model).")
def check(path: str, as_json: bool, strict: bool, no_duplicates: bool, near_duplicates: bool) -> None:
    """Per-class counts, empty classes, unreadable files, odd formats, duplicates and sizes.

    PATH is a folder of class subfolders (optionally inside train/ val/ test/) or csv:MANIFEST.
    The verdict is train's: what `tfft train` refuses exits 2 (after the report), and with
    --strict what it warns about exits 1. --near-duplicates adds the groups of near-duplicate
    images (`near_duplicate_groups` in the JSON), found by perceptual hash without any model.
    """
    from tfft import check_data, format_data_check
    from tfft.wording import plural

    report = check_data(path, duplicates=not no_duplicates, near_duplicates=near_duplicates)
    if as_json:
        click.echo(json.dumps(report))
    else:
        click.echo(format_data_check(report))
    if report["errors"]:
        for error in report["errors"]:
            click.echo(f"error: {error['text']}", err=True)
        sys.exit(2)
    if strict and (report["bad_files"] or report["warnings"]):
        if not as_json:
            click.echo(f"--strict: {plural(len(report['bad_files']), 'unreadable file')}, "
                       f"{plural(len(report['warnings']), 'warning')}", err=True)
        sys.exit(1)


@data_group.command("pack")
@click.argument("source")
@click.option("--out", required=True, type=click.Path(), help="The folder the shards and index.json go to.")
@click.option("--max-side", type=int, default=None, help="Re-encode images whose longer side is larger.")
@click.option("--per-shard", type=int, default=1000, show_default=True, help="Images per shard.")
@click.option("--val-split", type=float, default=0.2, show_default=True, help="As data.val_split.")
@click.option("--test-split", type=float, default=0.0, show_default=True, help="As data.test_split.")
@click.option("--seed", type=int, default=42, show_default=True, help="The seed of the split, as a run's seed.")
@click.option("--overwrite", is_flag=True, help="Write into a non-empty --out.")
def pack(source: str, out: str, max_side: int, per_shard: int, val_split: float, test_split: float, seed: int,
         overwrite: bool) -> None:
    """Write SOURCE (a folder or csv:MANIFEST) as TFRecord shards; train on them with data.source: tfrecord:OUT.

    Labels and splits go inside each record and index.json beside the shards. A pack that
    stopped resumes when run again with the same arguments (finished shards are skipped).
    """
    from tfft import data

    data.pack(source, out, max_side=max_side, per_shard=per_shard, val_split=val_split, test_split=test_split,
              seed=seed, overwrite=overwrite, echo=lambda line: click.echo(line, err=True))


def register(cli: click.Group) -> None:
    """Add the `data` group to the tfft CLI."""
    cli.add_command(data_group)
