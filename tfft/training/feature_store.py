"""The persistent feature store: frozen backbone features that outlive a run.

`tfft.training.feature_cache` computes a frozen backbone's features once per phase; this store
keeps them on disk, one row per image, so that the next run over the same images with the same
feature model (a cross-validation fold on another subset, a tuning trial, a repeated run, in this
process or another) reads them instead of computing them. `FeatureStore` (below) is the
in-memory tier `tfft tune` passes to `tfft.train`: whole caches, augmented copies included, within
one process, by the same `model_digest`.

Keys are exact, so a stale entry is never read:

* the image: a BLAKE2b digest of the decoded, resized float32 pixels the backbone receives, so
  the file's content, the decoder, `data.image_size` and the resize rule are all in it (a flipped
  or otherwise deterministically transformed copy is simply another image);
* the feature model: a digest of its layer classes, every weight (shape and bytes), the global
  dtype policy and its output on a fixed probe batch (which covers preprocessing and pooling
  settings that hold no weights). Another backbone, other weights, a fine-tuned backbone, another
  size or precision: another key.

Layout: `ROOT/<model key>/<shard>.npz`, each shard `keys` [N, 16] uint8 and `features` [N, D]
float32 (uncompressed), written atomically (several processes may share a store). Two tiers: on
disk, the shards, read lazily: a view opens only the keys of its model's shards (an index of 36
bytes an entry, sorted, looked up vectorised) and memory-maps a shard's features when a row of it
is used (the OS page cache is the memory tier for rows read); in memory, the rows computed since
the last flush. Reading a shard touches its mtime; when the store grows past its bound, the least
recently used shards are deleted, never the one just written (a pass larger than the bound is
kept alone, and a log line says so).
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import uuid
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from tfft import layout
from tfft.backbones import all_layers
from tfft.wording import plural

DIGEST_BYTES = 16
SHARD_SUFFIX = ".npz"
log = logging.getLogger(__name__)


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
        shard = folder / f"{uuid.uuid4().hex}{SHARD_SUFFIX}"
        with atomic_path(shard, suffix=SHARD_SUFFIX) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, keys=np.asarray(keys, np.uint8), features=np.asarray(features, np.float32))
        self.evict(keep=(shard,))

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

    def evict(self, keep: tuple[Path, ...] = ()) -> int:
        """Delete least recently used shards until the store fits its bound; the bytes freed.

        `keep`: shards never deleted (the pass just written): when they alone are over the bound,
        every other shard goes, they stay, and a log line says so.
        """
        kept = {Path(p) for p in keep}
        shards = sorted(self._shards(), key=lambda s: s[0])
        total = sum(size for _, _, size in shards)
        freed = 0
        for _, shard, size in shards:
            if total - freed <= self.max_bytes:
                break
            if shard in kept:
                continue
            try:
                shard.unlink()
                freed += size
            except OSError:
                continue
            try:
                shard.parent.rmdir()  # only when empty
            except OSError:
                pass
        if total - freed > self.max_bytes and kept:
            log.warning("feature store: the newest pass (%.1f MiB) alone is over the store's bound "
                        "(%.1f MiB, performance.feature_store_max_gb); kept it, deleted the rest",
                        (total - freed) / 2**20, self.max_bytes / 2**20)
        return freed

    def index(self, model_key: str) -> "ShardIndex":
        """The keys of one feature model's shards (their features are read only when used)."""
        folder = self.root / model_key
        return ShardIndex(sorted(folder.glob("*" + SHARD_SUFFIX)) if folder.is_dir() else [])


