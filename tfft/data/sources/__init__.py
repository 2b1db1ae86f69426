"""Data sources: image folders, CSV manifests, TFDS datasets, packed TFRecord shards and
`builtin:shapes[-multi]` -> `DataSplits`.

Each scheme is a `DataSource` class registered in `SOURCES` (`base.py`; one module per scheme:
`folder.py`, `manifest.py`, `tfds.py`, `builtin.py`, `tfrecord.py`); `source_of(spec)` parses a
`data.source` once. `load_splits(data_cfg, seed)` lists (but never loads) the images, scans them
once for unreadable files, and splits them into train / val / test (`split.py`: the seeded splits
and folds every source shares). Everything is deterministic in `seed`. Paths go through one
filesystem layer (`fs.py`): `gs://`, `ram://` and any scheme TensorFlow knows work where a local path does.
"""

from __future__ import annotations

import logging

from tfft.config import DataConfig
from tfft.data import multilabel as _multilabel
from tfft.data.rules import list_class_folders  # importable here, as before
from tfft.data.sources import builtin as _builtin  # noqa: F401  (registers builtin:)
from tfft.data.sources import manifest as _manifest  # noqa: F401  (registers csv:)
from tfft.data.sources import tfds as _tfds  # noqa: F401  (registers tfds:)
from tfft.data.sources import tfrecord as _tfrecord  # noqa: F401  (registers tfrecord:)
from tfft.data.sources import folder as _folder  # noqa: F401  (registers the plain folder, the fallback)
from tfft.data.sources.base import MAX_SKIPPED_PRINTED, SOURCES, DataSource, DataSplits, Split, data_report, source_of
from tfft.data.sources.files import list_images
from tfft.data.sources.split import (FOLD_COLUMNS, POOLED_SPLITS, as_multi_label, report_skipped, stratified,  # noqa: F401
                                     apply_folds, example_keys, lists_digest, pooled, read_fold_file, split_lists)
from tfft.data.sources.tfds import tfds_data_dir, tfds_examples
from tfft.errors import UserError


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
        - `tfrecord:DIR`: shards written by `tfft data pack` (labels and splits inside).
        - any `DataSource` registered in `SOURCES` (its `prefix`).

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
    result = source_of(source).load(data_cfg, seed, task)
    if task == "multi_label" and not result.multi_label:
        result = as_multi_label(result)
    if echo:
        report_skipped(result.skipped, source)
        for finding in result.findings:
            logging.getLogger(__name__).warning(f"warning: {finding['message']}")
    if data_cfg.fold_file is not None:
        result = apply_folds(result, data_cfg.fold_file, int(data_cfg.fold))
    return result



def check_source(source: str) -> None:
    """Check that `data.source` names an existing folder or CSV manifest (or `builtin:`, `tfds:`, ...),
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
    source_of(source).check()


__all__ = [
    "SOURCES", "DataSource", "DataSplits", "Split", "source_of", "load_splits", "check_source", "data_report",
    "example_keys", "split_lists", "lists_digest", "pooled", "apply_folds", "read_fold_file", "FOLD_COLUMNS",
    "POOLED_SPLITS", "MAX_SKIPPED_PRINTED", "list_images", "list_class_folders", "tfds_data_dir", "tfds_examples",
]
