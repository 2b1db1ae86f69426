"""`data.source: tfrecord:DIR`: TFRecord shards written by `tfft data pack` (`tfft.data.pack`).

`DIR/index.json` names the shards, the classes and the task; beside each shard a small JSON
sidecar (`SHARD.json`) lists its examples: key, label(s), split, the record's byte offset and
length, and the image's stored size and format. Listing therefore reads JSON only; no shard is
opened before the first step. The splits are the ones packed (a val carve by `data.val_split`
only when the pack holds no val split); `data.limit_per_class` is applied as for a folder.

Training reads records by offset (`tf.io.gfile`, any file system), in the order the stateless
epoch permutation gives: a packed folder trains on the same batches as the folder itself. A
pass in stored order (`make_dataset(..., training=False)`: evaluation, features) streams the
shards instead (`stream`: a `TFRecordDataset` per shard, interleaved), kept to the split's
examples by key. Training on a multi-worker run streams too, sharded by file (`worker_stream`):
worker `i` of `n` reads only the shards `i::n` of those its split uses, through a shuffle buffer
(`data.shuffle_buffer`, seeded by the run's seed and the epoch); a single worker keeps the
offset reads above (bitwise the folder's batches).
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Callable, Optional

import numpy as np

from tfft.config import DataConfig
from tfft.data import multilabel as _multilabel
from tfft.data import stratify as _stratify
from tfft.data import streams
from tfft.data.rules import SPLIT_NAMES
from tfft.data import fs as _fs
from tfft.data.sources.base import SOURCES, DataSource, DataSplits, Split
from tfft.data.sources.split import take_limit, carve_missing
from tfft.errors import DataError, UserError

INDEX = "index.json"
FORMAT = "tfft-pack/1"
FEATURES = ("image", "label", "split", "key", "width", "height")


def sidecar(shard: str) -> str:
    """The JSON file that lists a shard's examples."""
    return f"{shard}.json"


@SOURCES.register("tfrecord")
class TFRecordSource(DataSource):
    """Packed TFRecord shards; `location` is their folder (local, `gs://`, `ram://`, ...).

    Example:
    >>> TFRecordSource("tfrecord:/data/pets-packed").has_files
    False
    """

    name = "tfrecord"
    prefix = "tfrecord:"
    has_files = False
    shards_by_file = True

    def index(self) -> dict[str, Any]:
        """The pack's `index.json`; a `UserError` when there is none (not packed, or not finished)."""
        path = _fs.join(self.location, INDEX)
        if not _fs.isfile(path):
            raise UserError("data.source", f"no packed dataset in {self.location!r} ({INDEX} not found)",
                            f"write one with `tfft data pack SOURCE --out {self.location}` (a pack that "
                            "stopped resumes when run again)")
        index = json.loads(_fs.read_bytes(path))
        if index.get("format") != FORMAT:
            raise UserError("data.source", f"{path} is not a tfft pack (format {index.get('format')!r})",
                            f"expected format {FORMAT!r}; pack the data again")
        return index

    def check(self) -> None:
        self.index()

    def task(self, task: str = "auto") -> str:
        packed = self.index().get("task", "single_label")
        if task == "single_label" and packed == "multi_label":
            raise UserError("task", f"task: single_label, but {self.spec} holds multi-label data",
                            "set task: multi_label (or auto)")
        return packed if task == "auto" else super().task(task)

    def load(self, data_cfg: DataConfig, seed: int, task: str = "auto") -> DataSplits:
        return _load_records(self, data_cfg, seed, self.task(task))

    def element_decoder(self, split: Split, image_size: tuple[int, int],
                        fast_decode: bool = True) -> tuple[Callable[[Any], Any], int, bool]:
        return record_decoder(split, image_size, fast_decode)

    def ordered(self, split: Split, image_size: tuple[int, int], fast_decode: bool = True) -> Any:
        return ordered(split, image_size, fast_decode)

    def worker_stream(self, split: Split, image_size: tuple[int, int], fast_decode: bool,
                      worker: tuple[int, int], shuffle_buffer: int = 10_000) -> Any:
        return worker_stream(split, image_size, fast_decode, worker, shuffle_buffer)


