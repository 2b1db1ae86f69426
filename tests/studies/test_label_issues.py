"""Label-issue ranking on synthetic out-of-fold probabilities with planted label flips."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from tfft.errors import UserError
from tfft.task import label_issues


def _noisy_problem(n_per_class=(120, 80, 60), flips=20, seed=0):
    """Probabilities of a decent classifier (about 85% accurate on the true labels), then
    `flips` given labels changed to another class."""
    rng = np.random.default_rng(seed)
    true = np.concatenate([np.full(n, k) for k, n in enumerate(n_per_class)])
    k = len(n_per_class)
    logits = rng.normal(0, 1.0, (len(true), k))
    logits[np.arange(len(true)), true] += 2.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    given = true.copy()
    flipped = rng.choice(len(true), flips, replace=False)
    given[flipped] = (true[flipped] + rng.integers(1, k, flips)) % k
    return given, probs, true, flipped


def test_flipped_labels_rank_high_and_suggest_the_true_class():
    given, probs, true, flipped = _noisy_problem()
    ranking = label_issues.rank(given, probs)
    assert sorted(r.index for r in ranking) == list(range(len(given)))  # every example once
    top = [r.index for r in ranking[:40]]
    recall = len(set(top) & set(flipped.tolist())) / len(flipped)
    assert recall >= 0.8, recall
    by_index = {r.index: r for r in ranking}
    found = [i for i in flipped if by_index[i].is_issue]
    assert len(found) >= 14
    assert np.mean([by_index[i].suggested == true[i] for i in found]) >= 0.9
    flagged = [r for r in ranking if r.is_issue]
    assert ranking[: len(flagged)] == flagged  # the flagged ones come first
    assert all(a.score >= b.score for a, b in zip(flagged, flagged[1:]))
    assert len(flagged) < 60  # not everything is flagged


def test_confident_joint_counts_and_calibration():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[.9, .1], [.8, .2], [.1, .9], [.2, .8], [.3, .7], [.1, .9]])
    thresholds = label_issues.per_class_thresholds(labels, probs)
    np.testing.assert_allclose(thresholds, [0.6, 0.8])
    joint, confident = label_issues.confident_joint(labels, probs, calibrate=False)
    np.testing.assert_array_equal(joint, [[2, 1], [0, 2]])
    np.testing.assert_array_equal(confident, [0, 0, 1, 1, -1, 1])
    calibrated, _ = label_issues.confident_joint(labels, probs)
    np.testing.assert_allclose(calibrated.sum(axis=1), [3, 3])
    np.testing.assert_array_equal(label_issues.find_label_issues(labels, probs),
                                  [False, False, True, False, False, False])


def test_clean_confident_predictions_flag_nothing():
    labels = np.repeat([0, 1, 2], 10)
    probs = np.full((30, 3), 0.05)
    probs[np.arange(30), labels] = 0.9
    ranking = label_issues.rank(labels, probs)
    assert not any(r.is_issue for r in ranking)
    assert all(r.suggested == r.given for r in ranking)


def test_write_csv_columns_and_order(tmp_path):
    given, probs, _, _ = _noisy_problem(flips=5)
    paths = [f"img/{i}.jpg" for i in range(len(given))]
    ranking = label_issues.rank(given, probs)
    out = tmp_path / "label_issues.csv"
    label_issues.write_csv(out, paths, ["cat", "dog", "fox"], ranking)
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:4] == ["path", "given", "suggested", "score"]
    assert len(rows) == len(given)
    assert rows[0]["path"] == paths[ranking[0].index]
    assert rows[0]["given"] in ("cat", "dog", "fox") and rows[0]["is_issue"] in ("0", "1")
    assert [int(r["rank"]) for r in rows[:3]] == [1, 2, 3]


@pytest.mark.parametrize("labels, probs, where", [
    (np.array([0, 1]), np.array([[0.5, 0.5]]), "labels"),
    (np.array([0, 3]), np.array([[0.5, 0.5], [0.2, 0.8]]), "labels"),
    (np.array([0, 1]), np.array([0.5, 0.5]), "probs"),
    (np.array([0, 1]), np.array([[np.nan, 1.0], [0.2, 0.8]]), "probs"),
])
def test_bad_inputs_name_the_argument(labels, probs, where):
    with pytest.raises(UserError, match=f"^{where}"):
        label_issues.rank(labels, probs)


def test_agrees_with_cleanlab():
    from cleanlab import filter as filt  # the dev extra installs it: a cross-check never skipped
    given, probs, _, _ = _noisy_problem(seed=4)
    theirs = filt.find_label_issues(given, probs, filter_by="prune_by_noise_rate")
    ours = label_issues.find_label_issues(given, probs)
    # cleanlab rounds the calibrated joint a little differently (ties of the remainders).
    assert (ours != theirs).sum() <= 3, (np.flatnonzero(ours), np.flatnonzero(theirs))
