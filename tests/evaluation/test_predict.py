"""predict: files, folders, globs, TTA, bad files; CSV and JSON output."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from tfft.evaluation.predict import format_rows, predict


def test_files_folders_and_globs(run_dir, pets_mini, tmp_path):
    cat = sorted((pets_mini / "val" / "cat").glob("*.jpg"))[:3]
    folder = tmp_path / "photos" / "nested"
    folder.mkdir(parents=True)
    for path in cat:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "notes.txt").write_text("not an image")
    rows = predict(run_dir, [str(cat[0]), str(tmp_path / "photos"),
                             str(pets_mini / "val" / "dog" / "1*.jpg")], top_k=5)
    dogs = sorted((pets_mini / "val" / "dog").glob("1*.jpg"))
    assert len(rows) == 1 + 3 + len(dogs)
    assert rows[0]["path"] == str(cat[0])
    assert all(r["path"].endswith(".jpg") for r in rows)  # the .txt in the folder is ignored
    for row in rows:
        assert len(row["labels"]) == 2  # top_k clipped to the classes
        assert sorted(row["labels"]) == ["cat", "dog"]
        assert row["probabilities"] == sorted(row["probabilities"], reverse=True)
        assert sum(row["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    # The same file gives the same answer whichever way it was named.
    assert rows[0]["probabilities"] == rows[1]["probabilities"]


def test_tta_and_bad_files(run_dir, pets_mini, tmp_path):
    good = sorted((pets_mini / "val" / "dog").glob("*.jpg"))[0]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    rows = predict(run_dir, [str(good), str(bad), str(tmp_path / "missing.png")], top_k=1, tta=True)
    assert len(rows) == 3
    assert rows[0]["labels"] and rows[0]["error"] is None
    assert rows[1]["labels"] == [] and rows[1]["error"]
    assert "not found" in rows[2]["error"]
    plain = predict(run_dir, [str(good)], top_k=2)[0]
    flipped_avg = predict(run_dir, [str(good)], top_k=2, tta=True)[0]
    assert sum(flipped_avg["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert plain["probabilities"] != flipped_avg["probabilities"] or plain["labels"]


def test_csv_and_json_formats():
    rows = [{"path": "a,b.jpg", "labels": ["dog", "cat"], "probabilities": [0.75, 0.25]},
            {"path": "x.jpg", "labels": [], "probabilities": [], "error": "not a readable image"}]
    parsed = list(csv.reader(io.StringIO(format_rows(rows, "csv"))))
    assert parsed[0] == ["path", "label_1", "prob_1", "label_2", "prob_2", "error"]
    assert parsed[1] == ["a,b.jpg", "dog", "0.750000", "cat", "0.250000", ""]
    assert parsed[2][-1] == "not a readable image"
    assert json.loads(format_rows(rows, "json")) == rows
    only_good = format_rows(rows[:1], "csv").splitlines()
    assert only_good[0] == "path,label_1,prob_1,label_2,prob_2,error"  # the same columns with or without failures


def test_cli_predict_csv_and_json(cli_runner, run_dir, pets_mini):
    folder = pets_mini / "val" / "cat"
    result = cli_runner("predict", run_dir, str(folder / "10*.jpg"), "--top-k", "1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "path,label_1,prob_1,error"
    assert len(lines) == 1 + len(list(folder.glob("10*.jpg")))
    assert result.stderr.strip() == f"predict: {len(lines) - 1} files, 0 failed"
    result = cli_runner("predict", run_dir, str(folder / "10*.jpg"), "--format", "json", "--tta")
    rows = json.loads(result.stdout)
    assert rows and set(rows[0]) == {"path", "labels", "probabilities", "error"} and rows[0]["error"] is None
    assert np.isclose(sum(rows[0]["probabilities"]), 1.0, atol=1e-4)


def test_cli_predict_nothing_found_is_exit_2(cli_runner, run_dir, tmp_path):
    result = cli_runner("predict", run_dir, str(tmp_path / "*.jpg"))
    assert result.exit_code == 2
    assert "no image files found" in result.output


def test_cli_predict_counts_failures_and_exits_2_when_none_is_read(cli_runner, run_dir, pets_mini, tmp_path):
    good = sorted((pets_mini / "val" / "dog").glob("*.jpg"))[0]
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    result = cli_runner("predict", run_dir, good, bad, "--top-k", "1")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == "predict: 2 files, 1 failed (the error column says why)"
    result = cli_runner("predict", run_dir, bad, tmp_path / "missing.jpg", "--top-k", "1")
    assert result.exit_code == 2, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["path", "label_1", "prob_1", "error"] and all(row[-1] for row in rows[1:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "none of the 2 files could be read" in lines[0] and "error column" in lines[0]
