"""The frozen-feature cache: in a phase whose backbone is frozen, run the backbone once.

A phase that fine-tunes only the top blocks is cached too: the frozen bottom of the backbone runs
once, and each epoch runs only the blocks that train (see `cache_point`).

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
  and augmentation diversity; `auto` does not cache an augmented phase unless K is set;
* with flips as the only augmentation (the default recipe: `horizontal_flip: true`): a flip has
  two outcomes (four with vertical flips too), so the features of every image in each of its
  flipped versions are computed once, in one pass; each epoch picks one version per image,
  uniformly, by `(seed, epoch)`, then the epoch order. The head sees exactly the distribution
  of augmented images the uncached run samples from (not the same draws), and a resumed run
  the same epochs again.

Features live in memory as float32. Validation features are computed once per cached phase.
Unaugmented passes (and validation) also go through the persistent store
(`tfft.training.feature_store`, `performance.feature_store`) when one is given: features another
run already computed for the same pixels and feature model are read, not recomputed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import keras
import numpy as np

from tfft.data import streams
from tfft.training.feature_pass import Progress, compute_features  # noqa: F401 - importable here too
from tfft.training.feature_store import FeatureStore, model_digest  # noqa: F401 - FeatureStore: importable here too
from tfft.wording import plural

# The details (which layer a cache cuts at, where a pass's features come from) go to the `tfft`
# logger: a run's run.log and `tfft --verbose`; the console says what is computed, in plain words.
log = logging.getLogger(__name__)
POOL_LAYER_NAME = "pool"
AUTO_MAX_BYTES = 4 * 2**30  # `auto` declines a cache larger than this; `on` does not


@dataclasses.dataclass
class Decision:
    """Whether a phase trains on cached features, and the console line that says why."""

    use: bool
    copies: int
    reason: str
    flips: bool = False  # the copies are the flip outcomes of one pass (see `FeatureCache.fill_flips`)


def decide_for_model(model: keras.Model, performance: Any, augmenter: Any, num_examples: int) -> Decision:
    """`decide` for a phase of `model` as built: its frozen backbone, its feature size, the run's
    `performance` section and augmenter (None: no augmentation). Training and lr-find both ask this."""
    return decide(performance.cache_features, performance.cache_augmented_copies,
                  backbone_frozen=backbone_frozen(model), augmenting=augmenter is not None,
                  feature_size=feature_size(model), num_examples=num_examples,
                  flip_outcomes=len(augmenter.flip_outcomes) if augmenter else 0)


def decide(setting: str, copies: int, *, backbone_frozen: bool, augmenting: bool, feature_size: int,
           num_examples: int, flip_outcomes: int = 0) -> Decision:
    """Apply `performance.cache_features` (`auto | on | off`) to one phase.

    Args:
        setting: `auto`, `on` or `off`.
        copies: `performance.cache_augmented_copies` (0: not set).
        backbone_frozen: no backbone variable trains in this phase and BatchNorm is frozen.
        augmenting: the run augments its training images.
        feature_size: values per example at the pool layer.
        num_examples: training examples.
        flip_outcomes: when flips are the only augmentation, how many outcomes they have (2 or
            4); 0 otherwise. Such a phase caches every outcome (exact) unless `copies` is set.

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
        return Decision(False, 0, "off (the backbone trains from its first layer in this phase)")
    flips = augmenting and copies == 0 and flip_outcomes > 1
    if augmenting and copies == 0 and not flips:
        if setting == "on":
            raise UserError("performance.cache_augmented_copies",
                            "performance.cache_features: on with augmentation needs the number of augmented "
                            "passes to cache",
                            "set performance.cache_augmented_copies: K (K >= 1), or switch augmentation off")
        return Decision(False, 0, "off (augmentation draws new images every epoch; set "
                                  "performance.cache_augmented_copies: K to cache K augmented passes)")
    passes = flip_outcomes if flips else copies if augmenting else 1
    size = 4 * feature_size * num_examples * passes
    if setting == "auto" and size > AUTO_MAX_BYTES:
        return Decision(False, 0, f"off (the cache would take {size / 2**30:.1f} GiB; "
                                  "performance.cache_features: on forces it)")
    if flips:
        return Decision(True, passes, f"on: backbone features of every flip of every image computed "
                                      f"once ({passes} versions, exact; {size / 2**20:.1f} MiB)", flips=True)
    what = plural(passes, 'augmented pass') if augmenting else "one pass"
    return Decision(True, passes, f"on: backbone features computed once ({what}, {size / 2**20:.1f} MiB)")


