"""evaluate_run / evaluate_model / plots / report on the fixture run directory."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tfft.evaluation import (compute_metrics, evaluate_model, evaluate_run, plot_curves, write_report)
from tfft.data.files import read_image
from tfft.runs.directory import load_model, open_run, split_files

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path, min_bytes: int = 2000) -> bool:
    return path.is_file() and path.stat().st_size > min_bytes and path.read_bytes()[:8] == PNG


def test_evaluate_run_writes_metrics_and_figures(run_copy):
    result = evaluate_run(run_copy, split="val")
    out = run_copy / "eval" / "val"
    for name in ("confusion_matrix.png", "confusion_matrix_normalized.png", "worst.png"):
        assert _is_png(out / name), name
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved) == {"val"}
    val = saved["val"]
    for key in ("accuracy", "loss", "macro_f1", "per_class", "top_k_accuracy", "roc_auc",
                "confusion_matrix", "confusion_matrix_normalized", "most_confused"):
        assert key in val
    assert val["num_examples"] == 240 and result["num_examples"] == 240
    assert set(val["per_class"]) == {"cat", "dog"}
    assert sum(map(sum, val["confusion_matrix"])) == 240
    assert val["top_k"] == 2  # config's top_k 5, clipped to 2 classes

    # Independently: the model's own predictions on the same decoded images.
    run = open_run(run_copy)
    model = load_model(run)
    paths, labels = split_files(run, "val")
    images = np.stack([read_image(p, run.image_size) for p in paths])
    probs = model.predict(images, batch_size=64, verbose=0)
    assert val["accuracy"] == pytest.approx(float((probs.argmax(1) == labels).mean()), abs=1e-9)
    expected = compute_metrics(labels, probs, ["cat", "dog"])
    assert val["loss"] == pytest.approx(expected["loss"], abs=1e-5)
    assert val["confusion_matrix"] == expected["confusion_matrix"]


def test_evaluate_other_data_is_one_flag(run_copy, pets_mini):
    # A plain folder of class subfolders (no split folders inside) is evaluated whole.
    result = evaluate_run(run_copy, data=str(pets_mini / "val"), split="test", top_k=1)
    assert result["num_examples"] == 240 and result["top_k"] == 1
    assert (run_copy / "eval" / "val-test" / "metrics.json").is_file()  # named after the data
    assert not (run_copy / "eval" / "test").exists()


def test_evaluate_other_data_never_replaces_the_runs_own_evaluation(run_copy, pets_mini, tmp_path, cli_runner):
    import shutil

    assert cli_runner("evaluate", run_copy, "--split", "val").exit_code == 0
    own = (run_copy / "eval" / "val" / "metrics.json").read_text()
    other = tmp_path / "new_pets"
    shutil.copytree(pets_mini / "val" / "cat", other / "cat")
    shutil.copytree(pets_mini / "val" / "dog", other / "dog")
    result = cli_runner("evaluate", run_copy, "--data", other, "--split", "val")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == f"wrote {run_copy / 'eval' / 'new_pets-val'}"
    assert (run_copy / "eval" / "val" / "metrics.json").read_text() == own
    saved = json.loads((run_copy / "eval" / "new_pets-val" / "metrics.json").read_text())["val"]
    assert saved["data"] == str(other) and saved["num_examples"] == 240


def test_evaluate_model_merges_splits_into_run_metrics(run_copy, pets_mini):
    import tensorflow as tf

    run = open_run(run_copy)
    model = load_model(run)
    paths, labels = split_files(run, "val")
    images = np.stack([read_image(p, run.image_size) for p in paths[::10]])
    y = labels[::10]
    m_arrays = evaluate_model(model, (images, y), run.class_names, run_copy, top_k=5, split="val")
    one_hot = tf.one_hot(y, 2)
    ds = tf.data.Dataset.from_tensor_slices((images, one_hot)).batch(7)
    m_ds = evaluate_model(model, ds, run.class_names, run_copy, top_k=5, split="test")
    assert m_arrays["accuracy"] == pytest.approx(m_ds["accuracy"])
    saved = json.loads((run_copy / "metrics.json").read_text())
    assert set(saved) == {"val", "test"}
    assert _is_png(run_copy / "confusion_matrix.png")
    assert _is_png(run_copy / "confusion_matrix_test.png")


def test_curves_and_report(run_copy):
    with open(run_copy / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    plot_curves(rows, run_copy / "curves.png",
                phases=json.loads((run_copy / "phases.json").read_text()))
    assert _is_png(run_copy / "curves.png")
    evaluate_run(run_copy)
    report = write_report(run_copy).read_text()
    for text in ("## Phases", "| head |", "## Metrics", "curves.png", "eval/val/confusion_matrix.png",
                 "macro avg", "## Config", "4 epochs; last:", "| class | train | val |", "| **images** |",
                 "model.keras holds the last epoch (training.save: last)"):
        assert text in report, text
    assert "top-2" not in report  # 2 classes: top-2 accuracy is always 1.0
    assert not list(run_copy.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_missing_run_dir_and_model_are_user_errors(tmp_path, run_copy):
    from tfft.errors import UserError

    with pytest.raises(UserError, match="run directory not found"):
        evaluate_run(tmp_path / "nope")
    (run_copy / "model.keras").unlink()
    with pytest.raises(UserError, match="model.keras is missing"):
        evaluate_run(run_copy)


def test_evaluation_lists_the_images_training_used(tmp_path):
    """.tif, .jfif and .jpe count, hidden folders and non-images do not: listed by tfft.data only."""
    from PIL import Image

    from tfft.config import load_config
    from tfft.runs.directory import Run

    root = tmp_path / "data"
    for split in ("train", "val"):
        for index, name in enumerate(["cat", "dog"]):
            folder = root / split / name
            (folder / ".thumbs").mkdir(parents=True)
            for i, (ext, fmt) in enumerate([(".tif", "TIFF"), (".jfif", "JPEG"), (".jpe", "JPEG"), (".png", "PNG")]):
                Image.new("RGB", (16, 16), (index * 200, 50, i * 40)).save(folder / f"{name}{i}{ext}", fmt)
            Image.new("RGB", (16, 16)).save(folder / ".thumbs" / "hidden.png")
            (folder / "notes.txt").write_text("not an image")
    cfg = load_config({"data": {"source": str(root), "image_size": [16, 16]},
                       "model": {"backbone": "mobilenet_v3_small", "weights": None}})
    paths, labels = split_files(Run(tmp_path, cfg, ["cat", "dog"]), "val")
    assert sorted(Path(p).suffix for p in paths) == [".jfif", ".jfif", ".jpe", ".jpe", ".png", ".png", ".tif", ".tif"]
    assert not any(".thumbs" in p for p in paths) and sorted(labels.tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]


def test_a_split_that_is_not_a_name_is_refused_before_writing(run_copy, pets_mini, cli_runner):
    result = cli_runner("evaluate", run_copy, "--data", pets_mini / "val", "--split", "../../escaped")
    assert result.exit_code == 2 and "--split" in result.output, result.output
    assert not (run_copy / "escaped").exists() and not (run_copy.parent / "escaped").exists()
