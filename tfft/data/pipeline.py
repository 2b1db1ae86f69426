"""tf.data input pipelines: deterministic per-epoch order, parallel decode, batched resize and augmentation.

Images are decoded in parallel and batched as decoded (`DecodedBatch`); each batch is then resized
in one compiled call (`resize_decoded`, bitwise `decode.resize`) or, with augmentation in the
pipeline, resized and warped in one (`on_decoded`). No float32 image is made per element (but
for the rare one too large to batch as decoded), and none is copied into a batch.

Determinism: the order of training epoch `e` is `numpy.random.default_rng([seed, e])
.permutation(n)`, batches are formed within the epoch (the last partial batch kept, so
`steps_per_epoch = ceil(n / batch_size)`), and the augmenter gets the stateless seed
`[seed, e * 100003 + batch_index]` (int32). A run resumed at epoch k therefore sees exactly the
batches an uninterrupted run would. Decoding is parallel (`streams.PARALLEL`) but ordered
(`deterministic=True`); memory is bounded by the prefetch buffers, never by the dataset size.
"""

from __future__ import annotations

import functools

import math
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import tensorflow as tf

from tfft.config import DataConfig
from tfft.data import decode as _decode
from tfft.data import decoded_cache as _decoded_cache
from tfft.data import streams as _streams
from tfft.data.decoded_batch import DecodedBatch, decoded_element, resize_decoded
from tfft.data import pyfunc as _pyfunc
from tfft.data import shapes as _shapes
from tfft.data.sources import DataSplits, Split, tfds_examples
from tfft.errors import UserError

EPOCH_STRIDE = 100003
_INT31 = 2**31 - 1


