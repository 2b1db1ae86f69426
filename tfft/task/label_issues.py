"""Likely label errors from out-of-fold probabilities: confident learning and self-confidence.

Confident learning (Northcutt, Jiang and Chuang, JAIR 2021), implemented here:

1. Per-class thresholds: `t[j]` = the mean probability of class j over the examples labelled j
   (the class's mean self-confidence).
2. The confident joint `C[i, j]`: examples labelled i whose probability of class j reaches `t[j]`
   (the largest such j when several do), counted. Calibrated so that row i sums to the number of
   examples labelled i, it estimates how many of them truly belong to j.
3. Prune by noise rate: for each off-diagonal (i, j), the `C_cal[i, j]` examples (rounded so that
   each row keeps its total) labelled i
   with the largest margin `p[j] - p[i]` are flagged; an example the model predicts as its given
   label is never flagged, and every class keeps at least one example.

`rank` returns every example, the flagged ones first, each group ordered by self-confidence (the
probability of the given label; lowest first). `score` is `1 - self-confidence`: higher is more
suspect. The probabilities must be out-of-sample (from cross-validation), or a model that
memorised its training labels hides every error.

Multi-label: `rank_multilabel` ranks each (image, label) pair by its out-of-fold disagreement
with the given label set (missing and extra labels). The tasks' `write_label_issues` call them.

Example:
>>> import numpy as np
>>> labels = np.array([0, 0, 0, 1, 1, 1])
>>> probs = np.array([[.9, .1], [.8, .2], [.1, .9], [.2, .8], [.3, .7], [.1, .9]])
>>> [(issue.index, issue.given, issue.suggested) for issue in rank(labels, probs)[:1]]
[(2, 0, 1)]
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

from tfft.errors import UserError

CSV_COLUMNS = ("path", "given", "suggested", "score", "self_confidence", "p_suggested", "is_issue", "rank")
"""label_issues.csv's columns; the contract fixes the first four."""


@dataclass(frozen=True)
class LabelIssue:
    """One example, as `rank` sees it.

    Attributes:
        index: the example's row in `labels` / `probs`.
        given: the label it has (class index).
        suggested: the label the model believes (class index; the given one when it agrees).
        score: 1 - the probability of the given label: higher is more likely a label error.
        self_confidence: the probability of the given label.
        p_suggested: the probability of the suggested label.
        is_issue: flagged by confident learning (prune by noise rate).
    """

    index: int
    given: int
    suggested: int
    score: float
    self_confidence: float
    p_suggested: float
    is_issue: bool


