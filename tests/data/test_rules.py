"""tfft.data.rules: split folder aliases, mixed layouts, manifest leaks/conflicts/repeats, the verdict."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfft.config import DataConfig
from tfft.data import load_splits
from tfft.data.rules import SPLIT_ALIASES, SourceConflict, verdict
from tfft.data.sources import apply_folds, example_keys, pooled


def _folder(root: Path, classes: dict[str, int], size: int = 12) -> Path:
    for index, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.new("RGB", (size, size), (index * 60 % 256, i * 7 % 256, 100)).save(root / name / f"{i:03d}.png")
    return root


@pytest.mark.parametrize("val_name", [n for n in SPLIT_ALIASES["val"] if n != "val"] + ["Validation"])
def test_val_folder_aliases_are_read_as_val(tmp_path, val_name):
    _folder(tmp_path / "d" / "train", {"cat": 4, "dog": 4})
    _folder(tmp_path / "d" / val_name, {"cat": 2, "dog": 1})
    splits = load_splits(DataConfig(source=str(tmp_path / "d")), seed=0)
    assert splits.counts("train") == {"cat": 4, "dog": 4}  # nothing carved from train
    assert splits.counts("val") == {"cat": 2, "dog": 1}


def test_testing_and_training_aliases(tmp_path):
    _folder(tmp_path / "d" / "training", {"cat": 4, "dog": 4})
    _folder(tmp_path / "d" / "testing", {"cat": 1, "dog": 2})
    splits = load_splits(DataConfig(source=str(tmp_path / "d"), val_split=0.25), seed=0)
    assert splits.class_names == ["cat", "dog"]
    assert splits.counts("test") == {"cat": 1, "dog": 2}
    assert splits.counts("val") == {"cat": 1, "dog": 1} and splits.counts("train") == {"cat": 3, "dog": 3}


def test_split_folder_beside_class_folders_is_refused(tmp_path, cli_runner):
    _folder(tmp_path / "d", {"cat": 3, "dog": 3})
    _folder(tmp_path / "d" / "test", {"cat": 1, "dog": 1})
    with pytest.raises(SourceConflict, match=r"test/ sit beside 2 other folders \(cat/, dog/\)") as info:
        load_splits(DataConfig(source=str(tmp_path / "d")), seed=0)
    assert info.value.where == str(tmp_path / "d") and "train/" in info.value.hint
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{source: {tmp_path / 'd'}}}\nmodel: {{weights: null}}\n")
    result = cli_runner("train", cfg)
    assert result.exit_code == 2 and "sit beside" in result.output and "Traceback" not in result.output


def test_two_folders_for_one_split_and_val_without_train_are_refused(tmp_path):
    _folder(tmp_path / "a" / "train", {"cat": 2, "dog": 2})
    for name in ("val", "validation"):
        _folder(tmp_path / "a" / name, {"cat": 1, "dog": 1})
    with pytest.raises(SourceConflict, match="val/, validation/ all name the val split"):
        load_splits(DataConfig(source=str(tmp_path / "a")), seed=0)
    _folder(tmp_path / "b" / "valid", {"cat": 1, "dog": 1})
    with pytest.raises(SourceConflict, match="no train/ folder"):
        load_splits(DataConfig(source=str(tmp_path / "b")), seed=0)


def _manifest(tmp_path: Path, rows: list[str], header: str = "path,label,split") -> str:
    _folder(tmp_path / "imgs", {"cat": 5, "dog": 5})
    path = tmp_path / "m.csv"
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return f"csv:{path}"


def _rows(n: int = 5) -> list[str]:
    return [f"imgs/{c}/{i:03d}.png,{c},train" for c in ("cat", "dog") for i in range(n)]


def test_manifest_same_file_in_two_splits_is_a_leak(tmp_path):
    source = _manifest(tmp_path, _rows() + ["imgs/cat/000.png,cat,val", "imgs/dog/001.png,dog,validation"])
    with pytest.raises(SourceConflict, match=r"2 files listed in more than one split") as info:
        load_splits(DataConfig(source=source), seed=0)
    assert info.value.kind == "leak" and "cat/000.png in train (" in str(info.value)
    assert [Path(p).name for p in info.value.paths] == ["000.png", "001.png"]


def test_manifest_same_file_with_two_labels_is_refused(tmp_path):
    source = _manifest(tmp_path, _rows() + ["imgs/./cat/002.png,dog,train"])  # another spelling, same file
    with pytest.raises(SourceConflict, match=r"1 file listed with different labels: .*cat/002.png as cat") as info:
        load_splits(DataConfig(source=source), seed=0)
    assert info.value.kind == "label_conflict" and info.value.exit_code == 2


def test_multi_label_manifest_conflicts_too(tmp_path):
    rows = [f"imgs/{c}/{i:03d}.png,{c}" for c in ("cat", "dog") for i in range(5)]
    source = _manifest(tmp_path, rows + ["imgs/cat/000.png,cat dog"], header="path,labels")
    with pytest.raises(SourceConflict, match="different labels"):
        load_splits(DataConfig(source=source), seed=0, task="multi_label")


def test_repeated_row_is_dropped_with_a_warning_and_folds_still_match(tmp_path, caplog):
    from tfft.config import load_config
    from tfft.studies.cv import _write_plan, plan_folds

    source = _manifest(tmp_path, _rows() + ["imgs/cat/003.png,cat,train"])
    splits = load_splits(DataConfig(source=source, val_split=0.2), seed=0)
    assert "1 repeated row (the same file, label and split) dropped" in caplog.text
    assert splits.findings[0]["kind"] == "repeated_rows" and splits.findings[0]["count"] == 1
    keys = example_keys(pooled(splits))
    assert len(keys) == len(set(keys)) == 10
    # What `tfft cv` and `tfft data issues` do: plan folds, write them, read a fold back.
    cfg = load_config({"data": {"source": source}, "model": {"weights": None}})
    plan = plan_folds(cfg, 2)
    _write_plan(tmp_path / "folds.csv", plan)
    fold = apply_folds(splits, str(tmp_path / "folds.csv"), 1)
    assert len(fold.splits["train"]) + len(fold.splits["val"]) == 10


def test_same_file_in_two_class_folders_warns(tmp_path, caplog):
    root = _folder(tmp_path / "d", {"cat": 4, "dog": 4})
    os.symlink(root / "cat" / "000.png", root / "dog" / "linked.png")
    splits = load_splits(DataConfig(source=str(root)), seed=0)
    assert "1 file reached from two class folders" in caplog.text
    assert [f["kind"] for f in splits.findings] == ["same_file_in_two_classes"]


def test_verdict_one_class_and_classes_without_val_images(tmp_path):
    one = load_splits(DataConfig(source=str(_folder(tmp_path / "one", {"cat": 5}))), seed=0)
    assert "found 1 class" in str(verdict(one).errors[0])
    small = load_splits(DataConfig(source=str(_folder(tmp_path / "s", {"cat": 1, "dog": 2, "eel": 9}))), seed=0)
    result = verdict(small)
    assert result.errors == []
    assert [(w["kind"], w["classes"]) for w in result.warnings] == [("no_val_images", ["cat", "dog"])]
    assert "2 classes have no val image: cat (1 image), dog (2 images)" in result.warnings[0]["message"]
    assert np.sum(list(small.counts("val").values())) == 2  # eel: round(9 * 0.2)
