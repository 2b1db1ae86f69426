"""The frozen-feature cache: in a phase whose backbone is frozen, run the backbone once.

A frozen backbone (and frozen BatchNorm, which Keras keeps in inference mode) maps an image to
the same pooled features every epoch, so recomputing them is wasted work. This module splits a
tfft classifier at its `pool` layer into a feature model (input -> pooled features) and a head
model (the same Dropout / Dense layer objects, so training the head trains the classifier),
computes the features once, and feeds the head batches that match the uncached run's:

* without augmentation: one pass over `train` in file order; epoch `e` gathers the rows in
  `epoch_permutation(n, seed, e)` order and batches them exactly as `tfft.data.make_dataset`
  does, so the head sees the same batches, in the same order, as without the cache;
* with augmentation and `performance.cache_augmented_copies: K`: the first K epochs of the phase
  are computed from the augmented pipeline itself (the exact batches, MixUp/CutMix labels
  included); epoch `j >= K` of the phase reuses copy `j mod K`, its examples reshuffled by
  `(seed, epoch)`. K is the choice between speed (K forward passes instead of one per epoch)
  and augmentation diversity; `auto` does not cache an augmented phase unless K is set.

Features live in memory as float32. Validation features are computed once per cached phase.
Unaugmented passes (and validation) also go through the persistent store
(`tfft.training.feature_store`, `performance.feature_store`) when one is given: features another
run already computed for the same pixels and feature model are read, not recomputed.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Iterable
from typing import Any, Optional

import keras
import numpy as np

POOL_LAYER_NAME = "pool"
AUTO_MAX_BYTES = 4 * 2**30  # `auto` declines a cache larger than this; `on` does not


@dataclasses.dataclass
class Decision:
    """Whether a phase trains on cached features, and the console line that says why."""

    use: bool
    copies: int
    reason: str


def decide(setting: str, copies: int, *, backbone_frozen: bool, augmenting: bool, feature_size: int,
           num_examples: int) -> Decision:
    """Apply `performance.cache_features` (`auto | on | off`) to one phase.

    Args:
        setting: `auto`, `on` or `off`.
        copies: `performance.cache_augmented_copies` (0: not set).
        backbone_frozen: no backbone variable trains in this phase and BatchNorm is frozen.
        augmenting: the run augments its training images.
        feature_size: values per example at the pool layer.
        num_examples: training examples.

    Returns:
        A `Decision`; `copies` is the number of training passes to compute.

    Example:
    >>> decide("auto", 0, backbone_frozen=True, augmenting=False, feature_size=2048, num_examples=800).use
    True
    """
    from tfft.errors import UserError

    if setting == "off":
        return Decision(False, 0, "off (performance.cache_features: off)")
    if not backbone_frozen:
        return Decision(False, 0, "off (the backbone trains in this phase)")
    if augmenting and copies == 0:
        if setting == "on":
            raise UserError("performance.cache_augmented_copies",
                            "performance.cache_features: on with augmentation needs the number of augmented "
                            "passes to cache",
                            "set performance.cache_augmented_copies: K (K >= 1), or switch augmentation off")
        return Decision(False, 0, "off (augmentation draws new images every epoch; set "
                                  "performance.cache_augmented_copies: K to cache K augmented passes)")
    passes = copies if augmenting else 1
    size = 4 * feature_size * num_examples * passes
    if setting == "auto" and size > AUTO_MAX_BYTES:
        return Decision(False, 0, f"off (the cache would take {size / 2**30:.1f} GiB; "
                                  "performance.cache_features: on forces it)")
    what = f"{passes} augmented pass(es)" if augmenting else "one pass"
    return Decision(True, passes, f"on: backbone features computed once ({what}, {size / 2**20:.1f} MiB)")


def _pool_index(model: keras.Model) -> Optional[int]:
    names = [layer.name for layer in model.layers]
    return names.index(POOL_LAYER_NAME) if POOL_LAYER_NAME in names else None


def backbone_frozen(model: keras.Model) -> bool:
    """True when nothing up to and including the pool layer trains (so features are fixed)."""
    index = _pool_index(model)
    if index is None:
        return False
    return not any(weight.trainable for layer in model.layers[:index + 1] for weight in layer.weights)


def feature_size(model: keras.Model) -> int:
    """Values per example at the pool layer (0 for a model without one)."""
    index = _pool_index(model)
    return 0 if index is None else int(np.prod(model.layers[index].output.shape[1:]))


def split_model(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """Split a tfft classifier at its pool layer into (feature model, head model).

    The head model calls the classifier's own head layers, so fitting it updates `model`.

    Example:
    >>> from tfft.config import ModelConfig
    >>> from tfft.models.build import build_classifier
    >>> model = build_classifier(ModelConfig(backbone="mobilenet_v3_small", weights=None), 3, (32, 32))
    >>> features, head = split_model(model)
    >>> features.output_shape, head.output_shape
    ((None, 576), (None, 3))
    """
    names = [layer.name for layer in model.layers]
    pool = model.get_layer(POOL_LAYER_NAME)
    feature_model = keras.Model(model.inputs, pool.output, name="cached_features")
    inputs = keras.Input(tuple(pool.output.shape[1:]), dtype="float32", name="features")
    x = inputs
    for layer in model.layers[names.index(POOL_LAYER_NAME) + 1:]:
        x = layer(x)
    return feature_model, keras.Model(inputs, x, name="cached_head")


class Progress:
    """Progress of a long pass: Keras' bar on a terminal; plain lines elsewhere (a log file, CI).

    Off a terminal it writes what Keras' own `verbose=2` writes: no ANSI escapes, no carriage
    returns, one line at the start, one every `every` seconds, one at the end.

    Example:
    >>> progress = Progress("feature cache: val", 10, stream=sys.stdout)
    feature cache: val
    >>> progress.add(10); progress.done()  # doctest: +ELLIPSIS
    feature cache: val: 10/10 images in ... s
    """

    def __init__(self, title: str, total: int, every: float = 30.0, stream: Any = None):
        self.title, self.total, self.every = title, int(total), float(every)
        self.stream = stream if stream is not None else sys.stdout
        self.count = 0
        self.started = self.last = time.monotonic()
        interactive = getattr(self.stream, "isatty", lambda: False)() or "ipykernel" in sys.modules
        print(title, file=self.stream, flush=True)
        self.bar = keras.utils.Progbar(self.total, unit_name="image") if interactive else None

    def add(self, count: int) -> None:
        self.count += int(count)
        if self.bar is not None:
            self.bar.add(int(count))
            return
        now = time.monotonic()
        if now - self.last >= self.every and self.count < self.total:
            self.last = now
            print(f"{self.title}: {self.count}/{self.total} images, {now - self.started:.0f} s",
                  file=self.stream, flush=True)

    def done(self) -> None:
        if self.bar is None:
            print(f"{self.title}: {self.count}/{self.total} images in {time.monotonic() - self.started:.0f} s",
                  file=self.stream, flush=True)


class FeatureCache:
    """Backbone features of one phase's training passes and of the validation split.

    Args:
        feature_model: from `split_model`.
        head: from `split_model`: the model to fit on the cached features.
        seed: the run seed (the epoch order is `epoch_permutation(n, seed, e)`).
        batch_size: the global batch size.
        store: a `feature_store.DiskFeatureStore` (on disk, per image) for the unaugmented passes, or None.
    """

    def __init__(self, feature_model: keras.Model, head: keras.Model, seed: int, batch_size: int,
                 store: Optional[Any] = None):
        import tensorflow as tf

        self.head = head
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self._features = tf.function(lambda images: feature_model(images, training=False),
                                     reduce_retracing=True)
        self.copies: list[tuple[np.ndarray, np.ndarray]] = []
        self.first_epoch = 0
        self.shuffled_base = False
        self.val: Optional[tuple[np.ndarray, np.ndarray]] = None
        self._stored = None
        if store is not None:
            from tfft.training.feature_store import StoredFeatures

            self._stored = StoredFeatures(store, feature_model, self._features)

    def _compute(self, batches: Iterable[Any], total: int, title: str,
                 persist: bool = False) -> tuple[np.ndarray, np.ndarray]:
        features, labels = [], []
        progress = Progress(title, total)
        compute = self._stored if persist and self._stored is not None else self._features
        for images, y in batches:
            features.append(np.asarray(keras.ops.convert_to_numpy(compute(images)), np.float32))
            labels.append(np.asarray(y))
            progress.add(int(images.shape[0]))
        if compute is self._stored:
            print(self._stored.flush())
        progress.done()
        return np.concatenate(features), np.concatenate(labels)

    def fill_train(self, passes: list[Any], total: int, first_epoch: int, shuffled: bool) -> None:
        """Compute the training features.

        Args:
            passes: datasets of (images, one-hot labels); one per cached copy, each one epoch long.
            total: examples per pass (for the progress bar).
            first_epoch: the global epoch that copy 0 stands for.
            shuffled: True when the copies already hold epochs in their training order
                (augmented copies); False for one pass in file order.
        """
        self.copies = [self._compute(ds, total, f"feature cache: train pass {i + 1}/{len(passes)}",
                                     persist=not shuffled) for i, ds in enumerate(passes)]
        self.first_epoch = int(first_epoch)
        self.shuffled_base = bool(shuffled)

    def fill_val(self, dataset: Any, total: int) -> None:
        self.val = self._compute(dataset, total, "feature cache: val", persist=True)

    def _epoch_rows(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        from tfft.data.pipeline import epoch_permutation

        j = int(epoch) - self.first_epoch
        features, labels = self.copies[j % len(self.copies)]
        if self.shuffled_base and 0 <= j < len(self.copies):
            return features, labels  # exactly the batches the augmented pipeline gave for this epoch
        order = epoch_permutation(len(labels), self.seed, int(epoch))
        return features[order], labels[order]

    def train_dataset(self, epochs: range, skip_batches: int = 0) -> Any:
        """Batches of (features, one-hot labels) for `epochs`, back to back, like `make_dataset`'s.

        `skip_batches` leaves out the first batches of the first epoch (resuming inside it).
        """
        import tensorflow as tf

        feature_dim = self.copies[0][0].shape[1:]
        label_spec = tf.TensorSpec((None,) + self.copies[0][1].shape[1:], tf.as_dtype(self.copies[0][1].dtype))

        def batches():
            for epoch in epochs:
                features, labels = self._epoch_rows(epoch)
                first = skip_batches * self.batch_size if epoch == epochs[0] else 0
                for start in range(first, len(labels), self.batch_size):
                    yield features[start:start + self.batch_size], labels[start:start + self.batch_size]

        ds = tf.data.Dataset.from_generator(
            batches, output_signature=(tf.TensorSpec((None,) + feature_dim, tf.float32), label_spec))
        return ds.prefetch(tf.data.AUTOTUNE)

    def val_dataset(self) -> Any:
        """Batches of (features, one-hot labels) of the validation split, in its fixed order."""
        import tensorflow as tf

        features, labels = self.val
        return tf.data.Dataset.from_tensor_slices((features, labels)).batch(self.batch_size)


class FeatureStore:
    """Backbone features kept in memory across the runs of one process (`tfft tune`'s trials).

    A head-only trial that changes the rate, dropout or epochs runs the same frozen backbone
    over the same images as the trial before it; with a store passed to `tfft.train` only the
    first trial computes the features. An entry's key is a digest of the feature model's
    weights (so a different backbone, weights file, input size or pooling never matches) and
    of everything else the features depend on (the data section, seed, precision and, for
    augmented passes, the augmentation and the epochs they stand for).

    Args:
        max_entries: entries kept (the least recently used beyond this are dropped).

    Example:
    >>> store = FeatureStore()
    >>> result = tfft.train(cfg, feature_store=store)  # doctest: +SKIP
    >>> store.hits, store.misses  # doctest: +SKIP
    (0, 1)
    """

    def __init__(self, max_entries: int = 4):
        import collections

        self.max_entries = int(max_entries)
        self._entries: "collections.OrderedDict[str, dict[str, Any]]" = collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    def key(self, feature_model: keras.Model, depends_on: dict[str, Any]) -> str:
        """A digest of `feature_model`'s input shape and weights and of `depends_on` (JSON-able)."""
        import hashlib
        import json

        digest = hashlib.sha256(json.dumps(depends_on, sort_keys=True, default=str).encode())
        digest.update(repr(tuple(feature_model.input_shape)).encode())
        for variable in feature_model.weights:
            value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable))
            digest.update(f"{variable.path}:{value.dtype}:{value.shape}".encode())
            digest.update(value.tobytes())
        return digest.hexdigest()

    def restore(self, key: str, cache: FeatureCache) -> bool:
        """Fill `cache` from the entry `key`; False (a miss) when there is none."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return False
        self._entries.move_to_end(key)
        cache.copies = list(entry["copies"])
        cache.first_epoch = entry["first_epoch"]
        cache.shuffled_base = entry["shuffled_base"]
        cache.val = entry["val"]
        self.hits += 1
        return True

    def store(self, key: str, cache: FeatureCache) -> None:
        """Keep `cache`'s features under `key`."""
        self._entries[key] = {"copies": list(cache.copies), "first_epoch": cache.first_epoch,
                              "shuffled_base": cache.shuffled_base, "val": cache.val}
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
