"""tfft.task.multi_label: the multi-label task's thresholds, table, rows, parity and losses on small inputs."""

from __future__ import annotations

import numpy as np

from tfft.task import MultiLabel

NAMES = ["cat", "dog"]
Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
PROBS = np.array([[0.9, 0.2], [0.3, 0.7], [0.6, 0.4], [0.2, 0.1]])


def test_thresholds_are_chosen_on_val_and_default_to_half_without_it():
    task = MultiLabel()
    cuts, details = task.choose_thresholds(Y, PROBS)
    assert cuts.shape == (2,) and details["positives"] == [2, 2] and "bootstrap" in details["method"]
    none_cuts, none_details = task.choose_thresholds(None, None)
    assert "no validation images" in none_details["method"]
    assert task.default_thresholds(NAMES).tolist() == [0.5, 0.5]


def test_metrics_table_is_per_label_at_the_thresholds():
    m = MultiLabel().metrics_table(Y, PROBS, NAMES, thresholds=[0.5, 0.35])
    assert m["task"] == "multi_label" and m["mAP"] == 1.0
    assert m["per_class"]["dog"]["threshold"] == 0.35 and m["per_class"]["dog"]["f1"] == 1.0
    assert m["accuracy"] == 1.0 and m["micro_f1_at_0.5"] < 1.0  # dog's 0.4 is missed at 0.5
    assert MultiLabel().format_table(m).startswith("mAP 1.0000")
    assert "micro F1 1.0000" in MultiLabel().summary(m)


def test_prediction_rows_list_every_label_at_or_above_its_threshold():
    task = MultiLabel()
    row = task.prediction_row("a.jpg", PROBS[2], NAMES, np.array([0.5, 0.4]))
    assert row["labels"] == ["cat", "dog"] and row["all_probabilities"] == {"cat": 0.6, "dog": 0.4}
    assert task.format_predictions([row]).splitlines() == ["path,labels,p_cat,p_dog,error",
                                                           "a.jpg,cat dog,0.600000,0.400000,"]


def test_parity_compares_each_label_decision_at_the_thresholds():
    exported = PROBS + np.array([0.0, 0.25])  # pushes dog over 0.5 on one image of four (0.4 -> 0.65)
    numbers = MultiLabel().parity(exported, PROBS, thresholds=np.array([0.5, 0.5]), class_names=NAMES)
    assert numbers == {"parity_labels": {"cat": 100.0, "dog": 75.0}}


def test_example_losses_are_per_image_and_label():
    losses = MultiLabel().example_losses(PROBS, Y)
    assert losses.shape == (4, 2) and np.isclose(losses[0, 0], -np.log(0.9)) and np.isclose(losses[3, 1], -np.log(0.9))


def test_label_issues_rank_a_missing_label(tmp_path):
    labels = np.array([[1, 0]] * 10 + [[0, 1]] * 10)
    probs = np.where(labels > 0, 0.9, 0.05).astype(np.float64)
    probs[4, 1] = 0.97  # an image given only `cat` that is surely a dog too
    MultiLabel().write_label_issues(tmp_path / "issues.csv", [f"{i}.jpg" for i in range(20)], NAMES, labels, probs,
                                    np.array([0.5, 0.5]))
    first = (tmp_path / "issues.csv").read_text().splitlines()[1]
    assert first.startswith("4.jpg,") and ",dog," in first
