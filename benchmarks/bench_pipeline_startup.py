"""The CPU a fresh process spends building tfft's training and validation datasets and reading
their first batch (builtin:shapes, 32 px, flips and rotation), apart from importing TensorFlow:
what AutoGraph's conversion of the map functions cost (benchmarks/RESULTS.md, "AutoGraph").

Run from the repository root, once per checkout to compare, each in a fresh process:

    PYTHONPATH=$PWD python benchmarks/bench_pipeline_startup.py LABEL
"""

from __future__ import annotations

import argparse
import resource


def _cpu(before, after) -> float:
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("label", help="a name for this checkout in the printed line")
    args = parser.parse_args()

    start = resource.getrusage(resource.RUSAGE_SELF)
    import tensorflow  # noqa: F401  (the import timed apart)

    from tfft.augment import build_augmenter
    from tfft.config import AugmentConfig, DataConfig
    from tfft.data import load_splits, make_dataset

    imported = resource.getrusage(resource.RUSAGE_SELF)
    cfg = DataConfig(source="builtin:shapes", image_size=(32, 32), batch_size=16, builtin_per_class=12)
    splits = load_splits(cfg, seed=1, echo=False)
    augmenter = build_augmenter(AugmentConfig(horizontal_flip=True, rotation_range=15), (32, 32), splits.num_classes)
    on_decoded, augment_fn = augmenter.pipeline_steps()
    train = make_dataset(splits, "train", cfg, seed=1, training=True, epochs=range(0, 3), augment_fn=augment_fn,
                         on_decoded=on_decoded)
    val = make_dataset(splits, "val", cfg, seed=1, training=False)
    next(iter(train))
    next(iter(val))
    done = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{args.label}: import {_cpu(start, imported):.2f} CPU s; build + first batches {_cpu(imported, done):.2f} CPU s")


if __name__ == "__main__":
    main()
