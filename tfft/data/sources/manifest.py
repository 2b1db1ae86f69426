"""`data.source: csv:path/to/manifest.csv`: `path,label[,split]` (one label) or `path,labels[,split]`
(labels separated by spaces: multi-label) rows, paths relative to the CSV."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Union

import numpy as np

from tfft.config import DataConfig
from tfft.data import multilabel as _multilabel
from tfft.data import rules as _rules
from tfft.data import stratify as _stratify
from tfft.data.rules import SPLIT_NAMES
from tfft.data import fs as _fs
from tfft.data.sources.base import SOURCES, DataSource, DataSplits, Split
from tfft.data.sources.files import finish_files, scan
from tfft.data.sources.split import carve_missing
from tfft.errors import DataError, UserError


@SOURCES.register("csv")
class CsvSource(DataSource):
    """A CSV manifest; `location` is the CSV's path.

    Example:
    >>> CsvSource("csv:/data/pets.csv").location
    '/data/pets.csv'
    """

    name = "csv"
    prefix = "csv:"

    @property
    def path(self) -> Union[Path, _fs.GPath]:
        """The manifest's path: local, or on any file system `tfft.data.fs` knows (`gs://`, `ram://`)."""
        return _fs.path(self.location)

    def check(self) -> None:
        if not self.path.is_file():
            raise UserError("data.source", f"CSV manifest not found: {str(self.path)!r}",
                            "write csv:path/to/manifest.csv with a header line `path,label[,split]`")

    def task(self, task: str = "auto") -> str:
        """Multi-label when a `path,labels` manifest has a row of several labels or none (reads the text only)."""
        task = super().task(task) if task != "auto" else task
        if self.path.is_file():
            reader = _multilabel.manifest_reader(self.path)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if "path" in header and _multilabel.LABELS_COLUMN in header:
                return _multilabel.resolve_task(task, _multilabel.read_rows(self.path, header, reader))
        return "single_label" if task == "auto" else task

    def load(self, data_cfg: DataConfig, seed: int, task: str = "auto") -> DataSplits:
        return _load_csv(self, data_cfg, seed, task)


def _load_csv(manifest: CsvSource, data_cfg: DataConfig, seed: int, task: str = "auto") -> DataSplits:
    manifest.check()
    source, path = manifest.spec, manifest.path
    reader = _multilabel.manifest_reader(path)
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
        labels_seen.add(label)
        listed.append((f"{path}:{line}", split_name, _fs.resolve(str(base), row["path"]), (label,)))
    keep, findings = _rules.check_manifest_rows(path, listed)
    entries: list[tuple[str, str, str]] = []
    for _, split_name, file_path, (label,) in (listed[i] for i in keep):
        if not _fs.isfile(file_path):
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
    per_split = carve_missing(per_split, data_cfg.val_split, data_cfg.test_split, seed)
    if data_cfg.on_bad_image == "error" and skipped:
        raise DataError(skipped[0]["path"], "file listed in the manifest was not found",
                        "fix the path (relative paths are resolved against the CSV's folder) or set "
                        "data.on_bad_image: skip")
    result = finish_files(source, class_names, per_split, data_cfg, seed, skipped)
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
    probes = {p.path: p for p in scan(every, source, listed)}
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
            paths=np.asarray([rows[i].path for i in members], dtype=object),
            labels=part,
            routes=np.asarray([probes[rows[i].path].route for i in members], dtype=np.int8),
            sizes=np.asarray([(probes[rows[i].path].width, probes[rows[i].path].height) for i in members],
                             dtype=np.int32).reshape(-1, 2),
            formats=np.asarray([probes[rows[i].path].format or "" for i in members], dtype=object))
    return DataSplits(class_names=class_names, splits=splits, skipped=skipped, source=source, kind="files",
                      task=task, findings=findings)
