"""Data sources: image folders, CSV manifests, TFDS datasets and `builtin:shapes[-multi]` -> `DataSplits`.

`load_splits(data_cfg, seed)` lists (but never loads) the images, scans them once for unreadable
files, and splits them into train / val / test. Everything is deterministic in `seed`.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from tfft.config import DataConfig
from tfft.data import decode as _decode
from tfft.data import index as _index
from tfft.data import multilabel as _multilabel
from tfft.data import rules as _rules
from tfft.data import shapes as _shapes
from tfft.data import stratify as _stratify
from tfft.data.rules import SPLIT_ALIASES, SPLIT_NAMES, list_class_folders, split_folders
from tfft.errors import DataError, UserError
from tfft.wording import plural

MAX_SKIPPED_PRINTED = 10


@dataclass
class Split:
    """The examples of one split.

    For files (`kind == "files"`): `paths` (str), `labels` (int32), `routes` (int8: 0 TF decode,
    1 PIL decode), `sizes` ((width, height) int32) and `formats` (PIL's format name: "JPEG",
    "PNG", ...) are parallel numpy arrays. For
    `kind == "builtin"`: `ids` are `builtin:shapes` image ids. For `kind == "tfds"`: `tfds` holds
    `{"builder", "split", "image_key", "label_key"}` (and `indices`, the examples of that TFDS split
    a val carve keeps), and `labels` may be None until counted.
    In a multi-label `DataSplits`, `labels` is an int32 [N, C] multi-hot matrix; `builtin` names
    the generated set (`shapes`, `shapes-multi`).
    """

    name: str
    kind: str = "files"
    paths: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    routes: Optional[np.ndarray] = None
    sizes: Optional[np.ndarray] = None
    formats: Optional[np.ndarray] = None
    ids: Optional[np.ndarray] = None
    tfds: Optional[dict[str, Any]] = None
    num_examples: int = 0
    builtin_per_class: int = 0
    builtin: str = "shapes"

    def __len__(self) -> int:
        if self.labels is not None:
            return int(len(self.labels))
        return int(self.num_examples)


@dataclass
class DataSplits:
    """Class names, the examples of each split, and the files that were skipped.

    Example:
    >>> from tfft.config import DataConfig
    >>> splits = load_splits(DataConfig(source="builtin:shapes", builtin_per_class=10), seed=0)
    >>> splits.class_names[:3], len(splits.splits["train"])
    (['circle', 'square', 'triangle'], 64)
    """

    class_names: list[str]
    splits: dict[str, Split]
    skipped: list[dict[str, str]] = field(default_factory=list)
    source: str = ""
    kind: str = "files"
    task: str = "single_label"  # or "multi_label": labels are int32 [N, C] multi-hot
    # Warnings found while listing (rows dropped as repeats, one file reached twice): see tfft.data.rules.
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def multi_label(self) -> bool:
        return self.task == "multi_label"

    def __getitem__(self, name: str) -> Split:
        return self.splits[name]

    def counts(self, split: str) -> dict[str, int]:
        """Images per class in `split` (every class listed, zeros included)."""
        labels = _labels_of(self.splits[split])
        if labels.ndim == 2:  # multi-label: images that carry each label
            return {name: int(labels[:, i].sum()) for i, name in enumerate(self.class_names)}
        found = np.bincount(labels, minlength=len(self.class_names)) if len(labels) else \
            np.zeros(len(self.class_names), dtype=np.int64)
        return {name: int(found[i]) for i, name in enumerate(self.class_names)}


def _labels_of(split: Split) -> np.ndarray:
    if split.labels is None and split.kind == "tfds":
        split.labels = _tfds_labels(split)
    return split.labels if split.labels is not None else np.zeros(0, np.int32)


def data_report(splits: DataSplits) -> dict[str, Any]:
    """The content of `data_report.json`: images used per split and class, and skipped files.

    Example:
    >>> report = data_report(splits)  # doctest: +SKIP
    >>> report["splits"]["train"]["images"], report["skipped"][:1]  # doctest: +SKIP
    (800, [{'path': 'x/cat/bad.jpg', 'reason': 'empty file (0 bytes)'}])
    """
    report = {
        "source": splits.source,
        "classes": list(splits.class_names),
        "splits": {name: {"images": len(split), "per_class": splits.counts(name)}
                   for name, split in splits.splits.items()},
        "skipped_count": len(splits.skipped),
        "skipped": list(splits.skipped),
    }
    if splits.findings:
        report["findings"] = list(splits.findings)
    if splits.multi_label:  # per_class counts images per label; add how many labels an image has
        report["task"] = splits.task
        for name, split in splits.splits.items():
            report["splits"][name]["labels_per_image"] = _multilabel.labels_per_image(_labels_of(split))
    return report


# ------------------------------------------------------------------------------------------------


def load_splits(data_cfg: DataConfig, seed: int, task: str = "auto", *, echo: bool = True) -> DataSplits:
    """Resolve `data_cfg.source` into class names, train/val/test examples and skipped files.

    Sources:
        - `path/to/folder`: class subfolders; with `train/` (and optional `val/`, `test/`) inside
          those are used, otherwise a stratified split by `val_split` / `test_split`. Split
          folders may have the names of `SPLIT_ALIASES` (`validation/`, `dev/`, `testing/`, ...).
        - `csv:path/to/manifest.csv`: columns `path,label[,split]`, paths relative to the CSV; a
          file listed with two labels or in two splits is refused, an exact repeat dropped.
        - `tfds:NAME[:SPLIT]`: a prepared TensorFlow Datasets dataset (never downloaded here).
        - `csv:path/to/manifest.csv` with columns `path,labels[,split]`: labels separated by
          spaces (multi-label; an empty cell is an image with no positive label).
        - `builtin:shapes`: a generated 8-class dataset (`data.builtin_per_class` per class).
        - `builtin:shapes-multi`: 0-3 of those shapes per image, labelled with the set
          (`8 * data.builtin_per_class` images).

    Args:
        data_cfg: the `data` section of the config.
        seed: the run seed; splits and `limit_per_class` subsets depend only on it.
        task: `auto` (multi-label when a `labels` manifest row has several labels or none,
            `builtin:shapes-multi`; single-label otherwise), `single_label` or `multi_label`
            (a single-label source then gets one-hot label vectors). Multi-label splits are
            stratified per label (`tfft.data.stratify`).
        echo: print skipped files and findings to stderr (`tfft data check` reports them itself).

    Returns:
        A `DataSplits`. Unreadable files are in `.skipped` (and in a warning of the `tfft` logger).

    Raises:
        UserError: a missing source, an unknown scheme, mismatched train/val classes.
        DataError: a class with no images; any unreadable file when `on_bad_image: error`;
            split folders beside class folders, a manifest's file with two labels or in two
            splits (`tfft.data.rules.SourceConflict`).

    Example:
    >>> cfg = DataConfig(source="photos/", val_split=0.2)  # doctest: +SKIP
    >>> splits = load_splits(cfg, seed=42)  # doctest: +SKIP
    >>> splits.class_names, splits.counts("val")  # doctest: +SKIP
    (['cat', 'dog'], {'cat': 80, 'dog': 80})
    """
    source = data_cfg.source.strip()
    if task not in _multilabel.TASKS:
        raise UserError("task", f"unknown task {task!r}", f"use one of {', '.join(_multilabel.TASKS)}")
    if source.startswith("builtin:"):
        result = _load_builtin(source, data_cfg, seed, task)
    elif source.startswith("tfds:"):
        result = _load_tfds(source, data_cfg, seed)
    elif source.startswith("csv:"):
        result = _load_csv(source, data_cfg, seed, task)
    else:
        result = _load_folder(source, data_cfg, seed)
    if task == "multi_label" and not result.multi_label:
        result = _as_multi_label(result)
    if echo:
        _report_skipped(result.skipped, source)
        for finding in result.findings:
            logging.getLogger(__name__).warning(f"warning: {finding['message']}")
    if data_cfg.fold_file is not None:
        result = apply_folds(result, data_cfg.fold_file, int(data_cfg.fold))
    return result


# -- cross-validation folds ----------------------------------------------------------------------

FOLD_COLUMNS = ("path", "label", "fold")
POOLED_SPLITS = ("train", "val")  # what cross-validation re-splits; a test split stays as it is


def example_keys(split: Split) -> list[str]:
    """One stable name per example of `split`: the absolute file path, or `builtin:NAME#ID`.

    Example:
    >>> splits = load_splits(DataConfig(source="builtin:shapes", builtin_per_class=4), seed=0)
    >>> example_keys(splits["train"])[:2]
    ['builtin:shapes#0', 'builtin:shapes#2']
    """
    if split.kind == "files":
        return [os.path.abspath(str(p)) for p in split.paths]
    if split.kind == "builtin":
        return [f"builtin:{split.builtin}#{int(i)}" for i in split.ids]
    raise UserError("data.source", f"cross-validation needs the examples listed one by one; a {split.kind} "
                    "source gives them only as a stream",
                    "use an image folder, csv:manifest.csv or builtin:shapes")


def split_lists(splits: DataSplits) -> dict[str, list[str]]:
    """Each split's examples after splitting, one `key<TAB>label(s)` line each, in split order.

    What a run trains and is scored on: a run's state records their `lists_digest`, so a resume
    on a changed folder is refused (`tfft.training.run`), and `tfft tune`'s in-memory feature
    store keys on it. A TFDS split, a stream, is named by its builder, split and size.

    Example:
    >>> splits = load_splits(DataConfig(source="builtin:shapes", builtin_per_class=4), seed=0)
    >>> split_lists(splits)["train"][:2]
    ['builtin:shapes#0\\tcircle', 'builtin:shapes#2\\tcircle']
    """
    out = {}
    for name, split in splits.splits.items():
        if split.kind == "tfds":
            out[name] = [f"tfds:{sorted(split.tfds.items())}#{split.num_examples}"]
            continue
        labels = split.labels
        names = [("|".join(splits.class_names[int(i)] for i in np.flatnonzero(row)) if labels.ndim == 2
                  else splits.class_names[int(row)]) for row in labels]
        out[name] = [f"{key}\t{label}" for key, label in zip(example_keys(split), names)]
    return out


def lists_digest(lists: dict[str, list[str]]) -> str:
    """A hex digest of `split_lists(...)`: equal digests, the same examples in the same splits."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(lists, sort_keys=True).encode()).hexdigest()


