"""Perceptual hashes of image files and the near-duplicate groups they form, in linear memory.

The pHash of an image is 64 bits (the low 8x8 DCT frequencies of a 32x32 grey thumbnail, one
bit each: above or below their median), packed into one uint64. Two images are near-duplicates
when their hashes differ in at most `threshold` bits.

The search is multi-index hashing, not all pairs: the 64 bits are cut into `m` bands; two hashes
within `k` bits of each other differ in at most `k // m` bits in at least one band (pigeonhole),
so every such pair is a candidate when each hash probes, band by band, the keys within `k // m`
bits of its own band (a sorted array and `searchsorted`, no Python object per hash). The
candidates' full Hamming distance is then checked exactly, vectorised, so the result is the
all-pairs result: no pair is missed, none is added. `m` is chosen from N to keep the candidates
few (about 3 bands of 21 bits at 100k hashes). Time grows about linearly with N for hashes of
distinct photos; memory is the hashes, their sorted bands and a bounded chunk of candidates.

`group_ids` turns pairs into connected components (vectorised union-find), so that `tfft data
check --near-duplicates` (here, in the data layer) and `tfft.studies.duplicates` (cv folds, data
issues) share one search.

Hashes (pHash and SHA-256) are memoised for the process by (path, size, mtime): `tfft data issues`
does not hash again the files its cross-validation hashed.

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

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations
from math import comb
from typing import Optional, Sequence, Union

import numpy as np

from tfft.data import decode as _decode

PHASH_BITS = 64
PHASH_THRESHOLD = 8
"""Default: at most 8 of 64 hash bits differ (a resized or re-encoded copy differs by 0-6; two
unrelated photos by about 32, rarely under 16; on pets-mini the closest of 540k pairs is 10)."""

_HASH_SIDE = 32  # the grey image the DCT runs on
_HASH_LOW = 8  # low-frequency block kept: 8x8 = 64 bits
_CANDIDATE_CHUNK = 1 << 22  # candidate pairs checked at once (about 100 MB of index arrays)
_TABLE_BITS = 22  # bands this narrow look keys up in a table of 2**22 + 1 int64 (32 MB)
_MEMO: dict[tuple[str, str], tuple] = {}  # (kind, path) -> (size, mtime_ns, value or None)
_MEMO_MAX = 2_000_000  # entries (about 200 bytes each); the oldest half goes when full


def file_sha256(path: Union[str, os.PathLike]) -> str:
    """The SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
    try:
        stat = os.stat(path)
    except OSError:
        return None
    known = _MEMO.get((kind, path))
    if known is not None and known[:2] == (stat.st_size, stat.st_mtime_ns):
        return known[2]
    try:
        value = compute(path)
    except Exception:  # an unreadable file has no hash; the caller skips it
        value = None
    if len(_MEMO) >= _MEMO_MAX:
        for old in list(_MEMO)[: _MEMO_MAX // 2]:
            del _MEMO[old]
    _MEMO[(kind, path)] = (stat.st_size, stat.st_mtime_ns, value)
    return value


def _phash_of(path: str) -> int:
    # tfft.data's decoder: EXIF rotation applied, CMYK/16-bit/palette handled, and JPEGs
    # decoded at 1/2..1/8 scale when that still covers the 32x32 thumbnail.
    rgb = _decode.pil_decode(path, target=(2 * _HASH_SIDE, 2 * _HASH_SIDE))
    return int(pack_bits(phash_image(rgb))[0])


def _phash_file(path: str) -> Optional[int]:
    return _memoised("phash", path, _phash_of)


def sha256_files(paths: Sequence[Union[str, os.PathLike]], workers: Optional[int] = None) -> list[Optional[str]]:
    """`file_sha256` of many files in a thread pool (None for a file that cannot be read), memoised."""
    with ThreadPoolExecutor(max_workers=workers or min(16, 4 * (os.cpu_count() or 1))) as pool:
        return list(pool.map(lambda p: _memoised("sha256", os.fspath(p), file_sha256), paths))


def phash_hashes(paths: Sequence[Union[str, os.PathLike]], workers: Optional[int] = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Packed perceptual hashes of many files, decoded in a thread pool (memoised per process).

    Returns:
        (hashes uint64 [N], ok bool [N]); a file that does not decode has hash 0 and ok False.
    """
    paths = [os.fspath(p) for p in paths]
    hashes = np.zeros(len(paths), dtype=np.uint64)
    ok = np.zeros(len(paths), dtype=bool)
    with ThreadPoolExecutor(max_workers=workers or min(16, 4 * (os.cpu_count() or 1))) as pool:
        for i, value in enumerate(pool.map(_phash_file, paths)):
            if value is not None:
                hashes[i], ok[i] = value, True
    return hashes, ok


# --------------------------------------------------------------------------- the search


def _band_plan(n: int, threshold: int) -> int:
    """The number of bands that keeps the probes plus the expected candidates fewest."""
    best, best_cost = 1, float("inf")
    for m in range(1, min(threshold + 1, 16) + 1):
        narrow, wide = PHASH_BITS // m, -(-PHASH_BITS // m)  # linspace cuts bands of these widths
        probes = sum(comb(wide, r) for r in range(threshold // m + 1))
        cost = m * probes * (1.0 + n / 2.0 ** narrow)  # per hash: probes, then candidates per probe
        if cost < best_cost:
            best, best_cost = m, cost
    return best


def _flip_masks(width: int, radius: int) -> np.ndarray:
    """Every uint64 of `width` bits with at most `radius` bits set (0 first)."""
    masks = [0]
    for r in range(1, radius + 1):
        masks.extend(sum(1 << b for b in bits) for bits in combinations(range(width), r))
    return np.asarray(masks, dtype=np.uint64)


def _candidates(query: np.ndarray, order: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """(i, j) for every i in `query` and j in `order[lo[i]:hi[i]]`, in chunks of bounded size."""
    hit = np.flatnonzero(hi > lo)  # most probes of distinct photos find nothing
    query, lo, hi = query[hit], lo[hit], hi[hit]
    counts = hi - lo
    ends = np.cumsum(counts)
    start = 0
    while start < len(query):
        base = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, base + _CANDIDATE_CHUNK, side="right"))
        stop = max(stop, start + 1)
        c = counts[start:stop]
        total = int(c.sum())
        if total:
            rows = np.repeat(np.arange(start, stop), c)
            offsets = np.arange(total) - np.repeat(np.cumsum(c) - c, c)
            yield query[rows], order[lo[rows] + offsets]
        start = stop


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
    bands = _band_plan(n, threshold)
    radius = threshold // bands
    bounds = np.linspace(0, PHASH_BITS, bands + 1).astype(int)
    found_i, found_j, found_d = [], [], []
    index = np.arange(n, dtype=np.int64)
    for b in range(bands):
        width = int(bounds[b + 1] - bounds[b])
        shift = np.uint64(PHASH_BITS - int(bounds[b + 1]))
        keys = (hashes >> shift) & np.uint64((1 << width) - 1)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        # Narrow bands: a table of where each key's run starts (a gather per probe, not a search).
        starts = (np.searchsorted(ordered, np.arange((1 << width) + 1, dtype=np.uint64)).astype(np.int64)
                  if width <= _TABLE_BITS else None)
        for mask in _flip_masks(width, radius):
            probe = keys ^ mask
            if starts is not None:
                lo, hi = starts[probe], starts[probe + np.uint64(1)]
            else:
                lo = np.searchsorted(ordered, probe, side="left")
                hi = np.searchsorted(ordered, probe, side="right")
            for i, j in _candidates(index, order, lo, hi):
                keep = i < j  # each unordered pair once per probe (its mirror probe finds j < i)
                i, j = i[keep], j[keep]
                d = np.bitwise_count(hashes[i] ^ hashes[j])
                close = d <= threshold
                found_i.append(i[close])
                found_j.append(j[close])
                found_d.append(d[close].astype(np.int64))
    i, j, d = (np.concatenate(parts) if parts else empty for parts in (found_i, found_j, found_d))
    # A pair close in several bands was found several times.
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
                          workers: Optional[int] = None) -> list[list[str]]:
    """The groups of two or more files whose perceptual hashes are within `threshold` bits.

    Files that do not decode are left out. Groups are connected components (a chain of close
    pairs is one group), listed in the order of their first path.

    Example:
    >>> near_duplicate_groups(["photos/a.jpg", "photos/a_small.jpg", "photos/b.jpg"])  # doctest: +SKIP
    [['photos/a.jpg', 'photos/a_small.jpg']]
    """
    paths = [os.fspath(p) for p in paths]
    hashes, ok = phash_hashes(paths, workers=workers)
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
