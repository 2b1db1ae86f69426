"""Multi-label metrics and decisions: AP, mAP, micro/macro F1, F1-best thresholds, thresholds.json, plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfft.reporting.multilabel import (average_precision, best_f1_threshold, compute_multilabel_metrics, decide,
                                        format_multilabel_table, precision_recall_curve, read_thresholds,
                                        thresholds_document, tune_thresholds)
from tfft.reporting.multilabel_plots import (cooccurrence, plot_label_confusion, plot_label_cooccurrence,
                                              plot_pr_curves)


def _f1(truth, predicted):
    tp = (truth & predicted).sum()
    denominator = 2 * tp + (~truth & predicted).sum() + (truth & ~predicted).sum()
    return 2 * tp / denominator if denominator else 0.0


def test_average_precision_is_the_mean_precision_at_each_positive():
    rng = np.random.default_rng(0)
    for _ in range(20):
        truth = rng.random(40) < 0.3
        truth[0] = True
        scores = rng.random(40)  # no ties
        order = np.argsort(-scores)
        hits = np.cumsum(truth[order])
        expected = np.mean([hits[k] / (k + 1) for k in range(40) if truth[order][k]])
        assert average_precision(truth, scores) == pytest.approx(expected, abs=1e-12)


def test_average_precision_with_ties_and_undefined():
    # scikit-learn's documented example: average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]).
    assert average_precision(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.8333333)
    # A tie between a positive and a negative counts them at the same cut: P = 1/2 at R = 1.
    assert average_precision(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert average_precision(np.array([0, 0]), np.array([0.5, 0.1])) is None
    precision, recall, cuts = precision_recall_curve(np.array([1, 0, 1]), np.array([0.2, 0.2, 0.9]))
    assert cuts.tolist() == [0.9, 0.2] and recall.tolist() == [0.5, 1.0]
    assert precision.tolist() == pytest.approx([1.0, 2 / 3])


def test_best_f1_threshold_is_the_best_cut_and_reproduces_its_f1():
    rng = np.random.default_rng(1)
    for _ in range(30):
        truth = rng.random(50) < rng.uniform(0.1, 0.6)
        truth[:2] = True
        scores = np.round(np.clip(truth * 0.3 + rng.normal(0.3, 0.2, 50), 0, 1), 2)  # ties on purpose
        threshold, f1 = best_f1_threshold(truth, scores)
        brute = max(_f1(truth, scores >= cut) for cut in np.unique(scores))
        assert f1 == pytest.approx(brute)
        assert _f1(truth, scores >= threshold) == pytest.approx(brute)
    assert best_f1_threshold(np.zeros(5), np.linspace(0, 1, 5)) == (0.5, 0.0)


def test_tuned_thresholds_recover_f1_that_0_5_misses():
    rng = np.random.default_rng(2)
    truth = rng.random((200, 3)) < [0.2, 0.4, 0.5]
    # A model whose probabilities are well ranked but too low (as after heavy negative imbalance).
    probs = 0.22 * truth + rng.uniform(0, 0.25, truth.shape)  # all below 0.5, overlapping a little
    cuts = tune_thresholds(truth, probs)
    assert cuts.shape == (3,) and (cuts < 0.5).all()
    tuned = compute_multilabel_metrics(truth, probs, ["a", "b", "c"], cuts)
    assert tuned["micro_f1_at_0.5"] == 0.0 and tuned["macro_f1_at_0.5"] == 0.0
    assert tuned["micro_f1"] > 0.9 and tuned["macro_f1"] > 0.9 and tuned["mAP"] > 0.9
    assert [tuned["per_class"][n]["threshold"] for n in "abc"] == pytest.approx(cuts.tolist())


def test_metrics_by_hand():
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    p = np.array([[0.9, 0.6, 0.1], [0.4, 0.8, 0.2], [0.2, 0.7, 0.3], [0.1, 0.2, 0.6]])
    m = compute_multilabel_metrics(y, p, ["a", "b", "c"])
    # At 0.5: a: TP1 FN1 -> F1 2/3; b: TP2 FP1 -> F1 4/5; c: FP1 -> F1 0.
    assert m["per_class"]["a"]["f1"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["f1"] == pytest.approx(0.8)
    assert m["per_class"]["c"]["f1"] == 0.0 and m["per_class"]["c"]["ap"] is None
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 3)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))  # TP 3, FP 2, FN 1
    assert m["mAP"] == pytest.approx(np.mean([m["per_class"]["a"]["ap"], m["per_class"]["b"]["ap"]]))
    assert m["accuracy"] == 0.25 and m["hamming_accuracy"] == pytest.approx(9 / 12)  # row 3 exact; 3 errors
    assert [m["per_class"][n]["support"] for n in "abc"] == [2, 2, 0]
    expected_loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert m["loss"] == pytest.approx(expected_loss)
    json.dumps(m)
    table = format_multilabel_table(m, title="val (4 images)")
    assert table.splitlines()[0] == "val (4 images)" and "mAP" in table and "thresh" in table


def test_decide_and_thresholds_json_roundtrip():
    assert decide(np.array([[0.5, 0.49]]), [0.5, 0.5]).tolist() == [[True, False]]
    document = thresholds_document(["cat", "dog"], [0.3, 0.72])
    assert list(document) == ["cat", "dog"]
    text = json.dumps(document)
    assert read_thresholds(text, ["dog", "cat"]).tolist() == [0.72, 0.3]
    with pytest.raises(ValueError, match="bird"):
        read_thresholds(text, ["cat", "bird"])
    with pytest.raises(ValueError):
        thresholds_document(["cat"], [0.1, 0.2])


def test_plots_are_written(tmp_path):
    rng = np.random.default_rng(0)
    y = (rng.random((30, 5)) < 0.4).astype(int)
    p = np.clip(y * 0.5 + rng.random((30, 5)) * 0.5, 0, 1)
    names = ["a", "b", "c", "d", "e"]
    assert cooccurrence(y).diagonal().tolist() == y.sum(0).tolist()
    for path in (plot_pr_curves(y, p, names, tmp_path / "pr.png", thresholds=tune_thresholds(y, p)),
                 plot_label_cooccurrence(y, names, tmp_path / "co.png"),
                 plot_label_confusion(y, p, names, [0.5] * 5, tmp_path / "cm.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_savedmodel_label_strings_and_label_parity():
    import tensorflow as tf

    from tfft.evaluation.multilabel_eval import joined_labels, label_parity, prediction_row

    probs = tf.constant([[0.9, 0.2, 0.6], [0.1, 0.1, 0.1], [0.5, 0.7, 0.0]])
    names = tf.constant(["cat", "dog", "sofa"])
    out = joined_labels(probs, names, tf.constant([0.5, 0.5, 0.4]))
    assert [s.decode() for s in out.numpy()] == ["cat sofa", "", "cat dog"]
    parity = label_parity(np.array([[0.6, 0.4], [0.2, 0.1]]), np.array([[0.6, 0.6], [0.2, 0.1]]),
                          np.array([0.5, 0.5]), ["cat", "dog"])
    assert parity == {"cat": 100.0, "dog": 50.0}
    row = prediction_row("x.png", np.array([0.3, 0.8, 0.45]), ["cat", "dog", "sofa"], np.array([0.5, 0.5, 0.4]))
    assert row["labels"] == ["dog", "sofa"] and row["probabilities"] == [0.8, 0.45]
    assert row["all_probabilities"] == {"cat": 0.3, "dog": 0.8, "sofa": 0.45}
