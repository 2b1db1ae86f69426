"""Stratified splits of multi-label data: iterative stratification (Sechidis et al., 2011).

A multi-label example belongs to several classes at once, so splitting each class separately (as
single-label data is split) would put one image in several subsets. Iterative stratification
deals the examples out label by label, rarest label first, each to the subset that still lacks
most of that label, so every label's examples are spread over the subsets in the requested
proportions (as nearly as whole examples allow) and rare labels are never left out of a subset
by chance.

Reference: K. Sechidis, G. Tsoumakas, I. Vlahavas, "On the Stratification of Multi-Label Data",
ECML PKDD 2011 (Algorithm 1). Pure numpy, deterministic in `seed`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def iterative_stratification(labels: np.ndarray, fractions: Sequence[float], seed: int,
                             sizes: Optional[np.ndarray] = None) -> np.ndarray:
    """Assign each example of a multi-hot label matrix to one of `len(fractions)` subsets.

    Algorithm 1 of Sechidis et al.: while labelled examples remain, take the label with the fewest
    remaining examples; give each of its examples to the subset with the largest remaining demand
    for that label (ties: the largest remaining demand overall, then at random); lower the demands
    of every label the example carries. Examples without any label go last to the subsets with the
    largest remaining demand overall.

    Args:
        labels: [N, C] multi-hot (0/1 or bool) matrix; a 1-D int array of class indices is
            accepted too (then it is ordinary stratification).
        fractions: the share of each subset, e.g. `[0.8, 0.2]` (normalised to sum to 1; a zero
            share gets no examples).
        seed: the examples' visiting order and the ties depend only on it.
        sizes: with `labels` an int [N, C] matrix of counts, the number of images each row
            stands for (a group of near-duplicates dealt out whole, `iterative_kfold(groups=)`):
            a row lowers the demands by its counts and its size. None: rows are single examples.

    Returns:
        int64 [N]: the subset index of every example.

    Example:
    >>> y = np.array([[1, 0], [1, 1], [0, 1], [1, 0], [0, 1], [1, 1], [0, 0], [1, 0]])
    >>> subset = iterative_stratification(y, [0.75, 0.25], seed=0)
    >>> np.bincount(subset, minlength=2).tolist()
    [6, 2]
    """
    if sizes is None:
        rows, cols, _, num_labels = _nonzero(labels)
        values = np.ones(len(rows), dtype=np.int64)  # multi-hot: any non-zero entry is one label
        weight = np.ones(len(np.asarray(labels)), dtype=np.int64)
    else:
        y = np.asarray(labels, dtype=np.int64)
        weight = np.asarray(sizes, dtype=np.int64)
        if y.ndim != 2 or weight.shape != (len(y),):
            raise ValueError(f"expected counts [N, C] and sizes [N], got {y.shape} and {weight.shape}")
        rows, cols, values, num_labels = _nonzero(y)
    return _stratify(rows, cols, values, num_labels, weight, fractions, seed)


def _nonzero(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(rows, cols, values, C) of the non-zero entries of [N, C] labels or of [N] class indices."""
    labels = np.asarray(labels)
    if labels.ndim == 1:
        rows = np.arange(len(labels), dtype=np.int64)
        cols = labels.astype(np.int64)
        return rows, cols, np.ones(len(rows), dtype=np.int64), int(cols.max()) + 1 if len(cols) else 0
    if labels.ndim != 2:
        raise ValueError(f"expected labels of shape [N, C] or [N], got {labels.shape}")
    rows, cols = np.nonzero(labels)
    return rows.astype(np.int64), cols.astype(np.int64), labels[rows, cols].astype(np.int64), labels.shape[1]


