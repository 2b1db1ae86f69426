"""`data.source: builtin:shapes` and `builtin:shapes-multi`: generated images (no files, no network)."""

from __future__ import annotations

import zlib

import numpy as np

from tfft.config import DataConfig
from tfft.data import multilabel as _multilabel
from tfft.data import shapes as _shapes
from tfft.data import stratify as _stratify
from tfft.data.rules import SPLIT_NAMES
from tfft.data.sources.base import SOURCES, DataSource, DataSplits, Split
from tfft.data.sources.split import stratified
from tfft.errors import UserError

BUILTIN = ("shapes", "shapes-multi")


@SOURCES.register("builtin")
class BuiltinSource(DataSource):
    """A generated dataset; `location` is its name.

    Example:
    >>> BuiltinSource("builtin:shapes-multi").task()
    'multi_label'
    """

    name = "builtin"
    prefix = "builtin:"
    has_files = False

    def check(self) -> None:
        if self.location not in BUILTIN:
            raise UserError("data.source", f"unknown builtin dataset {self.location!r}",
                            "the builtin datasets are builtin:shapes and builtin:shapes-multi")

    def task(self, task: str = "auto") -> str:
        task = super().task(task) if task != "auto" else task
        if self.location != "shapes-multi":
            return "single_label" if task == "auto" else task
        if task == "single_label":
            raise UserError("task", "task: single_label, but builtin:shapes-multi is multi-label data "
                            "(an image shows several shapes)",
                            "set task: multi_label (or auto), or use data.source: builtin:shapes")
        return "multi_label"

    def load(self, data_cfg: DataConfig, seed: int, task: str = "auto") -> DataSplits:
        self.check()
        if self.location == "shapes-multi":
            self.task(task)
            return _load_shapes_multi(self.spec, data_cfg, seed)
        return _load_shapes(self.spec, data_cfg, seed)


def _load_shapes(source: str, data_cfg: DataConfig, seed: int) -> DataSplits:
    per_class = int(data_cfg.builtin_per_class)
    if data_cfg.limit_per_class is not None:
        per_class = min(per_class, int(data_cfg.limit_per_class))
    ids = {c: list(range(i * per_class, (i + 1) * per_class)) for i, c in enumerate(_shapes.CLASSES)}
    parts = stratified(ids, data_cfg.val_split, data_cfg.test_split, seed)
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



def _load_shapes_multi(source: str, data_cfg: DataConfig, seed: int) -> DataSplits:
    """`builtin:shapes-multi`: `8 * builtin_per_class` images of 0-3 shapes, split per label."""
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
