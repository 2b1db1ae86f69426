"""Decode once: the decoded images of a training split, kept between epochs (`performance.decoded_cache`).

A training epoch decodes every file, then resizes and augments each batch. The decode is the
same every epoch (the augmentation is not), so its output, the uint8 image as decoded (at the
DCT-reduced scale `decode.dct_ratio` picks, before any resize or warp: what `make_dataset`
batches as a `DecodedBatch`), is kept here by example index. The first epoch fills the store as
it goes; later epochs gather their batches from it, so they pay only for the resize, the
augmentation and the batching. The batches are bitwise those of the uncached pipeline: a
gathered batch is the `DecodedBatch` `padded_batch` would have made of the same images.

The store is in memory up to `max_bytes` (`performance.decoded_cache_max_gb`); the images beyond
it are appended to an unlinked file in `spill_dir` (the run's disk cache) and read back with
`os.pread`. One store is kept per process (the last split asked for), so the phases of a run
share it and a new split frees the old one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from tfft.data import decode as _decode
from tfft.data import shapes as _shapes


@dataclasses.dataclass(frozen=True)
class DecodedCachePolicy:
    """`performance.decoded_cache` (auto | on | off) and its budget, resolved for `make_dataset`.

    Args:
        mode: `auto` keeps the decoded images when they fit the budget in memory, or the rest fits
            on disk; `on` keeps them whatever the disk says; `off` decodes every epoch.
        max_gb: the memory budget, in GiB; images beyond it go to `spill_dir`.
        spill_dir: where the images beyond the budget go (None: the system's temporary folder).

    Example:
    >>> DecodedCachePolicy("off").enabled
    False
    """

    mode: str = "auto"
    max_gb: float = 2.0
    spill_dir: Optional[Path] = None

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @property
    def max_bytes(self) -> int:
        return int(self.max_gb * 2**30)


def estimate_bytes(split, image_size, fast_decode: bool) -> Optional[int]:
    """The bytes the split's images take as decoded (from the scan's headers), or None if unknown.

    Example:
    >>> from tfft.data.sources import Split
    >>> split = Split("train", paths=np.array(["a.jpg"]), labels=np.zeros(1, np.int32),
    ...               sizes=np.array([[2016, 1512]]), formats=np.array(["JPEG"]))
    >>> estimate_bytes(split, (224, 224), True)  # decoded at 1/4: 504 x 378 x 3
    571536
    """
    height, width = int(image_size[0]), int(image_size[1])
    resized = 4 * height * width * 3
    if split.kind == "builtin":
        one = _shapes.NATIVE_SIZE ** 2 * 3
        return len(split) * (one if one <= resized else resized)
    if split.kind != "files" or split.sizes is None or split.formats is None or len(split.sizes) != len(split):
        return None
    total = 0
    for (w, h), form in zip(split.sizes.astype(np.int64), split.formats):
        r = _decode.dct_ratio(int(h), int(w), image_size, fast_decode) if form == "JPEG" else 1
        values = -(-int(h) // r) * -(-int(w) // r) * 3
        total += values if values <= resized else resized  # too large to batch as decoded: kept resized
    return total


class DecodedStore:
    """Decoded images by example index: `put` as a batch is decoded, `gather` a batch back.

    Args:
        n: the examples of the split.
        max_bytes: kept in memory up to this; beyond it in an unlinked file in `spill_dir`.
        spill_dir: the folder of the spill file (None: the system's temporary folder).

    Example:
    >>> store = DecodedStore(2, max_bytes=10)
    >>> raw = np.arange(24, dtype=np.uint8).reshape(2, 12)
    >>> store.put(np.array([1, 0]), raw, np.array([[2, 2, 3], [1, 2, 3]], np.int32), np.zeros((2, 0), np.float32))
    >>> store.complete, store.bytes_in_memory, store.bytes_on_disk
    (True, 6, 12)
    >>> store.gather(np.array([0, 1]))[0].tolist()[0]
    [12, 13, 14, 15, 16, 17, 0, 0, 0, 0, 0, 0]
    """

    def __init__(self, n: int, max_bytes: int, spill_dir: Optional[Path] = None):
        self.n, self.max_bytes, self.spill_dir = int(n), int(max_bytes), spill_dir
        self.shapes = np.zeros((self.n, 3), np.int32)
        self.have = np.zeros(self.n, bool)
        self._raw: list = [None] * self.n  # an array in memory, or (offset, nbytes) in the spill file
        self._resized: list = [None] * self.n
        self.bytes_in_memory = self.bytes_on_disk = 0
        self._fd: Optional[int] = None
        self._lock = threading.Lock()

    @property
    def complete(self) -> bool:
        return bool(self.have.all())

    def missing(self, indices: np.ndarray) -> np.ndarray:
        """Which of `indices` (-1: a filler) still need decoding."""
        indices = np.asarray(indices)
        return (indices >= 0) & ~self.have[np.maximum(indices, 0)]

    def _keep(self, values: np.ndarray):
        if self.bytes_in_memory + values.nbytes <= self.max_bytes:
            self.bytes_in_memory += values.nbytes
            return values.copy()
        if self._fd is None:
            folder = self.spill_dir or Path(tempfile.gettempdir())
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix="decoded-", suffix=".bin", dir=folder)
            os.unlink(name)  # freed when the store is: nothing is left behind
            self._fd = fd
        offset = self.bytes_on_disk
        os.pwrite(self._fd, values.tobytes(), offset)
        self.bytes_on_disk += values.nbytes
        return (offset, values.nbytes, values.dtype)

    def _read(self, kept) -> np.ndarray:
        if isinstance(kept, np.ndarray):
            return kept
        offset, nbytes, dtype = kept
        return np.frombuffer(os.pread(self._fd, nbytes, offset), dtype=dtype)

    def put(self, indices, raw, shapes, resized) -> None:
        """Keep the rows of a batch as decoded (`DecodedBatch` fields) for `indices` (-1 rows skipped)."""
        with self._lock:
            for row, index in enumerate(np.asarray(indices)):
                if index < 0 or self.have[index]:
                    continue
                shape = np.asarray(shapes[row], np.int32)
                length = int(np.prod(shape))
                self._raw[index] = self._keep(np.ascontiguousarray(raw[row, :length]))
                self._resized[index] = self._keep(np.ascontiguousarray(resized[row])) if shape[0] == 0 else None
                self.shapes[index] = shape
                self.have[index] = True

    def gather(self, indices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(raw uint8 [B, L], shapes int32 [B, 3], resized float32 [B, R]) of `indices`, zero padded
        to the longest row as `padded_batch` pads them."""
        indices = np.asarray(indices, np.int64)
        raws = [self._read(self._raw[i]) for i in indices]
        resized = [self._read(self._resized[i]) if self._resized[i] is not None else None for i in indices]
        raw_out = np.zeros((len(indices), max((len(r) for r in raws), default=0)), np.uint8)
        width = max((len(r) for r in resized if r is not None), default=0)
        resized_out = np.zeros((len(indices), width), np.float32)
        for row, (r, z) in enumerate(zip(raws, resized)):
            raw_out[row, :len(r)] = r
            if z is not None:
                resized_out[row, :len(z)] = z
        return raw_out, self.shapes[indices], resized_out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):  # pragma: no cover - garbage collection
        self.close()


