"""Near-duplicate images: exact byte copies, a perceptual hash and the backbone's embedding.

Three detectors, from cheapest and surest to broadest:

- `exact`: the same bytes (SHA-256 of the file).
- `phash`: the same picture after resizing, re-encoding or mild colour changes: a DCT perceptual
  hash (the low 8x8 frequencies of a 32x32 grey image, one bit each: above or below their
  median) within `phash_threshold` bits of 64 (Hamming distance).
- `embedding`: the same content seen by the model (crops, small shifts, a different photo of the
  very same scene): cosine distance of the backbone's pooled features within
  `embedding_threshold`, when embeddings are given.

`find_duplicates` lists the pairs, `groups` turns them into one id per image (connected
components) so that cross-validation can keep each cluster within one fold.

Example:
>>> from tfft.studies.duplicates import find_duplicates, groups
>>> pairs = find_duplicates(["a/1.jpg", "a/2.jpg", "b/3.png"])  # doctest: +SKIP
>>> groups(["a/1.jpg", "a/2.jpg", "b/3.png"], pairs)  # doctest: +SKIP
array([0, 0, 1])
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

from tfft.data import decode as _decode

KINDS = ("exact", "phash", "embedding")
"""Detector names, strongest first; a pair found by several is reported under the first."""

PHASH_BITS = 64
PHASH_THRESHOLD = 8
"""Default: at most 8 of 64 hash bits differ (a resized or re-encoded copy differs by 0-6; two
unrelated photos by about 32, rarely under 16; on pets-mini the closest of 540k pairs is 10)."""

EMBEDDING_THRESHOLD = 0.03
"""Default cosine distance (1 - cosine similarity) of backbone embeddings below which two images
count as near-duplicates (see benchmarks/RESULTS.md for how it separates copies on pets-mini)."""

_HASH_SIDE = 32  # the grey image the DCT runs on
_HASH_LOW = 8  # low-frequency block kept: 8x8 = 64 bits
_BLOCK = 2048  # rows per block of the pairwise distance matrices (bounded memory)


@dataclass(frozen=True)
class DuplicatePair:
    """Two images that hold (nearly) the same picture.

    Attributes:
        path_a: the first path, in the order the paths were given.
        path_b: the second path.
        distance: 0 for exact copies; the Hamming distance over 64 bits, divided by 64, for
            `phash`; the cosine distance for `embedding`. Smaller is closer, 0..1 (0..2 for
            embeddings).
        kind: `exact`, `phash` or `embedding`: the strongest detector that found the pair.
    """

    path_a: str
    path_b: str
    distance: float
    kind: str


# --------------------------------------------------------------------------- hashes


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


def _phash_file(path: str) -> Optional[np.ndarray]:
    try:
        # tfft.data's decoder: EXIF rotation applied, CMYK/16-bit/palette handled, and JPEGs
        # decoded at 1/2..1/8 scale when that still covers the 32x32 thumbnail.
        rgb = _decode.pil_decode(path, target=(2 * _HASH_SIDE, 2 * _HASH_SIDE))
    except Exception:  # an unreadable file has no hash; the caller skips it
        return None
    return phash_image(rgb)


def phash_files(paths: Sequence[Union[str, os.PathLike]], workers: Optional[int] = None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Perceptual hashes of many files, decoded in a thread pool.

    Returns:
        (bits bool [N, 64], ok bool [N]); rows of files that do not decode are all False and
        `ok` is False there.
    """
    paths = [os.fspath(p) for p in paths]
    bits = np.zeros((len(paths), PHASH_BITS), dtype=bool)
    ok = np.zeros(len(paths), dtype=bool)
    with ThreadPoolExecutor(max_workers=workers or min(16, 4 * (os.cpu_count() or 1))) as pool:
        for i, value in enumerate(pool.map(_phash_file, paths)):
            if value is not None:
                bits[i], ok[i] = value, True
    return bits, ok


# --------------------------------------------------------------------------- pairs


def _close_pairs(distance_block, n: int, threshold: float) -> list[tuple[int, int, float]]:
    """(i, j, d) for i < j with d <= threshold; `distance_block(start, stop)` gives rows."""
    found = []
    for start in range(0, n, _BLOCK):
        stop = min(n, start + _BLOCK)
        block = distance_block(start, stop)  # [stop - start, n]
        rows, cols = np.nonzero(block <= threshold)
        keep = cols > rows + start
        for r, c in zip(rows[keep], cols[keep]):
            found.append((int(r + start), int(c), float(block[r, c])))
    return found


def phash_pairs(bits: np.ndarray, threshold: int = PHASH_THRESHOLD) -> list[tuple[int, int, int]]:
    """Index pairs (i < j) whose hashes differ in at most `threshold` bits, with that count."""
    ones = bits.astype(np.float32)
    zeros = 1.0 - ones

    def block(start, stop):  # Hamming distance as two matrix products
        return ones[start:stop] @ zeros.T + zeros[start:stop] @ ones.T

    return [(i, j, int(round(d))) for i, j, d in _close_pairs(block, len(bits), threshold + 0.5)]


def embedding_pairs(embeddings: np.ndarray, threshold: float = EMBEDDING_THRESHOLD,
                    ) -> list[tuple[int, int, float]]:
    """Index pairs (i < j) whose cosine distance is at most `threshold`; NaN rows are skipped."""
    emb = np.asarray(embeddings, dtype=np.float32)
    valid = np.all(np.isfinite(emb), axis=1)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    valid &= norms[:, 0] > 0
    unit = np.where(valid[:, None], emb / np.where(norms > 0, norms, 1.0), 0.0)

    def block(start, stop):
        d = 1.0 - unit[start:stop] @ unit.T
        d[:, ~valid] = np.inf
        d[~valid[start:stop]] = np.inf
        return d

    return _close_pairs(block, len(emb), threshold)


