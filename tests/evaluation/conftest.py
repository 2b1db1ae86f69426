"""A small finished run directory on pets-mini (64x64), built once per session.

Until the trainer writes real runs, this builds one the way the contract describes: a tiny
functional model (raw 0-255 in, Rescaling inside, softmax out) fitted briefly with plain
`model.fit`, plus labels.txt, config.yaml, history.csv and phases.json.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

IMAGE_SIZE = (64, 64)


def _load_folder(root: Path, classes: list[str]):
    import tensorflow as tf

    from tfft.evaluation.rundir import decode_bytes

    images, labels = [], []
    for index, name in enumerate(classes):
        for path in sorted((root / name).glob("*.jpg")):
            images.append(decode_bytes(tf.io.read_file(str(path)), IMAGE_SIZE).numpy())
            labels.append(index)
    return np.stack(images), np.asarray(labels)


def build_run_dir(run_dir: Path, pets: Path) -> Path:
    import keras
    import tensorflow as tf

    from tfft.config import load_config

    classes = ["cat", "dog"]
    keras.utils.set_random_seed(0)
    x_train, y_train = _load_folder(pets / "train", classes)
    x_val, y_val = _load_folder(pets / "val", classes)
    inputs = keras.Input((*IMAGE_SIZE, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(classes), activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name="fixture")
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    fit = model.fit(x_train, y_train, batch_size=32, epochs=4, verbose=0,
                    validation_data=(x_val, y_val))
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "model.keras")
    (run_dir / "labels.txt").write_text("\n".join(classes) + "\n", encoding="utf-8")
    cfg = load_config({"name": "x", "data": {"source": str(pets), "image_size": list(IMAGE_SIZE),
                                             "batch_size": 16},
                       "model": {"backbone": "resnet50", "weights": None}})
    (run_dir / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    with open(run_dir / "history.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "phase", "loss", "val_loss", "lr", "accuracy", "val_accuracy"])
        for epoch in range(len(fit.history["loss"])):
            writer.writerow([epoch + 1, "head" if epoch < 2 else "finetune", fit.history["loss"][epoch],
                             fit.history["val_loss"][epoch], 3e-3 if epoch < 2 else 3e-4,
                             fit.history["accuracy"][epoch], fit.history["val_accuracy"][epoch]])
    phases = [{"name": "head", "epochs": 2, "unfreeze": "none", "lr": 3e-3,
               "trainable_params": int(model.count_params()), "non_trainable_params": 0},
              {"name": "finetune", "epochs": 2, "unfreeze": "all", "lr": 3e-4,
               "trainable_params": int(model.count_params()), "non_trainable_params": 0}]
    (run_dir / "phases.json").write_text(json.dumps(phases, indent=2), encoding="utf-8")
    (run_dir / "data_report.json").write_text(json.dumps(
        {"train": len(y_train), "val": len(y_val), "skipped": []}, indent=2), encoding="utf-8")
    return run_dir


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, pets_mini) -> Path:
    """A finished run directory; tests that write into it use their own copy (`run_copy`)."""
    return build_run_dir(tmp_path_factory.mktemp("evaluate") / "run", pets_mini)


@pytest.fixture
def run_copy(run_dir, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(run_dir, tmp_path / "run"))