_CURRENT: dict = {}


def _key(split, image_size, fast_decode: bool) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((split.kind, tuple(int(v) for v in image_size), bool(fast_decode), len(split))).encode())
    for part in (split.paths, split.ids, split.sizes):
        if part is not None:
            digest.update(np.asarray(part).astype(str if part is split.paths else np.int64).tobytes())
    return digest.hexdigest()


def store_for(split, image_size, fast_decode: bool, policy: Optional[DecodedCachePolicy],
              say: Callable[[str], None] = print) -> Optional[DecodedStore]:
    """The process's store for this split's decoded images, or None (off, or `auto` found no room).

    A split asked for again (the next phase, a fresh dataset) gets the same store, already filled.

    Example:
    >>> store_for(None, (32, 32), True, DecodedCachePolicy("off")) is None
    True
    """
    if policy is None or not policy.enabled or split is None or split.kind not in ("files", "builtin"):
        return None
    key = _key(split, image_size, fast_decode)
    if key in _CURRENT:
        return _CURRENT[key]
    release()
    need = estimate_bytes(split, image_size, fast_decode)
    spill = need is not None and need > policy.max_bytes
    where = policy.spill_dir or Path(tempfile.gettempdir())
    if spill:
        free = shutil.disk_usage(_existing(where)).free
        over = need - policy.max_bytes
        if policy.mode == "auto" and over > free // 2:
            say(f"decoded cache: off: {len(split)} images decode to {_gib(need)}, over "
                f"performance.decoded_cache_max_gb ({policy.max_gb:g}), and {where} has {_gib(free)} free "
                f"for the rest; every epoch decodes again (performance.decoded_cache: on to spill anyway)")
            return None
        say(f"decoded cache: {len(split)} images decode to {_gib(need)}, over "
            f"performance.decoded_cache_max_gb ({policy.max_gb:g}): {_gib(policy.max_bytes)} kept in "
            f"memory, the rest ({_gib(over)}) on disk in {where}")
    store = DecodedStore(len(split), policy.max_bytes, policy.spill_dir)
    _CURRENT[key] = store
    return store


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def _existing(path: Path) -> Path:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def release() -> None:
    """Free the process's decoded store (its memory and its spill file).

    Example:
    >>> release()
    """
    for store in _CURRENT.values():
        store.close()
    _CURRENT.clear()
