"""What every source shares once it has listed its examples: seeded stratified splits, per-class
limits, cross-validation folds (`apply_folds`), the split lists a run's state records, and the
warnings for skipped files."""

from __future__ import annotations

import csv
import logging
import zlib
from pathlib import Path
from typing import Any, Optional

import numpy as np

from tfft.data import multilabel as _multilabel
from tfft.data import fs as _fs
from tfft.data.sources.base import MAX_SKIPPED_PRINTED, DataSplits, Split, labels_of
from tfft.errors import UserError
from tfft.wording import plural

# -- cross-validation folds ----------------------------------------------------------------------

FOLD_COLUMNS = ("path", "label", "fold")
POOLED_SPLITS = ("train", "val")  # what cross-validation re-splits; a test split stays as it is


def example_keys(split: Split) -> list[str]:
    """One stable name per example of `split`: the absolute file path (a URL as it is), a packed
    record's key (`tfrecord:DIR#NAME`), or `builtin:NAME#ID`.

    Example:
    >>> from tfft.config import DataConfig
    >>> from tfft.data.sources import load_splits
    >>> splits = load_splits(DataConfig(source="builtin:shapes", builtin_per_class=4), seed=0)
    >>> example_keys(splits["train"])[:2]
    ['builtin:shapes#0', 'builtin:shapes#2']
    """
    if split.kind == "files":
        return [_fs.absolute(str(p)) for p in split.paths]
    if split.kind == "records":
        return [str(p) for p in split.paths]
    if split.kind == "builtin":
        return [f"builtin:{split.builtin}#{int(i)}" for i in split.ids]
    raise UserError("data.source", f"cross-validation needs the examples listed one by one; a {split.kind} "
                    "source gives them only as a stream",
                    "use an image folder, csv:manifest.csv, tfrecord:DIR or builtin:shapes")


def split_lists(splits: DataSplits) -> dict[str, list[str]]:
    """Each split's examples after splitting, one `key<TAB>label(s)` line each, in split order.

    What a run trains and is scored on: a run's state records their `lists_digest`, so a resume
    on a changed folder is refused (`tfft.training.run`), and `tfft tune`'s in-memory feature
    store keys on it. A TFDS split, a stream, is named by its builder, split and size.

    Example:
    >>> from tfft.config import DataConfig
    >>> from tfft.data.sources import load_splits
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
        out[name] = [f"{key}\t{label}" for key, label in zip(splits.origin.keys(split), names)]
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


_PER_EXAMPLE = ("paths", "labels", "routes", "sizes", "formats", "ids", "records")


def _concat(parts: list[Split], name: str) -> Split:
    first = parts[0]
    joined = {}
    for attr in _PER_EXAMPLE:
        values = [getattr(p, attr) for p in parts]
        joined[attr] = None if any(v is None for v in values) else np.concatenate(values)
    return Split(name=name, kind=first.kind, builtin_per_class=first.builtin_per_class, builtin=first.builtin,
                 shards=first.shards, **joined)


def _take(split: Split, index: np.ndarray, name: str) -> Split:
    taken = {attr: (None if getattr(split, attr) is None else getattr(split, attr)[index])
             for attr in _PER_EXAMPLE}
    return Split(name=name, kind=split.kind, builtin_per_class=split.builtin_per_class, builtin=split.builtin,
                 shards=split.shards, **taken)


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
    keys = splits.origin.keys(pool)
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


def as_multi_label(splits: DataSplits) -> DataSplits:
    """A single-label source read as multi-label: each image's class as a one-hot label vector."""
    for split in splits.splits.values():
        labels = labels_of(split)
        split.labels = _multilabel.one_hot(labels, splits.num_classes)
    splits.task = "multi_label"
    return splits


def report_skipped(skipped: list[dict[str, str]], source: str) -> None:
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


def _class_seed(seed: int, name: str, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8")), salt])


def stratified(per_class: dict[str, list[Any]], val_split: float, test_split: float,
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


def carve_missing(listed: dict[str, dict[str, list[Any]]], val_split: float, test_split: float,
                  seed: int) -> dict[str, dict[str, list[Any]]]:
    """`{split: {class: items}}` with a val (test) split carved from train by `stratified` when
    there is none and `val_split` (`test_split`) asks for one."""
    carve_val = "val" not in listed and val_split > 0
    carve_test = "test" not in listed and test_split > 0
    if carve_val or carve_test:
        carved = stratified(listed["train"], val_split if carve_val else 0.0, test_split if carve_test else 0.0,
                             seed)
        listed["train"] = carved["train"]
        if carve_val:
            listed["val"] = carved["val"]
        if carve_test:
            listed["test"] = carved["test"]
    return listed


def take_limit(items: list[Any], limit: Optional[int], seed: int, name: str, split: str) -> list[Any]:
    if limit is None or len(items) <= limit:
        return items
    salt = zlib.crc32(split.encode())
    keep = np.sort(_class_seed(seed, name, salt).permutation(len(items))[:limit])
    return [items[i] for i in keep]