def steps_per_epoch(splits: DataSplits, split: str, batch_size: int) -> int:
    """Batches in one pass over `split`: ceil(n / batch_size) (the last partial batch is kept).

    Example:
    >>> steps_per_epoch(splits, "train", 32)  # doctest: +SKIP
    25
    """
    return int(math.ceil(len(splits.splits[split]) / int(batch_size)))


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of training epoch `epoch`: a permutation of range(n) from (seed, epoch) only.

    Example:
    >>> epoch_permutation(5, seed=1, epoch=0).tolist() == epoch_permutation(5, 1, 0).tolist()
    True
    """
    return np.random.default_rng([int(seed) % 2**63, int(epoch)]).permutation(int(n)).astype(np.int64)


def augment_seed(seed: int, epoch, batch_index):
    """The stateless seed ([2] int32) the augmenter gets for a batch: [seed, e*100003 + i]."""
    epoch = tf.cast(epoch, tf.int64)
    batch_index = tf.cast(batch_index, tf.int64)
    second = tf.math.floormod(epoch * EPOCH_STRIDE + batch_index, _INT31)
    return tf.cast(tf.stack([tf.constant(int(seed) % _INT31, tf.int64), second]), tf.int32)


def files_plan(split: Split, image_size: tuple[int, int], fast_decode: bool) -> tuple[Optional[Callable], bool]:
    """What the scan's headers tell about decoding a file split, so its per-element graph needs no
    branch: (one decode op for every file, or None; whether an image may decode to more values than
    4x its resized float32 self).

    One op when every file takes TF's route and either every file is a JPEG with the same DCT
    reduction (`decode_jpeg(ratio=r)`, what `decode_bytes_native` runs for each) or none is reduced
    (`decode_image`: bitwise `decode_jpeg` on JPEGs, and what `decode_bytes_native` runs for the
    rest). Each branch left out saves its instantiation in every fresh iterator (a training
    epoch's validation pass makes one).
    """
    n = len(split)
    if not n or split.formats is None or split.sizes is None or len(split.formats) != n or len(split.sizes) != n:
        return None, True
    width, height = split.sizes[:, 0].astype(np.int64), split.sizes[:, 1].astype(np.int64)
    jpeg = np.asarray(split.formats == "JPEG", dtype=bool)
    pil = np.asarray(split.routes == _decode.ROUTE_PIL, dtype=bool)
    ratios = np.asarray([_decode.dct_ratio(int(h), int(w), image_size, fast_decode) if j else 1
                         for h, w, j in zip(height, width, jpeg)], dtype=np.int64)
    bound = np.where(pil, 1, ratios)  # PIL's route reduces as it rotates: no smaller than the stored size counts
    may_be_large = bool(((height // bound) * (width // bound) > 4 * image_size[0] * image_size[1]).any())
    if pil.any():
        return None, may_be_large
    if jpeg.all() and (ratios == ratios[0]).all():
        ratio = int(ratios[0])
        return (lambda data: tf.io.decode_jpeg(data, channels=3, ratio=ratio)), may_be_large
    if (ratios == 1).all():
        return (lambda data: tf.io.decode_image(data, channels=3, expand_animations=False)), may_be_large
    return None, may_be_large


def element_decoder(split: Split, image_size: tuple[int, int],
                     fast_decode: bool = True) -> tuple[Callable[[Any], Any], int, bool]:
    """A function index -> (image uint8 [h, w, 3] as decoded, not yet resized, label int32) for
    file/builtin splits, the number of elements, and whether an image may be too large to batch
    as decoded. JPEGs are DCT-scaled for `image_size` unless `fast_decode` is False
    (`decode.dct_ratio`)."""
    size = (int(image_size[0]), int(image_size[1]))
    if split.kind == "files":
        paths = tf.constant(np.asarray(split.paths, dtype=str) if len(split) else np.zeros(0, dtype=str),
                            dtype=tf.string)
        labels = tf.constant(split.labels, dtype=tf.int32)
        routes = tf.constant(split.routes.astype(np.int32), dtype=tf.int32)

        all_native = bool(len(split)) and not bool((split.routes == _decode.ROUTE_PIL).any())
        one_op, may_be_large = files_plan(split, size, fast_decode)

        def decode_file(index):
            path = tf.gather(paths, index)
            if one_op is not None:  # the common case: no per-element branch at all
                image = one_op(tf.io.read_file(path))
                image.set_shape([None, None, 3])
            elif all_native:
                image = _decode.decode_bytes_native(tf.io.read_file(path), size, fast_decode=fast_decode)
            else:
                image = _decode.decode_path_raw(path, tf.gather(routes, index), size, fast_decode=fast_decode)
            return image, tf.gather(labels, index)

        return decode_file, len(split), may_be_large
    if split.kind == "builtin":
        ids = tf.constant(split.ids, dtype=tf.int64)
        labels = tf.constant(split.labels, dtype=tf.int32)
        per_class = int(split.builtin_per_class)
        multi = split.builtin == "shapes-multi"

        def render(global_id):
            return _shapes.render_multi(int(global_id)) if multi else _shapes.render_id(int(global_id), per_class)

        def decode_builtin(index):
            image = _pyfunc.numpy_function(render, [tf.gather(ids, index)], tf.uint8)
            image.set_shape([_shapes.NATIVE_SIZE, _shapes.NATIVE_SIZE, 3])
            return image, tf.gather(labels, index)

        return decode_builtin, len(split), _shapes.NATIVE_SIZE**2 > 4 * size[0] * size[1]
    raise ValueError(f"no element decoder for split kind {split.kind!r}")


def _tfds_base(split: Split, image_size: tuple[int, int], fast_decode: bool = True):
    info = split.tfds
    ds = tfds_examples(split)
    image_key, label_key = info["image_key"], info["label_key"]
    size = (int(image_size[0]), int(image_size[1]))

    def to_pair(example):
        data = example[image_key]
        return data, tf.cast(example[label_key], tf.int32)

    def decode(data, label):
        return _decode.decode_bytes_native(data, size, fast_decode=fast_decode), label

    return ds.map(_pyfunc.traced(to_pair)), decode


def make_dataset(splits: DataSplits, split: str, data_cfg: DataConfig, *, seed: int, training: bool,
                 epochs: Optional[range] = None,
                 augment_fn: Optional[Callable[[Any, Any, Any], Any]] = None,
                 skip_batches: int = 0,
                 on_decoded: Optional[Callable[[DecodedBatch, Any], Any]] = None,
                 decoded_cache: Optional[_decoded_cache.DecodedCachePolicy] = None,
                 input_context: Optional[tf.distribute.InputContext] = None) -> tf.data.Dataset:
    """A batched `tf.data.Dataset` of (images float32 [B, H, W, 3] in 0..255, labels int32 [B]).

    Multi-label splits give int32 [B, C] multi-hot label vectors instead.

    Args:
        splits: from `load_splits`.
        split: "train", "val" or "test".
        data_cfg: gives `image_size`, `batch_size` and `fast_decode` (and `shuffle_buffer` for TFDS).
        seed: the run seed.
        training: True: epoch `e` in a stateless order from (seed, e), augmented per batch;
            False: the split's fixed order, no augmentation, one pass.
        epochs: for training, the epochs to yield back to back (e.g. `range(3, 10)` when resuming
            at epoch 3); None means one epoch, epoch 0. Ignored when not training.
        augment_fn: `augment_fn(images, labels, seed) -> (images, labels)` applied to each
            training batch; `seed` is a [2] int32 tensor `[seed, e * 100003 + batch_index]`.
        skip_batches: training only: batches left out at the start of the first epoch in
            `epochs` (resuming inside an epoch); the others keep their index, so their content
            and augmentation are those of an uninterrupted run.
        on_decoded: training only: `on_decoded(decoded, seed) -> images` makes each batch's
            images [B, H, W, 3] float32 from the batch as decoded (a `DecodedBatch`, not yet
            resized), in place of the resize; `augment_fn` then gets its images with the same
            seed. Used to fuse the resize with the augmentation's warp.
        decoded_cache: training on files or builtin splits: keep the images as decoded between
            epochs (`tfft.data.decoded_cache`; None: off). The batches are bitwise the same.
        input_context: training, the worker's `tf.distribute.InputContext` when each worker makes
            its own input (`distribute_datasets_from_function`): with more than one input pipeline
            and a source that shards by file (`tfrecord:`), this worker streams only its own files
            (`DataSource.worker_stream`) in batches of the per-replica size, the same number of
            batches per epoch on every worker (a worker whose files run out starts them again).
            Otherwise ignored.

    Returns:
        A prefetched `tf.data.Dataset`; with training, `ceil(n / batch_size)` batches per epoch.

    Raises:
        UserError: when `split` is not one of the available splits.

    Example:
    >>> splits = load_splits(cfg.data, seed=cfg.seed)  # doctest: +SKIP
    >>> ds = make_dataset(splits, "train", cfg.data, seed=42, training=True, epochs=range(0, 5))  # doctest: +SKIP
    >>> images, labels = next(iter(ds))  # doctest: +SKIP
    """
    if split not in splits.splits:
        raise UserError("split", f"no {split!r} split in {splits.source!r}; have {sorted(splits.splits)}",
                        "set data.val_split / data.test_split, or add a val/ or test/ folder")
    stage = _Stage(splits.splits[split], (int(data_cfg.image_size[0]), int(data_cfg.image_size[1])),
                   int(data_cfg.batch_size), _decode.fast_decode_on(data_cfg), int(seed))
    if training:
        epoch_list = np.asarray(list(epochs if epochs is not None else range(0, 1)), dtype=np.int64)
        if stage.part.kind == "tfds":
            ds = _tfds_training(stage, splits, epoch_list, int(data_cfg.shuffle_buffer), int(skip_batches),
                                augment_fn, on_decoded)
        elif input_context is not None and input_context.num_input_pipelines > 1 and splits.origin.shards_by_file:
            ds = _worker_batches(stage, splits, input_context, int(data_cfg.shuffle_buffer), epoch_list,
                                 int(skip_batches), augment_fn, on_decoded)
        else:
            ds = _files_training(stage, splits, epoch_list, int(skip_batches), augment_fn, on_decoded,
                                 decoded_cache)
    else:
        ds = _evaluation(stage, splits, decoded_cache if split in CACHED_EVALUATION else None)
    return ds.prefetch(_streams.PREFETCH).with_options(_streams.options())


CACHED_EVALUATION = ("val",)  # read every epoch; the test split is read once, so never cached


class _Stage(NamedTuple):
    """What every stage of `make_dataset` reads: the split, the output size, the batch, the
    DCT-reduced decode on or off, the run seed."""

    part: Split
    size: tuple[int, int]
    batch: int
    fast_decode: bool
    seed: int


def _evaluation(stage: _Stage, splits: DataSplits,
                decoded_cache: Optional[_decoded_cache.DecodedCachePolicy]) -> tf.data.Dataset:
    """One pass in the split's fixed order, no augmentation: (images, labels) batches. With
    `decoded_cache` (the validation split), the first pass keeps the decoded images and later
    passes (each epoch's validation) decode only what the store lacks: the same batches."""
    part, size, batch = stage.part, stage.size, stage.batch
    if part.kind == "tfds":
        base, decode = _tfds_base(part, size, stage.fast_decode)
        return _resized_batches(_decoded_batches(base, decode, size, batch), size)
    stream = splits.origin.ordered(part, size, stage.fast_decode)  # a source's own stream
    if stream is not None:
        return _resized_batches(_decoded_batches(stream[0], stream[1], size, batch, stream[2]), size)
    decode, n, may_be_large = splits.origin.element_decoder(part, size, stage.fast_decode)  # the source decodes
    store = _decoded_cache.store_for(part, size, stage.fast_decode, decoded_cache)
    if store is None:
        return _resized_batches(_decoded_batches(tf.data.Dataset.range(n), decode, size, batch, may_be_large), size)
    plan = _Plan(n, batch, stage.seed, 0, ordered=True)
    batches = _decoding(plan, range(0, plan.per_pass if n else 0), decode, may_be_large, size, batch, part, store)
    return _resized_batches(batches.map(_pyfunc.traced(lambda fields, labels, epoch, index: (fields, labels))), size)


def _tfds_training(stage: _Stage, splits: DataSplits, epoch_list: np.ndarray, buffer: int, skip_batches: int,
                   augment_fn, on_decoded) -> tf.data.Dataset:
    """A TFDS split's training epochs: each shuffled with a seed from (run seed, epoch), concatenated."""
    base, decode = _tfds_base(stage.part, stage.size, stage.fast_decode)
    size, batch, seed = stage.size, stage.batch, stage.seed

    def tfds_epoch(epoch: int) -> tf.data.Dataset:
        # A Python-int shuffle seed: a tensor one fails in TF's get_seed under a global seed of 0
        # (`seed: 0` in a run), which compares the seed pair with (0, 0) in Python.
        shuffle_seed = ((seed % _INT31) * 1000003 + epoch) % 2**62
        index = tf.constant(epoch, tf.int64)
        skip = _skip_for(index, epoch_list, skip_batches)
        inner = base.shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=False).skip(skip * batch)
        return _epoch_batches(inner, decode, size, batch, index, seed, skip, augment_fn, on_decoded)

    return functools.reduce(lambda a, b: a.concatenate(b), [tfds_epoch(int(e)) for e in epoch_list])


def _files_training(stage: _Stage, splits: DataSplits, epoch_list: np.ndarray, skip_batches: int, augment_fn,
                    on_decoded, decoded_cache) -> tf.data.Dataset:
    """A file or builtin split's training epochs as one stream (`_phase_batches`), augmented."""
    if len(epoch_list) and (np.diff(epoch_list) != 1).any():
        raise ValueError(f"epochs must be consecutive, got {epoch_list.tolist()}")
    part, size = stage.part, stage.size
    decode, _, may_be_large = splits.origin.element_decoder(part, size, stage.fast_decode)  # the source decodes
    store = _decoded_cache.store_for(part, size, stage.fast_decode, decoded_cache)
    ds = _phase_batches(part, decode, may_be_large, size, stage.batch, stage.seed,
                        int(epoch_list[0]) if len(epoch_list) else 0, len(epoch_list), skip_batches, store)
    return _augmented(ds, size, stage.seed, augment_fn, on_decoded)


def _worker_batches(stage: _Stage, splits: DataSplits, context: tf.distribute.InputContext, buffer: int,
                    epoch_list: np.ndarray, skip: int, augment_fn, on_decoded) -> tf.data.Dataset:
    """This worker's training batches, streamed from its own files (`make_dataset`'s `input_context`).

    A pass is `ceil(n / batch_size)` global steps as on one worker; each step takes one batch of
    the per-replica size from each of this worker's replicas. The worker's examples come through
    a shuffle buffer seeded by (seed, epoch), repeated to fill the pass; `skip` global steps of
    the first epoch are left out (resuming inside it). Batch `i` of epoch `e` on worker `w` is
    augmented with the seed of batch `i * workers + w`.
    """
    part, size, seed = stage.part, stage.size, stage.seed
    per_replica = context.get_per_replica_batch_size(stage.batch)
    workers, worker = int(context.num_input_pipelines), int(context.input_pipeline_id)
    local = max(1, int(context.num_replicas_in_sync) // workers)  # this worker's replicas
    per_pass = max(1, math.ceil(len(part) / stage.batch)) * local
    elements_of, decode, may_be_large = splits.origin.worker_stream(
        part, size, stage.fast_decode, (worker, workers), buffer)
    step = _batch_step(size, seed, augment_fn, on_decoded)
    epochs = []
    for k, epoch in enumerate(int(e) for e in epoch_list):
        first = skip * local if k == 0 else 0
        shuffle_seed = ((seed % _INT31) * 1000003 + epoch) % 2**62
        elements = elements_of(shuffle_seed).repeat().skip(first * per_replica).take((per_pass - first) * per_replica)
        batches = _decoded_batches(elements, decode, size, per_replica, may_be_large)
        indexed = tf.data.Dataset.zip((tf.data.Dataset.range(first, per_pass), batches))
        epochs.append(indexed.map(_pyfunc.traced(lambda index, pair, e=epoch: step(*pair, tf.constant(e, tf.int64),
                                                                             index * workers + worker)),
                                  num_parallel_calls=_streams.BATCH_PARALLEL, deterministic=True))
    if not epochs:
        raise ValueError("make_dataset: training with an input context needs at least one epoch")
    return functools.reduce(lambda a, b: a.concatenate(b), epochs)


def _decoded_batches(elements: tf.data.Dataset, decode: Callable, image_size: tuple[int, int],
                     batch: int, may_be_large: bool = True) -> tf.data.Dataset:
    """Decode elements in parallel (`decode(*element)` -> (image as decoded, label)) and batch them
    as decoded: (`DecodedBatch` fields, labels)."""

    def as_decoded(*element):
        image, label = decode(*element)
        return decoded_element(image, image_size, may_be_large), label

    decoded = elements.map(_pyfunc.traced(as_decoded), num_parallel_calls=_streams.PARALLEL, deterministic=True)
    return decoded.padded_batch(batch)


def _resized_batches(batches: tf.data.Dataset, image_size: tuple[int, int]) -> tf.data.Dataset:
    """(`DecodedBatch` fields, labels) -> (images float32 [B, H, W, 3], labels)."""

    def resized(decoded, labels):
        return resize_decoded(DecodedBatch(*decoded), image_size), labels

    return batches.map(_pyfunc.traced(resized), num_parallel_calls=_streams.BATCH_PARALLEL, deterministic=True)


def _batch_step(image_size: tuple[int, int], seed: int, augment_fn, on_decoded) -> Callable:
    """`step(fields, labels, epoch, index)`: a training batch as decoded -> (images, labels), resized
    (`on_decoded` or `resize_decoded`), then `augment_fn`, each with the batch's seed."""

    def step(fields, labels, epoch, index):
        decoded = DecodedBatch(*fields)
        if on_decoded is None and augment_fn is None:
            return resize_decoded(decoded, image_size), labels
        batch_seed = augment_seed(seed, epoch, index)
        if on_decoded is None:
            images = resize_decoded(decoded, image_size)
        else:
            images = on_decoded(decoded, batch_seed)
            if not images.shape[1:].is_compatible_with([*image_size, 3]):
                raise ValueError(f"on_decoded made images of shape {images.shape[1:]}, the data's image_size "
                                 f"needs {(*image_size, 3)}: build the augmenter with data.image_size")
        return augment_fn(images, labels, batch_seed) if augment_fn is not None else (images, labels)

    return step


def _augmented(batches: tf.data.Dataset, image_size: tuple[int, int], seed: int, augment_fn,
               on_decoded) -> tf.data.Dataset:
    """(fields, labels, epoch, index) batches -> (images, labels), as `_batch_step` makes them."""
    step = _batch_step(image_size, seed, augment_fn, on_decoded)
    return batches.map(_pyfunc.traced(step), num_parallel_calls=_streams.BATCH_PARALLEL, deterministic=True)


def _epoch_batches(elements: tf.data.Dataset, decode: Callable, image_size: tuple[int, int], batch: int, epoch,
                   seed: int, first_index, augment_fn, on_decoded, may_be_large: bool = True) -> tf.data.Dataset:
    """Decode, batch, resize and augment an epoch's elements (TFDS); its first batch has index `first_index`."""
    batches = _decoded_batches(elements, decode, image_size, batch, may_be_large)
    indexed = tf.data.Dataset.zip((tf.data.Dataset.range(first_index, 2**62), batches))
    return _augmented(indexed.map(_pyfunc.traced(lambda index, pair: (*pair, epoch, index))), image_size, seed, augment_fn,
                      on_decoded)


class _Plan:
    """Global batch g of a phase -> (example indices [batch], -1 padded; epoch; batch index).

    Position `g + offset` of the phase's stream: epoch `first + p // per_pass`, batch `p % per_pass`
    of that epoch's `epoch_permutation` (the last one of an epoch partial, filled with -1);
    `ordered`: of the split's own order (an evaluation pass).
    """

    def __init__(self, n: int, batch: int, seed: int, first: int, ordered: bool = False):
        self.n, self.batch, self.seed, self.first = n, batch, seed, first
        self.per_pass = max(1, math.ceil(n / batch))
        self._orders: dict = {}
        self._ordered = np.arange(n, dtype=np.int64) if ordered else None

    def order(self, epoch: int) -> np.ndarray:
        if self._ordered is not None:  # an evaluation pass: the split's own order
            return self._ordered
        order = self._orders.get(epoch)
        if order is None:
            if len(self._orders) > 2:
                self._orders.clear()
            order = self._orders[epoch] = epoch_permutation(self.n, self.seed, epoch)
        return order

    def __call__(self, position) -> tuple[np.ndarray, int, int]:
        epoch, index = self.first + int(position) // self.per_pass, int(position) % self.per_pass
        indices = np.full(self.batch, -1, np.int64)
        part = self.order(epoch)[index * self.batch:(index + 1) * self.batch]
        indices[:len(part)] = part
        return indices, epoch, index


def _phase_batches(split: Split, decode: Callable, may_be_large: bool, image_size: tuple[int, int], batch: int,
                   seed: int, first: int, epochs: int, skip: int,
                   store: Optional[_decoded_cache.DecodedStore]) -> tf.data.Dataset:
    """A phase's training batches as decoded, (fields, labels, epoch, index), one dataset for all its
    epochs (nothing is built per epoch): epochs `first..first+epochs-1` back to back, the first
    from its batch `skip`.

    Without `store`, every epoch decodes its files. With one, the first epoch decodes what the
    store lacks and fills it (all of it, the batches before `skip` too), and the later ones gather
    their batches from it.
    """
    plan = _Plan(len(split), batch, seed, first)
    total = epochs * plan.per_pass if len(split) else 0
    if store is None:
        return _decoding(plan, range(skip, total), decode, may_be_large, image_size, batch, split, None)
    if store.complete:
        return _gathered(plan, range(skip, total), store, split)
    filled = _decoding(plan, range(0, min(plan.per_pass, total)), decode, may_be_large, image_size, batch, split,
                       store)
    if skip:
        filled = filled.filter(_pyfunc.traced(lambda fields, labels, epoch, index: index >= skip))
    if total <= plan.per_pass:  # one epoch: no gathered stream to build (each iterator instantiates it)
        return filled
    return filled.concatenate(_gathered(plan, range(plan.per_pass, total), store, split))


def _labels(split: Split) -> np.ndarray:
    return np.asarray(split.labels, dtype=np.int32)


def _decoding(plan: _Plan, positions: range, decode: Callable, may_be_large: bool, image_size: tuple[int, int],
              batch: int, split: Split, store: Optional[_decoded_cache.DecodedStore]) -> tf.data.Dataset:
    """The batches at `positions`, decoded (in parallel, element by element) and batched as decoded;
    with `store`, only what it lacks is decoded, and the batch is put in and gathered back."""
    labels_np = _labels(split)

    def planned(position):
        indices, epoch, index = plan(position)
        need = store.missing(indices) if store is not None else indices >= 0
        return indices, need, np.int64(epoch), np.int64(index)

    def plan_tensors(position):
        indices, need, epoch, index = _pyfunc.numpy_function(planned, [position],
                                                             [tf.int64, tf.bool, tf.int64, tf.int64])
        indices.set_shape([batch])
        need.set_shape([batch])
        return indices, need, tf.fill([batch], epoch), tf.fill([batch], index)

    def element(index, need, epoch, batch_index):
        def decoded():
            image, _ = decode(index)
            return decoded_element(image, image_size, may_be_large)

        def empty():
            return tf.zeros([0], tf.uint8), tf.constant([0, 0, 3]), tf.zeros([0], tf.float32)

        return tf.cond(need, decoded, empty), index, need, epoch, batch_index

    elements = tf.data.Dataset.range(positions.start, positions.stop).map(_pyfunc.traced(plan_tensors)).unbatch()
    batches = elements.map(_pyfunc.traced(element), num_parallel_calls=_streams.PARALLEL,
                           deterministic=True).padded_batch(batch)

    def finish(fields, indices, need, epoch, index):
        if store is None:
            count = tf.reduce_sum(tf.cast(indices >= 0, tf.int32))
            kept = tuple(field[:count] for field in fields)
            return kept, tf.gather(labels_np, indices[:count]), epoch[0], index[0]

        def put(indices, need, raw, shapes, resized):
            store.put(indices, raw, shapes, resized)
            return np.bool_(need[indices >= 0].all())

        count = tf.reduce_sum(tf.cast(indices >= 0, tf.int32))  # the fillers (-1) come last
        all_decoded = _pyfunc.numpy_function(put, [indices, need, *fields], tf.bool)
        all_decoded.set_shape([])

        def gathered():
            return tuple(_pyfunc.numpy_function(lambda valid: store.gather(valid), [indices[:count]],
                                                [tf.uint8, tf.int32, tf.float32]))

        # All decoded here: the batch is already what a gather would give (and needs no copy).
        kept = tf.cond(all_decoded, lambda: tuple(field[:count] for field in fields), gathered)
        labels = tf.gather(labels_np, indices[:count])
        return _shaped(*kept, labels, labels_np), labels, epoch[0], index[0]

    return batches.map(_pyfunc.traced(finish), num_parallel_calls=_streams.BATCH_PARALLEL, deterministic=True)


def _shaped(raw, shapes, resized, labels, labels_np: np.ndarray) -> tuple:
    raw.set_shape([None, None])
    shapes.set_shape([None, 3])
    resized.set_shape([None, None])
    labels.set_shape([None, *labels_np.shape[1:]])
    return raw, shapes, resized


def _gathered(plan: _Plan, positions: range, store: _decoded_cache.DecodedStore, split: Split) -> tf.data.Dataset:
    """The batches at `positions`, gathered from a filled `store` (one call a batch, no decode)."""
    labels_np = _labels(split)

    def gather(position):
        indices, epoch, index = plan(position)
        valid = indices[indices >= 0]
        return (*store.gather(valid), labels_np[valid], np.int64(epoch), np.int64(index))

    def batch_of(position):
        raw, shapes, resized, labels, epoch, index = _pyfunc.numpy_function(
            gather, [position], [tf.uint8, tf.int32, tf.float32, tf.int32, tf.int64, tf.int64])
        return _shaped(raw, shapes, resized, labels, labels_np), labels, epoch, index

    positions_ds = tf.data.Dataset.range(positions.start, positions.stop)
    return positions_ds.map(_pyfunc.traced(batch_of), num_parallel_calls=_streams.BATCH_PARALLEL, deterministic=True)


def _skip_for(epoch, epoch_list: np.ndarray, skip_batches: int):
    """The batches to leave out of `epoch` (an int64 tensor): `skip_batches` in the first epoch only."""
    first = int(epoch_list[0]) if len(epoch_list) else 0
    return tf.where(tf.equal(epoch, first), tf.constant(int(skip_batches), tf.int64), tf.constant(0, tf.int64))


