"""What the top losses drawn at the end of every training run cost: `write_run_top_losses`.

A two-class classifier on a tiny two-convolution backbone, 40 random 64x64 val images, the default
8 tiles; one warm-up call (it traces the heatmap function), then the median of `--repeat` calls.

Run:
    PYTHONPATH=. python benchmarks/bench_top_losses.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from tfft.config import ModelConfig
    from tfft.models.build import build_classifier
    from tfft.reporting.top_losses import write_run_top_losses

    folder = tempfile.mkdtemp()
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for filters in (8, 16):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    keras.Model(inputs, x).save(f"{folder}/tiny.keras")
    model = build_classifier(ModelConfig(backbone=f"keras:{folder}/tiny.keras", weights=None), 2,
                             (args.size, args.size))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (40, args.size, args.size, 3)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, rng.integers(0, 2, 40))).batch(16)
    seconds = []
    for _ in range(args.repeat + 1):
        started = time.perf_counter()
        write_run_top_losses(model, dataset, ["cat", "dog"], tempfile.mkdtemp())
        seconds.append(time.perf_counter() - started)
    print("| call | seconds |\n| --- | ---: |")
    print(f"| first (traces the heatmaps) | {seconds[0]:.2f} |")
    print(f"| median of the next {args.repeat} | {float(np.median(seconds[1:])):.2f} |")


if __name__ == "__main__":
    main()