def find_duplicates(paths: Sequence[Union[str, os.PathLike]], embeddings: Optional[np.ndarray] = None, *,
                    exact: bool = True, phash: bool = True,
                    phash_threshold: int = PHASH_THRESHOLD,
                    embedding_threshold: float = EMBEDDING_THRESHOLD,
                    workers: Optional[int] = None) -> list[DuplicatePair]:
    """Pairs of images that hold the same or nearly the same picture.

    Files that cannot be read or decoded are left out of the detectors they fail (no error).

    Args:
        paths: image files.
        embeddings: optional float [len(paths), D], e.g. the backbone's pooled features, one row
            per path (a row of NaN: no embedding for that file).
        exact: find byte-identical files (SHA-256).
        phash: find perceptual-hash matches.
        phash_threshold: most differing bits (of 64) for a `phash` pair.
        embedding_threshold: largest cosine distance for an `embedding` pair.
        workers: threads for hashing and decoding.

    Returns:
        `DuplicatePair`s sorted by kind (exact, phash, embedding) then distance; each unordered
        pair of paths at most once, under the strongest detector that found it.

    Raises:
        UserError: `embeddings` does not have one row per path.

    Example:
    >>> pairs = find_duplicates(["a.jpg", "a_copy.jpg", "b.jpg"])  # doctest: +SKIP
    >>> [(p.path_b, p.kind) for p in pairs]  # doctest: +SKIP
    [('a_copy.jpg', 'exact')]
    """
    from tfft.errors import UserError

    paths = [os.fspath(p) for p in paths]
    n = len(paths)
    if embeddings is not None:
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[0] != n:
            raise UserError("embeddings", f"expected an array of shape ({n}, D), one row per path, "
                            f"got {embeddings.shape}", "pass the features of exactly these paths, in order")
    workers = workers or min(16, 4 * (os.cpu_count() or 1))
    found: dict[tuple[int, int], tuple[int, float]] = {}  # (i, j) -> (kind index, distance)

    def add(i: int, j: int, kind: int, distance: float) -> None:
        key = (i, j) if i < j else (j, i)
        if key[0] == key[1]:
            return
        if key not in found or found[key][0] > kind:
            found[key] = (kind, distance)

    if exact and n:
        def digest(path: str) -> Optional[str]:
            try:
                return file_sha256(path)
            except OSError:
                return None

        with ThreadPoolExecutor(max_workers=workers) as pool:
            digests = list(pool.map(digest, paths))
        by_digest: dict[str, list[int]] = defaultdict(list)
        for i, d in enumerate(digests):
            if d is not None:
                by_digest[d].append(i)
        for members in by_digest.values():
            for a in range(len(members)):
                for b in range(a + 1, len(members)):
                    add(members[a], members[b], 0, 0.0)
    if phash and n:
        bits, ok = phash_files(paths, workers=workers)
        index = np.flatnonzero(ok)
        for i, j, d in phash_pairs(bits[index], phash_threshold):
            add(int(index[i]), int(index[j]), 1, d / PHASH_BITS)
    if embeddings is not None and n:
        for i, j, d in embedding_pairs(embeddings, embedding_threshold):
            add(i, j, 2, max(0.0, d))
    pairs = [DuplicatePair(paths[i], paths[j], float(d), KINDS[k]) for (i, j), (k, d) in found.items()]
    order = {name: k for k, name in enumerate(KINDS)}
    pairs.sort(key=lambda p: (order[p.kind], p.distance, p.path_a, p.path_b))
    return pairs


def groups(paths: Sequence[Union[str, os.PathLike]], pairs: Sequence[DuplicatePair]) -> np.ndarray:
    """One group id per path: the connected components of the duplicate pairs.

    Paths in no pair get a group of their own; ids are 0..G-1 in order of first appearance, so
    the result feeds a group K-fold directly. The same path listed twice is one group.

    Args:
        paths: the paths, in the order of the result.
        pairs: from `find_duplicates` (pairs naming paths not in `paths` are ignored).

    Returns:
        int64 [len(paths)] group ids.

    Example:
    >>> pair = DuplicatePair("b.jpg", "c.jpg", 0.0, "exact")
    >>> groups(["a.jpg", "b.jpg", "c.jpg", "d.jpg"], [pair]).tolist()
    [0, 1, 1, 2]
    """
    paths = [os.fspath(p) for p in paths]
    parent = list(range(len(paths)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    first: dict[str, int] = {}
    for i, p in enumerate(paths):
        if p in first:
            union(first[p], i)
        else:
            first[p] = i
    for pair in pairs:
        a, b = first.get(os.fspath(pair.path_a)), first.get(os.fspath(pair.path_b))
        if a is not None and b is not None:
            union(a, b)
    ids: dict[int, int] = {}
    out = np.empty(len(paths), dtype=np.int64)
    for i in range(len(paths)):
        out[i] = ids.setdefault(find(i), len(ids))
    return out


__all__ = [
    "DuplicatePair", "KINDS", "PHASH_THRESHOLD", "EMBEDDING_THRESHOLD", "file_sha256", "phash_image",
    "phash_files", "phash_pairs", "embedding_pairs", "find_duplicates", "groups",
]
