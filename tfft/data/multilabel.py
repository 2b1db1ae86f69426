"""Multi-label data: the `path,labels` manifest, the task rule, multi-hot labels and their counts.

A multi-label manifest is a CSV with the columns `path,labels[,split]`; the labels cell holds the
image's labels separated by spaces (`cat dog`), and an empty cell is an image with no positive
label. The classes are the sorted union of every row's labels. Pure Python and numpy: the loader
in `tfft.data.sources` turns the parsed rows into `Split`s.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from tfft.data import fs as _fs
from tfft.data.rules import aliases_text, split_of_name
from tfft.errors import UserError

TASKS = ("auto", "single_label", "multi_label")
LABELS_COLUMN = "labels"
# Characters that mean the labels were separated the wrong way (or the cell is not a label list).
_BAD_LABEL_CHARS = re.compile(r"[,;|\"'\[\]{}]")


@dataclass(frozen=True)
class ManifestRow:
    """One row of a `path,labels` manifest: where it is, which split, the file and its labels."""

    where: str  # "manifest.csv:LINE", for messages
    split: str
    path: str
    labels: tuple[str, ...]


def parse_labels_cell(cell: str, where: str) -> tuple[str, ...]:
    """The labels of one manifest cell: split on whitespace, duplicates dropped, order kept.

    Raises:
        UserError: a cell with commas, semicolons, pipes, quotes or brackets (labels are
            separated by spaces), naming the row.

    Example:
    >>> parse_labels_cell(" cat  dog cat", "m.csv:2")
    ('cat', 'dog')
    >>> parse_labels_cell("", "m.csv:3")
    ()
    """
    bad = _BAD_LABEL_CHARS.search(cell)
    if bad:
        raise UserError(where, f"malformed labels cell {cell!r} (contains {bad.group(0)!r})",
                        "separate an image's labels with spaces, e.g. `photo.jpg,cat dog`; label "
                        "names cannot contain , ; | quotes or brackets")
    return tuple(dict.fromkeys(cell.split()))


def manifest_reader(path: Union[str, os.PathLike]) -> csv.DictReader:
    """A manifest CSV's rows, read whole through `tfft.data.fs` (local or remote alike)."""
    return csv.DictReader(io.StringIO(_fs.read_text(os.fspath(path)), newline=""))


def read_rows(path: Path, header: Sequence[str], rows: Iterable[dict]) -> list[ManifestRow]:
    """Validate the rows of a `path,labels[,split]` manifest (as `csv.DictReader` reads them).

    Paths are resolved against the manifest's folder (`tfft.data.fs.resolve`: local or remote) and
    normalised; the file's existence is not checked here.
    A `split` cell may hold any name of `tfft.data.rules.SPLIT_ALIASES` (`validation`, `dev`, ...).

    Raises:
        UserError: naming `manifest.csv:LINE` for a row with too many or too few fields, an
            empty path, a malformed labels cell or an unknown split.
    """
    has_split = "split" in header
    out: list[ManifestRow] = []
    for line, raw in enumerate(rows, start=2):
        where = f"{path}:{line}"
        if None in raw:  # more fields than the header names
            extra = raw[None]
            raise UserError(where, f"row has {len(header) + len(extra)} fields, the header names "
                            f"{len(header)} ({','.join(header)})",
                            "separate an image's labels with spaces inside one cell, e.g. "
                            "`photo.jpg,cat dog` (not `photo.jpg,cat,dog`)")
        row = {(k or "").strip(): (v if v is not None else None) for k, v in raw.items()}
        if all(v is None or not str(v).strip() for v in row.values()):
            continue  # a blank line
        if any(row.get(column) is None for column in header if column in ("path", LABELS_COLUMN)):
            raise UserError(where, f"row has fewer fields than the header ({','.join(header)})",
                            "give every row a path and a labels cell (an empty cell, `photo.jpg,`, "
                            "means no positive label)")
        file_cell = str(row.get("path") or "").strip()
        if not file_cell:
            raise UserError(where, "the path cell is empty", "give the image's path (relative to the CSV's folder)")
        labels = parse_labels_cell(str(row.get(LABELS_COLUMN) or ""), where)
        split = split_of_name(str(row.get("split") or "train")) if has_split else "train"
        if split is None:
            raise UserError(where, f"unknown split {row.get('split')!r}", f"use {aliases_text()}")
        out.append(ManifestRow(where=where, split=split, path=_fs.resolve(str(path.parent), file_cell),
                               labels=labels))
    return out


