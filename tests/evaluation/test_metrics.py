"""compute_metrics against hand-computed values and (when importable) scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfft.reporting.metrics import binary_roc_auc, compute_metrics, confusion_matrix, format_table


def _brute_auc(pos, scores):
    """AUC as the probability a random positive outscores a random negative (ties half)."""
    p = scores[pos.astype(bool)]
    n = scores[~pos.astype(bool)]
    wins = sum((a > b) + 0.5 * (a == b) for a in p for b in n)
    return wins / (len(p) * len(n))


def test_hand_computed_three_classes():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([
        [0.7, 0.2, 0.1],   # 0 -> 0
        [0.2, 0.5, 0.3],   # 0 -> 1
        [0.1, 0.8, 0.1],   # 1 -> 1
        [0.1, 0.6, 0.3],   # 1 -> 1
        [0.3, 0.3, 0.4],   # 2 -> 2
        [0.5, 0.1, 0.4],   # 2 -> 0
    ])
    m = compute_metrics(y, probs, ["a", "b", "c"], top_k=2)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # precision: a 1/2, b 2/3, c 1/1; recall: a 1/2, b 1, c 1/2
    pa, pb, pc = 0.5, 2 / 3, 1.0
    ra, rb, rc = 0.5, 1.0, 0.5
    f = [2 * p * r / (p + r) for p, r in ((pa, ra), (pb, rb), (pc, rc))]
    assert m["per_class"]["a"]["precision"] == pytest.approx(pa)
    assert m["per_class"]["b"]["precision"] == pytest.approx(pb)
    assert m["per_class"]["c"]["recall"] == pytest.approx(rc)
    assert m["macro_f1"] == pytest.approx(sum(f) / 3)
    assert m["weighted_f1"] == pytest.approx(sum(f) / 3)  # equal supports
    assert m["macro_precision"] == pytest.approx((pa + pb + pc) / 3)
    # top-2: the true class is among the 2 highest in rows 0,1,2,3,4,5 -> row1 (0.2 lowest) no
    assert m["top_k"] == 2
    assert m["top_k_accuracy"] == pytest.approx(5 / 6)
    loss = -np.mean(np.log([0.7, 0.2, 0.8, 0.6, 0.4, 0.4]))
    assert m["loss"] == pytest.approx(loss)
    assert m["confusion_matrix_normalized"][0] == pytest.approx([0.5, 0.5, 0.0])
    # One-vs-rest macro AUC equals the mean of brute-force pairwise AUCs.
    aucs = [_brute_auc(y == i, probs[:, i]) for i in range(3)]
    assert m["roc_auc"] == pytest.approx(np.mean(aucs))
    assert [m["per_class"][n]["roc_auc"] for n in "abc"] == pytest.approx(aucs)
    pairs = {(p["true"], p["predicted"]): p["count"] for p in m["most_confused"]}
    assert pairs == {("a", "b"): 1, ("c", "a"): 1}
    assert m["num_examples"] == 6 and m["class_names"] == ["a", "b", "c"]


def test_binary_auc_with_ties_and_degenerate():
    pos = np.array([1, 0, 1, 0, 1, 0, 0])
    scores = np.array([0.9, 0.9, 0.5, 0.5, 0.5, 0.1, 0.3])
    assert binary_roc_auc(pos, scores) == pytest.approx(_brute_auc(pos, scores))
    assert binary_roc_auc(np.ones(3), np.array([0.1, 0.2, 0.3])) is None
    rng = np.random.default_rng(0)
    for _ in range(5):
        pos = rng.integers(0, 2, 50)
        pos[:2] = [0, 1]
        scores = rng.integers(0, 5, 50) / 4.0  # many ties
        assert binary_roc_auc(pos, scores) == pytest.approx(_brute_auc(pos, scores))


def test_binary_metrics_use_positive_class_auc_and_top_k_clipped():
    y = np.array([0, 1, 1, 0])
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.4, 0.6]])
    m = compute_metrics(y, probs, ["cat", "dog"], top_k=5)
    assert m["top_k"] == 2 and m["top_k_accuracy"] == 1.0
    assert m["roc_auc"] == pytest.approx(_brute_auc(y == 1, probs[:, 1]))
    assert m["accuracy"] == 0.5


def test_zero_support_and_zero_predictions_follow_zero_division_0():
    y = np.array([0, 0, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.6, 0.3, 0.1]])
    m = compute_metrics(y, probs, ["a", "b", "c"])
    assert m["per_class"]["b"]["precision"] == 0.0  # never predicted
    assert m["per_class"]["c"]["support"] == 0
    assert m["per_class"]["c"]["roc_auc"] is None
    assert not any(math.isnan(v) for v in (m["macro_f1"], m["weighted_f1"]))
    assert confusion_matrix(y, np.array([0, 0, 0]), 3).tolist() == [[2, 0, 0], [1, 0, 0], [0, 0, 0]]


def test_shape_errors_say_what_was_received():
    with pytest.raises(ValueError, match="2 columns but there are 3"):
        compute_metrics(np.array([0]), np.array([[0.5, 0.5]]), ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        compute_metrics(np.array([2]), np.array([[0.5, 0.5]]), ["a", "b"])


def test_format_table_lists_every_class():
    m = compute_metrics(np.array([0, 1, 2]), np.eye(3), ["red", "green", "blue"])
    table = format_table(m, title="val")
    for word in ("val", "red", "green", "blue", "macro avg", "weighted avg", "accuracy 1.0000"):
        assert word in table


def test_against_sklearn():
    from sklearn import metrics as metrics_mod  # the dev extra installs it: a cross-check never skipped
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 200)
    y[:4] = [0, 1, 2, 3]
    logits = rng.normal(size=(200, 4)) + np.eye(4)[y] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    m = compute_metrics(y, probs, list("abcd"), top_k=2)
    pred = probs.argmax(axis=1)
    assert m["macro_f1"] == pytest.approx(metrics_mod.f1_score(y, pred, average="macro"))
    assert m["weighted_f1"] == pytest.approx(metrics_mod.f1_score(y, pred, average="weighted"))
    assert m["roc_auc"] == pytest.approx(metrics_mod.roc_auc_score(y, probs, multi_class="ovr"))
    assert m["top_k_accuracy"] == pytest.approx(metrics_mod.top_k_accuracy_score(y, probs, k=2))
    assert m["loss"] == pytest.approx(metrics_mod.log_loss(y, probs))
