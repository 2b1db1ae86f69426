"""Perceptual hashes of image files and the near-duplicate groups they form, in linear memory.

The pHash of an image is 64 bits (the low 8x8 DCT frequencies of a 32x32 grey thumbnail, one
bit each: above or below their median), packed into one uint64. Two images are near-duplicates
when their hashes differ in at most `threshold` bits.

The search is multi-index hashing, not all pairs. The bits that vary among the hashes (a photo's
DC bit is always set) are dealt out in turn into `m` bands, so each band mixes low and high
frequencies (which correlate within a photo's hash). Two hashes within `k` bits of each other
differ in at most `r = k // m` bits in at least one band (pigeonhole), and two band keys within
`r` bits both lie within `ceil(r / 2)` bits of a common key. So every hash writes, band by band,
each key within `ceil(r / 2)` bits of its own (22 at the default: 3 bands of 21 bits, r = 2,
radius 1) into one sorted uint64 array (key, mask, item packed: one `np.sort`, no Python object
per hash), and every two entries with equal keys are a candidate. Their full Hamming distance is
checked exactly, vectorised, first (random candidates are far), so the result is the all-pairs
result: no pair is missed, none is added; a close pair is kept at its one canonical meeting
entry, then once over the bands. `m` and the radius are chosen from N: per hash `m * V` sorted
entries and about `m * V**2 * N / 2**w` random candidates (V keys within the radius of a w-bit
band); at the default the candidates reach the entries' count at about 100k hashes, but a
candidate costs a few vectorised operations against an entry's share of a sort, so the time
grows about linearly to 100k (benchmarks/RESULTS.md). Past about 12k hashes a band's entries are
built and sorted bucket by bucket (by the keys' top bits, about 2 MiB each), so the sort and the
run passes stay in cache. Memory: about 200 bytes a hash (the bits, the keys, one bucket).

`group_ids` turns pairs into connected components (vectorised union-find), so that `tfft data
check --near-duplicates` (here, in the data layer) and `tfft.studies.duplicates` (cv folds, data
issues) share one search.

Hashes (pHash and SHA-256) are memoised for the process by (path, size, mtime): `tfft data issues`
does not hash again the files its cross-validation hashed. Given the data source they were listed
from, they are also kept in its persistent scan index (`tfft.data.index`): a later `tfft cv`,
`data issues` or `data check --near-duplicates` decodes only new or changed files.

Example:
>>> import numpy as np
>>> hashes = np.array([0, 0b111, 2**64 - 1, 0b1], dtype=np.uint64)
>>> i, j, d = phash_pairs(hashes, threshold=3)
>>> list(zip(i.tolist(), j.tolist(), d.tolist()))
[(0, 1, 3), (0, 3, 1), (1, 3, 2)]
>>> group_ids(4, i, j).tolist()
[0, 0, 1, 0]
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations
from math import comb
from typing import Optional, Sequence, Union

import numpy as np

from tfft.data import decode as _decode
from tfft.data import fs as _fs
from tfft.data import index as _index
from tfft.data.index import sha256_file as file_sha256  # the one digest, remote files through gfile

PHASH_BITS = 64
PHASH_THRESHOLD = 8
"""Default: at most 8 of 64 hash bits differ (a resized or re-encoded copy differs by 0-6; two
unrelated photos by about 32, rarely under 16; on pets-mini the closest of 540k pairs is 10)."""

_HASH_SIDE = 32  # the grey image the DCT runs on
_HASH_LOW = 8  # low-frequency block kept: 8x8 = 64 bits
_ENTRY_BUDGET = 1 << 25  # sorted entries of one band (256 MB of uint64); plans over it come last
_BUCKET_ENTRIES = 1 << 18  # entries sorted at once (2 MiB of uint64: within a core's cache)
_MEMO: dict[tuple[str, str], tuple] = {}  # (kind, path) -> (size, mtime_ns, value or None)
_MEMO_MAX = 2_000_000  # entries (about 200 bytes each); the oldest half goes when full


def _is_remote(path: str) -> bool:
    return not _fs.is_local(path)


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: `M @ x` is the DCT of a length-n vector x."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


_DCT = _dct_matrix(_HASH_SIDE)


def _grey_thumbnail(rgb: np.ndarray, side: int = _HASH_SIDE) -> np.ndarray:
    """uint8 [H, W, 3] -> float64 [side, side] luma, area-averaged (no aliasing)."""
    from PIL import Image

    luma = rgb.astype(np.float32) @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
    image = Image.fromarray(luma, mode="F")
    return np.asarray(image.resize((side, side), Image.Resampling.BOX), dtype=np.float64)


def phash_image(rgb: np.ndarray) -> np.ndarray:
    """The 64-bit DCT perceptual hash of one decoded image, as 64 booleans.

    Args:
        rgb: uint8 or float [H, W, 3] (0..255) or [H, W] grey.

    Returns:
        A bool array of 64 bits (row-major over the 8x8 lowest DCT frequencies).

    Example:
    >>> import numpy as np
    >>> image = np.random.default_rng(0).integers(0, 255, (64, 48, 3)).astype(np.uint8)
    >>> phash_image(image).shape
    (64,)
    """
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=-1)
    grey = _grey_thumbnail(rgb)
    coeffs = _DCT @ grey @ _DCT.T
    low = coeffs[:_HASH_LOW, :_HASH_LOW].ravel()
    # The median leaves out the DC term (the mean brightness), which would skew it upward.
    return low > np.median(low[1:])


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """bool [N, 64] -> uint64 [N] (bit 0 of the hash is the most significant bit).

    Example:
    >>> pack_bits(np.eye(64, dtype=bool)[[63, 0]]).tolist()
    [1, 9223372036854775808]
    """
    bits = np.asarray(bits, dtype=bool).reshape(-1, PHASH_BITS)
    return np.packbits(bits, axis=1).view(">u8")[:, 0].astype(np.uint64)


def unpack_bits(hashes: np.ndarray) -> np.ndarray:
    """uint64 [N] -> bool [N, 64], the inverse of `pack_bits`."""
    as_bytes = np.asarray(hashes, dtype=np.uint64).astype(">u8").view(np.uint8).reshape(-1, 8)
    return np.unpackbits(as_bytes, axis=1).astype(bool)


def _memoised(kind: str, path: str, compute):
    """`compute(path)` (None when it raises), remembered for the process by (path, size, mtime)."""

    stat = _index.file_identity(path)
    if stat is None:
        return None
    known = _MEMO.get((kind, path))
    if known is not None and known[:2] == stat[:2]:
        return known[2]
    try:
        value = compute(path)
    except Exception:  # an unreadable file has no hash; the caller skips it
        value = None
    if len(_MEMO) >= _MEMO_MAX:
        for old in list(_MEMO)[: _MEMO_MAX // 2]:
            del _MEMO[old]
    _MEMO[(kind, path)] = (stat[0], stat[1], value)
    return value


def _phash_of(path: str) -> int:
    # tfft.data's decoder: EXIF rotation applied, CMYK/16-bit/palette handled, and JPEGs
    # decoded at 1/2..1/8 scale when that still covers the 32x32 thumbnail.
    if _is_remote(path):  # PIL reads local files: a remote one's bytes, through tf.io.gfile

        rgb = _decode.pil_decode(_fs.read_bytes(path), target=(2 * _HASH_SIDE, 2 * _HASH_SIDE))
    else:
        rgb = _decode.pil_decode(path, target=(2 * _HASH_SIDE, 2 * _HASH_SIDE))
    return int(pack_bits(phash_image(rgb))[0])


def _phash_file(path: str) -> Optional[int]:
    return _memoised("phash", path, _phash_of)


def _through_index(source: Optional[str], paths: list[str], column: str, compute, workers: Optional[int]) -> list:
    """`compute` of every path in a thread pool, through `source`'s persistent scan index when given:
    a value the index holds for the same file version is read, not computed, and new ones are
    stored (`tfft.data.index.values`), so a later process hashes nothing it hashed before."""
    def pooled(todo: list[str]) -> list:
        with ThreadPoolExecutor(max_workers=workers or min(16, 4 * (os.cpu_count() or 1))) as pool:
            return list(pool.map(compute, todo))

    if source is None:
        return pooled(paths)

    return _index.values(source, paths, column, pooled)


def sha256_files(paths: Sequence[Union[str, os.PathLike]], workers: Optional[int] = None,
                 source: Optional[str] = None) -> list[Optional[str]]:
    """`file_sha256` of many files in a thread pool (None for a file that cannot be read), memoised.

    Args:
        paths: the files.
        workers: threads.
        source: the data source the files were listed from (`data.source`): the digests are read
            from and written to its persistent scan index (`tfft.data.index`).

    Example:
    >>> sha256_files([__file__]) == [file_sha256(__file__)]
    True
    """
    paths = [os.fspath(p) for p in paths]
    return _through_index(source, paths, "sha256", lambda p: _memoised("sha256", p, file_sha256), workers)


def phash_hashes(paths: Sequence[Union[str, os.PathLike]], workers: Optional[int] = None,
                 source: Optional[str] = None) -> tuple[np.ndarray, np.ndarray]:
    """Packed perceptual hashes of many files, decoded in a thread pool (memoised per process).

    Args:
        paths: the image files.
        workers: threads.
        source: the data source the files were listed from (`data.source`): the hashes are read
            from and written to its persistent scan index, so only files it holds no hash of (for
            their current version) are decoded.

    Returns:
        (hashes uint64 [N], ok bool [N]); a file that does not decode has hash 0 and ok False.

    Example:
    >>> hashes, ok = phash_hashes(["photos/a.jpg"], source="photos/")  # doctest: +SKIP
    """
    paths = [os.fspath(p) for p in paths]
    hashes = np.zeros(len(paths), dtype=np.uint64)
    ok = np.zeros(len(paths), dtype=bool)
    for i, value in enumerate(_through_index(source, paths, "phash", _phash_file, workers)):
        if value is not None:
            hashes[i], ok[i] = value, True
    return hashes, ok


# --------------------------------------------------------------------------- the search


def _band_plan(n: int, threshold: int, bits: int = PHASH_BITS) -> tuple[int, int]:
    """(bands, variant radius) that keep the sorted entries plus the expected candidates fewest.

    With `m` bands a pair within `threshold` bits is within `r = threshold // m` bits in some
    band; two band keys within `r` bits share a key within `ceil(r / 2)` bits of both. Per hash:
    `m * V` entries (V keys within that radius of a band of w bits) and about `m * V**2 * n / 2**w`
    random candidates, over `bits` bits. Plans whose entries of one band fit `_ENTRY_BUDGET`
    come first (the cheapest of them); past it, the cheapest of all.
    """
    plans = []
    for m in range(1, min(threshold + 1, 16, bits) + 1):
        narrow, wide = bits // m, -(-bits // m)  # bands of these widths
        radius = -(-(threshold // m) // 2)
        variants = sum(comb(wide, r) for r in range(radius + 1))
        cost = m * variants * (1.0 + variants * n / 2.0 ** narrow)
        plans.append((variants * n > _ENTRY_BUDGET, cost, m, radius))
    _, _, m, radius = min(plans)  # within the budget first, then the cheapest
    return m, radius


def _flip_masks(width: int, radius: int) -> np.ndarray:
    """Every uint64 of `width` bits with at most `radius` bits set (0 first, then by bit)."""
    masks = [0]
    for r in range(1, radius + 1):
        masks.extend(sum(1 << b for b in bits) for bits in combinations(range(width), r))
    return np.asarray(masks, dtype=np.uint64)


def _sorted_entries(keys: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, int]:
    """Every `key ^ mask` with its payload `mask index << item bits | item`, sorted by key.

    Returns (entries, payload bits): one sorted uint64 array of `key << payload bits | payload`
    (a single packed sort, much faster than an argsort), or, where the key and the payload do
    not fit 64 bits together, the payloads in key order (payload bits 0).
    """
    n = len(keys)
    item_bits = max(1, (n - 1).bit_length())
    payload = ((np.arange(len(masks), dtype=np.uint64)[:, None] << np.uint64(item_bits))
               | np.arange(n, dtype=np.uint64)[None, :]).ravel()
    variant = (keys[None, :] ^ masks[:, None]).ravel()  # mask-major, as the payloads
    payload_bits = item_bits + max(1, (len(masks) - 1).bit_length())
    if int(keys.max()).bit_length() + payload_bits <= 64:
        variant <<= np.uint64(payload_bits)
        variant |= payload
        variant.sort()
        return variant, payload_bits
    order = np.argsort(variant, kind="stable")
    return np.stack([variant[order], payload[order]]), 0


def _bucketed_entries(keys: np.ndarray, masks: np.ndarray, width: int):
    """`_sorted_entries(keys, masks)` split by the top bits of the key: (entries, payload bits) per
    bucket of about `_BUCKET_ENTRIES`, each sorted on its own.

    Equal keys share their top bits, so every run of equal keys lies within one bucket and the
    runs (the candidates) are those of one sorted array. Each bucket's sort and run passes stay
    in the processor's cache, and the sort is of a bounded size: its cost per entry does not grow
    with N (it did by about 1.4x from 10k to 100k hashes as the one array left the cache). A
    bucket's entries are built directly: the items whose key's top bits are `bucket ^ top(mask)`,
    a slice of the items ordered by those bits, give the bucket's entries of that mask.
    """
    n = len(keys)
    item_bits = max(1, (n - 1).bit_length())
    payload_bits = item_bits + max(1, (len(masks) - 1).bit_length())
    top = min(width, max(0, math.ceil(math.log2(max(1, len(masks) * n) / _BUCKET_ENTRIES))))
    if top == 0 or int(keys.max()).bit_length() + payload_bits > 64:
        yield _sorted_entries(keys, masks)
        return
    low = np.uint64(width - top)
    groups = keys >> low
    order = np.argsort(groups, kind="stable")
    starts = np.searchsorted(groups[order], np.arange((1 << top) + 1, dtype=np.uint64))
    mask_top = masks >> low
    numbered = np.arange(len(masks), dtype=np.uint64)
    by_top = [(int(u), masks[mask_top == u], numbered[mask_top == u] << np.uint64(item_bits))
              for u in np.unique(mask_top)]
    shift = np.uint64(payload_bits)
    for bucket in range(1 << top):
        parts = []
        for u, flips, payloads in by_top:
            items = order[starts[bucket ^ u]:starts[(bucket ^ u) + 1]]
            if len(items):
                variant = (keys[items][None, :] ^ flips[:, None]) << shift
                variant |= payloads[:, None] | items.astype(np.uint64)[None, :]
                parts.append(variant.ravel())
        if parts:
            entries = np.concatenate(parts)
            entries.sort()
            yield entries, payload_bits


def _run_pairs(entries: np.ndarray, payload_bits: int):
    """(a, b) of every two entries with equal keys (a sorted before b), offset by offset: the
    packed entries themselves (their low bits are the payload), or the payloads (bits 0).

    Packed, each offset costs two gathers and three passes over the pairs still in a run: the
    left entries are carried along (not gathered again) and a sentinel whose key differs from
    the last one ends every run (no bound check). The pairs are the random candidates, whose
    number grows as N**2 (see the module's docstring), so their constant is what matters."""
    if not payload_bits:
        keys, values = entries
        pos = np.flatnonzero(keys[1:] == keys[:-1])
        offset = 1
        while len(pos):
            yield values[pos], values[pos + offset]
            offset += 1
            pos = pos[pos + offset < len(keys)]
            pos = pos[keys[pos + offset] == keys[pos]]
        return
    shift = np.uint64(payload_bits)
    step = entries[1:] ^ entries[:-1]
    step >>= shift
    pos = np.flatnonzero(step == 0)
    del step
    sentinel = ((entries[-1] >> shift) ^ np.uint64(1)) << shift if len(entries) else np.uint64(0)
    padded = np.append(entries, np.uint64(sentinel))
    left, offset = padded[pos], 1
    while len(pos):
        yield left, padded[pos + offset]
        offset += 1
        same = np.flatnonzero((padded[pos + offset] ^ left) >> shift == 0)
        pos, left = pos[same], left[same]


def _band_keys(bits: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """uint64 [N]: the bits at `columns` (at most 64) of bool [N, 64] hashes, packed in that order."""
    packed = np.zeros((len(bits), 8), dtype=np.uint8)
    chunk = np.packbits(bits[:, list(columns)], axis=1)
    packed[:, :chunk.shape[1]] = chunk
    return packed.view(">u8")[:, 0].astype(np.uint64) >> np.uint64(PHASH_BITS - len(columns))


def phash_pairs(hashes: np.ndarray, threshold: int = PHASH_THRESHOLD,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (i < j) whose hashes differ in at most `threshold` bits, with that count.

    Exact (the all-pairs result), in about linear time and memory (multi-index hashing, see the
    module's docstring).

    Args:
        hashes: uint64 [N] packed hashes (`pack_bits`), or bool [N, 64].
        threshold: the most differing bits, 0..63.

    Returns:
        (i int64, j int64, distance int64) arrays, sorted by (i, j).

    Example:
    >>> phash_pairs(np.array([5, 4, 1 << 40], dtype=np.uint64), threshold=1)[0].tolist()
    [0]
    """
    hashes = np.asarray(hashes)
    if hashes.ndim == 2:
        hashes = pack_bits(hashes)
    hashes = hashes.astype(np.uint64, copy=False)
    n, threshold = len(hashes), int(threshold)
    empty = np.zeros(0, dtype=np.int64)
    if n < 2 or threshold < 0:
        return empty, empty.copy(), empty.copy()
    # Bands over the bits that vary (a photo's DC bit is always set: it would halve one band's
    # keys), dealt out in turn so each band mixes low and high frequencies (they correlate).
    varying = int(np.bitwise_or.reduce(hashes) ^ np.bitwise_and.reduce(hashes))
    columns = [b for b in range(PHASH_BITS) if varying >> (PHASH_BITS - 1 - b) & 1] or [0]
    bands, radius = _band_plan(n, threshold, len(columns))
    bits = unpack_bits(hashes)
    found_i, found_j, found_d = [], [], []
    for b in range(bands):
        width = len(columns[b::bands])
        keys = _band_keys(bits, columns[b::bands])
        item_bits = max(1, (n - 1).bit_length())
        item_mask, fshift = np.uint64((1 << item_bits) - 1), np.uint64(item_bits)
        for entries, payload_bits in _bucketed_entries(keys, _flip_masks(width, radius), width):
            low = np.uint64((1 << payload_bits) - 1 if payload_bits else (1 << 64) - 1)
            for a, c in _run_pairs(entries, payload_bits):
                d = np.bitwise_count(hashes[a & item_mask] ^ hashes[c & item_mask])
                close = np.flatnonzero(d <= threshold)  # random candidates are far: checked first
                a, c, d = a[close], c[close], d[close]
                i, j = (a & item_mask).astype(np.int64), (c & item_mask).astype(np.int64)
                if radius == 1:  # a pair meets in one canonical entry only: kept once (fewer to unique)
                    fa, fc = (a & low) >> fshift, (c & low) >> fshift  # the masks that made them: fa <= fc
                    keep = np.where(fa == fc, fa == 0, i < j)
                    i, j, d = i[keep], j[keep], d[keep]
                found_i.append(np.minimum(i, j))
                found_j.append(np.maximum(i, j))
                found_d.append(d.astype(np.int64))
    i, j, d = (np.concatenate(parts) if parts else empty for parts in (found_i, found_j, found_d))
    # A pair close in several bands was found in each.
    pair = i * n + j
    pair, first = np.unique(pair, return_index=True)
    return pair // n, pair % n, d[first]


def group_ids(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """One group id per item: the connected components of the edges (i, j), vectorised.

    Ids are 0..G-1 in order of each component's first item, so an item with no edge gets a
    group of its own and the result feeds a group K-fold directly.

    Example:
    >>> group_ids(5, np.array([3, 1]), np.array([1, 4])).tolist()
    [0, 1, 2, 1, 1]
    """
    parent = np.arange(n, dtype=np.int64)
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    while len(i):  # hook each edge's larger root onto the smaller, then compress paths
        ri, rj = parent[i], parent[j]
        low = np.minimum(ri, rj)
        changed = ri != rj
        if not changed.any():
            break
        np.minimum.at(parent, ri[changed], low[changed])
        np.minimum.at(parent, rj[changed], low[changed])
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    _, first, inverse = np.unique(parent, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse]


def near_duplicate_groups(paths: Sequence[Union[str, os.PathLike]], threshold: int = PHASH_THRESHOLD,
                          workers: Optional[int] = None, source: Optional[str] = None) -> list[list[str]]:
    """The groups of two or more files whose perceptual hashes are within `threshold` bits.

    Files that do not decode are left out. Groups are connected components (a chain of close
    pairs is one group), listed in the order of their first path. With `source` (the data source
    the paths were listed from) the hashes come from and go to its persistent scan index.

    Example:
    >>> near_duplicate_groups(["photos/a.jpg", "photos/a_small.jpg", "photos/b.jpg"])  # doctest: +SKIP
    [['photos/a.jpg', 'photos/a_small.jpg']]
    """
    paths = [os.fspath(p) for p in paths]
    hashes, ok = phash_hashes(paths, workers=workers, source=source)
    index = np.flatnonzero(ok)
    i, j, _ = phash_pairs(hashes[index], threshold)
    ids = group_ids(len(index), i, j)
    sizes = np.bincount(ids, minlength=int(ids.max()) + 1 if len(ids) else 0)
    out: dict[int, list[str]] = {}
    for k in np.flatnonzero(sizes[ids] > 1):
        out.setdefault(int(ids[k]), []).append(paths[int(index[k])])
    return list(out.values())


__all__ = ["PHASH_BITS", "PHASH_THRESHOLD", "file_sha256", "phash_image", "pack_bits", "unpack_bits",
           "phash_hashes", "sha256_files", "phash_pairs", "group_ids", "near_duplicate_groups"]