def _pool_index(model: keras.Model) -> Optional[int]:
    names = [layer.name for layer in model.layers]
    return names.index(POOL_LAYER_NAME) if POOL_LAYER_NAME in names else None


def _trains(layer: Any) -> bool:
    return any(weight.trainable for weight in layer.weights)


@dataclasses.dataclass
class CachePoint:
    """Where a phase's fixed computation ends: the pool layer, or a tensor inside the backbone.

    `backbone_layer` is None when nothing up to the pool layer trains (the head phase); else it
    is the first training layer of the backbone, and the cache holds the activations that enter
    it (one tensor: every later layer depends on the input only through it), so a fine-tuning
    phase that unfreezes the top blocks runs only those blocks each epoch.
    """

    backbone_layer: Optional[str]
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


def cache_point(model: keras.Model) -> Optional[CachePoint]:
    """The `CachePoint` of a tfft classifier as its trainable flags stand, or None (no fixed part).

    Example:
    >>> from tfft.config import ModelConfig
    >>> from tfft.models.build import build_classifier
    >>> model = build_classifier(ModelConfig(backbone="mobilenet_v3_small", weights=None), 3, (32, 32))
    >>> model.get_layer("backbone").trainable = False  # a frozen backbone: the cache holds pooled features
    >>> cache_point(model).shape
    (576,)
    """
    from tfft.models.build import BACKBONE_LAYER_NAME

    index = _pool_index(model)
    names = [layer.name for layer in model.layers]
    if index is None or BACKBONE_LAYER_NAME not in names:
        return None
    if not any(_trains(layer) for layer in model.layers[:index + 1]):
        return CachePoint(None, tuple(int(d) for d in model.layers[index].output.shape[1:]))
    if any(_trains(layer) for layer in model.layers[:names.index(BACKBONE_LAYER_NAME)]):
        return None
    backbone = model.get_layer(BACKBONE_LAYER_NAME)
    first = next(layer for layer in backbone.layers if _trains(layer))
    if first is backbone.layers[0] or not hasattr(first, "input") or isinstance(first.input, (list, tuple)):
        return None
    prefix = backbone.layers[:backbone.layers.index(first)]
    if not any(layer.weights and not isinstance(layer, keras.layers.Normalization) for layer in prefix):
        return None  # only input preprocessing is frozen: the "features" would be the pixels themselves
    try:  # a cut is only valid where one tensor carries everything the rest needs
        keras.Model(first.input, backbone.output)
    except Exception:  # noqa: BLE001 - Keras says "graph disconnected" in several ways
        return None
    if any(d is None for d in first.input.shape[1:]):
        return None
    return CachePoint(first.name, tuple(int(d) for d in first.input.shape[1:]))


def backbone_frozen(model: keras.Model) -> bool:
    """True when a fixed part of the model can be cached: nothing up to the pool layer trains, or
    only the top of the backbone does (see `cache_point`)."""
    return cache_point(model) is not None


def feature_size(model: keras.Model) -> int:
    """Values per example at the cache point (0 for a model without one)."""
    point = cache_point(model)
    return 0 if point is None else point.size


def pass_title(images: int, split: str = "train", flips: int = 1, copy: str = "") -> str:
    """The console's title of one pass of the frozen backbone.

    Example:
    >>> pass_title(245, flips=2)
    'computing backbone features once (245 images, 2 flips)'
    >>> pass_title(61, "val")
    'computing backbone features once (61 val images)'
    """
    what = [f"{images} {'val ' if split == 'val' else ''}images"] + [f"{flips} flips"] * (flips > 1) + [copy] * bool(copy)
    return f"computing backbone features once ({', '.join(what)})"


def describe_point(model: keras.Model) -> str:
    """Where the cached features are taken, for the console."""
    point = cache_point(model)
    if point is None or point.backbone_layer is None:
        return "the pooled backbone features"
    return f"the frozen backbone's activations entering {point.backbone_layer} ({'x'.join(map(str, point.shape))})"


def lowest_cut(model: keras.Model, points: Sequence[Optional[CachePoint]]) -> Optional[str]:
    """The lowest backbone cut among the cached phases of a run, when two or more are cached.

    One pass to that cut serves every such phase: each derives its own features from the stored
    activations through the frozen layers between (see `SharedPass`).

    Args:
        model: the classifier.
        points: `cache_point(model)` under each remaining phase's freezing (None: not cached).
    """
    from tfft.models.build import BACKBONE_LAYER_NAME

    cached = [point for point in points if point is not None]
    inside = [point.backbone_layer for point in cached if point.backbone_layer is not None]
    if len(cached) < 2 or not inside:
        return None
    order = [layer.name for layer in model.get_layer(BACKBONE_LAYER_NAME).layers]
    return min(inside, key=order.index)


