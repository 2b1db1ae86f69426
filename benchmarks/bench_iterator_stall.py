"""How long deleting a tf.data iterator blocks: tfft's stream as it was (every map and prefetch
`tf.data.AUTOTUNE`, the autotuner on: TF's default) and as it is (`tfft.data.streams`: a fixed
parallelism and prefetch, the autotuner off).

Run from the repo root:

    .venv/bin/python benchmarks/bench_iterator_stall.py [--data /work/shared/datasets/pets-mini]
        [--lives 1 3 12] [--tries 4]

Each try is a fresh process: tfft's augmented training stream over the train/ photos (224x224,
batch 32, the seed recipe of `bench_augment`, no decoded cache), read for `life` seconds, then
the iterator deleted (`del`, as Keras drops its iterator at the end of a validation pass or of
`fit`). Printed: the seconds the deletion took and the batches read in `life`, per try.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def one(data: str, life: float, before: bool) -> dict:
    """Read the stream for `life` seconds in this process, delete the iterator, time the deletion."""
    import tensorflow as tf

    from bench_augment import RECIPE
    from tfft import augment as tfft_augment
    from tfft import data as tfft_data
    from tfft.config import AugmentConfig, DataConfig
    from tfft.data import streams

    if before:  # what every map and prefetch asked for before `streams` (read when the stream is built)
        streams.PARALLEL = streams.PREFETCH = tf.data.AUTOTUNE

    cfg = DataConfig(source=data, image_size=(224, 224), batch_size=32)
    splits = tfft_data.load_splits(cfg, seed=1)
    on_decoded, augment_fn = tfft_augment.build_augmenter(AugmentConfig(**RECIPE), (224, 224),
                                                          splits.num_classes).pipeline_steps()
    ds = tfft_data.make_dataset(splits, "train", cfg, seed=1, training=True, epochs=range(0, 10_000),
                                augment_fn=augment_fn, on_decoded=on_decoded)
    if before:
        options = tf.data.Options()
        options.autotune.enabled = True
        ds = ds.with_options(options)
    start, batches = time.perf_counter(), 0
    iterator = iter(ds)
    while time.perf_counter() - start < life:
        next(iterator)
        batches += 1
    deleting = time.perf_counter()
    del iterator
    return {"deletion": time.perf_counter() - deleting, "batches": batches}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/pets-mini"))
    parser.add_argument("--lives", type=float, nargs="+", default=[1.0, 3.0, 12.0])
    parser.add_argument("--tries", type=int, default=4)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # life, before|now: a single try, in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.data, float(args.one[0]), args.one[1] == "before")))
        return
    print(f"{args.data}: {args.tries} tries a cell, each in a fresh process; load average {os.getloadavg()[0]:.1f}")
    print("| iterator read for | stream | deletion took, s (each try) | batches read (each try) |")
    print("| ---: | --- | --- | ---: |")
    for life in args.lives:
        for setting in ("before", "now"):
            got = []
            for _ in range(args.tries):
                out = subprocess.run([sys.executable, __file__, "--data", args.data, "--one", str(life), setting],
                                     check=True, capture_output=True, text=True).stdout
                got.append(json.loads(out.strip().splitlines()[-1]))
            label = ("before: AUTOTUNE, the autotuner on" if setting == "before"
                     else "now: `streams`, the autotuner off")
            took = " ".join(f"{g['deletion']:.2f}" for g in got)
            print(f"| {life:g} s | {label} | {took} | {' '.join(str(g['batches']) for g in got)} |")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
