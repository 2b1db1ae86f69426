"""Out-of-fold predictions: arrays written and read back exactly, the CSV beside them for people."""

from __future__ import annotations

import csv

import numpy as np

from tfft.studies.oof import arrays_path, read_predictions, write_predictions


def _old_csv_rows(keys, labels, folds, probs, class_names):
    """The rows the CSV held before the arrays (one dict a row), as the reference for its text."""
    rows = []
    for key, y, f, p in zip(keys, labels, folds, probs):
        row = {"path": key, "label": class_names[int(y)], "predicted": class_names[int(np.argmax(p))], "fold": str(int(f))}
        row.update({f"p_{name}": f"{float(v):.6f}" for name, v in zip(class_names, p)})
        rows.append(row)
    return rows


def test_arrays_round_trip_and_the_csv_reads_as_before(tmp_path):
    rng = np.random.default_rng(0)
    n, names = 5000, [f"c{i}" for i in range(7)]
    probs = rng.dirichlet(np.ones(7), n).astype(np.float32)
    labels, folds = rng.integers(0, 7, n), rng.integers(1, 6, n)
    keys = [f"img/{i},odd \"nåme\".jpg" for i in range(n)]  # commas and quotes survive both files
    path = tmp_path / "oof_predictions.csv"
    write_predictions(path, keys, labels, folds, probs, names)
    back = read_predictions(path)
    assert back["keys"] == keys and back["class_names"] == names
    np.testing.assert_array_equal(back["probs"], probs)  # float32, bit for bit
    np.testing.assert_array_equal(back["labels"], labels)
    np.testing.assert_array_equal(back["folds"], folds)
    assert arrays_path(path).stat().st_size < 0.7 * path.stat().st_size
    with open(path, newline="", encoding="utf-8") as handle:
        assert list(csv.DictReader(handle)) == _old_csv_rows(keys, labels, folds, probs, names)
    arrays_path(path).unlink()  # a study written before the arrays: the CSV is read
    old = read_predictions(path)
    assert old["keys"] == keys and np.abs(old["probs"] - probs).max() <= 5e-7
    np.testing.assert_array_equal(old["labels"], labels)


def test_multi_label_rows_keep_label_sets_and_thresholds(tmp_path):
    names = ["a", "b", "c"]
    labels = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    probs = np.array([[0.9, 0.2, 0.6], [0.1, 0.1, 0.1], [0.3, 0.7, 0.5]])
    path = tmp_path / "val_predictions.csv"
    write_predictions(path, ["x", "y", "z"], labels, np.array([2, 2, 2]), probs, names, np.array([0.5, 0.5, 0.55]))
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["label"], r["predicted"]) for r in rows] == [("a c", "a c"), ("", ""), ("b", "b")]
    back = read_predictions(path, multi_label=True)
    np.testing.assert_array_equal(back["labels"], labels)
