"""Multi-label metrics and decisions: AP, mAP, micro/macro F1, F1-best thresholds, thresholds.json, plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfft.reporting.label_plots import cooccurrence, plot_label_confusion, plot_label_cooccurrence, plot_pr_curves
from tfft.task.multi_label import MultiLabel, compute_multilabel_metrics, format_multilabel_table
from tfft.task.thresholds import (average_precision, best_f1_threshold, decide, precision_recall_curve,
                                  read_thresholds, thresholds_document, tune_thresholds)


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

    task = MultiLabel()
    probs = tf.constant([[0.9, 0.2, 0.6], [0.1, 0.1, 0.1], [0.5, 0.7, 0.0]])
    names = tf.constant(["cat", "dog", "sofa"])
    out = task.serving_label(probs, names, tf.constant([0.5, 0.5, 0.4]))
    assert [s.decode() for s in out.numpy()] == ["cat sofa", "", "cat dog"]
    parity = task.parity(np.array([[0.6, 0.4], [0.2, 0.1]]), np.array([[0.6, 0.6], [0.2, 0.1]]),
                         thresholds=np.array([0.5, 0.5]), class_names=["cat", "dog"])["parity_labels"]
    assert parity == {"cat": 100.0, "dog": 50.0}
    row = task.prediction_row("x.png", np.array([0.3, 0.8, 0.45]), ["cat", "dog", "sofa"], np.array([0.5, 0.5, 0.4]))
    assert row["labels"] == ["dog", "sofa"] and row["probabilities"] == [0.8, 0.45]
    assert row["all_probabilities"] == {"cat": 0.3, "dog": 0.8, "sofa": 0.45}


def _validation_draw(rng: np.random.Generator, n: int, positives: int) -> tuple[np.ndarray, np.ndarray]:
    """One label's validation split: sigmoid-like scores, positives around 0.7, negatives around 0.3."""
    truth = np.zeros(n, dtype=np.int64)
    truth[:positives] = 1
    scores = np.where(truth > 0, rng.normal(0.7, 0.15, n), rng.normal(0.3, 0.15, n)).clip(0.001, 0.999)
    return truth[:, None], scores[:, None]


def test_robust_thresholds_with_few_positives_are_pulled_to_half_and_stable_under_resampling():
    from tfft.task.thresholds import robust_thresholds

    rng = np.random.default_rng(0)
    robust, best, widths = [], [], []
    for _ in range(30):  # 30 validation splits of 80 images, 6 positives, from one distribution
        y, p = _validation_draw(rng, 80, 6)
        cuts, details = robust_thresholds(y, p)
        robust.append(cuts[0])
        best.append(tune_thresholds(y, p)[0])
        widths.append(details["interval"][0][1] - details["interval"][0][0])
        assert details["positives"] == [6] and details["f1_best"][0] == pytest.approx(best[-1], abs=1e-4)
        assert abs(cuts[0] - 0.5) <= 0.5 * 6 / 31 + 1e-9  # weight 6 / (6 + 25) on a cut in [0, 1]
    assert np.mean(np.abs(np.subtract(robust, 0.5))) < 0.5 * np.mean(np.abs(np.subtract(best, 0.5)))
    assert np.std(robust) < 0.25 * np.std(best)  # the plain F1-best cut jumps from split to split
    assert np.median(widths) > 0.1  # and the interval says how uncertain it is


def test_robust_thresholds_with_many_positives_are_the_f1_best_cut():
    from tfft.task.thresholds import robust_thresholds

    y, p = _validation_draw(np.random.default_rng(1), 6000, 3000)
    cuts, details = robust_thresholds(y, p)
    assert cuts[0] == pytest.approx(tune_thresholds(y, p)[0], abs=0.02)
    assert details["weight"][0] > 0.99 and details["interval"][0][1] - details["interval"][0][0] < 0.08
    again, _ = robust_thresholds(y, p)
    assert again.tolist() == cuts.tolist()  # seeded: the same data gives the same thresholds


def test_choose_thresholds_writes_intervals_beside_the_thresholds_and_the_report_shows_them(tmp_path, capsys):
    from tfft.reporting.evaluate import choose_thresholds
    from tfft.task import task_for
    from tfft.reporting.report import write_report

    y0, p0 = _validation_draw(np.random.default_rng(2), 80, 6)
    y1, p1 = _validation_draw(np.random.default_rng(3), 80, 40)
    cuts = choose_thresholds(task_for("multi_label"), np.c_[y0, y1], np.c_[p0, p1], ["cat", "dog"], tmp_path)
    assert json.loads((tmp_path / "thresholds.json").read_text()) == {"cat": cuts[0], "dog": cuts[1]}
    intervals = json.loads((tmp_path / "threshold_intervals.json").read_text())
    assert "bootstrap" in intervals["method"] and list(intervals["labels"]) == ["cat", "dog"]
    cat, dog = intervals["labels"]["cat"], intervals["labels"]["dog"]
    assert cat["threshold"] == cuts[0] and cat["positives"] == 6 and dog["positives"] == 40
    assert cat["interval"][0] <= cat["threshold"] <= cat["interval"][1] or cat["weight"] < 0.5
    assert "cat" in capsys.readouterr().out  # printed with its interval when chosen
    report = write_report(tmp_path).read_text()
    assert "## Thresholds" in report and f"| cat | {cuts[0]:.4g} | {cat['interval'][0]:.3f} - " in report
