"""Near-duplicate search at scale: the multi-index pHash search and the blocked embedding search.

Synthetic data, no files: N random 64-bit hashes with N/100 planted near-duplicates (a copy of
another hash with 0..8 bits flipped, the default threshold), and N random unit embeddings with
N/100 planted neighbours (a copy plus noise, cosine distance about 0.01). With `--photos DIR`,
also N hashes with the structure of real photos' (`photo_hashes`: blended crops of DIR's JPEGs,
N/100 near copies). For each N: wall time (the best of `--repeat` untraced runs) and peak traced
memory (one more run under tracemalloc: numpy's buffers) of each search, the pairs found and the
recall of the planted pairs; the all-pairs pHash search (the first implementation) too, where it
is affordable, as the reference for the pairs (`same`); then the growth exponent of the time
between each size and the next (time ~ N ** exponent; list a size twice to see the noise).

`measure(n)` returns one row (a dict) so `benchmarks/bench_scale.py` can call it.

Usage:
    python benchmarks/bench_duplicates.py [--sizes 10000 20000 50000 100000] [--repeat 3]
        [--photos ../shared/datasets/pets-mini] [--all-pairs-max 10000] [--emb-max 20000] [--dim 256]
"""

from __future__ import annotations

import argparse
import functools
import time
import tracemalloc
from typing import Any, Callable, Optional

import numpy as np

from tfft.data.near_duplicates import _DCT, PHASH_THRESHOLD, pack_bits, phash_pairs, unpack_bits
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


@functools.lru_cache(maxsize=2)
def _photo_thumbnails(folder: str, side: int = 64) -> np.ndarray:
    """float32 [M, side, side] grey thumbnails of every JPEG under `folder` (area-averaged)."""
    from pathlib import Path

    from PIL import Image

    from tfft.data.decode import pil_decode

    out = []
    for path in sorted(Path(folder).rglob("*.jpg")):
        rgb = pil_decode(str(path), target=(2 * side, 2 * side)).astype(np.float32)
        luma = Image.fromarray(rgb @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32), mode="F")
        out.append(np.asarray(luma.resize((side, side), Image.Resampling.BOX)))
    return np.stack(out)