def _lower(model: keras.Model, layer_name: str) -> keras.Model:
    """Classifier input -> the activations entering backbone layer `layer_name` (frozen part)."""
    from tfft.models.build import BACKBONE_LAYER_NAME

    names = [layer.name for layer in model.layers]
    backbone = model.get_layer(BACKBONE_LAYER_NAME)
    lower = keras.Model(backbone.inputs, backbone.get_layer(layer_name).input, name="shared_bottom")
    x = model.inputs[0]
    for layer in model.layers[1:names.index(BACKBONE_LAYER_NAME)]:
        x = layer(x)
    return keras.Model(model.inputs, lower(x), name="shared_features")


def bridge(model: keras.Model, from_layer: str) -> Optional[keras.Model]:
    """The frozen layers from the activations entering `from_layer` up to the model's own cache point.

    Example: with `from_layer` = block7a_expand_conv and a head phase, the model runs block 7, the
    top convolution and the pool layer: the pooled features, from the stored activations.
    """
    from tfft.models.build import BACKBONE_LAYER_NAME

    point = cache_point(model)
    backbone = model.get_layer(BACKBONE_LAYER_NAME)
    start = backbone.get_layer(from_layer).input
    if point.backbone_layer is None:
        inputs = keras.Input(tuple(start.shape[1:]), dtype="float32", name="activations")
        x = keras.Model(start, backbone.output, name="frozen_top")(inputs)
        return keras.Model(inputs, model.get_layer(POOL_LAYER_NAME)(x), name="bridge")
    if point.backbone_layer == from_layer:
        return None  # the phase's own cut: the stored activations are its features
    return keras.Model(start, backbone.get_layer(point.backbone_layer).input, name="bridge")


@dataclasses.dataclass
class SharedPass:
    """The training and val activations at one backbone cut, shared by the phases above it.

    `versions` holds one array per flip outcome (one in all without augmentation), in file order.
    `fingerprint` is the `model_digest` of the frozen part below the cut when it was computed.
    """

    layer: str
    versions: list[np.ndarray]
    labels: np.ndarray
    val: Optional[tuple[np.ndarray, np.ndarray]]
    fingerprint: str
    outcomes: int


def shared_pass(model: keras.Model, layer: str, previous: Optional[SharedPass], train: Any, total: int,
                outcomes: Sequence[tuple[bool, bool]], val: Any, val_total: int) -> SharedPass:
    """The activations entering backbone `layer` for train (every flip outcome) and val.

    Reuses `previous` when it is at the same cut and the weights below it are unchanged;
    otherwise runs the frozen bottom once over `train` and `val` (un-augmented, file order).
    """
    lower = _lower(model, layer)
    digest = model_digest(lower)
    if previous is not None and previous.layer == layer and previous.fingerprint == digest:
        print("feature cache: reusing the backbone features of the previous phase")
        log.info("feature cache: reusing the activations entering %s from the previous phase", layer)
        return previous
    import tensorflow as tf

    run = tf.function(lambda images: lower(images, training=False), reduce_retracing=True)
    log.info("feature cache: the frozen bottom up to %s, train (%d version(s) of each image), one pass "
             "shared by the cached phases", layer, len(outcomes))
    versions = compute_features(run, train, total, pass_title(total, flips=len(outcomes)), flips=outcomes)
    val_rows = compute_features(run, val, val_total, pass_title(val_total, "val"))[0] if val is not None else None
    return SharedPass(layer, [v for v, _ in versions], versions[0][1], val_rows, digest, len(outcomes))


