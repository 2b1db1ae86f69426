"""tfft.task.single_label: the single-label task's table, rows, parity and losses on small numpy inputs."""

from __future__ import annotations

import numpy as np
import pytest

from tfft.task import SingleLabel

PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
NAMES = ["cat", "dog", "fox"]


def test_metrics_table_reads_int_or_one_hot_labels_alike():
    task = SingleLabel()
    by_index = task.metrics_table(np.array([0, 2, 1, 1]), PROBS, NAMES, top_k=2)
    by_one_hot = task.metrics_table(np.eye(3)[[0, 2, 1, 1]], PROBS, NAMES, top_k=2)
    assert by_index == by_one_hot
    assert by_index["accuracy"] == 0.75 and by_index["top_k_accuracy"] == 1.0
    assert by_index["per_class"]["dog"]["support"] == 2 and "task" not in by_index  # metrics.json as before
    assert by_index["most_confused"] == [{"true": "dog", "predicted": "cat", "count": 1, "rate": 0.5}]
    assert task.format_table(by_index).startswith("accuracy 0.7500")


def test_prediction_rows_are_the_top_k_classes_and_their_csv():
    task = SingleLabel()
    row = task.prediction_row("a.jpg", PROBS[1], NAMES, top_k=2)
    assert row == {"path": "a.jpg", "labels": ["fox", "dog"], "probabilities": [0.6, 0.3]}
    csv = task.format_predictions([row, {"path": "b.jpg", "labels": [], "probabilities": [], "error": "unreadable"}])
    assert csv.splitlines() == ["path,label_1,prob_1,label_2,prob_2,error", "a.jpg,fox,0.600000,dog,0.300000,",
                                "b.jpg,,,,,unreadable"]


def test_parity_is_accuracy_of_the_export_and_of_model_keras():
    exported = PROBS[:, [1, 2, 0]]  # every argmax moved off the given class
    numbers = SingleLabel().parity(exported, PROBS, labels=[0, 2, 1, 0])
    assert numbers == {"accuracy": 0.0, "reference_accuracy": 100.0}
    assert SingleLabel().parity(exported, PROBS) == {}


def test_example_losses_and_the_decision_are_argmax_cross_entropy():
    task = SingleLabel()
    np.testing.assert_allclose(task.example_losses(PROBS, [0, 2, 1, 0]), -np.log([0.7, 0.6, 0.5, 0.6]))
    assert task.decide(PROBS).tolist() == [0, 2, 1, 0]
    assert task.summary({"accuracy": 1.0, "loss": 0.25, "macro_f1": 1.0}) == "accuracy 1.0000, loss 0.2500, macro F1 1.0000"


def test_label_issues_rank_a_mislabelled_example_first(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    probs = np.where(labels[:, None] == np.arange(2), 0.9, 0.1) + rng.uniform(0, 0.05, (40, 2))
    probs /= probs.sum(axis=1, keepdims=True)
    labels[3] = 1  # given dog, looks like a cat
    SingleLabel().write_label_issues(tmp_path / "issues.csv", [f"{i}.jpg" for i in range(40)], ["cat", "dog"],
                                     labels, probs)
    first = (tmp_path / "issues.csv").read_text().splitlines()[1].split(",")
    assert first[:3] == ["3.jpg", "dog", "cat"]


@pytest.mark.parametrize("labels", [np.array([1, 0]), np.array([[1], [0]])])
def test_class_indices_accept_a_column_of_labels(labels):
    assert SingleLabel.class_indices(labels).tolist() == [1, 0]
