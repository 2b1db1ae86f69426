"""The persistent feature store: frozen backbone features that outlive a run.

`tfft.training.feature_cache` computes a frozen backbone's features once per phase; this store
keeps them on disk, one row per image, so that the next run over the same images with the same
feature model (a cross-validation fold on another subset, a tuning trial, a repeated run, in this
process or another) reads them instead of computing them. (`feature_cache.FeatureStore` is the
in-memory counterpart `tfft tune` passes to `tfft.train`: whole caches, augmented copies included,
within one process.)

Keys are exact, so a stale entry is never read:

* the image: a BLAKE2b digest of the decoded, resized float32 pixels the backbone receives, so
  the file's content, the decoder, `data.image_size` and the resize rule are all in it (a flipped
  or otherwise deterministically transformed copy is simply another image);
* the feature model: a digest of its layer classes, every weight (shape and bytes), the global
  dtype policy and its output on a fixed probe batch (which covers preprocessing and pooling
  settings that hold no weights). Another backbone, other weights, a fine-tuned backbone, another
  size or precision: another key.

Layout: `ROOT/<model key>/<shard>.npz`, each shard `keys` [N, 16] uint8 and `features` [N, D]
float32, written atomically (several processes may share a store). Reading a shard touches its
mtime; when the store grows past its bound, the least recently used shards are deleted.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from tfft import layout
from tfft.backbones import all_layers
from tfft.wording import plural

DIGEST_BYTES = 16
SHARD_SUFFIX = ".npz"


def default_root() -> Path:
    """`$TFFT_CACHE_DIR/features`, else `$XDG_CACHE_HOME/tfft/features`, else `~/.cache/tfft/features`."""
    return layout.cache_root() / layout.FEATURES_DIR


def open_store(setting: str, max_gb: float) -> Optional["DiskFeatureStore"]:
    """The store `performance.feature_store` names (`auto`, `off` or a folder), or None for `off`.

    Example:
    >>> open_store("off", 2.0) is None
    True
    """
    if setting == "off":
        return None
    root = default_root() if setting == "auto" else Path(setting).expanduser()
    return DiskFeatureStore(root, int(max_gb * 2**30))


def image_digests(images: np.ndarray) -> np.ndarray:
    """[B, 16] uint8: one digest per image of a float32 [B, H, W, C] batch."""
    images = np.ascontiguousarray(images, dtype=np.float32)
    out = np.empty((len(images), DIGEST_BYTES), np.uint8)
    for i, image in enumerate(images):
        out[i] = np.frombuffer(hashlib.blake2b(image.tobytes(), digest_size=DIGEST_BYTES).digest(), np.uint8)
    return out


def model_digest(feature_model: Any) -> str:
    """A hex digest of everything about a feature model that decides its features.

    The one model digest of tfft's feature caches: the disk store's key, the in-memory
    `feature_cache.FeatureStore`'s key and the check that a frozen part is unchanged all use it.
    It covers the input shape, the global dtype policy, each layer's class and configuration (its
    name aside: Keras numbers auto-named layers per process), every weight (shape, dtype and
    bytes) and the output on a fixed probe batch (the wiring, and settings a configuration hides).
    Trainable flags are left out: features are computed in inference mode, where they change nothing.

    Example:
    >>> from tfft.config import ModelConfig
    >>> from tfft.models.build import build_classifier
    >>> from tfft.training.feature_cache import split_model
    >>> cfg = ModelConfig(backbone="mobilenet_v3_small", weights=None)
    >>> model = build_classifier(cfg, 3, (32, 32))
    >>> model.get_layer("backbone").trainable = False
    >>> a, _ = split_model(model)
    >>> model_digest(a) == model_digest(a), len(model_digest(a))
    (True, 32)
    """
    import json

    import keras

    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(tuple(feature_model.input_shape)).encode())
    digest.update(keras.config.dtype_policy().name.encode())
    for layer in all_layers(feature_model):
        digest.update(type(layer).__name__.encode())
        if not hasattr(layer, "layers"):  # a nested model's layers are listed themselves
            config = {k: v for k, v in layer.get_config().items() if k not in ("name", "trainable")}
            digest.update(json.dumps(config, sort_keys=True, default=repr).encode())
    for weight in feature_model.weights:
        value = np.asarray(keras.ops.convert_to_numpy(weight))
        digest.update(repr((value.shape, str(value.dtype))).encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    shape = tuple(int(d) for d in feature_model.input_shape[1:])
    probe = np.random.default_rng(0).uniform(0, 255, (2,) + shape).astype(np.float32)
    batch = [probe] if isinstance(feature_model.input, list) else probe  # the structure its inputs have
    digest.update(np.asarray(keras.ops.convert_to_numpy(feature_model(batch, training=False)), np.float32).tobytes())
    return digest.hexdigest()


class DiskFeatureStore:
    """Features on disk, by (feature model digest, image digest), bounded in size.

    Args:
        root: the store's folder (created when first written).
        max_bytes: the bound; least recently used shards beyond it are deleted after each write.
    """

    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)

    def __repr__(self) -> str:
        return f"DiskFeatureStore({str(self.root)!r}, max_bytes={self.max_bytes})"

    def load(self, model_key: str) -> dict[bytes, np.ndarray]:
        """Every stored feature vector of one feature model, by image digest."""
        found: dict[bytes, np.ndarray] = {}
        folder = self.root / model_key
        if not folder.is_dir():
            return found
        for shard in sorted(folder.glob("*" + SHARD_SUFFIX)):
            try:
                with np.load(shard, allow_pickle=False) as data:
                    keys, features = data["keys"], data["features"]
                os.utime(shard)  # recently used
            except (OSError, ValueError, KeyError):  # deleted meanwhile, or a foreign file: a miss
                continue
            found.update((bytes(k), f) for k, f in zip(keys, features))
        return found

    def add(self, model_key: str, keys: np.ndarray, features: np.ndarray) -> None:
        """Write one shard of new features, then keep the store within its bound."""
        if len(keys) == 0:
            return
        from tfft.atomic import atomic_path

        folder = self.root / model_key
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / f"{uuid.uuid4().hex}{SHARD_SUFFIX}", suffix=SHARD_SUFFIX) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, keys=np.asarray(keys, np.uint8), features=np.asarray(features, np.float32))
        self.evict()

    def size(self) -> int:
        """Bytes the store's shards take."""
        return sum(size for _, _, size in self._shards())

    def _shards(self) -> list[tuple[float, Path, int]]:
        out = []
        if not self.root.is_dir():
            return out
        for shard in self.root.glob("*/*" + SHARD_SUFFIX):
            try:
                stat = shard.stat()
            except OSError:
                continue
            out.append((stat.st_mtime, shard, stat.st_size))
        return out

    def evict(self) -> int:
        """Delete least recently used shards until the store fits its bound; the bytes freed."""
        shards = sorted(self._shards(), key=lambda s: s[0])
        total = sum(size for _, _, size in shards)
        freed = 0
        for _, shard, size in shards:
            if total - freed <= self.max_bytes:
                break
            try:
                shard.unlink()
                freed += size
            except OSError:
                continue
            try:
                shard.parent.rmdir()  # only when empty
            except OSError:
                pass
        return freed


