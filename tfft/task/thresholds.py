"""Per-label decision thresholds in plain numpy: average precision, F1-best cuts, robust thresholds.

Conventions follow scikit-learn (no dependency on it): average precision is the step-wise area
`sum_n (R_n - R_{n-1}) P_n` over the distinct scores (`average_precision_score`), mAP is the mean
of the labels that have a positive example, F1 with `zero_division=0`. A label is predicted when
its probability is `>=` its threshold; the thresholds are chosen per label on validation data
(`robust_thresholds`: the F1-best cut (`tune_thresholds`), halfway between the lowest score kept
and the next one below, so a validation score sitting exactly at the cut does not decide the test,
bagged over bootstrap resamples and shrunk toward 0.5 when the label has few positives).
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

import numpy as np

DEFAULT_THRESHOLD = 0.5


def _binary(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true).reshape(-1) > 0.5
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(y_true) != len(scores):
        raise ValueError(f"y_true has {len(y_true)} entries but scores has {len(scores)}")
    return y_true, scores


def _cumulative_counts(y_true: np.ndarray, scores: np.ndarray):
    """True and false positives when cutting just below each distinct score, highest first."""
    order = np.argsort(-scores, kind="mergesort")
    scores, y_true = scores[order], y_true[order]
    last_of_run = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    tps = np.cumsum(y_true)[last_of_run].astype(np.float64)
    fps = (last_of_run + 1 - tps).astype(np.float64)
    return tps, fps, scores[last_of_run]


def precision_recall_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall at every distinct score used as the cut (`score >= t`), highest first.

    Returns:
        (precision, recall, thresholds), each of length = the number of distinct scores; with no
        positive example recall is 0 throughout.

    Example:
    >>> p, r, t = precision_recall_curve(np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.4, 0.35]))
    >>> p.round(3).tolist(), r.tolist(), t.tolist()
    ([1.0, 1.0, 0.667, 0.5], [0.5, 1.0, 1.0, 1.0], [0.9, 0.4, 0.35, 0.1])
    """
    y_true, scores = _binary(y_true, scores)
    if not len(scores):
        return np.zeros(0), np.zeros(0), np.zeros(0)
    tps, fps, thresholds = _cumulative_counts(y_true, scores)
    precision = tps / (tps + fps)
    positives = tps[-1]
    recall = tps / positives if positives > 0 else np.zeros_like(tps)
    return precision, recall, thresholds


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> Optional[float]:
    """Average precision: `sum_n (R_n - R_{n-1}) P_n` over the distinct scores (sklearn's).

    Returns:
        AP in [0, 1], or None when the label has no positive example (AP is undefined).

    Example:
    >>> average_precision(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.8333333333333333
    """
    y_true, scores = _binary(y_true, scores)
    if not y_true.any():
        return None
    precision, recall, _ = precision_recall_curve(y_true, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def best_f1_threshold(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The cut `score >= t` that maximises F1 on these examples, and that F1.

    Ties in F1 go to the higher cut (fewer positives predicted). `t` lies halfway between the
    lowest score kept and the next lower score (or half the lowest score when every example is
    kept). With no positive example, F1 is 0 at any cut and the default 0.5 is returned.

    Example:
    >>> best_f1_threshold(np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.4, 0.35]))
    (0.375, 1.0)
    """
    y_true, scores = _binary(y_true, scores)
    if not y_true.any():
        return DEFAULT_THRESHOLD, 0.0
    tps, fps, cuts = _cumulative_counts(y_true, scores)
    positives = tps[-1]
    f1 = 2 * tps / (tps + fps + positives)
    best = int(np.argmax(f1))  # the first maximum: the highest cut
    if best + 1 < len(cuts):
        threshold = (cuts[best] + cuts[best + 1]) / 2.0
    else:  # every example kept
        threshold = cuts[best] / 2.0
    return float(threshold), float(f1[best])


def tune_thresholds(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """The F1-best threshold of every label (`best_f1_threshold` per column): float [C].

    Example:
    >>> y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> p = np.array([[0.8, 0.3], [0.2, 0.6], [0.6, 0.2], [0.1, 0.1]])
    >>> tune_thresholds(y, p).tolist()
    [0.4, 0.15000000000000002]
    """
    y_true, probs = label_matrix(y_true, probs)
    return np.asarray([best_f1_threshold(y_true[:, c], probs[:, c])[0] for c in range(probs.shape[1])])


PRIOR_POSITIVES = 25
"""How many positive validation images make a label's F1-best cut half trusted (see `robust_thresholds`)."""
RESAMPLES = 200
"""Bootstrap resamples behind each label's threshold and its interval."""
INTERVAL = (5.0, 95.0)
"""The percentiles of the bootstrap thresholds reported as a label's interval (a 90% interval)."""


