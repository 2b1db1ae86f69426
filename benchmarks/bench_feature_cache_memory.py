"""Peak memory of the in-memory feature cache against the bytes of the features it holds.

A flip cache (two versions of every image, the default recipe) of N synthetic images through a
small feature model (Flatten + Dense(D): the features' size is what matters, not the backbone),
then 3 epochs of `train_dataset` and one of `val_dataset`, iterated to the end. Each variant runs
in its own process: `new` is this checkout's `tfft.training.feature_cache`, `old` the file at a
git revision (default `main`), loaded in its place. Printed: the feature bytes, the RSS growth
from just before the cache is filled to the process's peak, and their ratio.

Usage:
    python benchmarks/bench_feature_cache_memory.py [--n 20000] [--dim 1024] [--old-rev main]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_variant(module_path: str, n: int, dim: int) -> dict:
    """Fill a flip cache and iterate it; the memory figures (MiB)."""
    import importlib.util

    import keras
    import numpy as np
    import tensorflow as tf

    if module_path:
        spec = importlib.util.spec_from_file_location("feature_cache_variant", module_path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    else:
        from tfft.training import feature_cache as module
    keras.utils.set_random_seed(0)  # the same features in both variants: equal checksums, equal batches
    inputs = keras.Input((4, 4, 3))
    features = keras.Model(inputs, keras.layers.Dense(dim)(keras.layers.Flatten()(inputs)))
    head_in = keras.Input((dim,))
    head = keras.Model(head_in, keras.layers.Dense(2)(head_in))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (n, 4, 4, 3)).astype(np.float32)
    labels = np.eye(2, dtype=np.float32)[rng.integers(0, 2, n)]
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(256)
    val = tf.data.Dataset.from_tensor_slices((images[: n // 5], labels[: n // 5])).batch(256)
    cache = module.FeatureCache(features, head, seed=1, batch_size=64)
    base = _rss_mib()
    cache.fill_flips(data, n, [(False, False), (True, False)])
    cache.fill_val(val, n // 5)
    checksum = 0.0
    for x, _ in cache.train_dataset(range(3)):
        checksum += float(x.numpy()[0, 0])
    for x, _ in cache.val_dataset():
        checksum += float(x.numpy()[0, 0])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    feature_bytes = (2 * n + n // 5) * dim * 4 / 2**20
    return {"features_mib": feature_bytes, "growth_mib": peak - base, "ratio": (peak - base) / feature_bytes,
            "checksum": checksum}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--old-rev", default="main")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--module", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.module, args.n, args.dim)))
        return
    old = subprocess.run(["git", "-C", str(REPO), "show", f"{args.old_rev}:tfft/training/feature_cache.py"],
                         check=True, capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        old_path = Path(tmp) / "feature_cache_old.py"
        old_path.write_text(old)
        print(f"{'variant':>8}  {'features MiB':>12}  {'RSS growth MiB':>14}  {'ratio':>6}  checksum")
        for name, module in (("old", str(old_path)), ("new", "")):
            out = subprocess.run([sys.executable, __file__, "--variant", name, "--module", module,
                                  "--n", str(args.n), "--dim", str(args.dim)],
                                 check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            r = json.loads(out)
            print(f"{name:>8}  {r['features_mib']:>12.0f}  {r['growth_mib']:>14.0f}  {r['ratio']:>6.2f}  {r['checksum']:.6f}",
                  flush=True)


if __name__ == "__main__":
    main()
