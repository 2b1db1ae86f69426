"""Peak memory of the blocked embedding duplicate search (`tfft.studies.duplicates.embedding_pairs`).

For each N: N random D-dim float32 embeddings with N/100 planted near neighbours (a copy plus
small noise), searched at the default threshold; tracemalloc's peak during the search (numpy's
buffers) minus the input's bytes, the wall and CPU seconds, and the recall of the planted pairs.
The peak should grow with N only through the unit-length copy (N x D x 4 bytes) and the pairs,
never as N^2: the similarity matrix lives in blocks of `--block-mib`.

Usage:
    python benchmarks/bench_embedding_memory.py [--sizes 2500 5000 10000 20000] [--dim 128] [--block-mib 16 64]
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np

from tfft.studies.duplicates import embedding_pairs


def planted(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, dim)).astype(np.float32)
    sources = rng.choice(n, size=n // 100, replace=False)
    targets = rng.choice(np.setdiff1d(np.arange(n), sources), size=len(sources), replace=False)
    emb[targets] = emb[sources] + 0.02 * rng.standard_normal((len(sources), dim)).astype(np.float32)
    return emb, {(min(a, b), max(a, b)) for a, b in zip(sources.tolist(), targets.tolist())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2500, 5000, 10000, 20000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--block-mib", type=int, nargs="+", default=[16, 64])
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    print("| N | D | block MiB | input MiB | peak MiB | peak - input MiB | wall s | CPU s | pairs | recall |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for block in args.block_mib:
        for n in args.sizes:
            emb, truth = planted(n, args.dim)
            tracemalloc.start()
            tracemalloc.reset_peak()
            wall, cpu = time.perf_counter(), time.process_time()
            i, j, _ = embedding_pairs(emb, block_bytes=block << 20)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            found = set(zip(i.tolist(), j.tolist()))
            recall = len(truth & found) / max(1, len(truth))
            mib = emb.nbytes / 2**20
            print(f"| {n:,} | {args.dim} | {block} | {mib:.1f} | {peak:.1f} | {peak - mib:.1f} | {wall:.2f} | "
                  f"{cpu:.2f} | {len(found)} | {recall:.3f} |", flush=True)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
