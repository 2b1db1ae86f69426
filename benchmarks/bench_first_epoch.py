"""The first epoch with the decoded cache against today's uncached epoch: wall, CPU, page faults.

Run from the repo root:

    .venv/bin/python benchmarks/bench_first_epoch.py [--data /work/shared/datasets/pets-mini]
        [--stage full | decode] [--repeats 6] [--baseline main]

Rows, each a fresh iterator over one training epoch of the train/ photos (224x224, batch 32,
the seed recipe of `bench_augment`), built untimed, interleaved round by round:

(c) tfft augmented as `tfft train` runs it, no decoded cache (decoded every epoch)
(c1) the same with the decoded cache, the store released first: a phase's first epoch (decodes and fills)
(c1-base) (c1) with `tfft/data/decoded_cache.py` as it is at git revision `--baseline` (the store
    before a change), loaded from git into this process

`--stage decode` times only the stream as decoded (no resize, no augmentation), where the store's
own cost stands out. Printed per row: medians and minima of wall and CPU seconds a pass (this
process, all threads), the CPU the kernel charged (sys), CPU/wall, the minor page faults a pass
(`ru_minflt`), and for every row the per-round ratios to (c) (paired in a round, so the load of
the moment cancels: above 1 is slower than (c)).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SIZE, BATCH = (224, 224), 32


def baseline_store(revision: str):
    """`DecodedStore` of `tfft/data/decoded_cache.py` at git `revision`, as a module of its own."""
    root = Path(__file__).resolve().parents[1]
    text = subprocess.run(["git", "show", f"{revision}:tfft/data/decoded_cache.py"], cwd=root, check=True,
                          capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="bench_first_epoch_")) / "decoded_cache_base.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("decoded_cache_base", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.DecodedStore


def make_rows(data: Path, stage: str, baseline: str) -> dict:
    """{row: make()}, `make()` -> a dataset over one epoch (the store released, for the cached rows)."""
    import tensorflow as tf

    from bench_augment import RECIPE
    from tfft import augment as tfft_augment
    from tfft import data as tfft_data
    from tfft.config import AugmentConfig, DataConfig
    from tfft.data import decode, decoded_cache, pipeline

    cfg = DataConfig(source=str(data), image_size=SIZE, batch_size=BATCH)
    splits = tfft_data.load_splits(cfg, seed=1)
    split, fast = splits.splits["train"], decode.fast_decode_on(cfg)
    augmenter = tfft_augment.build_augmenter(AugmentConfig(**RECIPE), SIZE, splits.num_classes)
    on_decoded, augment_fn = augmenter.pipeline_steps()
    policy = decoded_cache.DecodedCachePolicy("auto")
    stores = {"c1": decoded_cache.DecodedStore, "c1-base": baseline_store(baseline)}

    def make(row: str):
        decoded_cache.release()
        cache = None if row == "c" else policy
        current, decoded_cache.DecodedStore = decoded_cache.DecodedStore, stores.get(row, decoded_cache.DecodedStore)
        try:
            if stage == "full":
                return tfft_data.make_dataset(splits, "train", cfg, seed=1, training=True, augment_fn=augment_fn,
                                              on_decoded=on_decoded, decoded_cache=cache)
            decoder, _, may_be_large = splits.origin.element_decoder(split, SIZE, fast)
            store = decoded_cache.store_for(split, SIZE, fast, cache)
            ds = pipeline._phase_batches(split, decoder, may_be_large, SIZE, BATCH, 1, 0, 1, 0, store)
            return ds.prefetch(tf.data.AUTOTUNE).with_options(pipeline._options())
        finally:
            decoded_cache.DecodedStore = current

    return {row: (lambda row=row: make(row)) for row in ("c", "c1-base", "c1")}


def one_pass(ds) -> dict:
    """Wall, CPU (user, sys) seconds and minor page faults of one pass over a fresh iterator."""
    wall, cpu, usage = time.perf_counter(), os.times(), resource.getrusage(resource.RUSAGE_SELF)
    for _ in ds:
        pass
    end, cpu_end, usage_end = time.perf_counter(), os.times(), resource.getrusage(resource.RUSAGE_SELF)
    return {"wall": end - wall, "cpu": (cpu_end.user - cpu.user) + (cpu_end.system - cpu.system),
            "sys": cpu_end.system - cpu.system, "faults": usage_end.ru_minflt - usage.ru_minflt}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/pets-mini"))
    parser.add_argument("--stage", choices=("full", "decode"), default="full")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--baseline", default="main", help="the git revision of the (c1-base) row's store")
    args = parser.parse_args()
    rows = make_rows(Path(args.data), args.stage, args.baseline)
    start_load = os.getloadavg()[0]
    for make in rows.values():  # warm-up (compilation), untimed
        one_pass(make())
    passes: dict = {row: [] for row in rows}
    for _ in range(args.repeats):
        for row, make in rows.items():
            passes[row].append(one_pass(make()))
    median = statistics.median
    print(f"{args.data}: stage {args.stage}, {args.repeats} interleaved rounds, load average "
          f"{start_load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    for row, got in passes.items():
        wall, cpu = [p["wall"] for p in got], [p["cpu"] for p in got]
        print(f"({row}) wall s median {median(wall):.3f} min {min(wall):.3f} | CPU s median {median(cpu):.3f} "
              f"min {min(cpu):.3f} (sys {median(p['sys'] for p in got):.3f}) | CPU/wall {median(cpu) / median(wall):.2f}"
              f" | faults {median(p['faults'] for p in got):.0f}")
        if row != "c":
            for key in ("wall", "cpu"):
                ratios = sorted(p[key] / q[key] for p, q in zip(got, passes["c"]))
                print(f"    {key} / (c) per round: " + " ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
    main()