def pooled(splits: DataSplits) -> Split:
    """The train and val examples together (train first), as one `Split` named `pool`."""
    parts = [splits.splits[name] for name in POOLED_SPLITS if name in splits.splits]
    return _concat(parts, "pool")


def _concat(parts: list[Split], name: str) -> Split:
    first = parts[0]
    joined = {}
    for attr in ("paths", "labels", "routes", "sizes", "formats", "ids"):
        values = [getattr(p, attr) for p in parts]
        joined[attr] = None if any(v is None for v in values) else np.concatenate(values)
    return Split(name=name, kind=first.kind, builtin_per_class=first.builtin_per_class, builtin=first.builtin,
                 **joined)


def _take(split: Split, index: np.ndarray, name: str) -> Split:
    taken = {attr: (None if getattr(split, attr) is None else getattr(split, attr)[index])
             for attr in ("paths", "labels", "routes", "sizes", "formats", "ids")}
    return Split(name=name, kind=split.kind, builtin_per_class=split.builtin_per_class, builtin=split.builtin,
                 **taken)


def read_fold_file(path: str) -> dict[str, int]:
    """`{example key: fold}` from a fold-assignment CSV (`path,label,fold`, folds from 1)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError("data.fold_file", f"fold assignment not found: {str(file)!r}",
                        "it is written by `tfft cv`; run the fold through `tfft cv --resume`, or drop "
                        "data.fold_file and data.fold")
    with open(file, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not set(FOLD_COLUMNS) <= set(reader.fieldnames or []):
            raise UserError(str(file), f"expected the columns {','.join(FOLD_COLUMNS)}, got {reader.fieldnames}",
                            "the file is written by `tfft cv`")
        return {row["path"]: int(row["fold"]) for row in reader}


def apply_folds(splits: DataSplits, fold_file: str, fold: int) -> DataSplits:
    """Re-split train+val by a fold assignment: fold `fold` becomes val, the other folds train.

    Every train+val example must be in the file and the file must list no other (the same
    source, seed and `limit_per_class` as when it was written); a test split is kept as it is.
    """
    assignment = read_fold_file(fold_file)
    pool = pooled(splits)
    keys = example_keys(pool)
    missing = [k for k in keys if k not in assignment]
    extra = len(assignment) - (len(keys) - len(missing))
    if missing or extra:
        raise UserError("data.fold_file", f"{fold_file} does not match {splits.source}: "
                        f"{plural(len(missing), 'image')} not in the file (e.g. {missing[:1]}), {extra} listed that the "
                        "source does not give", "the data changed since `tfft cv` wrote it: start a new cv")
    folds = np.asarray([assignment[k] for k in keys])
    if fold not in set(folds.tolist()):
        raise UserError("data.fold", f"fold {fold} is not in {fold_file} (folds {sorted(set(folds.tolist()))})",
                        "choose one of those")
    out = {"train": _take(pool, np.flatnonzero(folds != fold), "train"),
           "val": _take(pool, np.flatnonzero(folds == fold), "val")}
    if "test" in splits.splits:
        out["test"] = splits.splits["test"]
    return DataSplits(class_names=list(splits.class_names), splits=out, skipped=list(splits.skipped),
                      source=splits.source, kind=splits.kind, task=splits.task, findings=list(splits.findings))


def _as_multi_label(splits: DataSplits) -> DataSplits:
    """A single-label source read as multi-label: each image's class as a one-hot label vector."""
    for split in splits.splits.values():
        labels = _labels_of(split)
        split.labels = _multilabel.one_hot(labels, splits.num_classes)
    splits.task = "multi_label"
    return splits


