"""`tfft data check PATH [--json] [--strict] [--near-duplicates]`: inspect an image folder or manifest before training."""

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
    from tfft.data.check import check_folder, format_report
    from tfft.wording import plural

    report = check_folder(path, duplicates=not no_duplicates, near_duplicates=near_duplicates)
    if as_json:
        click.echo(json.dumps(report))
    else:
        click.echo(format_report(report))
    if report["errors"]:
        for error in report["errors"]:
            click.echo(f"error: {error['text']}", err=True)
        sys.exit(2)
    if strict and (report["bad_files"] or report["warnings"]):
        if not as_json:
            click.echo(f"--strict: {plural(len(report['bad_files']), 'unreadable file')}, "
                       f"{plural(len(report['warnings']), 'warning')}", err=True)
        sys.exit(1)


def register(cli: click.Group) -> None:
    """Add the `data` group to the tfft CLI."""
    cli.add_command(data_group)
