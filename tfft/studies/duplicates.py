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
components) so that cross-validation can keep each cluster within one fold. Neither compares all
pairs: the pHash search is multi-index hashing with an exact check of the candidates
(`tfft.data.near_duplicates`, which `tfft data check --near-duplicates` uses too), the embedding
search works in blocks of bounded memory, and hashes are memoised per process (cv planning and
`tfft data issues` hash each file once).

Example:
>>> from tfft.studies.duplicates import find_duplicates, groups
>>> pairs = find_duplicates(["a/1.jpg", "a/2.jpg", "b/3.png"])  # doctest: +SKIP
>>> groups(["a/1.jpg", "a/2.jpg", "b/3.png"], pairs)  # doctest: +SKIP
array([0, 0, 1])
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

from tfft.data.near_duplicates import (PHASH_BITS, PHASH_THRESHOLD, file_sha256, group_ids, phash_hashes,
                                       phash_image, phash_pairs, sha256_files, unpack_bits)

KINDS = ("exact", "phash", "embedding")
"""Detector names, strongest first; a pair found by several is reported under the first."""

EMBEDDING_THRESHOLD = 0.03
"""Default cosine distance (1 - cosine similarity) of backbone embeddings below which two images
count as near-duplicates (see benchmarks/RESULTS.md for how it separates copies on pets-mini)."""

EMBEDDING_BLOCK_BYTES = 64 << 20
"""Memory for one block of cosine similarities (rows x columns float32): the embedding search
never holds an N x N matrix, only blocks of this size, and keeps the pairs within the threshold."""


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


def phash_files(paths: Sequence[Union[str, os.PathLike]], workers: Optional[int] = None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Perceptual hashes of many files as bits (`tfft.data.near_duplicates.phash_hashes` packs them).

    Returns:
        (bits bool [N, 64], ok bool [N]); rows of files that do not decode are all False and
        `ok` is False there.
    """
    hashes, ok = phash_hashes(paths, workers=workers)
    return unpack_bits(hashes), ok


def embedding_pairs(embeddings: np.ndarray, threshold: float = EMBEDDING_THRESHOLD,
                    block_bytes: int = EMBEDDING_BLOCK_BYTES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs (i < j) whose cosine distance is at most `threshold`; NaN or zero rows are skipped.

    Blocked: square blocks of the upper triangle, each at most `block_bytes` of float32, turned
    into distances in place, so the memory is the embeddings (and one unit-length copy), one block
    and its boolean mask (a quarter block), and the pairs found: linear in N, whatever N
    (benchmarks/bench_embedding_memory.py measures it).

    Returns:
        (i int64, j int64, distance float32) arrays, sorted by (i, j).

    Example:
    >>> e = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.01]])
    >>> i, j, d = embedding_pairs(e, 0.01)
    >>> i.tolist(), j.tolist()
    ([0], [2])
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1)
    valid = np.flatnonzero(np.all(np.isfinite(emb), axis=1) & (norms > 0))
    unit = emb[valid] / norms[valid, None]
    n = len(unit)
    side = max(1, int(np.sqrt(block_bytes / 4)))
    found_i, found_j, found_d = [], [], []
    for r0 in range(0, n, side):
        rows = unit[r0:r0 + side]
        for c0 in range(r0, n, side):
            d = rows @ unit[c0:c0 + side].T
            np.subtract(np.float32(1.0), d, out=d)  # the distances, in the block's own memory
            a, b = np.nonzero(d <= threshold)
            keep = b + c0 > a + r0
            a, b = a[keep], b[keep]
            found_i.append(a + r0)
            found_j.append(b + c0)
            found_d.append(d[a, b])
            del d  # before the next block is made: one block alive at a time
    if not found_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    i, j, d = valid[np.concatenate(found_i)], valid[np.concatenate(found_j)], np.concatenate(found_d)
    order = np.lexsort((j, i))
    return i[order].astype(np.int64), j[order].astype(np.int64), d[order].astype(np.float32)


def find_duplicates(paths: Sequence[Union[str, os.PathLike]], embeddings: Optional[np.ndarray] = None, *,
                    exact: bool = True, phash: bool = True,
                    phash_threshold: int = PHASH_THRESHOLD,
                    embedding_threshold: float = EMBEDDING_THRESHOLD,
                    workers: Optional[int] = None, source: Optional[str] = None) -> list[DuplicatePair]:
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
        source: the data source the paths were listed from (`data.source`): the SHA-256 and
            pHash of each file are read from its persistent scan index where it holds them (for
            the file's current version) and stored there otherwise, so that a later search (the
            next `tfft cv`, `data issues`) opens only new or changed files.

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
        by_digest: dict[str, list[int]] = defaultdict(list)
        for i, d in enumerate(sha256_files(paths, workers=workers, source=source)):
            if d is not None:
                by_digest[d].append(i)
        for members in by_digest.values():
            for a in range(len(members)):
                for b in range(a + 1, len(members)):
                    add(members[a], members[b], 0, 0.0)
    if phash and n:
        hashes, ok = phash_hashes(paths, workers=workers, source=source)
        index = np.flatnonzero(ok)
        for i, j, d in zip(*phash_pairs(hashes[index], phash_threshold)):
            add(int(index[i]), int(index[j]), 1, int(d) / PHASH_BITS)
    if embeddings is not None and n:
        for i, j, d in zip(*embedding_pairs(embeddings, embedding_threshold)):
            add(int(i), int(j), 2, max(0.0, float(d)))
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
    first: dict[str, int] = {}
    same = [first.setdefault(p, i) for i, p in enumerate(paths)]  # the same path twice: one group
    edges = [(first[a], first[b]) for a, b in ((os.fspath(p.path_a), os.fspath(p.path_b)) for p in pairs)
             if a in first and b in first]
    i = np.asarray([a for a, _ in edges] + same, dtype=np.int64)
    j = np.asarray([b for _, b in edges] + list(range(len(paths))), dtype=np.int64)
    return group_ids(len(paths), i, j)


__all__ = [
    "DuplicatePair", "KINDS", "PHASH_THRESHOLD", "EMBEDDING_THRESHOLD", "file_sha256", "phash_image",
    "phash_files", "phash_pairs", "embedding_pairs", "find_duplicates", "groups",
]
