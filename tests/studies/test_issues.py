"""`tfft data issues`: label_issues.csv, duplicates.csv and the gallery from out-of-fold predictions."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import tiny_config, user_files, write_image_folder


def _folder_with_planted_copies(root: Path) -> Path:
    """train/ and val/ of 3 colour classes, plus an exact copy of a train image in val/ and a
    resized JPEG copy of another train image in train/."""
    folder = root / "data"
    write_image_folder(folder / "train", {"red": 8, "green": 8, "blue": 8}, size=40, seed=1)
    write_image_folder(folder / "val", {"red": 3, "green": 3, "blue": 3}, size=40, seed=2)
    shutil.copyfile(folder / "train" / "red" / "red_000.png", folder / "val" / "red" / "copy_of_red_000.png")
    # A smooth picture (the generated ones are colour noise, which no perceptual hash survives).
    coarse = np.random.default_rng(3).uniform(0, 255, (5, 5, 3)).astype(np.uint8)
    Image.fromarray(coarse).resize((40, 40), Image.Resampling.BICUBIC).save(folder / "train" / "blue" / "blue_001.png")
    Image.open(folder / "train" / "blue" / "blue_001.png").resize((64, 64)).save(
        folder / "train" / "blue" / "bigger_blue_001.jpg", quality=80)
    return folder


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _fake_cross_validation(monkeypatch, seen: dict) -> None:
    """Replace the cross-validation by what cv's oof_predictions.csv gives: a confident, right
    model, except that the given label of one green image says red; no embedding neighbours."""
    from tfft.studies import issues as issues_module

    def fake_out_of_fold(config, folds, cv_dir, resume=False):
        from tfft import data
        from tfft.data.sources import example_keys, pooled

        seen["schedule"], seen["flip"] = config.schedule.preset, config.augment.horizontal_flip
        pool = pooled(data.load_splits(config.data, config.seed))
        labels = np.asarray(pool.labels, dtype=np.int64)
        probs = np.full((len(labels), 3), 0.05)
        probs[np.arange(len(labels)), labels] = 0.9
        keys = example_keys(pool)
        flipped = next(i for i, k in enumerate(keys) if k.endswith("green_003.png"))
        labels[flipped] = 2  # classes sort as blue, green, red
        return {"keys": keys, "labels": labels, "probs": probs, "class_names": ["blue", "green", "red"],
                "folds": np.ones(len(labels), dtype=np.int64)}

    def fake_embeddings(config, model_path, paths):
        return np.random.default_rng(0).normal(size=(len(paths), 8))

    monkeypatch.setattr(issues_module, "out_of_fold", fake_out_of_fold)
    monkeypatch.setattr(issues_module, "embeddings", fake_embeddings)


def test_issues_writes_ranked_labels_duplicates_and_gallery(tmp_path, monkeypatch):
    from tfft.studies import issues as issues_module

    folder = _folder_with_planted_copies(tmp_path)
    cfg = tiny_config(data={"source": str(folder), "image_size": [32, 32], "batch_size": 8})
    seen = {}
    _fake_cross_validation(monkeypatch, seen)
    result = issues_module.issues(cfg, folds=2, top=4, out=tmp_path / "out")
    assert seen == {"schedule": "feature_extraction", "flip": False}  # the quick cross-validation

    rows = _read(tmp_path / "out" / "label_issues.csv")
    assert list(rows[0])[:4] == ["path", "given", "suggested", "score"]
    assert rows[0]["path"].endswith("green_003.png")
    assert (rows[0]["given"], rows[0]["suggested"], rows[0]["is_issue"]) == ("red", "green", "1")
    assert len(rows) == len(result.paths) == 24 + 9 + 2

    dups = _read(tmp_path / "out" / "duplicates.csv")
    assert list(dups[0]) == ["path_a", "path_b", "split_a", "split_b", "distance", "kind"]
    found = {(Path(r["path_a"]).name, Path(r["path_b"]).name): r for r in dups}
    exact = found[("red_000.png", "copy_of_red_000.png")]
    assert (exact["split_a"], exact["split_b"], exact["kind"], float(exact["distance"])) == ("train", "val", "exact", 0.0)
    resized = found.get(("bigger_blue_001.jpg", "blue_001.png")) or found[("blue_001.png", "bigger_blue_001.jpg")]
    assert (resized["split_a"], resized["split_b"], resized["kind"]) == ("train", "train", "phash")
    assert (tmp_path / "out" / "label_issues.png").stat().st_size > 0


def test_bad_arguments_exit_2(tmp_path, cli_runner):
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config()))
    for args, expected in ((("--folds", "1"), "--folds"), (("--top", "0"), "--top")):
        result = cli_runner("data", "issues", config, *args, "--out", tmp_path / "o")
        assert result.exit_code == 2, result.output
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # a real 2-fold cross-validation of the tiny two-convolution backbone's head
def test_data_issues_command_end_to_end(tmp_path, cli_runner):
    import yaml

    folder = _folder_with_planted_copies(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(
        data={"source": str(folder), "image_size": [32, 32], "batch_size": 8},
        training={"steps_per_epoch": None})))
    result = cli_runner("data", "issues", config, "--folds", "2", "--top", "5", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == f"run dir: {tmp_path / 'out'}"
    assert "issues: expected cost: a 2-fold cross-validation of the head on frozen features" in result.output
    assert "cv: expected cost: 2 folds x (5 head epochs on cached features)" in result.output
    rows = _read(tmp_path / "out" / "label_issues.csv")
    assert len(rows) == 35 and len({r["path"] for r in rows}) == 35
    dups = _read(tmp_path / "out" / "duplicates.csv")
    assert any(r["kind"] == "exact" and {r["split_a"], r["split_b"]} == {"train", "val"} for r in dups)
    assert (tmp_path / "out" / "label_issues.png").is_file()


def test_out_with_user_files_is_refused_and_overwrite_keeps_them(tmp_path, user_folder, cli_runner, monkeypatch):
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data={"source": str(_folder_with_planted_copies(tmp_path)),
                                                       "image_size": [32, 32], "batch_size": 8})))
    result = cli_runner("data", "issues", config, "--folds", "2", "--out", user_folder)
    assert result.exit_code == 2 and "--overwrite" in result.stderr, result.output
    assert user_files(user_folder) == ["notes.txt", "photos/a.jpg"]
    _fake_cross_validation(monkeypatch, {})
    result = cli_runner("data", "issues", config, "--folds", "2", "--out", user_folder, "--overwrite")
    assert result.exit_code == 0, result.output
    assert {"notes.txt", "photos/a.jpg", "label_issues.csv", "duplicates.csv"} <= set(user_files(user_folder))