def _report_skipped(skipped: list[dict[str, str]], source: str) -> None:
    """Warn of the unreadable files (through the `tfft` logger: a command shows it once, however
    often its folds read the source; a run also lists them in its data_report.json)."""
    if not skipped:
        return
    lines = [f"warning: skipped {plural(len(skipped), 'unreadable file')}:"]
    for item in skipped[:MAX_SKIPPED_PRINTED]:
        lines.append(f"  {item['path']}: {item['reason']}")
    if len(skipped) > MAX_SKIPPED_PRINTED:
        lines.append(f"  ... and {len(skipped) - MAX_SKIPPED_PRINTED} more (`tfft data check {source}` lists them all)")
    logging.getLogger(__name__).warning("\n".join(lines))


# -- folders -------------------------------------------------------------------------------------


def list_images(folder: Path) -> list[str]:
    """Image files under `folder` (recursively, sorted; hidden files/folders and other extensions
    ignored)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if _decode.is_image_file(name):
                found.append(os.path.join(dirpath, name))
    return found


def _class_seed(seed: int, name: str, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8")), salt])


def _stratified(per_class: dict[str, list[Any]], val_split: float, test_split: float,
                seed: int) -> dict[str, dict[str, list[Any]]]:
    """Split each class's items by fractions, with a permutation seeded by (seed, class)."""
    out: dict[str, dict[str, list[Any]]] = {"train": {}, "val": {}, "test": {}}
    for name, items in per_class.items():
        n = len(items)
        order = _class_seed(seed, name).permutation(n)
        shuffled = [items[i] for i in order]
        n_val = int(round(n * val_split))
        n_test = int(round(n * test_split))
        if n_val + n_test >= n:  # keep at least one training image
            overflow = n_val + n_test - (n - 1)
            n_test = max(0, n_test - overflow)
            n_val = max(0, min(n_val, n - 1 - n_test))
        out["val"][name] = sorted(shuffled[:n_val])
        out["test"][name] = sorted(shuffled[n_val:n_val + n_test])
        out["train"][name] = sorted(shuffled[n_val + n_test:])
    return out


