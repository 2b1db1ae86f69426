"""`tfft data check`: the contract's JSON keys, --strict, missing paths, odd formats, duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tfft.data import check_folder
from tfft.errors import UserError

from tests.conftest import write_image_folder


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
    # Train refuses the empty class c, so the check does too: the report, then exit 2.
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)  # exactly one JSON object
    assert {"classes", "empty_classes", "bad_files", "total_images"} <= set(report)
    assert report["classes"] == {"a": 6, "b": 6, "c": 0} and report["total_images"] == 12
    assert report["errors"][0]["where"] == str(messy_folder / "c") and "no images" in report["errors"][0]["message"]
    assert "error: " in result.stderr and "no images" in result.stderr
    text = cli_runner("data", "check", messy_folder)
    assert text.exit_code == 2 and "unreadable files: 3" in text.stdout and "empty classes: c" in text.stdout
    (messy_folder / "c").rmdir()
    strict = cli_runner("data", "check", messy_folder, "--json", "--strict")
    assert strict.exit_code == 1 and json.loads(strict.stdout)["errors"] == []
    assert cli_runner("data", "check", messy_folder, "--json").exit_code == 0


def test_cli_clean_folder_strict_passes(tmp_path, cli_runner):
    from PIL import Image

    for name in ("x", "y"):
        (tmp_path / "d" / name).mkdir(parents=True)
        for i in range(3):  # 3 images: val_split 0.2 gives each class a val image
            Image.new("RGB", (8, 8), (i, 2, 3) if name == "x" else (9, 9, i)).save(tmp_path / "d" / name / f"{i}.png")
    result = cli_runner("data", "check", tmp_path / "d", "--strict", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["bad_files"] == [] and report["errors"] == [] and report["warnings"] == []


def test_one_class_folder_exits_2_as_train_refuses_it(tmp_path, cli_runner):
    write_image_folder(tmp_path / "one", {"cat": 4})
    result = cli_runner("data", "check", tmp_path / "one", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["errors"][0]["message"] == f"found 1 class in {tmp_path / 'one'}"
    assert "a classifier needs at least 2 class folders" in result.stderr


def test_single_image_class_warns_and_strict_exits_1(tmp_path, cli_runner):
    write_image_folder(tmp_path / "d", {"cat": 1, "dog": 6})
    result = cli_runner("data", "check", tmp_path / "d")
    assert result.exit_code == 0
    assert "warning: 1 class has no val image: cat (1 image)" in result.stdout
    strict = cli_runner("data", "check", tmp_path / "d", "--json", "--strict")
    assert strict.exit_code == 1
    warning = json.loads(strict.stdout)["warnings"][0]
    assert warning["kind"] == "no_val_images" and warning["classes"] == ["cat"]


def test_aliases_reported_and_mixed_layout_refused(tmp_path, cli_runner):
    write_image_folder(tmp_path / "d" / "train", {"cat": 3, "dog": 3})
    write_image_folder(tmp_path / "d" / "validation", {"cat": 1, "dog": 1})
    report = json.loads(cli_runner("data", "check", tmp_path / "d", "--json").stdout)
    assert report["split_folders"] == {"train": "train", "val": "validation"}
    assert report["splits"]["val"] == {"cat": 1, "dog": 1} and report["errors"] == []
    write_image_folder(tmp_path / "d", {"cat": 1})  # a class folder beside the split folders
    result = cli_runner("data", "check", tmp_path / "d", "--json")
    assert result.exit_code == 2 and json.loads(result.stdout)["errors"][0]["kind"] == "split_layout"


def test_csv_manifest_check_leak_and_repeat(tmp_path, cli_runner):
    write_image_folder(tmp_path / "imgs", {"cat": 4, "dog": 4})
    rows = [f"imgs/{c}/{c}_{i:03d}.png,{c},{'val' if i == 0 else 'train'}" for c in ("cat", "dog") for i in range(4)]
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,split\n" + "\n".join(rows + [rows[1]]) + "\n")
    result = cli_runner("data", "check", f"csv:{manifest}", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["classes"] == {"cat": 4, "dog": 4} and report["splits"]["val"] == {"cat": 1, "dog": 1}
    assert [(w["kind"], w["count"]) for w in report["warnings"]] == [("repeated_rows", 1)]
    manifest.write_text("path,label,split\n" + "\n".join(rows + ["imgs/cat/cat_001.png,cat,test"]) + "\n")
    result = cli_runner("data", "check", f"csv:{manifest}", "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)["errors"][0]
    assert error["kind"] == "leak" and error["paths"] == [str(tmp_path / "imgs" / "cat" / "cat_001.png")]
    assert "1 file listed in more than one split" in result.stderr


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
    assert result.exit_code == 2 and "1 readable image in 1 class\n" in result.output, result.output  # train refuses one class
    assert "found 1 class in" in result.output and "class(es)" not in result.output


def test_near_duplicates_flag_lists_groups_without_a_model(tmp_path, cli_runner):
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for k in range(4):
            coarse = rng.uniform(0, 255, (5, 5, 3)).astype(np.uint8)
            Image.fromarray(coarse).resize((64, 64), Image.Resampling.BICUBIC).save(root / name / f"{k}.png")
    original = root / "cat" / "0.png"
    Image.open(original).resize((40, 40)).save(root / "dog" / "copy_of_cat0.jpg", quality=80)
    result = cli_runner("data", "check", root, "--near-duplicates", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["near_duplicate_groups"] == [[str(original), str(root / "dog" / "copy_of_cat0.jpg")]]
    text = cli_runner("data", "check", root, "--near-duplicates")
    assert text.exit_code == 0 and "near-duplicates (perceptual hash within 8 of 64 bits): 2 images in 1 group" in text.stdout
    assert "near_duplicate_groups" not in check_folder(root)  # only when asked for
