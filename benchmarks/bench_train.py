"""Training benchmarks: step throughput, the frozen-feature cache, tfft's recipe vs plain Keras.

Run from the repo root (each section prints a markdown table):

    .venv/bin/python benchmarks/bench_train.py steps  [--backbones resnet50,vgg16,...] [--size 224]
    .venv/bin/python benchmarks/bench_train.py cache  [--data ../shared/datasets/pets-mini] [--epochs 10]
    .venv/bin/python benchmarks/bench_train.py recipe [--data ../shared/datasets/pets-mini]

`steps`: images/s of one training step (batch `--batch`, random pixels) per backbone and
precision, with the backbone frozen (head only) and fully unfrozen; median of `--repeats` steps
after 2 warm-up steps.

`cache`: a frozen-backbone phase (`schedule.preset: feature_extraction`, `--epochs` epochs, no
augmentation) trained by `tfft.train` with `performance.cache_features: off` and `on`: wall time
end to end (data scan, model build, training, evaluation, artifacts) and val accuracy.

`recipe`: the plain Keras transfer-learning recipe (legacy `ImageDataGenerator` with the seed
augmentation and `preprocess_input`, `flow_from_directory`, ResNet50 `include_top=False`, frozen,
GlobalAveragePooling2D, Dense softmax, Adam 1e-3, `model.fit`) against `tfft.train` with tfft's
defaults (two_phase: 3 head epochs then 5 with the last block unfrozen, horizontal flip), the
same total epochs, the same data and backbone. Wall time end to end, per epoch, val accuracy.

`--weights` defaults to None because this machine cannot download ImageNet weights; pass
`--weights imagenet` where it can. With random weights the accuracies say little about
transfer learning; the times are what the sections measure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/datasets/pets-mini"
SEED_RECIPE = dict(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2,
                   zoom_range=0.2, horizontal_flip=True, fill_mode="nearest")


def _header(args: argparse.Namespace) -> None:
    import keras
    import tensorflow as tf

    print(f"\n{os.cpu_count()} CPU cores, TF {tf.__version__}, Keras {keras.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}; weights: {args.weights}\n")


def bench_steps(args: argparse.Namespace) -> None:
    import keras
    import numpy as np

    import tfft
    from tfft.models.build import resolve_backbone
    from tfft.schedule.freezing import apply_freezing

    rows = []
    for precision in args.precisions.split(","):
        keras.mixed_precision.set_global_policy(precision)
        for name in args.backbones.split(","):
            cfg = tfft.load_config({"model": {"backbone": name, "weights": args.weights},
                                    "data": {"image_size": [args.size, args.size]}})
            model = tfft.build_model(cfg, num_classes=10)
            spec = resolve_backbone(cfg.model)
            x = np.random.default_rng(0).uniform(0, 255, (args.batch, args.size, args.size, 3)).astype("float32")
            y = keras.utils.to_categorical(np.arange(args.batch) % 10, 10)
            rates = {}
            for unfreeze in ("none", "all"):
                apply_freezing(model, spec, unfreeze)
                model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="categorical_crossentropy",
                              jit_compile=False)
                for _ in range(2):
                    model.train_on_batch(x, y)
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    model.train_on_batch(x, y)
                    times.append(time.perf_counter() - start)
                rates[unfreeze] = args.batch / statistics.median(times)
            rows.append((name, precision, rates["none"], rates["all"]))
            print(f"  {name} {precision}: {rates['none']:.1f} / {rates['all']:.1f} img/s", file=sys.stderr)
    keras.mixed_precision.set_global_policy("float32")
    _header(args)
    print(f"Training step, batch {args.batch}, {args.size}x{args.size}, median of {args.repeats} steps\n")
    print("| backbone | precision | frozen backbone (img/s) | all layers train (img/s) |")
    print("| --- | --- | ---: | ---: |")
    for name, precision, frozen, full in rows:
        print(f"| {name} | {precision} | {frozen:.1f} | {full:.1f} |")


def _tfft_run(data: Path, name: str, overrides: dict, out: Path) -> tuple[float, float, int]:
    import tfft

    cfg = {"name": name, "data": {"source": str(data)}, "model": overrides.pop("model"),
           "training": {"verbose": "line"}}
    for section, values in overrides.items():
        cfg.setdefault(section, {}).update(values)
    start = time.perf_counter()
    result = tfft.train(cfg, run_dir=str(out / name))
    return time.perf_counter() - start, result.metrics["val"]["accuracy"], len(result.history)


def bench_cache(args: argparse.Namespace) -> None:
    out = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    rows = []
    for setting in ("off", "on"):
        seconds, accuracy, epochs = _tfft_run(args.data, f"cache-{setting}", {
            "model": {"backbone": args.backbone, "weights": args.weights},
            "data": {"image_size": [args.size, args.size]},
            "schedule": {"preset": "feature_extraction", "epochs": args.epochs},
            "augment": {"horizontal_flip": False},
            "performance": {"cache_features": setting},
            "training": {"deterministic": True},
        }, out)
        rows.append((setting, seconds, accuracy, epochs))
    _header(args)
    print(f"Frozen-backbone phase, {args.backbone} at {args.size}x{args.size}, {rows[0][3]} epochs, batch 32, "
          f"{args.data.name} (train + val every epoch), `tfft.train` end to end\n")
    print("| performance.cache_features | wall time (s) | speed-up | val accuracy |")
    print("| --- | ---: | ---: | ---: |")
    for setting, seconds, accuracy, _ in rows:
        print(f"| {setting} | {seconds:.0f} | {rows[0][1] / seconds:.1f}x | {accuracy:.4f} |")


def plain_keras_recipe(data: Path, size: int, epochs: int, weights) -> tuple[float, list[float], float]:
    """The transfer-learning recipe most Keras code still uses, verbatim in spirit."""
    import warnings

    import keras
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    preprocess = keras.applications.resnet50.preprocess_input
    train_gen = ImageDataGenerator(preprocessing_function=preprocess, **SEED_RECIPE)
    val_gen = ImageDataGenerator(preprocessing_function=preprocess)
    train = train_gen.flow_from_directory(str(data / "train"), target_size=(size, size), batch_size=32,
                                          class_mode="categorical", seed=1)
    val = val_gen.flow_from_directory(str(data / "val"), target_size=(size, size), batch_size=32,
                                      class_mode="categorical", shuffle=False)
    base = keras.applications.ResNet50(weights=weights, include_top=False, input_shape=(size, size, 3))
    base.trainable = False
    x = keras.layers.GlobalAveragePooling2D()(base.output)
    outputs = keras.layers.Dense(train.num_classes, activation="softmax")(x)
    model = keras.Model(base.input, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    class EpochTimes(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)

    timer = EpochTimes()
    model.fit(train, epochs=epochs, validation_data=val, callbacks=[timer], verbose=2)
    accuracy = model.evaluate(val, verbose=0)[1]
    return time.perf_counter() - start, timer.times, accuracy


def bench_recipe(args: argparse.Namespace) -> None:
    out = Path(tempfile.mkdtemp(prefix="bench-recipe-"))
    tfft_seconds, tfft_accuracy, epochs = _tfft_run(args.data, "tfft-default", {
        "model": {"backbone": "resnet50", "weights": args.weights},
        "data": {"image_size": [args.size, args.size]},
    }, out)
    plain_seconds, plain_epoch_times, plain_accuracy = plain_keras_recipe(args.data, args.size, epochs, args.weights)
    _header(args)
    print(f"{args.data.name}, ResNet50 at {args.size}x{args.size}, batch 32, {epochs} epochs each, "
          "end to end (tfft: including evaluation and all run-directory artifacts)\n")
    print("| recipe | wall time (s) | per epoch (s) | val accuracy |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| plain Keras (IDG seed augmentation, frozen ResNet50, GAP, Dense, fit) | {plain_seconds:.0f} | "
          f"{plain_seconds / epochs:.1f} (fit epochs alone: {statistics.mean(plain_epoch_times):.1f}) | "
          f"{plain_accuracy:.4f} |")
    print(f"| tfft defaults (two_phase 3 + 5 epochs, last block unfrozen, horizontal flip) | {tfft_seconds:.0f} | "
          f"{tfft_seconds / epochs:.1f} | {tfft_accuracy:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("section", choices=["steps", "cache", "recipe"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--weights", default=None, help="imagenet where it can be downloaded")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=10, help="cache: epochs of the frozen phase")
    parser.add_argument("--backbone", default="resnet50", help="cache: the backbone")
    parser.add_argument("--backbones", default="resnet50,vgg16,mobilenet_v2,efficientnet_b0")
    parser.add_argument("--precisions", default="float32", help="steps: e.g. float32,mixed_bfloat16")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    {"steps": bench_steps, "cache": bench_cache, "recipe": bench_recipe}[args.section](args)


if __name__ == "__main__":
    main()