def check_files_exist(rows: Sequence[ManifestRow]) -> None:
    """Raise for the first row whose file does not exist (a wrong manifest, not bad data).

    Raises:
        UserError: naming the row and how many other rows are missing their file.
    """
    missing = [row for row in rows if not _fs.isfile(row.path)]
    if missing:
        first = missing[0]
        more = f" ({len(missing) - 1} more rows name missing files)" if len(missing) > 1 else ""
        raise UserError(first.where, f"file not found: {first.path!r}{more}",
                        "fix the path (relative paths are resolved against the CSV's folder) or "
                        "remove the row")


def check_train_labels(rows: Sequence[ManifestRow]) -> None:
    """Every class must have a training image: name the first val/test row of a class that has none.

    Raises:
        UserError: naming the row and the labels that appear only outside train.
    """
    in_train = {label for row in rows if row.split == "train" for label in row.labels}
    for row in rows:
        only = [label for label in row.labels if label not in in_train]
        if only:
            raise UserError(row.where, f"label(s) {only} appear only in the {row.split} split, never in train",
                            "add training images with these labels, or drop them from this row "
                            "(a model cannot learn a label it never sees)")


def resolve_task(task: str, rows: Sequence[ManifestRow], task_key: str = "task") -> str:
    """`auto` -> `multi_label` when a row has several labels or none, else `single_label`.

    An empty labels cell only means something for multi-label data (an image with no positive
    label), so it makes `auto` multi-label as well.

    Raises:
        UserError: `task: single_label` on rows with several labels or none, naming the key and
            the first such row.

    Example:
    >>> rows = [ManifestRow("m.csv:2", "train", "a.png", ("cat",)),
    ...         ManifestRow("m.csv:3", "train", "b.png", ("cat", "dog"))]
    >>> resolve_task("auto", rows)
    'multi_label'
    """
    if task not in TASKS:
        raise UserError(task_key, f"unknown task {task!r}", f"use one of {', '.join(TASKS)}")
    odd = next((row for row in rows if len(row.labels) != 1), None)
    if task == "auto":
        return "multi_label" if odd is not None else "single_label"
    if task == "single_label" and odd is not None:
        what = f"{len(odd.labels)} labels ({' '.join(odd.labels)})" if odd.labels else "no label"
        raise UserError(task_key, f"task: single_label, but {odd.where} has {what}",
                        "set task: multi_label (or auto) for a manifest whose rows have several labels, "
                        "or give every row exactly one label")
    return task


def multi_hot(label_sets: Sequence[Sequence[str]], class_names: Sequence[str]) -> np.ndarray:
    """int32 [N, C] multi-hot matrix of label name sets.

    Example:
    >>> multi_hot([("cat",), ("cat", "dog"), ()], ["cat", "dog"]).tolist()
    [[1, 0], [1, 1], [0, 0]]
    """
    index = {name: i for i, name in enumerate(class_names)}
    out = np.zeros((len(label_sets), len(class_names)), dtype=np.int32)
    for row, labels in enumerate(label_sets):
        out[row, [index[label] for label in labels]] = 1
    return out


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """int class indices [N] -> int32 [N, C] multi-hot (a single-label source read as multi-label)."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.zeros((len(labels), int(num_classes)), dtype=np.int32)
    out[np.arange(len(labels)), labels] = 1
    return out


def labels_per_image(labels: np.ndarray) -> dict[str, int]:
    """How many images carry 0, 1, 2, ... labels: `{"0": n0, "1": n1, ...}` (JSON keys).

    Example:
    >>> labels_per_image(np.array([[1, 0], [1, 1], [0, 0], [0, 1]]))
    {'0': 1, '1': 2, '2': 1}
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not len(labels):
        return {}
    counts = np.bincount(labels.sum(axis=1).astype(np.int64))
    return {str(k): int(n) for k, n in enumerate(counts)}