def _limit(items: list[Any], limit: Optional[int], seed: int, name: str, split: str) -> list[Any]:
    if limit is None or len(items) <= limit:
        return items
    salt = zlib.crc32(split.encode())
    keep = np.sort(_class_seed(seed, name, salt).permutation(len(items))[:limit])
    return [items[i] for i in keep]


def _hint_missing(source: str) -> str:
    return ("give a folder of class subfolders (e.g. photos/cat/*.jpg, photos/dog/*.jpg), "
            "csv:manifest.csv, tfds:NAME or builtin:shapes; relative paths are resolved "
            f"from the current directory ({os.getcwd()})")


def check_source(source: str) -> None:
    """Check that `data.source` names an existing folder or CSV manifest (or `builtin:`, `tfds:`),
    reading no image: what `load_splits` would first refuse, before anything heavy starts.

    Raises:
        UserError: `data.source`: an unknown scheme, a missing folder or manifest, a file given as a folder.

    Example:
    >>> check_source("builtin:shapes")
    >>> check_source("/nonexistent/photos")
    Traceback (most recent call last):
    ...
    tfft.errors.UserError: data.source: folder not found: '/nonexistent/photos' (hint: ...)
    """
    source = source.strip()
    if source.startswith(("builtin:", "tfds:")):
        return
    if source.startswith("csv:"):
        path = Path(source[len("csv:"):]).expanduser()
        if not path.is_file():
            raise UserError("data.source", f"CSV manifest not found: {str(path)!r}",
                            "write csv:path/to/manifest.csv with a header line `path,label[,split]`")
        return
    if ":" in source.split("/")[0] and not os.path.exists(source) and len(source.split(":")[0]) > 1:
        scheme = source.split(":")[0]
        raise UserError("data.source", f"unknown source scheme {scheme + ':'!r} in {source!r}",
                        "use a folder path, csv:FILE, tfds:NAME[:SPLIT] or builtin:shapes")
    root = Path(source).expanduser()
    if not root.exists():
        raise UserError("data.source", f"folder not found: {source!r}", _hint_missing(source))
    if not root.is_dir():
        raise UserError("data.source", f"expected a folder of class subfolders, got the file {source!r}",
                        "for a manifest write csv:" + source if source.endswith(".csv") else _hint_missing(source))


def _load_folder(source: str, data_cfg: DataConfig, seed: int) -> DataSplits:
    check_source(source)
    root = Path(source).expanduser()
    folders = split_folders(root)
    per_split: dict[str, dict[str, list[str]]]
    if folders:
        train_dir = folders["train"]
        class_names = list_class_folders(train_dir)
        if not class_names:
            raise DataError(str(train_dir), "no class subfolders",
                            f"put each class's images in its own subfolder, e.g. {train_dir.name}/cat/, "
                            f"{train_dir.name}/dog/")
        listed: dict[str, dict[str, list[str]]] = {}
        for split_name, folder in folders.items():
            names = list_class_folders(folder)
            if split_name != "train" and names != class_names:
                raise UserError(
                    str(folder), f"classes differ from {train_dir.name}/: {folder.name}/ has {names}, "
                    f"{train_dir.name}/ has {class_names}",
                    f"give {folder.name}/ the same class subfolders as {train_dir.name}/ (an empty folder is "
                    "fine for val/test only if you remove it)")
            listed[split_name] = {c: list_images(folder / c) for c in class_names}
        for c in class_names:
            if not listed["train"][c]:
                raise DataError(str(train_dir / c), "no images",
                                f"add images ({', '.join(_decode.IMAGE_EXTENSIONS)}) or remove the folder")
        findings = _rules.same_file_findings(listed)
        carve_val = "val" not in listed and data_cfg.val_split > 0
        carve_test = "test" not in listed and data_cfg.test_split > 0
        if carve_val or carve_test:
            carved = _stratified(listed["train"], data_cfg.val_split if carve_val else 0.0,
                                 data_cfg.test_split if carve_test else 0.0, seed)
            listed["train"] = carved["train"]
            if carve_val:
                listed["val"] = carved["val"]
            if carve_test:
                listed["test"] = carved["test"]
        per_split = listed
    else:
        class_names = list_class_folders(root)
        if not class_names:
            loose = list_images(root)
            raise DataError(str(root), "no class subfolders" + (f" ({len(loose)} loose images)" if loose else ""),
                            "put each class's images in its own subfolder, e.g. "
                            f"{root}/cat/*.jpg and {root}/dog/*.jpg")
        per_class = {c: list_images(root / c) for c in class_names}
        for c, files in per_class.items():
            if not files:
                raise DataError(str(root / c), "no images",
                                f"add images ({', '.join(_decode.IMAGE_EXTENSIONS)}) or remove the folder")
        findings = _rules.same_file_findings({"train": per_class})
        per_split = _stratified(per_class, data_cfg.val_split, data_cfg.test_split, seed)
        if data_cfg.test_split <= 0:
            per_split.pop("test")
        if data_cfg.val_split <= 0:
            per_split.pop("val")
    result = _finish_files(source, class_names, per_split, data_cfg, seed, [], where_root=root,
                           train_dir=folders.get("train"))
    result.findings = findings
    return result


