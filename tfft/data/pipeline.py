"""tf.data input pipelines: deterministic per-epoch order, parallel decode, batched augmentation.

Determinism: the order of training epoch `e` is `numpy.random.default_rng([seed, e])
.permutation(n)`, batches are formed within the epoch (the last partial batch kept, so
`steps_per_epoch = ceil(n / batch_size)`), and the augmenter gets the stateless seed
`[seed, e * 100003 + batch_index]` (int32). A run resumed at epoch k therefore sees exactly the
batches an uninterrupted run would. Decoding is parallel (`AUTOTUNE`) but ordered
(`deterministic=True`); memory is bounded by the prefetch buffers, never by the dataset size.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import tensorflow as tf

from tfft.config import DataConfig
from tfft.data import decode as _decode
from tfft.data import pyfunc as _pyfunc
from tfft.data import shapes as _shapes
from tfft.data.sources import DataSplits, Split, load_splits
from tfft.errors import UserError

EPOCH_STRIDE = 100003
_INT31 = 2**31 - 1


class PerImageAugment(NamedTuple):
    """The part of a batch's augmentation that `make_dataset` applies to each image as it decodes.

    `sample(seed, batch_size)` gives the per-image parameters of one batch (a tensor whose first
    axis is `batch_size`, e.g. [B, 3, 3] warp matrices) from the batch's augmentation seed, the
    seed `augment_fn` gets for that batch; `apply(image, params)` transforms one decoded image
    ([H, W, 3] float32) with its row. Working per image, next to the decode, keeps each image in
    the core's cache; image j of a batch gets what the same step would give it on the whole batch.
    """

    sample: Callable[[Any, Any], Any]
    apply: Callable[[Any, Any], Any]


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


def _element_decoder(split: Split, image_size: tuple[int, int]) -> tuple[Callable[[Any], Any], int]:
    """A function index -> (image float32 [H, W, 3], label int32) for file/builtin splits."""
    size = (int(image_size[0]), int(image_size[1]))
    if split.kind == "files":
        paths = tf.constant(np.asarray(split.paths, dtype=str) if len(split) else np.zeros(0, dtype=str),
                            dtype=tf.string)
        labels = tf.constant(split.labels, dtype=tf.int32)
        routes = tf.constant(split.routes.astype(np.int32), dtype=tf.int32)

        all_native = bool(len(split)) and not bool((split.routes == _decode.ROUTE_PIL).any())

        def decode_file(index):
            path = tf.gather(paths, index)
            if all_native:  # the common case: no per-element branch at all
                image = _decode.resize(_decode.decode_bytes_native(tf.io.read_file(path), size), size)
            else:
                image = _decode.decode_path(path, tf.gather(routes, index), size)
            return image, tf.gather(labels, index)

        return decode_file, len(split)
    if split.kind == "builtin":
        ids = tf.constant(split.ids, dtype=tf.int64)
        labels = tf.constant(split.labels, dtype=tf.int32)
        per_class = int(split.builtin_per_class)

        def render(global_id):
            return _shapes.render_id(int(global_id), per_class)

        def decode_builtin(index):
            image = _pyfunc.numpy_function(render, [tf.gather(ids, index)], tf.uint8)
            image.set_shape([_shapes.NATIVE_SIZE, _shapes.NATIVE_SIZE, 3])
            return _decode.resize(image, size), tf.gather(labels, index)

        return decode_builtin, len(split)
    raise ValueError(f"no element decoder for split kind {split.kind!r}")


def _tfds_base(split: Split, image_size: tuple[int, int]):
    import tensorflow_datasets as tfds

    info = split.tfds
    ds = info["builder"].as_dataset(split=info["split"], shuffle_files=False,
                                    decoders={info["image_key"]: tfds.decode.SkipDecoding()})
    image_key, label_key = info["image_key"], info["label_key"]
    size = (int(image_size[0]), int(image_size[1]))

    def to_pair(example):
        data = example[image_key]
        return data, tf.cast(example[label_key], tf.int32)

    def decode(data, label):
        return _decode.resize(_decode.decode_bytes_native(data, size), size), label

    return ds.map(to_pair), decode


def make_dataset(splits: DataSplits, split: str, data_cfg: DataConfig, *, seed: int, training: bool,
                 epochs: Optional[range] = None,
                 augment_fn: Optional[Callable[[Any, Any, Any], Any]] = None,
                 skip_batches: int = 0, per_image: Optional[PerImageAugment] = None) -> tf.data.Dataset:
    """A batched `tf.data.Dataset` of (images float32 [B, H, W, 3] in 0..255, labels int32 [B]).

    Args:
        splits: from `load_splits`.
        split: "train", "val" or "test".
        data_cfg: gives `image_size` and `batch_size` (and `shuffle_buffer` for TFDS).
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
        per_image: training only: a step applied to each image before batching, with the
            parameters `per_image.sample` draws from its batch's augmentation seed (the one
            `augment_fn` then gets); see `PerImageAugment`.

    Returns:
        A prefetched `tf.data.Dataset`; with training, `ceil(n / batch_size)` batches per epoch.

    Raises:
        UserError: when `split` is not one of the available splits.

    Example:
    >>> splits = load_splits(cfg.data, seed=cfg.seed)  # doctest: +SKIP
    >>> ds = make_dataset(splits, "train", cfg.data, seed=42, training=True, epochs=range(0, 5))
    >>> images, labels = next(iter(ds))  # doctest: +SKIP
    """
    if split not in splits.splits:
        raise UserError("split", f"no {split!r} split in {splits.source!r}; have {sorted(splits.splits)}",
                        "set data.val_split / data.test_split, or add a val/ or test/ folder")
    part = splits.splits[split]
    size = (int(data_cfg.image_size[0]), int(data_cfg.image_size[1]))
    batch = int(data_cfg.batch_size)
    autotune = tf.data.AUTOTUNE
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_optimization.map_parallelization = True

    if part.kind == "tfds":
        base, decode_pair = _tfds_base(part, size)
        if not training:
            ds = base.map(decode_pair, num_parallel_calls=autotune, deterministic=True).batch(batch)
            return ds.prefetch(autotune).with_options(options)
        epoch_list = np.asarray(list(epochs if epochs is not None else range(0, 1)), dtype=np.int64)
        buffer = int(data_cfg.shuffle_buffer)

        def tfds_epoch(epoch):
            shuffle_seed = tf.cast(tf.math.floormod(tf.constant(int(seed) % _INT31, tf.int64) * 1000003
                                                    + epoch, 2**62), tf.int64)
            skip = _skip_for(epoch, epoch_list, skip_batches)
            inner = base.shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=False).skip(skip * batch)
            inner = _decode_epoch(inner, decode_pair, per_image, epoch, seed, skip, batch, len(part), True)
            return _augment_epoch(inner.batch(batch), epoch, seed, augment_fn, skip)

        ds = tf.data.Dataset.from_tensor_slices(epoch_list).flat_map(tfds_epoch)
        return ds.prefetch(autotune).with_options(options)

    decode_index, n = _element_decoder(part, size)
    if not training:
        ds = tf.data.Dataset.range(n).map(decode_index, num_parallel_calls=autotune, deterministic=True)
        return ds.batch(batch).prefetch(autotune).with_options(options)

    epoch_list = np.asarray(list(epochs if epochs is not None else range(0, 1)), dtype=np.int64)
    seed_value = int(seed)

    def permutation(epoch):
        return epoch_permutation(n, seed_value, int(epoch))

    def one_epoch(epoch):
        order = _pyfunc.numpy_function(permutation, [epoch], tf.int64)
        order.set_shape([n])
        skip = _skip_for(epoch, epoch_list, skip_batches)
        inner = tf.data.Dataset.from_tensor_slices(order[skip * batch:])
        inner = _decode_epoch(inner, decode_index, per_image, epoch, seed_value, skip, batch, n, False)
        return _augment_epoch(inner.batch(batch), epoch, seed_value, augment_fn, skip)

    ds = tf.data.Dataset.from_tensor_slices(epoch_list).flat_map(one_epoch)
    return ds.prefetch(autotune).with_options(options)


def _decode_epoch(elements: tf.data.Dataset, decode: Callable, per_image: Optional[PerImageAugment],
                  epoch, seed: int, first_batch, batch: int, n: int, pairs: bool) -> tf.data.Dataset:
    """Decode an epoch's elements (from batch `first_batch` on), each followed by `per_image`.

    `pairs`: elements are `(data, label)` tuples (TFDS) rather than indices. The parameters of
    batch k are drawn for its true size (the last one may be partial) and unbatched beside the
    elements, so image j of batch k gets row j of `per_image.sample(seed_k, size_k)`.
    """
    autotune = tf.data.AUTOTUNE
    if per_image is None:
        return elements.map(decode, num_parallel_calls=autotune, deterministic=True)

    def params(k):
        size = tf.minimum(tf.constant(batch, tf.int64), tf.constant(n, tf.int64) - k * batch)
        return per_image.sample(augment_seed(seed, epoch, k), tf.cast(size, tf.int32))

    batches = tf.data.Dataset.range(first_batch, math.ceil(n / batch))
    rows = batches.map(params).unbatch()

    def decode_and_apply(element, row):
        image, label = decode(*element) if pairs else decode(element)
        return per_image.apply(image, row), label

    return tf.data.Dataset.zip((elements, rows)).map(decode_and_apply, num_parallel_calls=autotune,
                                                      deterministic=True)


def _skip_for(epoch, epoch_list: np.ndarray, skip_batches: int):
    """The batches to leave out of `epoch` (an int64 tensor): `skip_batches` in the first epoch only."""
    first = int(epoch_list[0]) if len(epoch_list) else 0
    return tf.where(tf.equal(epoch, first), tf.constant(int(skip_batches), tf.int64), tf.constant(0, tf.int64))


def _augment_epoch(batches: tf.data.Dataset, epoch, seed: int, augment_fn, first_index=0) -> tf.data.Dataset:
    """Augment an epoch's batches; the first one has index `first_index` (its seed follows from it)."""
    if augment_fn is None:
        return batches

    def apply(index, pair):
        images, labels = pair
        return augment_fn(images, labels, augment_seed(seed, epoch, index))

    indexed = tf.data.Dataset.zip((tf.data.Dataset.range(first_index, 2**62), batches))
    return indexed.map(apply, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _pipeline_augmenter(cfg: Any, num_classes: int):
    try:
        from tfft import augment as augment_module
    except ImportError as exc:
        raise UserError("augment.placement", "pipeline augmentation needs tfft.augment, which failed to import "
                        f"({exc})", "set augment.placement: model, or reinstall tfft") from None
    builder = getattr(augment_module, "build_augmenter", None)
    if builder is None:
        raise UserError("augment.placement", "tfft.augment has no build_augmenter()",
                        "set augment.placement: model")
    return builder(cfg.augment, tuple(cfg.data.image_size), num_classes)


def build(cfg: Any, split: str = "train", *, epoch: int = 0) -> tf.data.Dataset:
    """The public data API: a batched dataset of (images float32 0..255, labels int32).

    For `split == "train"` the order is epoch `epoch`'s stateless training order (the same
    batches `tfft train` uses); with `augment.placement: pipeline` the images are augmented.
    Other splits are in their fixed order, unaugmented.

    Args:
        cfg: a `tfft.config.Config` (or anything `tfft.load_config` accepts).
        split: "train", "val" or "test".
        epoch: which training epoch's order (and augmentation) to yield.

    Returns:
        A `tf.data.Dataset`, one pass.

    Example:
    >>> import tfft
    >>> cfg = tfft.load_config({"data": {"image_size": [64, 64], "builtin_per_class": 20}})
    >>> images, labels = next(iter(tfft.data.build(cfg, "val")))
    >>> images.dtype.name, labels.dtype.name
    ('float32', 'int32')
    """
    from tfft.config import Config, load_config

    if not isinstance(cfg, Config):
        cfg = load_config(cfg)
    splits = load_splits(cfg.data, cfg.seed)
    training = split == "train"
    per_image = augment_fn = None
    if training and cfg.augment.placement == "pipeline":
        augmenter = _pipeline_augmenter(cfg, splits.num_classes)  # None when nothing is enabled
        if augmenter is not None:
            per_image, augment_fn = augmenter.pipeline_steps()
    return make_dataset(splits, split, cfg.data, seed=cfg.seed, training=training,
                        epochs=range(int(epoch), int(epoch) + 1), augment_fn=augment_fn, per_image=per_image)