def label_matrix(y_true: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bool truth [N, C], float64 probabilities [N, C]) after checking their shapes agree."""
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or y_true.shape != probs.shape:
        raise ValueError(f"expected y_true and probs of the same shape [N, C], got {y_true.shape} and {probs.shape}")
    return y_true > 0.5, probs


def _bootstrap_cuts(y_true: np.ndarray, scores: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """The F1-best cut (`best_f1_threshold`'s rule) of `resamples` bootstrap resamples: float [B].

    Vectorised: the examples are sorted once; a resample is a row of multinomial counts that
    weight them. A resample without a positive gives 0.5, as `best_f1_threshold` does."""
    n = len(scores)
    order = np.argsort(-scores, kind="mergesort")
    scores, y_true = scores[order], y_true[order].astype(np.float64)
    last_of_run = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    cuts = scores[last_of_run]
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)  # [B, N]
    tps = np.cumsum(weights * y_true, axis=1)[:, last_of_run]
    seen = np.cumsum(weights, axis=1)[:, last_of_run]
    positives = tps[:, -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(positives > 0, 2 * tps / (seen + positives), 0.0)
    best = np.argmax(f1, axis=1)  # the first maximum lies on a score present in the resample
    runs = len(cuts)
    # The next lower score present in each resample: the midpoint is taken to it, as on the full data.
    counts = np.diff(np.c_[np.zeros((resamples, 1)), seen], axis=1)
    index = np.where(counts > 0, np.arange(runs), runs)
    after = np.minimum.accumulate(index[:, ::-1], axis=1)[:, ::-1]  # the first present index >= i
    following = np.c_[after[:, 1:], np.full((resamples, 1), runs)][np.arange(resamples), best]
    low = np.where(following < runs, cuts[np.minimum(following, runs - 1)], 0.0)
    out = np.where(following < runs, (cuts[best] + low) / 2.0, cuts[best] / 2.0)
    return np.where(positives[:, 0] > 0, out, DEFAULT_THRESHOLD)


def robust_thresholds(y_true: np.ndarray, probs: np.ndarray, seed: int = 0, resamples: int = RESAMPLES,
                      prior_positives: float = PRIOR_POSITIVES) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-label thresholds that a small validation split cannot overfit, and how sure they are.

    The F1-best cut of a few positives is noise: one image more or less moves it far. So each
    label's threshold is the median of the F1-best cuts of `resamples` bootstrap resamples of
    the validation images (a smoothed F1 curve), shrunk toward 0.5 (the decision the sigmoid
    was trained for) with the weight `positives / (positives + prior_positives)`: with 5
    positives it moves a sixth of the way from 0.5, with thousands it is the F1-best cut. The
    5th-95th percentiles of the bootstrap cuts are the label's interval: a wide one says the
    threshold is uncertain, whatever value it has.

    Args:
        y_true: [N, C] multi-hot validation truth.
        probs: [N, C] validation probabilities.
        seed: the resampling seed (the result is deterministic).
        resamples: bootstrap resamples per label.
        prior_positives: the positive count at which the F1-best cut gets half the weight.

    Returns:
        `(thresholds, details)`: float [C], and a JSON-ready dict of lists per label:
        `f1_best` (the plain F1-best cut, `tune_thresholds`), `positives`, `weight`,
        `interval` ([low, high]), plus `method`.

    Example:
    >>> y = np.array([[1], [0], [1], [0]])
    >>> cuts, details = robust_thresholds(y, np.array([[0.9], [0.2], [0.8], [0.3]]))
    >>> round(float(cuts[0]), 3), details["f1_best"], details["positives"]
    (0.504, [0.55], [2])
    """
    y_true, probs = label_matrix(y_true, probs)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x7E5])
    cuts, best, positives, weights, intervals = [], [], [], [], []
    for c in range(probs.shape[1]):
        truth, scores = y_true[:, c], probs[:, c]
        count = int(truth.sum())
        best.append(best_f1_threshold(truth, scores)[0])
        if count == 0:
            boots = np.full(1, DEFAULT_THRESHOLD)
        else:
            boots = _bootstrap_cuts(truth, scores, rng, resamples)
        weight = count / (count + float(prior_positives)) if count else 0.0
        cuts.append(DEFAULT_THRESHOLD + weight * (float(np.median(boots)) - DEFAULT_THRESHOLD))
        positives.append(count)
        weights.append(round(weight, 4))
        intervals.append([round(float(v), 4) for v in np.percentile(boots, INTERVAL)])
    details = {"method": f"median F1-best cut of {resamples} bootstrap resamples of the validation images, shrunk "
                         f"toward 0.5 by positives / (positives + {prior_positives:g}); interval: "
                         f"{INTERVAL[0]:g}th-{INTERVAL[1]:g}th percentile of the resampled cuts",
               "f1_best": [round(float(b), 4) for b in best], "positives": positives, "weight": weights,
               "interval": intervals}
    return np.asarray(cuts, dtype=np.float64), details


def decide(probs: np.ndarray, thresholds: Any) -> np.ndarray:
    """The decision rule: label c is predicted when `probs[:, c] >= thresholds[c]`; bool [N, C].

    Example:
    >>> decide(np.array([[0.7, 0.2], [0.4, 0.9]]), [0.5, 0.3]).tolist()
    [[True, False], [False, True]]
    """
    probs = np.asarray(probs, dtype=np.float64)
    return probs >= np.broadcast_to(np.asarray(thresholds, dtype=np.float64), probs.shape)


def thresholds_document(class_names: Sequence[str], thresholds: Any) -> dict[str, float]:
    """The content of `thresholds.json`: `{label: threshold}` in labels.txt order.

    Example:
    >>> thresholds_document(["cat", "dog"], [0.4, 0.25])
    {'cat': 0.4, 'dog': 0.25}
    """
    cuts = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if len(cuts) != len(class_names):
        raise ValueError(f"{len(cuts)} thresholds for {len(class_names)} labels")
    return {str(name): float(cut) for name, cut in zip(class_names, cuts)}


def read_thresholds(text: str, class_names: Sequence[str], where: str = "thresholds.json") -> np.ndarray:
    """Parse `thresholds.json` back into float [C] in `class_names` order.

    Raises:
        ValueError: a label of `class_names` missing from the file, or a value outside [0, 1].
    """
    document = json.loads(text)
    missing = [name for name in class_names if name not in document]
    if missing:
        raise ValueError(f"{where} has no threshold for {missing}")
    cuts = np.asarray([float(document[name]) for name in class_names], dtype=np.float64)
    if ((cuts < 0) | (cuts > 1)).any():
        raise ValueError(f"{where}: thresholds must lie in [0, 1], got {cuts.tolist()}")
    return cuts
