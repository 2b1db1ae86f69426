"""Decode once: the decoded images of a training (and validation) split, kept between epochs (`performance.decoded_cache`).

A training epoch decodes every file, then resizes and augments each batch. The decode is the
same every epoch (the augmentation is not), so its output, the uint8 image as decoded (at the
DCT-reduced scale `decode.dct_ratio` picks, before any resize or warp: what `make_dataset`
batches as a `DecodedBatch`), is kept here by example index. The first epoch fills the store as
it goes; later epochs gather their batches from it, so they pay only for the resize, the
augmentation and the batching. The batches are bitwise those of the uncached pipeline: a
gathered batch is the `DecodedBatch` `padded_batch` would have made of the same images.

A store keeps the decoded batches themselves in memory (no copy: a copy, and the fresh pages it
writes, cost as much as a quarter of the decode of a 500x375 JPEG on this project's machine), up
to `performance.decoded_cache_max_gb`; the images beyond it go to an unlinked file in
`spill_dir` (the run's disk cache), mapped in memory. A gather copies rows with NumPy, which
releases the GIL for copies this size, so a gathered epoch runs as many threads as a decoded one. One
store is kept per process and split name (the training and the validation split: every epoch's
validation pass reads its store), so the phases of a run share them; all draw on one budget.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from tfft.data import decode as _decode
from tfft.data import pyfunc as _pyfunc
from tfft.data import shapes as _shapes


@dataclasses.dataclass(frozen=True)
class DecodedCachePolicy:
    """`performance.decoded_cache` (auto | on | off) and its budget, resolved for `make_dataset`.

    Args:
        mode: `auto` keeps the decoded images when they fit the budget in memory, or the rest fits
            on disk; `on` keeps them whatever the disk says; `off` decodes every epoch.
        max_gb: the memory budget, in GiB; images beyond it go to `spill_dir`.
        spill_dir: where the images beyond the budget go (None: the system's temporary folder).
        start: False when the split is read for the last time: a store an earlier dataset of it
            filled is still read, but none is started (filling one costs the first touch of its
            memory, 5-11% of a first epoch on this project's machine, and nothing would read it).

    Example:
    >>> DecodedCachePolicy("off").enabled
    False
    """

    mode: str = "auto"
    max_gb: float = 2.0
    spill_dir: Optional[Path] = None
    start: bool = True

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


class MemoryBudget:
    """The bytes the decoded stores of a process may keep in memory, shared by them (the training
    and the validation split's stores draw on one `performance.decoded_cache_max_gb`).

    Example:
    >>> budget = MemoryBudget(100)
    >>> budget.take(70), budget.take(70), budget.left
    (True, False, 30)
    """

    def __init__(self, max_bytes: int):
        self.max_bytes, self.left = int(max_bytes), int(max_bytes)
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> bool:
        """Take `nbytes` if that much is left (True), else nothing (False)."""
        with self._lock:
            if int(nbytes) > self.left:
                return False
            self.left -= int(nbytes)
            return True

    def free(self, nbytes: int) -> None:
        with self._lock:
            self.left = min(self.max_bytes, self.left + int(nbytes))


_OWN, _SPILLED = -2, -1  # `DecodedStore.chunk` of an image kept in a copy of its own, in the spill file


class DecodedStore:
    """Decoded images by example index: `put` as a batch is decoded, `gather` a batch back.

    A batch put whole is kept as it is (its `DecodedBatch.raw`, which aliases the tensor the
    decode made: no copy, and no fresh memory to fault in; its images kept resized, rare, are
    copied); each image is then a row of a kept batch. When the budget has no room for a whole
    batch, its images are copied one by one while there is room, the rest to a spill file mapped in memory
    (unlinked at once: nothing is left behind). A gather copies rows (NumPy's copies, which
    release the GIL) into one padded batch.

    Args:
        n: the examples of the split.
        max_bytes: kept in memory up to this; beyond it in the spill file in `spill_dir`.
        spill_dir: the folder of the spill file (None: the system's temporary folder).
        budget: a `MemoryBudget` shared with other stores (None: one of `max_bytes` for this one).

    Example:
    >>> store = DecodedStore(2, max_bytes=10)
    >>> raw = np.arange(24, dtype=np.uint8).reshape(2, 12)
    >>> store.put(np.array([1, 0]), raw, np.array([[2, 2, 3], [1, 2, 3]], np.int32), np.zeros((2, 0), np.float32))
    >>> store.complete, store.bytes_in_memory, store.bytes_on_disk
    (True, 6, 12)
    >>> store.gather(np.array([0, 1]))[0].tolist()[0]
    [12, 13, 14, 15, 16, 17, 0, 0, 0, 0, 0, 0]
    """

    def __init__(self, n: int, max_bytes: int, spill_dir: Optional[Path] = None,
                 budget: Optional["MemoryBudget"] = None):
        self.n, self.max_bytes, self.spill_dir = int(n), int(max_bytes), spill_dir
        self.budget = budget if budget is not None else MemoryBudget(self.max_bytes)
        self.shapes = np.zeros((self.n, 3), np.int32)
        self.have = np.zeros(self.n, bool)
        self.chunk = np.full(self.n, _SPILLED, np.int64)  # the kept batch holding the image, _OWN, or _SPILLED
        self.row = np.zeros(self.n, np.int64)  # its row there, or its byte offset in the spill file
        self.nbytes = np.zeros(self.n, np.int64)
        self.resized_len = np.zeros(self.n, np.int64)  # float32 values of an image kept resized, else 0
        self.bytes_in_memory = self.bytes_on_disk = 0
        self._chunks: list = []  # the raw uint8 [B, L] of the batches kept whole, as put
        self._own: dict = {}  # index -> a copy of its values (a resized image, or a row kept alone)
        self._spill = np.zeros(0, np.uint8)
        self._spill_file = None
        self._lock = threading.Lock()

    @property
    def complete(self) -> bool:
        return bool(self.have.all())

    def missing(self, indices: np.ndarray) -> np.ndarray:
        """Which of `indices` (-1: a filler) still need decoding."""
        indices = np.asarray(indices)
        return (indices >= 0) & ~self.have[np.maximum(indices, 0)]

    def _grow_spill(self, size: int) -> None:
        if size <= len(self._spill):
            return
        if self._spill_file is None:
            folder = Path(self.spill_dir or tempfile.gettempdir())
            folder.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix="decoded-", suffix=".bin", dir=folder)
            os.unlink(name)  # freed when the store is: nothing is left behind
            self._spill_file = os.fdopen(handle, "r+b")
        capacity = max(size, 2 * len(self._spill), 64 * 2**20)
        try:  # the disk space taken now: no room is an error here, not a crash when a page is written
            os.posix_fallocate(self._spill_file.fileno(), 0, capacity)
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            os.ftruncate(self._spill_file.fileno(), capacity)
        # A gather in flight keeps the old mapping (it holds it); both map the same pages.
        self._spill = np.memmap(self._spill_file, np.uint8, "r+", shape=(capacity,))

    def put(self, indices, raw, shapes, resized) -> None:
        """Keep the rows of a batch as decoded (`DecodedBatch` fields) for `indices` (-1 rows skipped)."""
        indices, shapes = np.asarray(indices, np.int64), np.asarray(shapes, np.int32)
        raw, resized = np.asarray(raw), np.asarray(resized, np.float32)
        with self._lock:
            rows = np.flatnonzero(indices >= 0)
            rows = rows[~self.have[indices[rows]]]
            rows = rows[np.sort(np.unique(indices[rows], return_index=True)[1])]  # an index twice: once
            if not len(rows):
                return
            index = indices[rows]
            is_resized = shapes[rows, 0] == 0
            sizes = np.where(is_resized, resized.shape[1] * 4, np.prod(shapes[rows].astype(np.int64), axis=1))
            whole = raw.nbytes + int(sizes[is_resized].sum())  # the batch's raw as it is, its resized rows copied
            if len(rows) == int((indices >= 0).sum()) and self.budget.take(whole):
                self.chunk[index], self.row[index] = len(self._chunks), rows
                self._chunks.append(raw)
                self.bytes_in_memory += whole
                for k in rows[is_resized].tolist():
                    self._own_copy(int(indices[k]), resized[k])
            else:  # no room for it whole (or partly kept already): row by row, in memory while there is room
                for k, size in zip(rows.tolist(), sizes.tolist()):
                    values = resized[k] if shapes[k, 0] == 0 else raw[k, :size]
                    if self.budget.take(size):
                        self.bytes_in_memory += size
                        self._own_copy(int(indices[k]), values)
                    else:
                        self._spill_copy(int(indices[k]), values)
            self.nbytes[index] = sizes
            self.resized_len[index] = np.where(is_resized, resized.shape[1], 0)
            self.shapes[index] = shapes[rows]
            self.have[index] = True

    def _own_copy(self, i: int, values: np.ndarray) -> None:
        self.chunk[i] = _OWN
        self._own[i] = np.array(values)

    def _spill_copy(self, i: int, values: np.ndarray) -> None:
        data = np.ascontiguousarray(values).view(np.uint8)
        self._grow_spill(self.bytes_on_disk + len(data))
        self._spill[self.bytes_on_disk:self.bytes_on_disk + len(data)] = data
        self.chunk[i], self.row[i] = _SPILLED, self.bytes_on_disk
        self.bytes_on_disk += len(data)

    def _values(self, i: int) -> np.ndarray:
        """Image i's values as kept: uint8 as decoded, or float32 resized."""
        where, size = int(self.chunk[i]), int(self.nbytes[i])
        if where == _OWN:
            return self._own[i]
        if where == _SPILLED:
            values = self._spill[int(self.row[i]):int(self.row[i]) + size]
            return values.view(np.float32) if self.resized_len[i] else values
        return self._chunks[where][int(self.row[i]), :size]

    def gather(self, indices) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(raw uint8 [B, L], shapes int32 [B, 3], resized float32 [B, R]) of `indices`, zero padded
        to the longest row as `padded_batch` pads them."""
        indices = np.asarray(indices, np.int64)
        resized_len = self.resized_len[indices]
        is_resized = resized_len > 0
        raw_out = _pyfunc.aligned_empty((len(indices), int(self.nbytes[indices][~is_resized].max(initial=0))),
                                        np.uint8)
        resized_out = _pyfunc.aligned_empty((len(indices), int(resized_len.max(initial=0))))
        for k, i in enumerate(indices.tolist()):
            values = self._values(i)
            row, other = (resized_out[k], raw_out[k]) if is_resized[k] else (raw_out[k], resized_out[k])
            row[:len(values)] = values  # NumPy copies this size without the GIL
            row[len(values):] = 0
            other[:] = 0
        return raw_out, self.shapes[indices], resized_out

    def close(self) -> None:
        """Free the kept batches (their budget) and the spill file."""
        if self._spill_file is not None:
            self._spill = np.zeros(0, np.uint8)
            self._spill_file.close()
            self._spill_file = None
        if self.bytes_in_memory:
            self._chunks, self._own = [], {}
            self.budget.free(self.bytes_in_memory)
            self.bytes_in_memory = 0

    def __del__(self):  # pragma: no cover - garbage collection
        self.close()


_CURRENT: dict = {}  # key -> store: one a split name ("train", "val", ...), sharing one memory budget
_ROLES: dict = {}  # split name -> key


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

    A split asked for again (the next phase, a fresh dataset, the next epoch's validation) gets
    the same store, already filled (with `policy.start` False, only that: no new store). One
    store is kept per split name (the training split's and the validation split's), all drawing
    on one memory budget, `policy.max_gb`; a new split of a name frees the old one's.

    Example:
    >>> store_for(None, (32, 32), True, DecodedCachePolicy("off")) is None
    True
    """
    if policy is None or not policy.enabled or split is None or split.kind not in ("files", "builtin"):
        return None
    key = _key(split, image_size, fast_decode)
    if key in _CURRENT:
        return _CURRENT[key]
    if not policy.start:
        return None
    role = str(getattr(split, "name", ""))
    if role in _ROLES:
        _CURRENT.pop(_ROLES.pop(role)).close()
    budget = next(iter(_CURRENT.values())).budget if _CURRENT else MemoryBudget(policy.max_bytes)
    need = estimate_bytes(split, image_size, fast_decode)
    spill = need is not None and need > budget.left
    where = policy.spill_dir or Path(tempfile.gettempdir())
    if spill:
        free = shutil.disk_usage(_existing(where)).free
        over = need - budget.left
        if policy.mode == "auto" and over > free // 2:
            say(f"decoded cache: off: {len(split)} images decode to {_gib(need)}, over "
                f"performance.decoded_cache_max_gb ({policy.max_gb:g}, {_gib(budget.left)} of it left), and "
                f"{where} has {_gib(free)} free for the rest; every epoch decodes again "
                f"(performance.decoded_cache: on to spill anyway)")
            return None
        say(f"decoded cache: {len(split)} images decode to {_gib(need)}, over "
            f"performance.decoded_cache_max_gb ({policy.max_gb:g}): {_gib(budget.left)} kept in "
            f"memory, the rest ({_gib(over)}) on disk in {where}")
    store = DecodedStore(len(split), policy.max_bytes, policy.spill_dir, budget=budget)
    _CURRENT[key], _ROLES[role] = store, key
    return store


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def _existing(path: Path) -> Path:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def release() -> None:
    """Free the process's decoded stores (their memory and their spill files).

    Example:
    >>> release()
    """
    for store in _CURRENT.values():
        store.close()
    _CURRENT.clear()
    _ROLES.clear()