def _finish_files(source: str, class_names: list[str], per_split: dict[str, dict[str, list[str]]],
                  data_cfg: DataConfig, seed: int, skipped: list[dict[str, str]],
                  where_root: Optional[Path] = None, train_dir: Optional[Path] = None) -> DataSplits:
    """Apply the per-class limit, scan the chosen files, drop unreadable ones, build `Split`s."""
    for split_name, per_class in per_split.items():
        for c in class_names:
            per_class[c] = _limit(per_class.get(c, []), data_cfg.limit_per_class, seed, c, split_name)
    every = [p for per_class in per_split.values() for c in class_names for p in per_class[c]]
    listed = {p: (c, split) for split, per_class in per_split.items() for c in class_names for p in per_class[c]}
    probes = {p.path: p for p in _index.scan(source, every, listed)}
    bad = [probes[p] for p in every if not probes[p].ok]
    if bad and data_cfg.on_bad_image == "error":
        first = bad[0]
        raise DataError(first.path, f"unreadable image: {first.reason}"
                        + (f" ({len(bad) - 1} more unreadable)" if len(bad) > 1 else ""),
                        "remove or fix the file, or set data.on_bad_image: skip to skip unreadable files")
    skipped = list(skipped) + [{"path": p.path, "reason": p.reason or "unreadable"} for p in bad]
    splits: dict[str, Split] = {}
    for split_name in SPLIT_NAMES:
        if split_name not in per_split:
            continue
        paths, labels, routes, sizes, formats = [], [], [], [], []
        for index, c in enumerate(class_names):
            for p in per_split[split_name][c]:
                probe = probes[p]
                if not probe.ok:
                    continue
                paths.append(p)
                labels.append(index)
                routes.append(probe.route)
                sizes.append((probe.width, probe.height))
                formats.append(probe.format or "")
        if split_name == "train":
            counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(class_names))
            empty = [c for c, n in zip(class_names, counts) if n == 0]
            if empty:
                where = str((train_dir / empty[0]) if train_dir is not None
                            else (where_root / empty[0]) if where_root else source)
                raise DataError(where, f"no readable images for class(es) {empty} in the training split",
                                "every class needs at least one readable training image; "
                                "see the skipped files above")
        splits[split_name] = Split(
            name=split_name, kind="files",
            paths=np.asarray(paths, dtype=object),
            labels=np.asarray(labels, dtype=np.int32),
            routes=np.asarray(routes, dtype=np.int8),
            sizes=np.asarray(sizes, dtype=np.int32).reshape(-1, 2),
            formats=np.asarray(formats, dtype=object))
    return DataSplits(class_names=list(class_names), splits=splits, skipped=skipped, source=source,
                      kind="files")


# -- csv -----------------------------------------------------------------------------------------