def _crops(thumbs: np.ndarray, src: np.ndarray, box: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """float32 [B, 32, 32] bilinear crops of thumbnails: `box` [B, 3] (top, left, side) in
    thumbnail pixels, mirrored where `flip`."""
    side = thumbs.shape[1]
    grid = (np.arange(32, dtype=np.float32) + 0.5) / 32
    ys = box[:, :1, None] + grid[None, :, None] * box[:, 2:, None] - 0.5  # [B, 32, 1]
    xs = box[:, 1:2, None] + grid[None, None, :] * box[:, 2:, None] - 0.5  # [B, 1, 32]
    xs = np.where(flip[:, None, None], box[:, 1:2, None] * 2 + box[:, 2:, None] - 1 - xs, xs)
    y0, x0 = np.clip(np.floor(ys), 0, side - 2).astype(int), np.clip(np.floor(xs), 0, side - 2).astype(int)
    wy, wx = np.clip(ys - y0, 0, 1), np.clip(xs - x0, 0, 1)
    s = src[:, None, None]
    return ((1 - wy) * (1 - wx) * thumbs[s, y0, x0] + (1 - wy) * wx * thumbs[s, y0, x0 + 1]
            + wy * (1 - wx) * thumbs[s, y0 + 1, x0] + wy * wx * thumbs[s, y0 + 1, x0 + 1])


def _hash_grey(g: np.ndarray) -> np.ndarray:
    """pHash of [B, 32, 32] grey images as `phash_image` computes it (8x8 low DCT above the median)."""
    dct = _DCT[:8].astype(np.float32)
    low = np.einsum("ij,bjk,lk->bil", dct, g, dct).reshape(len(g), 64)
    return pack_bits(low > np.median(low[:, 1:], axis=1, keepdims=True))


def _random_views(rng: np.random.Generator, n: int, photos: int, side: int) -> dict[str, np.ndarray]:
    size = rng.uniform(0.5, 1.0, n) * side
    box = np.stack([rng.uniform(0, side - size), rng.uniform(0, side - size), size], axis=1)
    return {"src": rng.integers(0, photos, n), "box": box.astype(np.float32), "flip": rng.random(n) < 0.5}


def photo_hashes(n: int, folder: str, seed: int = 0, chunk: int = 4096,
                 ) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """`n` pHashes with the structure of real photos (biased bits: the DC bit is always set, low
    frequencies lean one way): each a blend (35-65%) of random crops (50-100% of the side, some
    mirrored) of two photos in `folder` (pets-mini: 1,040), plus pixel noise; n // 100 of them
    near copies of others (the same crops moved by up to 1 px and resized by up to 2%, new
    noise). The planted pairs returned are those the copy left within the default threshold."""
    rng = np.random.default_rng(seed)
    thumbs = _photo_thumbnails(folder)
    side = thumbs.shape[1]
    a, b = _random_views(rng, n, len(thumbs), side), _random_views(rng, n, len(thumbs), side)
    alpha = rng.uniform(0.35, 0.65, n).astype(np.float32)
    copies = max(1, n // 100)
    chosen = rng.permutation(n)
    from_, to = chosen[:copies], chosen[copies:2 * copies]
    alpha[to] = alpha[from_]
    for view in (a, b):
        view["src"][to], view["flip"][to] = view["src"][from_], view["flip"][from_]
        box = view["box"][from_].copy()
        box[:, 2] *= rng.uniform(0.98, 1.0, copies)
        box[:, :2] = np.clip(box[:, :2] + rng.uniform(-1, 1, (copies, 2)), 0, side - box[:, 2:])
        view["box"][to] = box
    parts = []
    for s in range(0, n, chunk):
        cut = slice(s, s + chunk)
        w = alpha[cut, None, None]
        g = (w * _crops(thumbs, *(a[k][cut] for k in ("src", "box", "flip")))
             + (1 - w) * _crops(thumbs, *(b[k][cut] for k in ("src", "box", "flip"))))
        parts.append(_hash_grey(g + rng.normal(0, 2.0, g.shape).astype(np.float32)))
    hashes = np.concatenate(parts)
    close = np.bitwise_count(hashes[from_] ^ hashes[to]) <= PHASH_THRESHOLD
    planted = {(min(x, y), max(x, y)) for x, y in zip(from_[close].tolist(), to[close].tolist())}
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


def _timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[Any, float, float]:
    """(result, seconds, peak MiB traced): the best of `repeat` untraced runs (the machine is
    shared: the minimum is the least disturbed), then one more under tracemalloc (which slows the
    many small numpy calls several times) for the memory."""
    seconds = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        seconds = min(seconds, time.perf_counter() - start)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def _recall(found, planted: set[tuple[int, int]]) -> float:
    pairs = set(zip(np.asarray(found[0]).tolist(), np.asarray(found[1]).tolist()))
    return sum(p in pairs for p in planted) / max(1, len(planted))


def measure(n: int, dim: int = 256, all_pairs_max: int = 20000, emb_max: int = 20000, repeat: int = 3,
            photos: Optional[str] = None) -> dict[str, Any]:
    """One row of the table: times (s), peak traced memory (MiB), pairs and planted recall at `n`;
    with `photos` (a folder of JPEGs), the pHash search on hashes of blended crops of them too."""
    hashes, planted = planted_hashes(n)
    found, seconds, peak = _timed(lambda: phash_pairs(hashes), repeat)
    row: dict[str, Any] = {"n": n, "phash_s": seconds, "phash_mib": peak, "phash_pairs": len(found[0]),
                           "phash_recall": _recall(found, planted)}
    if n <= all_pairs_max:
        reference, seconds, peak = _timed(lambda: all_pairs_phash(hashes))
        row.update(all_pairs_s=seconds, all_pairs_mib=peak,
                   same_pairs=set(zip(*map(np.ndarray.tolist, reference))) == set(zip(*map(np.ndarray.tolist, found[:2]))))
    if photos:
        hashes, planted = photo_hashes(n, photos)
        found, seconds, peak = _timed(lambda: phash_pairs(hashes), repeat)
        row.update(photo_s=seconds, photo_mib=peak, photo_pairs=len(found[0]), photo_recall=_recall(found, planted))
        if n <= all_pairs_max:
            reference = all_pairs_phash(hashes)
            row["photo_same"] = (set(zip(*map(np.ndarray.tolist, reference)))
                                 == set(zip(*map(np.ndarray.tolist, found[:2]))))
    if n > emb_max:  # exact cosine search is N^2 D flops however it is blocked: minutes at 100k
        return row
    emb, planted = planted_embeddings(n, dim)
    found, seconds, peak = _timed(lambda: embedding_pairs(emb, 0.03))
    row.update(emb_s=seconds, emb_mib=peak, emb_pairs=len(found[0]), emb_recall=_recall(found, planted))
    return row


def _cells(r: dict[str, Any], keys: tuple[str, ...], formats: tuple[str, ...]) -> str:
    return "  ".join(format(r[k], f) if k in r else format("-", f.split(".")[0].rstrip("f")) for k, f in zip(keys, formats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 20000, 50000, 100000])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--all-pairs-max", type=int, default=10000)
    parser.add_argument("--emb-max", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each search; the best is shown")
    parser.add_argument("--photos", default=None, help="a folder of JPEGs (e.g. pets-mini): realistic hashes too")
    args = parser.parse_args()
    keys = ("phash_s", "phash_mib", "phash_pairs", "phash_recall", "all_pairs_s", "same_pairs",
            "photo_s", "photo_mib", "photo_pairs", "photo_recall", "photo_same", "emb_s", "emb_mib", "emb_recall")
    formats = (">8.3f", ">5.0f", ">6", ">6.3f", ">9.2f", ">5", ">8.3f", ">5.0f", ">6", ">6.3f", ">5", ">7.2f", ">5.0f", ">6.3f")
    print(f"{'N':>7}  {'pHash s':>8}  {'MiB':>5}  {'pairs':>6}  {'recall':>6}  {'all-prs s':>9}  {'same':>5}  "
          f"{'photo s':>8}  {'MiB':>5}  {'pairs':>6}  {'recall':>6}  {'same':>5}  {'emb s':>7}  {'MiB':>5}  {'recall':>6}")
    rows = []
    for n in args.sizes:
        r = measure(n, args.dim, args.all_pairs_max, args.emb_max, args.repeat, args.photos)
        rows.append(r)
        print(f"{n:>7}  " + _cells({k: (str(v) if isinstance(v, bool) else v) for k, v in r.items()}, keys, formats),
              flush=True)
    for kind in ("phash_s", "photo_s"):  # time ~ N ** exponent, between each size and the next
        steps = [(a, b) for a, b in zip(rows, rows[1:]) if kind in a and a["n"] != b["n"]]
        if steps:
            print(f"{kind} growth exponent: " + ", ".join(
                f"{a['n'] // 1000}k->{b['n'] // 1000}k {np.log(b[kind] / a[kind]) / np.log(b['n'] / a['n']):.2f}"
                for a, b in steps))

if __name__ == "__main__":
    main()