def _stored_array(shard: Path, name: str) -> np.ndarray:
    """One array of an .npz shard: memory-mapped when stored uncompressed (`np.savez`), so only
    the rows used are read; read whole otherwise."""
    with zipfile.ZipFile(shard) as archive:
        info = archive.getinfo(name + ".npy")
        if info.compress_type != zipfile.ZIP_STORED:
            with archive.open(info) as handle:
                return np.lib.format.read_array(handle, allow_pickle=False)
    with open(shard, "rb") as handle:
        handle.seek(info.header_offset)
        name_length, extra_length = struct.unpack("<HH", handle.read(30)[26:30])  # the local file header
        handle.seek(info.header_offset + 30 + name_length + extra_length)
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(handle)
        offset = handle.tell()
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype)
    return np.memmap(shard, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


class ShardIndex:
    """The image digests of some shards, sorted, and where each row is: lookups without a dict.

    Args:
        shards: the shard files (unreadable ones are skipped: a miss).
    """

    def __init__(self, shards: list[Path]):
        self.shards: list[Path] = []
        keys, shard_of, rows = [], [], []
        for shard in shards:
            try:
                with np.load(shard, allow_pickle=False) as data:
                    k = np.asarray(data["keys"], np.uint8).reshape(-1, DIGEST_BYTES)  # the keys only
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # deleted meanwhile, or foreign
                continue
            keys.append(k)
            shard_of.append(np.full(len(k), len(self.shards), np.int32))
            rows.append(np.arange(len(k), dtype=np.int64))
            self.shards.append(shard)
        pairs = np.concatenate(keys).view("<u8") if keys else np.zeros((0, 2), "<u8")
        order = np.lexsort((pairs[:, 1], pairs[:, 0]))
        self.high, self.low = pairs[order, 0], pairs[order, 1]
        self.shard_of = np.concatenate(shard_of)[order] if keys else np.zeros(0, np.int32)
        self.rows = np.concatenate(rows)[order] if keys else np.zeros(0, np.int64)
        self._features: dict[int, np.ndarray] = {}
        self.touched: set[int] = set()

    def __len__(self) -> int:
        return len(self.high)

    def find(self, digests: np.ndarray) -> np.ndarray:
        """For each [16] uint8 digest, its position in the index, or -1."""
        q = np.ascontiguousarray(digests, np.uint8).reshape(-1, DIGEST_BYTES).view("<u8")
        start = np.searchsorted(self.high, q[:, 0], side="left")
        stop = np.searchsorted(self.high, q[:, 0], side="right")
        found = np.full(len(q), -1, np.int64)
        hit = stop > start
        at = np.minimum(start, max(len(self.high) - 1, 0))
        exact = hit & (self.low[at] == q[:, 1]) if len(self.high) else hit
        found[exact] = at[exact]
        for i in np.flatnonzero(hit & ~exact & (stop - start > 1)):  # the high halves collide: rare
            at_i = start[i] + np.searchsorted(self.low[start[i]:stop[i]], q[i, 1])
            if at_i < stop[i] and self.low[at_i] == q[i, 1]:
                found[i] = at_i
        return found

    def rows_at(self, positions: np.ndarray) -> np.ndarray:
        """The stored features at `positions` (from `find`, none -1), float32 [len, D]."""
        shard_ids = self.shard_of[positions]
        out: Optional[np.ndarray] = None
        for shard_id in np.unique(shard_ids):
            features = self._features.get(int(shard_id))
            if features is None:
                features = self._features[int(shard_id)] = _stored_array(self.shards[shard_id], "features")
            if shard_id not in self.touched:
                self.touched.add(int(shard_id))
                try:
                    os.utime(self.shards[shard_id])  # recently used
                except OSError:
                    pass
            mine = shard_ids == shard_id
            rows = np.asarray(features[self.rows[positions[mine]]], np.float32)
            if out is None:
                out = np.empty((len(positions),) + rows.shape[1:], np.float32)
            out[mine] = rows
        return out if out is not None else np.zeros((0,), np.float32)


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
        self.index: Optional[ShardIndex] = None  # opened at the first batch: keys only
        self.pending: dict[bytes, np.ndarray] = {}  # the memory tier: computed, not yet flushed
        self.hits = 0
        self.misses = 0

    def __call__(self, images: Any) -> np.ndarray:
        """The features of one batch: stored rows read, the others computed (in one call)."""
        import keras

        if self.index is None:
            self.index = self.store.index(self.key)
        pixels = np.asarray(keras.ops.convert_to_numpy(images), np.float32)
        digests = image_digests(pixels)
        positions = self.index.find(digests)
        on_disk = np.flatnonzero(positions >= 0)
        rows: list[Optional[np.ndarray]] = [None] * len(digests)
        if len(on_disk):
            for i, row in zip(on_disk.tolist(), self.index.rows_at(positions[on_disk])):
                rows[i] = row
        for i in np.flatnonzero(positions < 0).tolist():
            rows[i] = self.pending.get(bytes(digests[i]))
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            batch = images if len(missing) == len(rows) else pixels[missing]
            computed = np.asarray(keras.ops.convert_to_numpy(self.compute(batch)), np.float32)
            for j, i in enumerate(missing):
                rows[i] = computed[j]
                self.pending[bytes(digests[i])] = computed[j]
        self.hits += len(rows) - len(missing)
        self.misses += len(missing)
        return np.stack(rows).astype(np.float32, copy=False)

    def flush(self) -> str:
        """Write what was computed since the last flush; returns a console line."""
        if self.pending:
            keys = np.frombuffer(b"".join(self.pending), np.uint8).reshape(-1, DIGEST_BYTES)
            self.store.add(self.key, keys, np.stack(list(self.pending.values())))
            self.index = None  # the next batch sees the new shard (and any other process's)
        line = (f"feature store: {self.hits} of {plural(self.hits + self.misses, 'image')} read from {self.store.root}, "
                f"{self.misses} computed")
        self.pending, self.hits, self.misses = {}, 0, 0
        return line


class FeatureStore:
    """Backbone features kept in memory across the runs of one process (`tfft tune`'s trials).

    A head-only trial that changes the rate, dropout or epochs runs the same frozen backbone
    over the same images as the trial before it; with a store passed to `tfft.train` only the
    first trial computes the features. An entry's key is the feature model's `model_digest` (so a
    different backbone, weights file, input size, preprocessing or pooling never matches) and a
    digest of everything else the features depend on (the data section and the split lists, the
    seed, the precision and, for augmented passes, the augmentation and the epochs they stand for).

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

    def key(self, feature_model: Any, depends_on: dict[str, Any]) -> str:
        """The entry key: `model_digest(feature_model)` (weights, layers and their settings: the
        pooling, the input size, the preprocessing) and `depends_on`, the JSON-able rest the
        features depend on (the data's settings and split lists, the seed, the precision...)."""
        import json

        digest = hashlib.sha256(json.dumps(depends_on, sort_keys=True, default=str).encode())
        digest.update(model_digest(feature_model).encode())
        return digest.hexdigest()

    def restore(self, key: str, cache: Any) -> bool:
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

    def store(self, key: str, cache: Any) -> None:
        """Keep `cache`'s features under `key`."""
        self._entries[key] = {"copies": list(cache.copies), "first_epoch": cache.first_epoch,
                              "shuffled_base": cache.shuffled_base, "val": cache.val}
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