def _load_csv(source: str, data_cfg: DataConfig, seed: int, task: str = "auto") -> DataSplits:
    check_source(source)
    path = Path(source[len("csv:"):]).expanduser()
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if "path" in header and _multilabel.LABELS_COLUMN in header:
            rows_ml = _multilabel.read_rows(path, header, reader)
            return _load_labels_manifest(source, path, rows_ml, data_cfg, seed, task)
        if "path" not in header or "label" not in header:
            raise UserError(str(path), f"expected a header with columns path,label[,split] or "
                            f"path,labels[,split], got {header}",
                            "the first line of the CSV must name the columns")
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    base = path.parent
    has_split = "split" in header
    skipped: list[dict[str, str]] = []
    per_split: dict[str, dict[str, list[str]]] = {}
    labels_seen: set[str] = set()
    listed: list[tuple[str, str, str, tuple[str, ...]]] = []  # (where, split, file, (label,))
    for line, row in enumerate(rows, start=2):
        if not row.get("path"):
            continue
        label = row.get("label", "")
        if not label:
            raise UserError(f"{path}:{line}", f"empty label for {row['path']!r}", "every row needs a label")
        split_name = _rules.split_of_name(row.get("split") or "train") if has_split else "train"
        if split_name is None:
            raise UserError(f"{path}:{line}", f"unknown split {row.get('split')!r}", f"use {_rules.aliases_text()}")
        file_path = Path(row["path"]).expanduser()
        if not file_path.is_absolute():
            file_path = base / file_path
        labels_seen.add(label)
        listed.append((f"{path}:{line}", split_name, os.path.normpath(str(file_path)), (label,)))
    keep, findings = _rules.check_manifest_rows(path, listed)
    entries: list[tuple[str, str, str]] = []
    for _, split_name, file_path, (label,) in (listed[i] for i in keep):
        if not Path(file_path).is_file():
            skipped.append({"path": file_path, "reason": "file not found"})
            continue
        entries.append((split_name, label, file_path))
    class_names = sorted(labels_seen)
    if not class_names:
        raise DataError(str(path), "no images", "the manifest lists no rows")
    for split_name, label, file_path in entries:
        per_split.setdefault(split_name, {c: [] for c in class_names})[label].append(file_path)
    if "train" not in per_split:
        raise DataError(str(path), "no training images", "give rows with split=train (or no split column)")
    carve_val = "val" not in per_split and data_cfg.val_split > 0
    carve_test = "test" not in per_split and data_cfg.test_split > 0
    if carve_val or carve_test:
        carved = _stratified(per_split["train"], data_cfg.val_split if carve_val else 0.0,
                             data_cfg.test_split if carve_test else 0.0, seed)
        per_split["train"] = carved["train"]
        if carve_val:
            per_split["val"] = carved["val"]
        if carve_test:
            per_split["test"] = carved["test"]
    if data_cfg.on_bad_image == "error" and skipped:
        raise DataError(skipped[0]["path"], "file listed in the manifest was not found",
                        "fix the path (relative paths are resolved against the CSV's folder) or set "
                        "data.on_bad_image: skip")
    result = _finish_files(source, class_names, per_split, data_cfg, seed, skipped)
    result.findings = findings
    return result



def _load_labels_manifest(source: str, path: Path, rows: list[_multilabel.ManifestRow], data_cfg: DataConfig,
                          seed: int, task: str) -> DataSplits:
    """A `path,labels[,split]` manifest -> `DataSplits` (multi-label unless the task says otherwise).

    Classes are the sorted union of the labels; without val/test rows those splits are carved
    from train by iterative stratification (every label keeps a training image).
    """
    if not rows:
        raise DataError(str(path), "no images", "the manifest lists no rows")
    keep, findings = _rules.check_manifest_rows(path, [(r.where, r.split, r.path, r.labels) for r in rows])
    rows = [rows[i] for i in keep]
    task = _multilabel.resolve_task(task, rows)
    _multilabel.check_files_exist(rows)
    _multilabel.check_train_labels(rows)
    class_names = sorted({label for row in rows for label in row.labels})
    if not class_names:
        raise UserError(str(path), "no row has a label",
                        "write each image's labels in the labels column, separated by spaces")
    split_of = np.asarray([row.split for row in rows], dtype=object)
    if not (split_of == "train").any():
        raise DataError(str(path), "no training images", "give rows with split=train (or no split column)")
    labels = _multilabel.multi_hot([row.labels for row in rows], class_names)
    carve_val = not (split_of == "val").any() and data_cfg.val_split > 0
    carve_test = not (split_of == "test").any() and data_cfg.test_split > 0
    if carve_val or carve_test:
        train = np.flatnonzero(split_of == "train")
        subset = _stratify.split_fractions(labels[train], data_cfg.val_split if carve_val else 0.0,
                                           data_cfg.test_split if carve_test else 0.0, seed)
        split_of[train[subset == 1]] = "val"
        split_of[train[subset == 2]] = "test"
    chosen: dict[str, np.ndarray] = {}
    for split_name in SPLIT_NAMES:
        members = np.flatnonzero(split_of == split_name)
        if len(members):
            salt = zlib.crc32(split_name.encode())
            chosen[split_name] = members[_multilabel.limit_examples(labels[members], data_cfg.limit_per_class,
                                                                    seed ^ salt)]
    every = [rows[i].path for members in chosen.values() for i in members]
    listed = {rows[i].path: (" ".join(rows[i].labels), split) for split, members in chosen.items() for i in members}
    probes = {p.path: p for p in _index.scan(source, every, listed)}
    bad = [probes[p] for p in every if not probes[p].ok]
    if bad and data_cfg.on_bad_image == "error":
        raise DataError(bad[0].path, f"unreadable image: {bad[0].reason}"
                        + (f" ({len(bad) - 1} more unreadable)" if len(bad) > 1 else ""),
                        "remove or fix the file, or set data.on_bad_image: skip to skip unreadable files")
    skipped = [{"path": p.path, "reason": p.reason or "unreadable"} for p in bad]
    splits: dict[str, Split] = {}
    for split_name, members in chosen.items():
        members = np.asarray([i for i in members if probes[rows[i].path].ok], dtype=np.int64)
        part = labels[members] if len(members) else np.zeros((0, len(class_names)), np.int32)
        if split_name == "train":
            empty = [c for c, n in zip(class_names, part.sum(axis=0)) if n == 0]
            if empty:
                raise DataError(source, f"no readable training images for label(s) {empty}",
                                "every label needs at least one readable training image; "
                                "see the skipped files above")
        if task == "single_label":
            part = part.argmax(axis=1).astype(np.int32)
        splits[split_name] = Split(
            name=split_name, kind="files",
            paths=np.asarray([os.path.normpath(rows[i].path) for i in members], dtype=object),
            labels=part,
            routes=np.asarray([probes[rows[i].path].route for i in members], dtype=np.int8),
            sizes=np.asarray([(probes[rows[i].path].width, probes[rows[i].path].height) for i in members],
                             dtype=np.int32).reshape(-1, 2),
            formats=np.asarray([probes[rows[i].path].format or "" for i in members], dtype=object))
    return DataSplits(class_names=class_names, splits=splits, skipped=skipped, source=source, kind="files",
                      task=task, findings=findings)