def _load_records(source: TFRecordSource, data_cfg: DataConfig, seed: int, task: str) -> DataSplits:
    index = source.index()
    classes = list(index["classes"])
    shards = [_fs.join(source.location, s["file"]) for s in index["shards"]]
    columns: dict[str, list[Any]] = {k: [] for k in ("key", "label", "split", "record", "size", "format")}
    for number, shard in enumerate(shards):
        listed = json.loads(_fs.read_bytes(sidecar(shard)))
        n = len(listed["key"])
        columns["key"] += listed["key"]
        columns["label"] += listed["label"]
        columns["split"] += listed["split"]
        columns["record"] += [(number, o, n_) for o, n_ in zip(listed["offset"], listed["length"])]
        columns["size"] += [tuple(s) for s in listed["size"]]
        columns["format"] += listed["format"] if len(listed["format"]) == n else [""] * n
    split_of = np.asarray(columns["split"], dtype=object)
    if not (split_of == "train").any():
        raise DataError(source.location, "no training images in the pack", "pack a source with training images")
    multi = task == "multi_label"
    chosen = _choose(split_of, columns["label"], classes, multi, data_cfg, seed)
    splits = {}
    for name, members in chosen.items():
        labels = [columns["label"][i] for i in members]
        splits[name] = Split(
            name=name, kind="records", shards=shards,
            paths=np.asarray([f"{source.spec}#{columns['key'][i]}" for i in members], dtype=object),
            labels=(_multi_hot(labels, len(classes)) if multi else np.asarray(labels, dtype=np.int32)),
            routes=np.zeros(len(members), np.int8),
            sizes=np.asarray([columns["size"][i] for i in members], dtype=np.int32).reshape(-1, 2),
            formats=np.asarray([columns["format"][i] for i in members], dtype=object),
            records=np.asarray([columns["record"][i] for i in members], dtype=np.int64).reshape(-1, 3))
    return DataSplits(class_names=classes, splits=splits, skipped=list(index.get("skipped", [])),
                      source=source.spec, kind="records", task=task)


def _choose(split_of: np.ndarray, labels: list[Any], classes: list[str], multi: bool, data_cfg: DataConfig,
            seed: int) -> dict[str, np.ndarray]:
    """Each split's rows, as a folder's: class by class in stored order, a val carve when the pack
    has no val split, `limit_per_class` per split and class (per label for multi-label data)."""
    if multi:
        hot = _multi_hot(labels, len(classes))
        if not (split_of == "val").any() and data_cfg.val_split > 0:
            train = np.flatnonzero(split_of == "train")
            split_of = split_of.copy()
            split_of[train[_stratify.split_fractions(hot[train], data_cfg.val_split, 0.0, seed) == 1]] = "val"
        out = {}
        for name in SPLIT_NAMES:
            members = np.flatnonzero(split_of == name)
            if len(members):
                keep = _multilabel.limit_examples(hot[members], data_cfg.limit_per_class,
                                                  seed ^ zlib.crc32(name.encode()))
                out[name] = members[keep]
        return out
    rows: dict[str, dict[str, list[int]]] = {}
    for i, (name, label) in enumerate(zip(split_of, labels)):
        rows.setdefault(str(name), {c: [] for c in classes})[classes[int(label)]].append(i)
    rows = carve_missing(rows, data_cfg.val_split, 0.0, seed)  # a pack without val: carved as a folder is
    return {name: np.asarray([i for c in classes for i in take_limit(rows[name][c], data_cfg.limit_per_class,
                                                                 seed, c, name)], dtype=np.int64)
            for name in SPLIT_NAMES if name in rows}


def _multi_hot(labels: list[list[int]], num_classes: int) -> np.ndarray:
    out = np.zeros((len(labels), num_classes), np.int32)
    for row, positives in enumerate(labels):
        out[row, positives] = 1
    return out


def _read_record(shard: Any, offset: Any, length: Any) -> bytes:
    path = shard.decode() if isinstance(shard, bytes) else str(shard)
    with _fs.open_file(path, "rb") as handle:
        handle.seek(int(offset))
        return handle.read(int(length))


def parse(serialized: Any) -> dict[str, Any]:
    """One packed `tf.train.Example` -> `{"image": encoded bytes, "label": int64 [k], ...}` (in-graph)."""
    import tensorflow as tf

    spec = {"image": tf.io.FixedLenFeature([], tf.string), "label": tf.io.VarLenFeature(tf.int64),
            "split": tf.io.FixedLenFeature([], tf.string), "key": tf.io.FixedLenFeature([], tf.string),
            "width": tf.io.FixedLenFeature([], tf.int64), "height": tf.io.FixedLenFeature([], tf.int64)}
    example = tf.io.parse_single_example(serialized, spec)
    example["label"] = tf.sparse.to_dense(example["label"])
    return example


def record_decoder(split: Split, image_size: tuple[int, int],
                   fast_decode: bool = True) -> tuple[Callable[[Any], Any], int, bool]:
    """index -> (uint8 image as decoded, label) for a `records` split, reading each record by its
    offset; the images decode as the same files would (`pipeline.files_plan`)."""
    import tensorflow as tf

    from tfft.data import decode as _decode
    from tfft.data import pipeline as _pipeline
    from tfft.data import pyfunc as _pyfunc

    size = (int(image_size[0]), int(image_size[1]))
    shards = tf.constant(np.asarray(split.shards or [""], dtype=str), dtype=tf.string)
    records = tf.constant(split.records if len(split) else np.zeros((0, 3), np.int64), dtype=tf.int64)
    labels = tf.constant(split.labels, dtype=tf.int32)
    one_op, may_be_large = _pipeline.files_plan(split, size, fast_decode)

    def decode_record(index):
        where = tf.gather(records, index)
        data = _pyfunc.numpy_function(_read_record, [tf.gather(shards, where[0]), where[1], where[2]], tf.string)
        data.set_shape([])
        encoded = parse(data)["image"]
        image = one_op(encoded) if one_op is not None else _decode.decode_bytes_native(
            encoded, size, fast_decode=fast_decode)
        image.set_shape([None, None, 3])
        return image, tf.gather(labels, index)

    return decode_record, len(split), may_be_large