class StoredFeatures:
    """One feature model's view of a store: compute only the images the store does not hold.

    Args:
        store: a `DiskFeatureStore`.
        feature_model: the model whose features are stored (its digest is the key).
        compute: `compute(images) -> features` (the feature cache's compiled call).
    """

    def __init__(self, store: DiskFeatureStore, feature_model: Any, compute: Callable[[Any], Any]):
        self.store = store
        self.key = model_digest(feature_model)
        self.compute = compute
        self.known: Optional[dict[bytes, np.ndarray]] = None
        self.new_keys: list[np.ndarray] = []
        self.new_features: list[np.ndarray] = []
        self.hits = 0
        self.misses = 0

    def __call__(self, images: Any) -> np.ndarray:
        """The features of one batch: stored rows read, the others computed (in one call)."""
        import keras

        if self.known is None:
            self.known = self.store.load(self.key)
        pixels = np.asarray(keras.ops.convert_to_numpy(images), np.float32)
        digests = image_digests(pixels)
        rows = [self.known.get(bytes(d)) for d in digests]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            batch = images if len(missing) == len(rows) else pixels[missing]
            computed = np.asarray(keras.ops.convert_to_numpy(self.compute(batch)), np.float32)
            for j, i in enumerate(missing):
                rows[i] = computed[j]
                self.known[bytes(digests[i])] = computed[j]
            self.new_keys.append(digests[missing])
            self.new_features.append(computed)
        self.hits += len(rows) - len(missing)
        self.misses += len(missing)
        return np.stack(rows).astype(np.float32, copy=False)

    def flush(self) -> str:
        """Write what was computed since the last flush; returns a console line."""
        if self.new_keys:
            self.store.add(self.key, np.concatenate(self.new_keys), np.concatenate(self.new_features))
        line = (f"feature store: {self.hits} of {plural(self.hits + self.misses, 'image')} read from {self.store.root}, "
                f"{self.misses} computed")
        self.new_keys, self.new_features, self.hits, self.misses = [], [], 0, 0
        return line