def limit_examples(labels: np.ndarray, limit: Optional[int], seed: int) -> np.ndarray:
    """Indices (sorted) of a seeded subset where each label keeps at least min(limit, its count).

    `data.limit_per_class` for multi-label data: examples are visited in a seeded order and kept
    while one of their labels (or, for unlabelled examples, the unlabelled group) still has fewer
    than `limit` kept.
    """
    labels = np.asarray(labels).astype(bool)
    if limit is None:
        return np.arange(len(labels))
    order = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x11]).permutation(len(labels))
    kept_per_label = np.zeros(labels.shape[1] + 1, dtype=np.int64)
    keep = []
    for i in order:
        groups = np.append(labels[i], not labels[i].any())
        if (kept_per_label[groups] < int(limit)).any():
            keep.append(i)
            kept_per_label[groups] += 1
    return np.sort(np.asarray(keep, dtype=np.int64))


def manifest_examples(source: str, class_names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Every row of a `path,labels[,split]` manifest (any split) as paths and multi-hot labels.

    What `tfft evaluate RUN --data csv:OTHER.csv` scores: the whole manifest, the way a plain
    folder is evaluated whole, against the run's own classes.

    Args:
        source: `csv:PATH` (or PATH).
        class_names: the run's classes (labels.txt order).

    Raises:
        UserError: a missing manifest, a header without `path,labels`, a malformed row or a
            missing file (naming the row), a label the run does not know (naming the row).

    Example:
    >>> paths, y = manifest_examples("csv:other.csv", ["cat", "dog"])  # doctest: +SKIP
    """
    from tfft.data.sources import source_of

    path = _fs.path(source_of(source).location if source_of(source).name == "csv" else source)
    if not path.is_file():
        raise UserError(source, f"CSV manifest not found: {str(path)!r}",
                        "give csv:path/to/manifest.csv with a header line `path,labels[,split]`")
    reader = manifest_reader(path)
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "path" not in header or LABELS_COLUMN not in header:
        raise UserError(str(path), f"expected a header with columns path,labels[,split], got {header}",
                        "a multi-label run is evaluated on a manifest whose labels column lists each "
                        "image's labels separated by spaces")
    rows = read_rows(path, header, reader)
    check_files_exist(rows)
    known = set(class_names)
    for row in rows:
        unknown = [label for label in row.labels if label not in known]
        if unknown:
            raise UserError(row.where, f"label(s) {unknown} are not among the model's labels {list(class_names)}",
                            "evaluate on data labelled with the run's labels (labels.txt)")
    return [row.path for row in rows], multi_hot([row.labels for row in rows], class_names)


def task_of_source(source: str, task: str = "auto") -> str:
    """The task a config's `task` and `data.source` give, found before any image is scanned.

    `auto` reads a `path,labels` manifest's labels cells (the CSV text only) and is multi-label
    when a row has several labels or none; `builtin:shapes-multi` is multi-label; a folder, a
    `path,label` manifest, TFDS and `builtin:shapes` are single-label. An explicit task is
    checked against the manifest's rows.

    Raises:
        UserError: an unknown task; `task: single_label` on a manifest with several labels in a
            row or on `builtin:shapes-multi` (naming the key and the row).

    Example:
    >>> task_of_source("builtin:shapes-multi"), task_of_source("photos/")
    ('multi_label', 'single_label')
    """
    from tfft.data.sources import source_of

    if task not in TASKS:
        raise UserError("task", f"unknown task {task!r}", f"use one of {', '.join(TASKS)}")
    return source_of(source).task(task)
