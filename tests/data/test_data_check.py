"""`tfft data check`: the contract's JSON keys, --strict, missing paths, odd formats, duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tfft.data import check_folder
from tfft.errors import UserError


def test_check_folder_report(messy_folder):
    report = check_folder(messy_folder)
    assert report["classes"] == {"a": 6, "b": 6, "c": 0}
    assert report["empty_classes"] == ["c"]
    assert report["total_images"] == 12
    assert {Path(b["path"]).name for b in report["bad_files"]} == {"truncated.jpg", "empty.jpg", "text.jpg"}
    assert all(b["reason"] for b in report["bad_files"])
    assert report["odd_formats"]["cmyk"] == 1 and report["odd_formats"]["16bit"] == 1
    assert report["duplicate_files"] == 1 and len(report["duplicates"]) == 1
    assert report["imbalance_ratio"] == 1.0
    assert report["sizes"]["min"] == [32, 24] and report["sizes"]["max"] == [32, 24]
    assert report["ignored_files"] == 2  # .hidden.jpg and notes.txt


def test_cli_json_and_strict(messy_folder, cli_runner):
    result = cli_runner("data", "check", messy_folder, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)  # exactly one JSON object
    assert {"classes", "empty_classes", "bad_files", "total_images"} <= set(report)
    assert report["classes"] == {"a": 6, "b": 6, "c": 0} and report["total_images"] == 12
    strict = cli_runner("data", "check", messy_folder, "--json", "--strict")
    assert strict.exit_code == 1
    assert json.loads(strict.output)["empty_classes"] == ["c"]
    text = cli_runner("data", "check", messy_folder)
    assert text.exit_code == 0 and "unreadable files: 3" in text.output and "empty classes: c" in text.output


def test_cli_clean_folder_strict_passes(tmp_path, cli_runner):
    from PIL import Image

    for name in ("x", "y"):
        (tmp_path / "d" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8), (1, 2, 3) if name == "x" else (9, 9, 9)).save(tmp_path / "d" / name / "1.png")
    result = cli_runner("data", "check", tmp_path / "d", "--strict", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["bad_files"] == []


def test_missing_path(tmp_path, cli_runner):
    with pytest.raises(UserError):
        check_folder(tmp_path / "nope")
    from click.testing import CliRunner

    from tfft.cli.main import cli

    result = CliRunner().invoke(cli, ["data", "check", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not found" in result.output


def test_pets_mini_check(pets_mini):
    report = check_folder(pets_mini)
    assert report["splits"]["train"] == {"cat": 400, "dog": 400}
    assert report["splits"]["val"] == {"cat": 120, "dog": 120}
    assert report["total_images"] == 1040 and report["bad_files"] == []


def test_one_class_is_counted_in_the_singular(tmp_path, cli_runner):
    from PIL import Image

    (tmp_path / "d" / "x").mkdir(parents=True)
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "d" / "x" / "1.png")
    result = cli_runner("data", "check", tmp_path / "d")
    assert result.exit_code == 0 and "1 readable image in 1 class\n" in result.output, result.output
