"""`tfft data check PATH [--json] [--strict]`: inspect an image folder before training."""

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
@click.option("--strict", is_flag=True, help="Exit 1 when any image file is unreadable.")
@click.option("--no-duplicates", is_flag=True, help="Skip hashing files to find exact duplicates.")
def check(path: str, as_json: bool, strict: bool, no_duplicates: bool) -> None:
    """Per-class counts, empty classes, unreadable files, odd formats, duplicates and sizes."""
    from tfft.data.check import check_folder, format_report
    from tfft.reporting.wording import plural

    report = check_folder(path, duplicates=not no_duplicates)
    if as_json:
        click.echo(json.dumps(report))
    else:
        click.echo(format_report(report))
    if strict and report["bad_files"]:
        if not as_json:
            click.echo(f"--strict: {plural(len(report['bad_files']), 'unreadable file')}", err=True)
        sys.exit(1)


def register(cli: click.Group) -> None:
    """Add the `data` group to the tfft CLI."""
    cli.add_command(data_group)