# -- builtin -------------------------------------------------------------------------------------


def _load_builtin(source: str, data_cfg: DataConfig, seed: int, task: str = "auto") -> DataSplits:
    name = source[len("builtin:"):]
    if name == "shapes-multi":
        return _load_shapes_multi(source, data_cfg, seed, task)
    if name != "shapes":
        raise UserError("data.source", f"unknown builtin dataset {name!r}",
                        "the builtin datasets are builtin:shapes and builtin:shapes-multi")
    per_class = int(data_cfg.builtin_per_class)
    if data_cfg.limit_per_class is not None:
        per_class = min(per_class, int(data_cfg.limit_per_class))
    ids = {c: list(range(i * per_class, (i + 1) * per_class)) for i, c in enumerate(_shapes.CLASSES)}
    parts = _stratified(ids, data_cfg.val_split, data_cfg.test_split, seed)
    splits = {}
    for split_name in SPLIT_NAMES:
        if split_name == "val" and data_cfg.val_split <= 0 or split_name == "test" and data_cfg.test_split <= 0:
            continue
        chosen = np.asarray([i for c in _shapes.CLASSES for i in parts[split_name][c]], dtype=np.int64)
        splits[split_name] = Split(name=split_name, kind="builtin", ids=chosen,
                                   labels=(chosen // per_class).astype(np.int32),
                                   builtin_per_class=per_class)
    return DataSplits(class_names=list(_shapes.CLASSES), splits=splits, skipped=[], source=source,
                      kind="builtin")



def _load_shapes_multi(source: str, data_cfg: DataConfig, seed: int, task: str) -> DataSplits:
    """`builtin:shapes-multi`: `8 * builtin_per_class` images of 0-3 shapes, split per label."""
    if task == "single_label":
        raise UserError("task", "task: single_label, but builtin:shapes-multi is multi-label data "
                        "(an image shows several shapes)",
                        "set task: multi_label (or auto), or use data.source: builtin:shapes")
    per_class = int(data_cfg.builtin_per_class)
    every = _shapes.multi_hot_for(per_class * len(_shapes.CLASSES))
    subset = _stratify.split_fractions(every, data_cfg.val_split, data_cfg.test_split, seed)
    splits = {}
    for index, split_name in enumerate(SPLIT_NAMES):
        if split_name == "val" and data_cfg.val_split <= 0 or split_name == "test" and data_cfg.test_split <= 0:
            continue
        members = np.flatnonzero(subset == index)
        members = members[_multilabel.limit_examples(every[members], data_cfg.limit_per_class,
                                                     seed ^ zlib.crc32(split_name.encode()))]
        splits[split_name] = Split(name=split_name, kind="builtin", ids=members.astype(np.int64),
                                   labels=every[members], builtin_per_class=per_class, builtin="shapes-multi")
    return DataSplits(class_names=list(_shapes.CLASSES), splits=splits, skipped=[], source=source,
                      kind="builtin", task="multi_label")

# -- tfds ----------------------------------------------------------------------------------------


def tfds_data_dir() -> str:
    """Where TFDS looks for prepared datasets: $TFDS_DATA_DIR or ~/tensorflow_datasets."""
    return os.path.expanduser(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")


def _tfds_offline_error(name: str, data_dir: str, detail: str = "") -> UserError:
    return UserError(
        "data.source",
        f"TFDS dataset {name!r} is not prepared in {data_dir}" + (f" ({detail})" if detail else "")
        + "; tfft never downloads datasets during training",
        f"on a machine with internet run `tfds build {name}` (or tfds.load('{name}')), then copy "
        f"its ~/tensorflow_datasets/{name.split('/')[0].split(':')[0]} folder into {data_dir}, "
        "or set TFDS_DATA_DIR to the folder that holds it")


def _load_tfds(source: str, data_cfg: DataConfig, seed: int) -> DataSplits:
    spec = source[len("tfds:"):]
    name, _, split_spec = spec.partition(":")
    version = re.match(r"^(\d+\.\d+\.\d+)(?::|$)", split_spec)
    if version:  # tfds:NAME:1.2.3[:SPLIT]
        name = f"{name}:{version.group(1)}"
        split_spec = split_spec[version.end():]
    if not name:
        raise UserError("data.source", f"expected tfds:NAME[:SPLIT], got {source!r}", "e.g. tfds:tf_flowers")
    data_dir = tfds_data_dir()
    folder = os.path.join(data_dir, name.split("/")[0].split(":")[0])
    # Check before touching tfds: building an unprepared dataset may try the network.
    if not os.path.isdir(folder) or not any(
            "dataset_info.json" in files for _, _, files in os.walk(folder)):
        raise _tfds_offline_error(name, data_dir)
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise UserError("data.source", "tensorflow_datasets is not installed",
                        "pip install tensorflow-datasets") from None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        info = builder.info
        if not os.path.isdir(str(builder.data_path)):
            raise FileNotFoundError(str(builder.data_path))
    except UserError:
        raise
    except Exception as exc:  # unknown name, version mismatch, ...
        raise _tfds_offline_error(name, data_dir, f"{type(exc).__name__}: {str(exc)[:200]}") from None
    image_key, label_key = "image", "label"
    if info.supervised_keys:
        keys = info.supervised_keys
        image_key, label_key = str(keys[0]), str(keys[1])
    try:
        class_names = list(info.features[label_key].names)
    except Exception:
        raise UserError("data.source", f"TFDS dataset {name!r} has no class-label feature {label_key!r}",
                        "use an image classification dataset such as tf_flowers") from None
    available = list(info.splits.keys())
    specs: dict[str, str] = {}
    carve: Optional[str] = None  # a TFDS split that val_split's stratified, seeded carve divides
    val_name = next((s for s in SPLIT_ALIASES["val"] if s in available), None)
    test_name = next((s for s in SPLIT_ALIASES["test"] if s in available), None)
    if split_spec:
        # tfds:NAME:TRAIN[,VAL[,TEST]] with TFDS split syntax, e.g. train[:80%],train[80%:]
        given = [part.strip() for part in split_spec.split(",") if part.strip()]
        specs = dict(zip(SPLIT_NAMES, given))
        if "val" not in specs and val_name is not None:
            specs["val"] = val_name
        elif "val" not in specs and data_cfg.val_split > 0 and "[" not in specs["train"]:
            carve = specs["train"]
    else:
        train_spec = "train" if "train" in available else available[0]
        if val_name is not None:
            specs["train"], specs["val"] = train_spec, val_name
        elif data_cfg.val_split > 0:
            specs["train"] = carve = train_spec
        else:
            specs["train"] = train_spec
        if test_name and test_name != train_spec:
            specs["test"] = test_name
    splits = {}
    for split_name, tspec in specs.items():
        try:
            n = int(info.splits[tspec].num_examples)
        except Exception as exc:
            raise UserError("data.source", f"bad TFDS split {tspec!r} for {name}: {exc}",
                            f"available splits: {available}; slicing like train[:80%] is allowed") from None
        splits[split_name] = Split(name=split_name, kind="tfds", num_examples=n,
                                   tfds={"builder": builder, "split": tspec, "image_key": image_key,
                                         "label_key": label_key})
    if carve is not None:
        splits.update(_carve_tfds(splits["train"], class_names, data_cfg.val_split, seed))
        splits = {name: splits[name] for name in SPLIT_NAMES if name in splits}
    return DataSplits(class_names=class_names, splits=splits, skipped=[], source=source, kind="tfds")


def _carve_tfds(whole: Split, class_names: list[str], val_split: float, seed: int) -> dict[str, Split]:
    """`whole` (a TFDS split) divided into train and val as a folder is: each class's examples
    in a permutation seeded by (seed, class), `val_split` of them to val (`_stratified`).
    Reads the split's labels once (images left encoded)."""
    labels = _tfds_labels(whole)
    per_class = {name: np.flatnonzero(labels == c).tolist() for c, name in enumerate(class_names)}
    parts = _stratified(per_class, val_split, 0.0, seed)
    carved = {}
    for name in ("train", "val"):
        index = np.sort(np.asarray([i for items in parts[name].values() for i in items], dtype=np.int64))
        carved[name] = Split(name=name, kind="tfds", num_examples=len(index), labels=labels[index],
                             tfds={**whole.tfds, "indices": index})
    return carved


def tfds_examples(split: Split) -> Any:
    """A TFDS split's examples (images still encoded) in their stored order: the whole TFDS
    split, or the examples its `indices` (a val carve) keep."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    info = split.tfds
    ds = info["builder"].as_dataset(split=info["split"], shuffle_files=False,
                                    decoders={info["image_key"]: tfds.decode.SkipDecoding()})
    if info.get("indices") is None:
        return ds
    keep = np.zeros(int(info["builder"].info.splits[info["split"]].num_examples), dtype=bool)
    keep[info["indices"]] = True
    keep = tf.constant(keep)
    return ds.enumerate().filter(lambda i, example: tf.gather(keep, i)).map(lambda i, example: example)


def _tfds_labels(split: Split) -> np.ndarray:
    label_key = split.tfds["label_key"]
    labels = [int(x) for x in tfds_examples(split).map(lambda ex: ex[label_key]).as_numpy_iterator()]
    return np.asarray(labels, dtype=np.int32)
