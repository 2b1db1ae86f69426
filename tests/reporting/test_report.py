"""report.md from a run directory's files: the data summary, the training lines, the metrics tables."""

from __future__ import annotations

import csv
import json

import numpy as np

from tfft.reporting.metrics import compute_metrics, format_table
from tfft.reporting.report import write_report
from tfft.wording import plural

CLASSES = [f"breed_{i:02d}_with_a_long_name" for i in range(45)]


def _run_dir(tmp_path, classes=CLASSES, history_rows=3, save="best"):
    root = tmp_path / "run"
    root.mkdir()
    (root / "config.yaml").write_text(f"data: {{source: /data/pets}}\ntraining: {{save: {save}}}\n")
    (root / "labels.txt").write_text("\n".join(classes) + "\n")
    splits = {name: {"images": n * len(classes), "per_class": {c: n for c in classes}}
              for name, n in (("train", 20), ("val", 5))}
    (root / "data_report.json").write_text(json.dumps({
        "source": "/data/pets", "classes": classes, "splits": splits, "skipped_count": 1,
        "skipped": [{"path": "/data/pets/cat/bad.jpg", "reason": "empty file (0 bytes)"}]}))
    with open(root / "history.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["epoch", "phase", "loss", "val_loss"])
        writer.writeheader()
        for i, val_loss in enumerate([0.8, 0.5, 0.6][:history_rows]):
            writer.writerow({"epoch": i + 1, "phase": "head", "loss": 1.0 - 0.1 * i, "val_loss": val_loss})
    y = np.arange(len(classes)) % len(classes)
    probs = np.eye(len(classes))[y] * 0.9 + 0.1 / len(classes)
    (root / "metrics.json").write_text(json.dumps({"val": compute_metrics(y, probs, classes, top_k=5)}))
    return root


def test_data_section_is_a_table_of_counts_not_cut_json(tmp_path):
    text = write_report(_run_dir(tmp_path)).read_text()
    data = text.split("## Data", 1)[1].split("\n## ", 1)[0]
    assert '{"' not in data and "per_class" not in data  # no raw JSON, so nothing cut mid-string
    assert "| class | train | val |" in data
    assert f"| {CLASSES[0]} | 20 | 5 |" in data
    assert "| ... 5 more classes |" in data  # 45 classes: the first 40 rows, then the count
    assert "| **images** | 900 | 225 |" in data
    assert "`data_report.json`" in data
    assert "- skipped: 1 unreadable file" in data and "/data/pets/cat/bad.jpg: empty file (0 bytes)" in data


def test_training_lines_say_the_best_epoch_and_count_in_words(tmp_path):
    text = write_report(_run_dir(tmp_path)).read_text()
    assert "3 epochs; last:" in text
    assert "best: epoch 2, val_loss 0.5; model.keras holds it" in text
    (tmp_path / "one").mkdir()
    text = write_report(_run_dir(tmp_path / "one", classes=["cat", "dog"], history_rows=1, save="last")).read_text()
    assert "1 epoch; last:" in text and "1 epochs" not in text
    assert "model.keras holds the last epoch (training.save: last)" in text


def test_top_k_is_printed_only_below_the_number_of_classes(tmp_path):
    y = np.array([0, 1, 1, 0])
    two = compute_metrics(y, np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8]]), ["cat", "dog"], top_k=5)
    assert two["top_k"] == 2 and "top-" not in format_table(two)  # top-2 of 2 classes is always 1.0
    three = compute_metrics(y, np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.5, 0.2, 0.3], [0.2, 0.7, 0.1]]),
                            ["a", "b", "c"], top_k=2)
    assert "top-2 accuracy 0.7500" in format_table(three)
    report = write_report(_run_dir(tmp_path, classes=["cat", "dog"])).read_text()
    assert "macro F1" in report and "top-2" not in report
    (tmp_path / "many").mkdir()
    assert "top-5 accuracy" in write_report(_run_dir(tmp_path / "many")).read_text()  # 45 classes


def test_plural():
    assert [plural(1, "class"), plural(2, "class"), plural(0, "image"), plural(1, "epoch"), plural(3, "epoch"),
            plural(4, "entry"), plural(2, "batch")] == [
        "1 class", "2 classes", "0 images", "1 epoch", "3 epochs", "4 entries", "2 batches"]
