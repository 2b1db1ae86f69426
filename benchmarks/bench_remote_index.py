"""Cold and warm starts on a remote folder (`ram://`, as `gs://` would be): the scan index at work.

Writes N small JPEGs into a `ram://` folder (10 classes), then lists it with `load_splits` three
times in one process (each after `tfft.data.probe.clear_cache()`, as a new start would be): cold
(an empty `TFFT_CACHE_DIR`: every file read and probed), warm (the index: one `tf.io.gfile.stat`
a file, no read), and warm after one file was rewritten (that file alone read). Prints wall and
CPU seconds and the files opened through `tfft.data.fs.open_file`.

Usage:
    python benchmarks/bench_remote_index.py [--sizes 1000 4000]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    args = parser.parse_args()
    os.environ["TFFT_CACHE_DIR"] = tempfile.mkdtemp(prefix="tfft-remote-index-")
    import tensorflow as tf
    from PIL import Image

    from tfft.config import DataConfig
    from tfft.data import load_splits
    from tfft.data import probe as probing
    from tfft.data import fs

    opened: list[str] = []
    open_file = fs.open_file
    fs.open_file = lambda path, mode="rb": opened.append(path) or open_file(path, mode)
    rng = np.random.default_rng(0)
    print(f"load average at start: {os.getloadavg()}")
    print("| N | start | wall s | CPU s | files opened |")
    print("|---:|---|---:|---:|---:|")
    for n in args.sizes:
        root = f"ram://bench-{n}"
        for i in range(n):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), np.uint8)).save(buffer, format="JPEG")
            tf.io.gfile.makedirs(f"{root}/c{i % 10}")
            with tf.io.gfile.GFile(f"{root}/c{i % 10}/{i:07d}.jpg", "wb") as handle:
                handle.write(buffer.getvalue())
        cfg = DataConfig(source=root, val_split=0.2)
        for start in ("cold", "warm", "warm, 1 file changed"):
            if start.endswith("changed"):
                path = f"{root}/c0/{0:07d}.jpg"
                tf.io.gfile.remove(path)
                with tf.io.gfile.GFile(path, "wb") as handle:
                    handle.write(buffer.getvalue())  # another image's bytes: another length
            probing.clear_cache()
            opened.clear()
            wall, cpu = time.perf_counter(), time.process_time()
            load_splits(cfg, seed=0, echo=False)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(f"| {n:,} | {start} | {wall:.2f} | {cpu:.2f} | {len(opened)} |", flush=True)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
