"""Near-duplicate search at scale: the multi-index pHash search and the blocked embedding search.

Synthetic data, no files: N random 64-bit hashes with N/100 planted near-duplicates (a copy of
another hash with 0..8 bits flipped, the default threshold), and N random unit embeddings with
N/100 planted neighbours (a copy plus noise, cosine distance about 0.01). For each N: wall time
(untraced) and peak traced memory (a second run under tracemalloc: numpy's buffers) of each search, the pairs found and the
recall of the planted pairs; the all-pairs pHash search (the previous implementation) too, where
it is affordable, as the reference for time and for the pairs.

`measure(n)` returns one row (a dict) so `benchmarks/bench_scale.py` can call it.

Usage:
    python benchmarks/bench_duplicates.py [--sizes 5000 20000 100000] [--dim 256] [--all-pairs-max 20000]
        [--emb-max 20000]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from typing import Any, Callable

import numpy as np

from tfft.data.near_duplicates import PHASH_THRESHOLD, phash_pairs, unpack_bits
from tfft.studies.duplicates import embedding_pairs


def planted_hashes(n: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """`n` random hashes, n // 100 of them copies of others with 0..8 bits flipped."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)
    copies = max(1, n // 100)
    chosen = rng.permutation(n)
    planted = set()
    for src, dst in zip(chosen[:copies].tolist(), chosen[copies:2 * copies].tolist()):
        flips = rng.choice(64, int(rng.integers(0, PHASH_THRESHOLD + 1)), replace=False)
        hashes[dst] = hashes[src] ^ np.uint64(sum(1 << int(b) for b in flips))
        planted.add((min(src, dst), max(src, dst)))
    return hashes, planted


def planted_embeddings(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """`n` random float32 embeddings, n // 100 of them a copy of another plus a little noise."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    copies = max(1, n // 100)
    chosen = rng.permutation(n)
    planted = set()
    for src, dst in zip(chosen[:copies].tolist(), chosen[copies:2 * copies].tolist()):
        emb[dst] = emb[src] + rng.normal(scale=0.1, size=dim).astype(np.float32)
        planted.add((min(src, dst), max(src, dst)))
    return emb, planted


def all_pairs_phash(hashes: np.ndarray, threshold: int = PHASH_THRESHOLD, block: int = 2048):
    """The previous search: Hamming distances of row blocks against all, as matrix products."""
    ones = unpack_bits(hashes).astype(np.float32)
    zeros = 1.0 - ones
    found_i, found_j = [], []
    for start in range(0, len(ones), block):
        d = ones[start:start + block] @ zeros.T + zeros[start:start + block] @ ones.T
        r, c = np.nonzero(d <= threshold + 0.5)
        keep = c > r + start
        found_i.append(r[keep] + start)
        found_j.append(c[keep])
    return np.concatenate(found_i), np.concatenate(found_j)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak MiB traced): timed untraced, then run again under tracemalloc (which
    slows the many small numpy calls several times) for the memory."""
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def _recall(found, planted: set[tuple[int, int]]) -> float:
    pairs = set(zip(np.asarray(found[0]).tolist(), np.asarray(found[1]).tolist()))
    return sum(p in pairs for p in planted) / max(1, len(planted))


def measure(n: int, dim: int = 256, all_pairs_max: int = 20000, emb_max: int = 20000) -> dict[str, Any]:
    """One row of the table: times (s), peak traced memory (MiB), pairs and planted recall at `n`."""
    hashes, planted = planted_hashes(n)
    found, seconds, peak = _timed(lambda: phash_pairs(hashes))
    row: dict[str, Any] = {"n": n, "phash_s": seconds, "phash_mib": peak, "phash_pairs": len(found[0]),
                           "phash_recall": _recall(found, planted)}
    if n <= all_pairs_max:
        reference, seconds, peak = _timed(lambda: all_pairs_phash(hashes))
        row.update(all_pairs_s=seconds, all_pairs_mib=peak,
                   same_pairs=set(zip(*map(np.ndarray.tolist, reference))) == set(zip(*map(np.ndarray.tolist, found[:2]))))
    if n > emb_max:  # exact cosine search is N^2 D flops however it is blocked: minutes at 100k
        return row
    emb, planted = planted_embeddings(n, dim)
    found, seconds, peak = _timed(lambda: embedding_pairs(emb, 0.03))
    row.update(emb_s=seconds, emb_mib=peak, emb_pairs=len(found[0]), emb_recall=_recall(found, planted))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 100000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--all-pairs-max", type=int, default=20000)
    parser.add_argument("--emb-max", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'N':>7}  {'pHash s':>8}  {'MiB':>6}  {'pairs':>6}  {'recall':>6}  {'all-pairs s':>11}  {'MiB':>6}  "
          f"{'same':>5}  {'emb s':>7}  {'MiB':>6}  {'recall':>6}")
    for n in args.sizes:
        r = measure(n, args.dim, args.all_pairs_max, args.emb_max)
        reference = (f"{r['all_pairs_s']:>11.2f}  {r['all_pairs_mib']:>6.0f}  {str(r['same_pairs']):>5}"
                     if "all_pairs_s" in r else f"{'-':>11}  {'-':>6}  {'-':>5}")
        print(f"{n:>7}  {r['phash_s']:>8.2f}  {r['phash_mib']:>6.0f}  {r['phash_pairs']:>6}  {r['phash_recall']:>6.3f}  "
              f"{reference}  " + (f"{r['emb_s']:>7.2f}  {r['emb_mib']:>6.0f}  {r['emb_recall']:>6.3f}" if "emb_s" in r
                                  else f"{'-':>7}  {'-':>6}  {'-':>6}"), flush=True)


if __name__ == "__main__":
    main()
