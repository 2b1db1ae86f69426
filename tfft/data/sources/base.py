"""The shapes every data source shares: `Split`, `DataSplits`, the `DataSource` interface and `SOURCES`.

A data source is one scheme of `data.source` (a folder, `csv:`, `tfds:`, `builtin:`, `tfrecord:`).
Its class parses the spec once into a typed object (`source_of(spec)`), which the commands ask
instead of parsing the text themselves: whether the examples are files on disk (`has_files`),
the task its labels give (`task`), a cheap check before heavy work (`check`), the listed
examples (`load`), and the element decoder the pipeline maps (`element_decoder`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional

import numpy as np

from tfft.config import DataConfig
from tfft.data import multilabel as _multilabel
from tfft.errors import UserError
from tfft.registry import Registry

MAX_SKIPPED_PRINTED = 10


@dataclass
class Split:
    """The examples of one split.

    For files (`kind == "files"`): `paths` (str), `labels` (int32), `routes` (int8: 0 TF decode,
    1 PIL decode), `sizes` ((width, height) int32) and `formats` (PIL's format name: "JPEG",
    "PNG", ...) are parallel numpy arrays. For
    `kind == "builtin"`: `ids` are `builtin:shapes` image ids. For `kind == "tfds"`: `tfds` holds
    `{"builder", "split", "image_key", "label_key"}` (and `indices`, the examples of that TFDS split
    a val carve keeps), and `labels` may be None until counted. For `kind == "records"` (packed
    TFRecord shards), `paths` are the examples' keys, `records` int64 [N, 3] rows (shard index,
    byte offset, length) into `shards`, and `routes`, `sizes`, `formats` are as for files.
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
    records: Optional[np.ndarray] = None
    shards: Optional[list[str]] = None
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
    >>> splits = source_of("builtin:shapes").load(DataConfig(builtin_per_class=10), seed=0)
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
    def origin(self) -> "DataSource":
        """The parsed source these splits came from (`source_of(self.source)`)."""
        return source_of(self.source)

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
        labels = labels_of(self.splits[split])
        if labels.ndim == 2:  # multi-label: images that carry each label
            return {name: int(labels[:, i].sum()) for i, name in enumerate(self.class_names)}
        found = np.bincount(labels, minlength=len(self.class_names)) if len(labels) else \
            np.zeros(len(self.class_names), dtype=np.int64)
        return {name: int(found[i]) for i, name in enumerate(self.class_names)}


def labels_of(split: Split) -> np.ndarray:
    if split.labels is None and split.kind == "tfds":
        from tfft.data.sources.tfds import tfds_labels

        split.labels = tfds_labels(split)
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
            report["splits"][name]["labels_per_image"] = _multilabel.labels_per_image(labels_of(split))
    return report




# -- the interface -------------------------------------------------------------------------------


class DataSource:
    """One parsed `data.source`: a subclass per scheme, registered in `SOURCES`.

    Subclasses set `prefix` (`"csv:"`; "" for the plain folder) and implement `load`; the rest
    has defaults. `claims(spec)` says whether a spec is theirs (by default: it starts with
    `prefix`); `source_of` asks the registered classes in order.

    Args:
        spec: the `data.source` text, stripped.

    Example:
    >>> source = source_of("builtin:shapes")
    >>> source.name, source.has_files, source.task()
    ('builtin', False, 'single_label')
    """

    name: ClassVar[str] = ""
    prefix: ClassVar[str] = ""
    has_files: ClassVar[bool] = True  # examples are image files evaluate/predict/export can read by path

    def __init__(self, spec: str):
        self.spec = spec.strip()
        self.location = self.spec[len(self.prefix):]  # what follows the scheme: a path, a dataset name

    @classmethod
    def claims(cls, spec: str) -> bool:
        return bool(cls.prefix) and spec.startswith(cls.prefix)

    def check(self) -> None:
        """Refuse (a `UserError` on `data.source`) what `load` would refuse first, reading no image."""

    def task(self, task: str = "auto") -> str:
        """The task of this source's labels for a config's `task` (auto: single-label)."""
        if task not in _multilabel.TASKS:
            raise UserError("task", f"unknown task {task!r}", f"use one of {', '.join(_multilabel.TASKS)}")
        return "single_label" if task == "auto" else task

    def load(self, data_cfg: DataConfig, seed: int, task: str = "auto") -> "DataSplits":
        """List (never decode) the examples into train / val / test; deterministic in `seed`."""
        raise NotImplementedError

    def keys(self, split: Split) -> list[str]:
        """One stable name per example of `split` (what cross-validation folds and a run's split
        lists record); by default `tfft.data.sources.split.example_keys`."""
        from tfft.data.sources.split import example_keys

        return example_keys(split)

    def element_decoder(self, split: Split, image_size: tuple[int, int],
                        fast_decode: bool = True) -> tuple[Callable[[Any], Any], int, bool]:
        """`(index -> (uint8 image [h, w, 3] as decoded, label), number of elements, may be large)`
        for `tfft.data.make_dataset`; by default the file or generated-image decoder of the split's kind."""
        from tfft.data import pipeline

        return pipeline.element_decoder(split, image_size, fast_decode)

    def ordered(self, split: Split, image_size: tuple[int, int],
                fast_decode: bool = True) -> Optional[tuple[Any, Callable[..., Any], bool]]:
        """For a pass in the split's order (not training): `(elements, decode, may_be_large)`, a
        dataset, `decode(*element) -> (image as decoded, label)` and whether an image may be too
        large to batch as decoded, when the source streams better than it reads by index; None
        (the default): `element_decoder` over the indices."""
        return None

    shards_by_file = False
    """True when `worker_stream` gives each worker of a multi-worker run its own files."""

    def worker_stream(self, split: Split, image_size: tuple[int, int], fast_decode: bool,
                      worker: tuple[int, int], shuffle_buffer: int = 10_000
                      ) -> Optional[tuple[Callable[[int], Any], Callable[..., Any], bool]]:
        """For training on worker `worker = (index, count)` of a multi-worker run, when the source
        shards by file (`shards_by_file`): `(elements_of, decode, may_be_large)`, where
        `elements_of(shuffle_seed)` is that worker's examples (from its files only) through a
        `shuffle_buffer` seeded with `shuffle_seed`; None (the default): every worker makes the same batches and keeps its part."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


SOURCES: Registry[type[DataSource]] = Registry(
    "data source", where="data.source",
    hint="use a folder path, csv:FILE, tfds:NAME[:SPLIT], tfrecord:DIR or builtin:shapes")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(?!//)")


def source_of(spec: str) -> DataSource:
    """The registered `DataSource` for a `data.source` spec, parsed (no file is read).

    Raises:
        UserError: `data.source`: a `scheme:` no registered source claims.

    Example:
    >>> source_of("csv:/data/pets.csv").location
    '/data/pets.csv'
    >>> source_of("zip:/data/pets.zip")
    Traceback (most recent call last):
    ...
    tfft.errors.UserError: data.source: unknown source scheme 'zip:' in 'zip:/data/pets.zip' (hint: ...)
    """
    import os

    spec = str(spec).strip()
    found = SOURCES.find(lambda _, cls: cls.claims(spec))
    if found is not None:
        return found[1](spec)
    scheme = _SCHEME.match(spec)
    if scheme and not os.path.exists(spec):
        prefixes = ", ".join(f"{cls.prefix}..." for _, cls in SOURCES.items() if cls.prefix)
        raise UserError("data.source", f"unknown source scheme {scheme.group(1) + ':'!r} in {spec!r}",
                        f"use a folder path or one of: {prefixes}")
    return SOURCES.get("folder")(spec)