def _stratify(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, num_labels: int, weight: np.ndarray,
              fractions: Sequence[float], seed: int) -> np.ndarray:
    """`iterative_stratification` on the positive entries (row, col, count) of an [N, C] matrix:
    memory and time follow the entries, not N x C (the dense matrix is never built)."""
    n = len(weight)
    shares = np.asarray(fractions, dtype=np.float64)
    if shares.ndim != 1 or len(shares) < 1 or (shares < 0).any() or shares.sum() <= 0:
        raise ValueError(f"expected non-negative fractions with a positive sum, got {list(fractions)}")
    shares = shares / shares.sum()
    rng = np.random.default_rng(int(seed) & 0xFFFFFFFFFFFFFFFF)
    # Visit examples in a seeded random order so that ties do not favour the file order.
    order = rng.permutation(n)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    rows, weight = position[rows], weight[order]
    by_row = np.lexsort((cols, rows))  # each row's labels, rows in visiting order
    row_cols, row_values = cols[by_row], values[by_row]
    row_start = np.searchsorted(rows[by_row], np.arange(n + 1))
    by_col = np.lexsort((rows, cols))  # each label's rows, in visiting order
    col_rows = rows[by_col]
    col_start = np.searchsorted(cols[by_col], np.arange(num_labels + 1))
    demand = shares * weight.sum()                        # c_j: examples subset j still wants
    label_demand = np.outer(shares, np.bincount(cols, weights=values, minlength=num_labels))  # c_j^l
    assigned = np.full(n, -1, dtype=np.int64)
    counts = np.bincount(cols, minlength=num_labels)      # unassigned examples holding each label
    zero_share = shares <= 0
    while counts.any():
        label = int(np.flatnonzero(counts == counts[counts > 0].min())[0])
        holders = col_rows[col_start[label]:col_start[label + 1]]
        for example in holders[assigned[holders] < 0]:
            wanted = np.where(zero_share, -np.inf, label_demand[:, label])
            best = np.flatnonzero(wanted == wanted.max())
            if len(best) > 1:
                overall = demand[best]
                best = best[overall == overall.max()]
            subset = int(best[0] if len(best) == 1 else rng.choice(best))
            assigned[example] = subset
            own = slice(row_start[example], row_start[example + 1])
            label_demand[subset, row_cols[own]] -= row_values[own]
            demand[subset] -= weight[example]
            counts[row_cols[own]] -= 1
    for example in np.flatnonzero(assigned < 0):  # examples with no label at all
        wanted = np.where(zero_share, -np.inf, demand)
        best = np.flatnonzero(wanted == wanted.max())
        subset = int(best[0] if len(best) == 1 else rng.choice(best))
        assigned[example] = subset
        demand[subset] -= weight[example]
    out = np.empty(n, dtype=np.int64)
    out[order] = assigned
    return out


def iterative_kfold(labels: np.ndarray, folds: int, seed: int, groups: Optional[np.ndarray] = None) -> np.ndarray:
    """K folds of (multi-label) data stratified per label: the fold index (0..K-1) of each example.

    Args:
        labels: [N, C] multi-hot matrix (or [N] class indices).
        folds: K >= 2.
        seed: the folds depend only on it.
        groups: int [N] group ids (near-duplicate clusters): a group is dealt out whole, as one
            row carrying its members' label counts; None (or all distinct) is the plain algorithm.

    Returns:
        int64 [N] fold indices.

    Example:
    >>> y = np.eye(3, dtype=int)[np.arange(30) % 3]
    >>> np.bincount(iterative_kfold(y, 5, seed=1), minlength=5).tolist()
    [6, 6, 6, 6, 6]
    >>> groups = np.arange(30); groups[[0, 3, 6]] = 0
    >>> len(set(iterative_kfold(y, 5, seed=1, groups=groups)[[0, 3, 6]].tolist()))
    1
    """
    if int(folds) < 2:
        raise ValueError(f"expected at least 2 folds, got {folds}")
    shares = [1.0] * int(folds)
    if groups is None or len(np.unique(groups)) == len(groups):
        return iterative_stratification(labels, shares, seed)
    rows, cols, _, num_labels = _nonzero(labels)
    unique, index = np.unique(np.asarray(groups), return_inverse=True)
    # Each group's label counts, kept sparse: one entry per (group, label) present, never G x C.
    cells, values = np.unique(index[rows] * num_labels + cols, return_counts=True)
    sizes = np.bincount(index, minlength=len(unique))
    return _stratify(cells // num_labels, cells % num_labels, values, num_labels, sizes, shares, seed)[index]


def split_fractions(labels: np.ndarray, val_split: float, test_split: float, seed: int) -> np.ndarray:
    """Train / val / test subset (0, 1, 2) of each example, stratified per label, every label in train.

    `iterative_stratification` with shares `[1 - val - test, val, test]`; then any label that
    ended up with no training example (possible only for a label with very few examples) gets
    one back from val or test, so a model can learn every class it is scored on.

    Example:
    >>> y = np.eye(4, dtype=int)[np.arange(40) % 4]
    >>> subset = split_fractions(y, 0.25, 0.0, seed=0)
    >>> y[subset == 1].sum(axis=0).tolist()  # 2.5 of each label's 10 wanted in val
    [2, 2, 2, 3]
    """
    y = _as_multi_hot(labels)
    subset = iterative_stratification(y, [1.0 - val_split - test_split, val_split, test_split], seed)
    for label in range(y.shape[1]):
        holders = np.flatnonzero(y[:, label])
        if len(holders) and not (subset[holders] == 0).any():
            subset[holders[0]] = 0
    return subset


def _as_multi_hot(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 1:
        num = int(labels.max()) + 1 if len(labels) else 0
        return np.eye(num, dtype=bool)[labels.astype(np.int64)] if num else np.zeros((0, 0), bool)
    if labels.ndim != 2:
        raise ValueError(f"expected labels of shape [N, C] or [N], got {labels.shape}")
    return labels.astype(bool)
