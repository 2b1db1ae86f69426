"""Input-pipeline throughput: legacy ImageDataGenerator vs tf.data decode vs tfft's fused augmentation.

Run from the repo root:

    .venv/bin/python benchmarks/bench_augment.py [--data /work/shared/datasets/pets-mini] [--repeats 3]

Recipe (the "seed" IDG recipe): rotation 40, width/height shift 0.2, shear 0.2, zoom 0.2,
horizontal_flip, fill_mode nearest; 224x224, batch 32, the train/ JPEGs of pets-mini, one
process. Rows:

(a) `keras.src.legacy.preprocessing.image.ImageDataGenerator(...).flow_from_directory`
(b) `tfft.data.make_dataset(..., training=True)`: decode + resize, no augmentation
(c) the same with `augment_fn=tfft.augment.build_augmenter(...)` (fused warp in tf.data)
(d) augmentation alone on one decoded batch held in memory (the augmenter's own cost)

Each row: one warm-up pass, then `repeats` timings of 2 passes; the median is printed as a
markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RECIPE = dict(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2,
              zoom_range=0.2, horizontal_flip=True, fill_mode="nearest")
SIZE, BATCH = (224, 224), 32


def _time(run_pass, images_per_pass: int, repeats: int, passes: int = 2) -> tuple[float, float]:
    """Median (images per wall second, images per CPU second of this process, all threads)."""
    run_pass()  # warm-up
    rates, cpu_rates = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(passes):
            run_pass()
        rates.append(passes * images_per_pass / (time.perf_counter() - start))
        cpu_rates.append(passes * images_per_pass / max(time.process_time() - cpu, 1e-9))
    return statistics.median(rates), statistics.median(cpu_rates)


def bench_idg(train_dir: Path, repeats: int):
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    warnings.filterwarnings("ignore")
    gen = ImageDataGenerator(**RECIPE)
    flow = gen.flow_from_directory(str(train_dir), target_size=SIZE, batch_size=BATCH,
                                   class_mode="sparse", seed=1)
    n = flow.n

    def one_pass():
        for i in range(len(flow)):
            flow[i]

    return _time(one_pass, n, repeats), n


def bench_tf(data_dir: Path, repeats: int, augment: bool):
    from tfft import augment as tfft_augment
    from tfft import data as tfft_data
    from tfft.config import AugmentConfig, DataConfig

    data_cfg = DataConfig(source=str(data_dir), image_size=SIZE, batch_size=BATCH)
    splits = tfft_data.load_splits(data_cfg, seed=1)
    n = len(splits.splits["train"].labels) if hasattr(splits.splits["train"], "labels") else None
    augmenter = (tfft_augment.build_augmenter(AugmentConfig(**RECIPE), SIZE, splits.num_classes)
                 if augment else None)
    ds = tfft_data.make_dataset(splits, "train", data_cfg, seed=1, training=True, augment_fn=augmenter)
    count = sum(int(x.shape[0]) for x, _ in ds)  # also the first warm-up
    n = count

    def one_pass():
        for _ in ds:
            pass

    return _time(one_pass, n, repeats), n


def bench_augment_only(data_dir: Path, repeats: int):
    import tensorflow as tf

    from tfft import augment as tfft_augment
    from tfft import data as tfft_data
    from tfft.config import AugmentConfig, DataConfig

    data_cfg = DataConfig(source=str(data_dir), image_size=SIZE, batch_size=BATCH)
    splits = tfft_data.load_splits(data_cfg, seed=1)
    images, labels = next(iter(tfft_data.make_dataset(splits, "train", data_cfg, seed=1, training=False)))
    augmenter = tfft_augment.build_augmenter(AugmentConfig(**RECIPE), SIZE, splits.num_classes)
    step = tf.function(lambda s: augmenter(images, labels, tf.stack([1, s]))[0])

    def twenty_five_batches():
        for s in range(25):
            step(tf.constant(s)).numpy()

    return _time(twenty_five_batches, 25 * BATCH, repeats, passes=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/pets-mini"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = Path(args.data)
    import tensorflow as tf

    a, n = bench_idg(data / "train", args.repeats)
    b, _ = bench_tf(data, args.repeats, augment=False)
    c, _ = bench_tf(data, args.repeats, augment=True)
    d = bench_augment_only(data, args.repeats)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"pets-mini train: {n} JPEGs -> {SIZE[0]}x{SIZE[1]}, batch {BATCH}, "
          f"{os.cpu_count()} CPU cores (load average {load:.1f} at the end), TF {tf.__version__}; "
          f"median of {args.repeats} x 2 passes\n")
    print("| pipeline | images/s (wall) | vs (a) | vs (b) | images per CPU-second | vs (a) | vs (b) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    rows = [("(a) legacy ImageDataGenerator.flow_from_directory (seed recipe)", a),
            ("(b) tfft.data decode+resize, no augmentation", b),
            ("(c) tfft.data decode+resize + tfft.augment fused warp (seed recipe)", c),
            ("(d) tfft.augment alone, decoded batch in memory", d)]
    for name, (rate, cpu) in rows:
        print(f"| {name} | {rate:.0f} | {rate / a[0]:.1f}x | {rate / b[0]:.2f}x | {cpu:.0f} | "
              f"{cpu / a[1]:.1f}x | {cpu / b[1]:.2f}x |")
    for label, i in (("wall", 0), ("CPU", 1)):
        print(f"\ntargets ({label}): (c) >= 5x (a): {'met' if c[i] >= 5 * a[i] else 'NOT met'} "
              f"({c[i] / a[i]:.1f}x); (c) >= 0.5x (b): {'met' if c[i] >= 0.5 * b[i] else 'NOT met'} "
              f"({c[i] / b[i]:.2f}x)")


if __name__ == "__main__":
    main()
