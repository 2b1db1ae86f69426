"""Out-of-fold predictions on disk: arrays for programs, a CSV beside them for people.

A cross-validation writes each fold's predictions on its held-out images (`fold-k/val_predictions`)
and, once every fold is done, the whole out-of-fold set (`oof_predictions`), each twice:

- `NAME.npz`: `keys` (UTF-8 bytes [N]), `labels` (int32 [N] class indices, or uint8 [N, C] multi-hot),
  `folds` (int32 [N]), `probs` (float32 [N, C], the model's own values) and `class_names`
  (str [C]); read back without a Python object per row or per value;
- `NAME.csv`: `path,label,predicted,fold,p_<class>...` (probabilities to 6 decimals), streamed
  row by row, never held as a whole.

The arrays are written first and the CSV last (the CSV's presence marks a complete file set);
`read_predictions` reads the arrays when they are there and the CSV otherwise (studies written by
an older tfft).

Example:
>>> import numpy as np, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "oof_predictions.csv"
>>> write_predictions(path, ["a.jpg", "b.jpg"], np.array([0, 1]), np.array([1, 2]),
...                   np.array([[0.9, 0.1], [0.2, 0.8]]), ["cat", "dog"])
>>> oof = read_predictions(path)
>>> oof["keys"], oof["labels"].tolist(), oof["probs"].dtype.name
(['a.jpg', 'b.jpg'], [0, 1], 'float32')
>>> path.read_text().splitlines()[1]
'a.jpg,cat,cat,1,0.900000,0.100000'
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from tfft.atomic import atomic_path

ARRAYS_SUFFIX = ".npz"
_CHUNK = 4096  # rows formatted at once for the CSV


def label_cell(label: Any, class_names: Sequence[str]) -> str:
    """A class index -> its name; a multi-hot row -> its labels joined by spaces."""
    label = np.asarray(label)
    if label.ndim == 0:
        return class_names[int(label)]
    return " ".join(class_names[c] for c in np.flatnonzero(label > 0.5))


def arrays_path(path: Union[str, Path]) -> Path:
    """The `.npz` beside a predictions CSV."""
    return Path(path).with_suffix(ARRAYS_SUFFIX)


def write_predictions(path: Union[str, Path], keys: Sequence[str], labels: np.ndarray, folds: np.ndarray,
                      probs: np.ndarray, class_names: Sequence[str], thresholds: Optional[np.ndarray] = None) -> None:
    """Write the arrays (`.npz`) then the CSV of out-of-fold rows, both atomically.

    Args:
        path: the CSV (`.../oof_predictions.csv`); the arrays go beside it (`arrays_path`).
        keys: one path (or key) per row.
        labels: int [N] class indices, or [N, C] multi-hot (multi-label).
        folds: int [N], the fold that predicted each row.
        probs: [N, C] probabilities.
        class_names: the C class names.
        thresholds: multi-label only, [C] or [N, C]: `predicted` holds the labels at or above them.
    """
    probs = np.asarray(probs, np.float32)
    labels = np.asarray(labels)
    folds = np.asarray(folds, np.int32)
    with atomic_path(arrays_path(path)) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, keys=np.asarray([str(k).encode("utf-8") for k in keys], dtype=bytes), folds=folds, probs=probs,
                     labels=labels.astype(np.uint8 if labels.ndim == 2 else np.int32),
                     class_names=np.asarray(list(class_names), dtype=str))
    cuts = None if thresholds is None else np.broadcast_to(np.asarray(thresholds, np.float64), probs.shape)
    names = list(class_names)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "predicted", "fold"] + [f"p_{name}" for name in names])
            for start in range(0, len(probs), _CHUNK):
                block = probs[start:start + _CHUNK].astype(np.float64)
                cells = np.char.mod("%.6f", block)
                top = np.argmax(block, axis=1)
                for r in range(len(block)):
                    i = start + r
                    predicted = names[int(top[r])] if cuts is None else label_cell(block[r] >= cuts[i], names)
                    writer.writerow([keys[i], label_cell(labels[i], names), predicted, int(folds[i])]
                                    + cells[r].tolist())


def read_predictions(path: Union[str, Path], multi_label: bool = False) -> dict[str, Any]:
    """Read out-of-fold predictions: keys, labels, folds, probs, class names.

    The arrays beside the CSV when they are there (float32 probabilities as the model gave them);
    else the CSV. `multi_label`: the file is a multi-label study's; `labels` is then int [N, C]
    multi-hot, read from the space-separated `label` cells.

    Example:
    >>> oof = read_predictions("runs/pets-cv/oof_predictions.csv")  # doctest: +SKIP
    >>> oof["probs"].shape  # doctest: +SKIP
    (1040, 2)
    """
    arrays = arrays_path(path)
    if arrays.exists():
        with np.load(arrays, allow_pickle=False) as data:
            labels = data["labels"]
            return {"keys": [k.decode("utf-8") for k in data["keys"].tolist()], "labels": labels.astype(np.int32 if labels.ndim == 2 else np.int64),
                    "folds": data["folds"].astype(np.int64), "probs": data["probs"],
                    "class_names": data["class_names"].tolist()}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        columns = [c for c in header if c.startswith("p_")]
        class_names = [c[2:] for c in columns]
        at = [header.index(c) for c in columns]
        key_at, label_at, fold_at = header.index("path"), header.index("label"), header.index("fold")
        keys, label_cells, folds, probs = [], [], [], []
        for row in reader:
            keys.append(row[key_at])
            label_cells.append(row[label_at])
            folds.append(int(row[fold_at]))
            probs.append(np.asarray([row[j] for j in at], dtype=np.float64))
    index = {name: i for i, name in enumerate(class_names)}
    if multi_label:
        from tfft.data.multilabel import multi_hot

        labels = multi_hot([cell.split() for cell in label_cells], class_names)
    else:
        labels = np.asarray([index[cell] for cell in label_cells])
    return {"keys": keys, "labels": labels, "folds": np.asarray(folds),
            "probs": np.asarray(probs, dtype=np.float64).reshape(-1, len(class_names)), "class_names": class_names}


__all__ = ["write_predictions", "read_predictions", "arrays_path", "label_cell", "ARRAYS_SUFFIX"]