def _check(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise UserError("probs", f"expected an array [examples, classes] with 2+ classes, got shape "
                        f"{probs.shape}", "pass one row of class probabilities per example")
    if labels.ndim != 1 or labels.shape[0] != probs.shape[0]:
        raise UserError("labels", f"expected {probs.shape[0]} labels (one per row of probs), got shape "
                        f"{labels.shape}", "labels and probs must describe the same examples")
    if not np.issubdtype(labels.dtype, np.integer):
        if labels.size and not np.all(np.equal(np.mod(labels, 1), 0)):
            raise UserError("labels", "expected integer class indices", "map class names to indices first")
        labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise UserError("labels", f"class indices must lie in 0..{probs.shape[1] - 1}, got "
                        f"{int(labels.min())}..{int(labels.max())}", "labels index the columns of probs")
    if not np.all(np.isfinite(probs)) or probs.min(initial=0) < 0:
        raise UserError("probs", "probabilities must be finite and non-negative",
                        "pass softmax outputs, not logits")
    sums = probs.sum(axis=1, keepdims=True)
    return labels.astype(np.int64), probs / np.where(sums > 0, sums, 1.0)


def per_class_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """`t[j]`: the mean probability of class j over the examples labelled j (inf when none is).

    Example:
    >>> per_class_thresholds(np.array([0, 1, 1]), np.array([[.8, .2], [.4, .6], [.2, .8]])).tolist()
    [0.8, 0.7]
    """
    labels, probs = _check(labels, probs)
    k = probs.shape[1]
    out = np.full(k, np.inf)
    for j in range(k):
        mask = labels == j
        if mask.any():
            out[j] = probs[mask, j].mean()
    return out


def confident_joint(labels: np.ndarray, probs: np.ndarray, calibrate: bool = True,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The confident joint of given (rows) and true (columns) labels.

    Args:
        labels: int [N] given labels.
        probs: float [N, K] out-of-sample class probabilities.
        calibrate: scale each row to the number of examples with that given label.

    Returns:
        (joint float [K, K], confident float [N]: each example's confidently assigned class, or
        -1 when no class reaches its threshold).
    """
    labels, probs = _check(labels, probs)
    n, k = probs.shape
    thresholds = per_class_thresholds(labels, probs)
    above = probs >= thresholds[None, :] - 1e-12
    masked = np.where(above, probs, -1.0)
    confident = np.where(above.any(axis=1), masked.argmax(axis=1), -1)
    joint = np.zeros((k, k))
    keep = confident >= 0
    np.add.at(joint, (labels[keep], confident[keep]), 1.0)
    if calibrate:
        counts = np.bincount(labels, minlength=k).astype(np.float64)
        rows = joint.sum(axis=1, keepdims=True)
        joint = np.where(rows > 0, joint / np.where(rows > 0, rows, 1.0), 0.0) * counts[:, None]
    return joint, confident


def _round_rows(matrix: np.ndarray) -> np.ndarray:
    """Round each row to integers whose sum is the row's rounded sum (largest remainders up)."""
    floor = np.floor(matrix)
    out = floor.astype(np.int64)
    for r, row in enumerate(matrix):
        missing = int(np.rint(row.sum()) - floor[r].sum())
        if missing > 0:
            out[r, np.argsort(-(row - floor[r]), kind="stable")[:missing]] += 1
    return out


def find_label_issues(labels: np.ndarray, probs: np.ndarray, min_per_class: int = 1) -> np.ndarray:
    """Confident learning's prune-by-noise-rate rule: a bool mask of likely label errors.

    Args:
        labels: int [N] given labels.
        probs: float [N, K] out-of-sample class probabilities.
        min_per_class: flag at most `count - min_per_class` examples of each given class.

    Returns:
        bool [N], True for the examples flagged.
    """
    labels, probs = _check(labels, probs)
    n, k = probs.shape
    joint, _ = confident_joint(labels, probs, calibrate=True)
    counts = _round_rows(joint)
    mask = np.zeros(n, dtype=bool)
    predicted = probs.argmax(axis=1)
    for i in range(k):
        members = np.flatnonzero(labels == i)
        budget = max(0, len(members) - min_per_class)
        for j in range(k):
            if j == i or budget <= 0:
                continue
            count = min(int(counts[i, j]), budget)
            if count <= 0:
                continue
            margin = probs[members, j] - probs[members, i]
            # As in the paper (and cleanlab), the selections for different j may overlap.
            mask[members[np.argsort(-margin, kind="stable")[:count]]] = True
            budget -= count
    mask &= predicted != labels
    return mask


def rank(labels: np.ndarray, probs: np.ndarray) -> list[LabelIssue]:
    """Every example ranked by how likely its label is wrong, most likely first.

    Examples flagged by confident learning (`find_label_issues`) come first, then the rest; within
    each group, the lowest probability of the given label first (ties: the larger probability of
    another class first, then the index).

    Args:
        labels: int [N] given labels (class indices).
        probs: float [N, K] out-of-fold probabilities (rows are renormalised to sum to 1).

    Returns:
        N `LabelIssue`s.

    Raises:
        UserError: shapes or values that do not fit (names `labels` or `probs`).

    Example:
    >>> labels = np.array([1, 0, 0])
    >>> probs = np.array([[.9, .1], [.7, .3], [.6, .4]])
    >>> rank(labels, probs)[0].index
    0
    """
    labels, probs = _check(labels, probs)
    n = len(labels)
    if n == 0:
        return []
    flagged = find_label_issues(labels, probs)
    self_conf = probs[np.arange(n), labels]
    others = probs.copy()
    others[np.arange(n), labels] = -1.0
    predicted = probs.argmax(axis=1)
    suggested = predicted  # the given label itself when the model agrees
    order = np.lexsort((np.arange(n), -others.max(axis=1), self_conf, ~flagged))
    return [LabelIssue(index=int(i), given=int(labels[i]), suggested=int(suggested[i]),
                       score=float(1.0 - self_conf[i]), self_confidence=float(self_conf[i]),
                       p_suggested=float(probs[i, suggested[i]]), is_issue=bool(flagged[i]))
            for i in order]


def write_csv(path: Union[str, os.PathLike], paths: Sequence[str], class_names: Sequence[str],
              ranking: Sequence[LabelIssue], top: Optional[int] = None) -> None:
    """Write label_issues.csv: `path,given,suggested,score,self_confidence,p_suggested,is_issue,rank`.

    Rows in ranking order (most likely label error first), labels as class names; written
    atomically.

    Args:
        path: the CSV file to write.
        paths: the image path of each example (indexed by `LabelIssue.index`).
        class_names: class names by index (labels.txt order).
        ranking: from `rank`.
        top: write only the first `top` rows (default: all).

    Example:
    >>> write_csv("label_issues.csv", paths, ["cat", "dog"], rank(labels, probs))  # doctest: +SKIP
    """
    from tfft.atomic import write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    rows = list(ranking) if top is None else list(ranking)[: max(0, int(top))]
    for position, issue in enumerate(rows, start=1):
        writer.writerow([paths[issue.index], class_names[issue.given], class_names[issue.suggested],
                         f"{issue.score:.6f}", f"{issue.self_confidence:.6f}", f"{issue.p_suggested:.6f}",
                         int(issue.is_issue), position])
    write_text(path, buffer.getvalue())


# -- multi-label: per-label out-of-fold disagreement ----------------------------------------------

MULTILABEL_CSV_COLUMNS = ("path", "given", "suggested", "score", "label", "kind", "p_label", "is_issue", "rank")
"""label_issues.csv's columns for multi-label data; the contract fixes the first four."""


@dataclass(frozen=True)
class MultiLabelIssue:
    """One multi-label example, as `rank_multilabel` sees it.

    Attributes:
        index: the example's row in `labels` / `probs`.
        given: the label indices it has.
        suggested: the label indices the model predicts at the thresholds (the given set when it
            agrees).
        score: 1 - the self-confidence of its most doubtful label: higher is more suspect.
        label: that most doubtful label (index).
        kind: `missing` (given without it, predicted with it), `extra` (given with it, predicted
            without it), or `""` when the model agrees on that label.
        p_label: the probability of `label`.
        is_issue: the prediction disagrees with the given set on at least one label.
    """

    index: int
    given: tuple[int, ...]
    suggested: tuple[int, ...]
    score: float
    label: int
    kind: str
    p_label: float
    is_issue: bool


def rank_multilabel(labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray) -> list[MultiLabelIssue]:
    """Every multi-label example ranked by how likely one of its labels is wrong, most likely first.

    Each label of each example is judged on its own (the labels of an image are not exclusive, so
    confident learning's class-against-class joint does not apply): its self-confidence is the
    out-of-fold probability when the label is given, 1 - that probability when it is not. An
    example is flagged when, at the thresholds, the prediction differs from the given set (a
    label missing from the annotation or one too many); its score is 1 - the lowest
    self-confidence of its labels. Flagged examples come first, then the rest, each group by
    score (highest first; ties by index).

    Args:
        labels: [N, C] multi-hot given labels.
        probs: float [N, C] out-of-fold sigmoid probabilities.
        thresholds: float [C], or [N, C] (each example decided at its own fold's thresholds).

    Returns:
        N `MultiLabelIssue`s.

    Raises:
        UserError: shapes or values that do not fit (names `labels` or `probs`).

    Example:
    >>> y = np.array([[1, 0], [1, 1], [0, 1]])
    >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    >>> top = rank_multilabel(y, p, np.array([0.5, 0.5]))[0]
    >>> top.index, top.kind, top.label, round(top.score, 2)
    (1, 'extra', 1, 0.8)
    """
    given = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or given.shape != probs.shape:
        raise UserError("labels", f"expected multi-hot labels of the shape of probs {probs.shape}, got "
                        f"{given.shape}", "pass one row of 0/1 label indicators per example")
    if not np.all(np.isfinite(probs)) or probs.min(initial=0) < 0 or probs.max(initial=0) > 1:
        raise UserError("probs", "probabilities must be finite and lie in [0, 1]", "pass sigmoid outputs, not logits")
    given = given > 0.5
    n = len(given)
    if n == 0:
        return []
    predicted = probs >= np.broadcast_to(np.asarray(thresholds, dtype=np.float64), probs.shape)
    confidence = np.where(given, probs, 1.0 - probs)
    # The most doubtful label: among those the prediction disagrees on when there are any.
    disagree = predicted != given
    weakest = np.where(disagree.any(axis=1, keepdims=True), np.where(disagree, confidence, np.inf),
                       confidence).argmin(axis=1)
    rows = np.arange(n)
    score = 1.0 - confidence[rows, weakest]
    flagged = disagree.any(axis=1)
    order = np.lexsort((rows, -score, ~flagged))
    out = []
    for i in order:
        label = int(weakest[i])
        kind = "" if not disagree[i, label] else ("extra" if given[i, label] else "missing")
        out.append(MultiLabelIssue(index=int(i), given=tuple(int(c) for c in np.flatnonzero(given[i])),
                                   suggested=tuple(int(c) for c in np.flatnonzero(predicted[i])),
                                   score=float(score[i]), label=label, kind=kind,
                                   p_label=float(probs[i, label]), is_issue=bool(flagged[i])))
    return out


def write_multilabel_csv(path: Union[str, os.PathLike], paths: Sequence[str], class_names: Sequence[str],
                         ranking: Sequence[MultiLabelIssue]) -> None:
    """Write a multi-label label_issues.csv (`MULTILABEL_CSV_COLUMNS`), label sets joined by spaces.

    Example:
    >>> write_multilabel_csv("label_issues.csv", paths, ["cat", "dog"], rank_multilabel(y, p, t))  # doctest: +SKIP
    """
    from tfft.atomic import write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MULTILABEL_CSV_COLUMNS)
    for position, issue in enumerate(ranking, start=1):
        writer.writerow([paths[issue.index], " ".join(class_names[c] for c in issue.given),
                         " ".join(class_names[c] for c in issue.suggested), f"{issue.score:.6f}",
                         class_names[issue.label], issue.kind, f"{issue.p_label:.6f}", int(issue.is_issue), position])
    write_text(path, buffer.getvalue())


__all__ = [
    "CSV_COLUMNS", "LabelIssue", "per_class_thresholds", "confident_joint", "find_label_issues", "rank",
    "write_csv", "MULTILABEL_CSV_COLUMNS", "MultiLabelIssue", "rank_multilabel", "write_multilabel_csv",
]