def split_model(model: keras.Model, logits: bool = False) -> tuple[keras.Model, keras.Model]:
    """Split a tfft classifier at its cache point into (feature model, head model).

    The head model calls the classifier's own layers (the top of the backbone too, when only
    that trains), so fitting it updates `model`. With `logits` the head ends at the `logits`
    layer (a distilled phase: `tfft.training.distill`).

    Example:
    >>> from tfft.config import ModelConfig
    >>> from tfft.models.build import build_classifier
    >>> model = build_classifier(ModelConfig(backbone="mobilenet_v3_small", weights=None), 3, (32, 32))
    >>> model.get_layer("backbone").trainable = False  # a frozen backbone: the cache holds pooled features
    >>> features, head = split_model(model)
    >>> features.output_shape, head.output_shape
    ((None, 576), (None, 3))
    """
    from tfft.models.build import BACKBONE_LAYER_NAME

    names = [layer.name for layer in model.layers]
    point = cache_point(model)
    if point is None:
        raise ValueError("nothing fixed to cache: the layers up to the backbone train")
    if point.backbone_layer is None:
        pool = model.get_layer(POOL_LAYER_NAME)
        feature_model = keras.Model(model.inputs, pool.output, name="cached_features")
        after = names.index(POOL_LAYER_NAME) + 1
        inputs = keras.Input(point.shape, dtype="float32", name="features")
        x = inputs
    else:
        backbone = model.get_layer(BACKBONE_LAYER_NAME)
        cut = backbone.get_layer(point.backbone_layer).input
        lower = keras.Model(backbone.inputs, cut, name="cached_backbone_bottom")
        upper = keras.Model(cut, backbone.output, name="backbone_top")
        x = model.inputs[0]
        for layer in model.layers[1:names.index(BACKBONE_LAYER_NAME)]:
            x = layer(x)  # the classifier's own input layers (preprocessing), frozen
        feature_model = keras.Model(model.inputs, lower(x), name="cached_features")
        after = names.index(BACKBONE_LAYER_NAME) + 1
        inputs = keras.Input(point.shape, dtype="float32", name="features")
        x = upper(inputs)
    from tfft.task import LOGITS_LAYER

    for layer in model.layers[after:]:
        x = layer(x)
        if logits and layer.name == LOGITS_LAYER:
            break
    return feature_model, keras.Model(inputs, x, name="cached_head")


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
        self.feature_model = feature_model
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self._features = tf.function(lambda images: feature_model(images, training=False),
                                     reduce_retracing=True)
        self.weights_fingerprint = self.fingerprint()
        self.copies: list[tuple[np.ndarray, np.ndarray]] = []
        self.first_epoch = 0
        self.shuffled_base = False
        self.flip_versions = False  # copies are flip outcomes of one pass, mixed per epoch
        self.val: Optional[tuple[np.ndarray, np.ndarray]] = None
        self._stored = None
        if store is not None:
            from tfft.training.feature_store import StoredFeatures

            self._stored = StoredFeatures(store, feature_model, self._features)

    def _compute(self, batches: Iterable[Any], total: int, title: str, persist: bool = False,
                 flips: Sequence[tuple[bool, bool]] = ((False, False),)
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
        """One `(features, labels)` pair per flip; `persist`: through the on-disk store, if any."""
        stored = persist and self._stored is not None
        compute = self._stored if stored else self._features
        after = (lambda: print(self._stored.flush())) if stored else None
        return compute_features(compute, batches, total, title, flips, after)

    def fill_train(self, passes: list[Any], total: int, first_epoch: int, shuffled: bool) -> None:
        """Compute the training features.

        Args:
            passes: datasets of (images, one-hot labels); one per cached copy, each one epoch long.
            total: examples per pass (for the progress bar).
            first_epoch: the global epoch that copy 0 stands for.
            shuffled: True when the copies already hold epochs in their training order
                (augmented copies); False for one pass in file order.
        """
        copy = (lambda i: f"augmented copy {i + 1}/{len(passes)}") if shuffled else (lambda i: "")
        self.copies = [self._compute(ds, total, pass_title(total, copy=copy(i)), persist=not shuffled)[0]
                       for i, ds in enumerate(passes)]
        self.first_epoch = int(first_epoch)
        self.shuffled_base = bool(shuffled)
        self.flip_versions = False

    def fill_flips(self, dataset: Any, total: int, outcomes: Sequence[tuple[bool, bool]]) -> None:
        """Compute the training features of every flip outcome, in one pass in file order.

        Args:
            dataset: one un-augmented pass over `train` in file order, (images, one-hot labels).
            total: examples in the pass (for the progress bar).
            outcomes: the `(horizontal, vertical)` flips, equally likely (`Augmenter.flip_outcomes`).
        """
        self.copies = self._compute(dataset, total, pass_title(total, flips=len(outcomes)), persist=True,
                                    flips=outcomes)
        self.shuffled_base = False
        self.flip_versions = True

    def fingerprint(self) -> str:
        """The feature model's `model_digest`: equal digests, equal cached features."""
        return model_digest(self.feature_model)

    def fill_derived(self, shared: SharedPass, through: Optional[keras.Model]) -> None:
        """This phase's features from a `SharedPass`, through the frozen layers between (`bridge`;
        None when the phase's cut is the shared one)."""
        import tensorflow as tf

        run = tf.function(lambda x: through(x, training=False), reduce_retracing=True)

        def derive(rows: np.ndarray) -> np.ndarray:
            if through is None:
                return rows
            out = [np.asarray(keras.ops.convert_to_numpy(run(rows[i:i + 64])), np.float32)
                   for i in range(0, len(rows), 64)]
            return np.concatenate(out)

        log.info("feature cache: derived from the activations entering %s", shared.layer)
        self.copies = [(derive(version), shared.labels) for version in shared.versions]
        self.flip_versions = shared.outcomes > 1
        self.shuffled_base = False
        if shared.val is not None:
            self.val = (derive(shared.val[0]), shared.val[1])

    def val_still_valid(self) -> bool:
        """True when the cached val features still hold for the model's current weights (the
        frozen part was not changed since, e.g. by restoring the best epoch of an earlier phase)."""
        return self.val is not None and self.fingerprint() == self.weights_fingerprint

    def fill_val(self, dataset: Any, total: int) -> None:
        self.val = self._compute(dataset, total, pass_title(total, "val"), persist=True)[0]

    def _epoch_plan(self, epoch: int) -> tuple[Optional[np.ndarray], Any]:
        """`(order, version)` of an epoch: its rows are `copies[version][order]` (`order` None: as
        stored); with flip versions `version` is an array, each row's flip."""
        from tfft.data.pipeline import epoch_permutation

        j = int(epoch) - self.first_epoch
        if self.flip_versions:
            n = len(self.copies[0][1])
            order = epoch_permutation(n, self.seed, int(epoch))
            # Which flip each image gets this epoch: uniform, a function of (seed, epoch) only.
            rng = np.random.default_rng([self.seed, int(epoch), 0x0F119])
            return order, rng.integers(0, len(self.copies), n)[order]
        k = j % len(self.copies)
        if self.shuffled_base and 0 <= j < len(self.copies):
            return None, k  # exactly the batches the augmented pipeline gave for this epoch
        return epoch_permutation(len(self.copies[k][1]), self.seed, int(epoch)), k

    def _gather(self, order: Optional[np.ndarray], version: Any, start: int, stop: int,
                ) -> tuple[np.ndarray, np.ndarray]:
        """Rows `start:stop` of an epoch (`_epoch_plan`), gathered for one batch: no shuffled or
        stacked copy of the features is made."""
        if not isinstance(version, np.ndarray):
            features, labels = self.copies[version]
            if order is None:
                return features[start:stop], labels[start:stop]
            rows = order[start:stop]
            return features[rows], labels[rows]
        rows, which = order[start:stop], version[start:stop]
        first = self.copies[0][0]
        out = np.empty((len(rows),) + first.shape[1:], first.dtype)
        for k, (features, _) in enumerate(self.copies):
            mine = which == k
            out[mine] = features[rows[mine]]
        return out, self.copies[0][1][rows]

    def _epoch_rows(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Every row of an epoch in training order (one gather of all; training gathers per batch)."""
        order, version = self._epoch_plan(epoch)
        return self._gather(order, version, 0, len(self.copies[0][1]))

    def train_dataset(self, epochs: range, skip_batches: int = 0) -> Any:
        """Batches of (features, one-hot labels) for `epochs`, back to back, like `make_dataset`'s.

        `skip_batches` leaves out the first batches of the first epoch (resuming inside it). Each
        batch is gathered from the stored features by index, so memory stays at the features
        themselves plus a few batches.
        """
        import tensorflow as tf

        feature_dim = self.copies[0][0].shape[1:]
        label_spec = tf.TensorSpec((None,) + self.copies[0][1].shape[1:], tf.as_dtype(self.copies[0][1].dtype))

        def batches():
            for epoch in epochs:
                order, version = self._epoch_plan(epoch)
                n = len(self.copies[0][1])
                first = skip_batches * self.batch_size if epoch == epochs[0] else 0
                for start in range(first, n, self.batch_size):
                    yield self._gather(order, version, start, start + self.batch_size)

        ds = tf.data.Dataset.from_generator(
            batches, output_signature=(tf.TensorSpec((None,) + feature_dim, tf.float32), label_spec))
        return ds.prefetch(streams.PREFETCH).with_options(streams.options())

    def val_dataset(self) -> Any:
        """Batches of (features, one-hot labels) of the validation split, in its fixed order
        (sliced from the stored features: no second copy in a tensor)."""
        import tensorflow as tf

        features, labels = self.val

        def batches():
            for start in range(0, len(labels), self.batch_size):
                yield features[start:start + self.batch_size], labels[start:start + self.batch_size]

        ds = tf.data.Dataset.from_generator(batches, output_signature=(
            tf.TensorSpec((None,) + features.shape[1:], tf.float32),
            tf.TensorSpec((None,) + labels.shape[1:], tf.as_dtype(labels.dtype))))
        return ds.apply(tf.data.experimental.assert_cardinality(-(-len(labels) // self.batch_size))).with_options(
            streams.options())