def stream(split: Split, *, cycle_length: int = 4, worker: Optional[tuple[int, int]] = None) -> Any:
    """The parsed examples of the shards `split` reads, streamed (a `TFRecordDataset` per shard,
    `interleave`d deterministically), sharded by file: across a multi-worker run's workers by
    tf.data's auto-sharding (`AutoShardPolicy.AUTO`: by file where there are enough files), or
    explicitly with `worker=(index, count)`.

    Args:
        split: a `records` split (its `shards`).
        cycle_length: shards read at once (1 keeps the stored order).
        worker: `(index, count)`: read only the shards `index::count`.
    """
    import tensorflow as tf

    used = sorted({int(i) for i in split.records[:, 0]}) if len(split) else []
    files = [split.shards[i] for i in used]
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(files or [""], tf.string)).take(len(files))
    if worker is not None:
        ds = ds.shard(int(worker[1]), int(worker[0]))
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=max(1, int(cycle_length)),
                       num_parallel_calls=min(streams.PARALLEL, max(1, int(cycle_length))),
                       deterministic=True).map(parse)
    options = streams.options()  # and sharded here already: tf.data must not shard it again
    options.experimental_distribute.auto_shard_policy = (tf.data.experimental.AutoShardPolicy.AUTO if worker is None
                                                         else tf.data.experimental.AutoShardPolicy.OFF)
    return ds.with_options(options)


def _keyed(split: Split, examples: Any) -> Any:
    """Parsed examples -> (encoded image, position in `split`), those not in `split` dropped."""
    import tensorflow as tf

    keys = [str(p).split("#", 1)[1] for p in split.paths]
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
        tf.constant(keys or [""], tf.string), tf.range(max(1, len(keys)), dtype=tf.int64)), default_value=-1)
    elements = examples.map(lambda example: (example["image"], table.lookup(example["key"])))
    return elements.filter(lambda image, position: position >= 0)


def _decoder(split: Split, image_size: tuple[int, int], fast_decode: bool) -> tuple[Callable, bool]:
    """`decode(encoded, position) -> (image as decoded, label)` and whether an image may be large."""
    import tensorflow as tf

    from tfft.data import decode as _decode
    from tfft.data import pipeline as _pipeline

    size = (int(image_size[0]), int(image_size[1]))
    labels = tf.constant(split.labels, dtype=tf.int32)
    one_op, may_be_large = _pipeline.files_plan(split, size, fast_decode)

    def decode(encoded, position):
        image = one_op(encoded) if one_op is not None else _decode.decode_bytes_native(
            encoded, size, fast_decode=fast_decode)
        image.set_shape([None, None, 3])
        return image, tf.gather(labels, position)

    return decode, may_be_large


def ordered(split: Split, image_size: tuple[int, int], fast_decode: bool = True) -> tuple[Any, Callable, bool]:
    """A `records` split in its order, streamed (`stream(cycle_length=1)`: the stored order, which
    is the listed order) and kept to its members by key: `(elements, decode, may_be_large)`."""
    decode, may_be_large = _decoder(split, image_size, fast_decode)
    return _keyed(split, stream(split, cycle_length=1)), decode, may_be_large


def worker_shards(split: Split, worker: tuple[int, int]) -> list[str]:
    """The shard files worker `worker = (index, count)` reads: `index::count` of those `split` uses.

    Example:
    >>> worker_shards(splits["train"], (1, 2))  # doctest: +SKIP
    ['/data/packed/train-00001.tfrecord', '/data/packed/train-00003.tfrecord']
    """
    used = sorted({int(i) for i in split.records[:, 0]}) if len(split) else []
    return [split.shards[i] for i in used][int(worker[0])::int(worker[1])]


def worker_stream(split: Split, image_size: tuple[int, int], fast_decode: bool,
                  worker: tuple[int, int], shuffle_buffer: int = 10_000) -> tuple[Callable[[int], Any], Callable, bool]:
    """Worker `worker = (index, count)`'s training examples, streamed from its own shards only
    (`worker_shards`): `(elements_of, decode, may_be_large)`; `elements_of(shuffle_seed)` gives its
    examples, (encoded image, position), through a `shuffle_buffer` seeded with `shuffle_seed`.

    Raises:
        UserError: the worker has no shard (fewer shards than workers).
    """
    if not worker_shards(split, worker):
        used = len({int(i) for i in split.records[:, 0]}) if len(split) else 0
        raise UserError("data.source", f"worker {worker[0]} of {worker[1]} has no shard to read: the {split.name} "
                        f"split is in {used} shard(s), fewer than the workers",
                        "pack with more shards (a smaller `tfft data pack --per-shard`) or run fewer workers")
    decode, may_be_large = _decoder(split, image_size, fast_decode)
    own = _keyed(split, stream(split, worker=worker))

    def elements_of(shuffle_seed: int) -> Any:
        return own.shuffle(max(1, int(shuffle_buffer)), seed=int(shuffle_seed), reshuffle_each_iteration=False)

    return elements_of, decode, may_be_large
