"""The freezing schedule as a Keras callback in a user's own fit."""

from __future__ import annotations

import keras
import numpy as np

import tfft
from tfft.schedule import FreezingSchedule


def test_callback_freezes_per_phase_in_plain_fit():
    cfg = {"model": {"backbone": "vgg16", "weights": None, "dropout": 0.0}, "data": {"image_size": [32, 32]}}
    model = tfft.build_model(cfg, num_classes=2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    schedule = FreezingSchedule(model, {"preset": "two_phase", "head_epochs": 1, "finetune_epochs": 1,
                                        "finetune_unfreeze": "top:1", "lr": 1e-3})
    backbone = model.get_layer("backbone")
    block5, block4 = backbone.get_layer("block5_conv1").kernel, backbone.get_layer("block4_conv1").kernel
    b5, b4 = block5.numpy().copy(), block4.numpy().copy()
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((np.array_equal(block5.numpy(), b5), float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))))

    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    history = model.fit(x, np.array([0, 1] * 4), batch_size=4, epochs=schedule.total_epochs,
                        callbacks=[schedule, Probe()], verbose=0)
    assert schedule.total_epochs == 2 and len(history.history["loss"]) == 2
    assert seen[0][0] is True          # head phase: block5 frozen
    assert seen[1][0] is False         # finetune: block5 moved
    assert seen[1][1] == np.float32(1e-4)
    assert np.array_equal(block4.numpy(), b4)  # never unfrozen
    assert "accuracy" in history.history


def test_callback_finds_the_backbone_from_its_layers_and_keeps_the_users_compile_settings():
    """Whatever the model is called, and with only Keras' public compile config."""
    cfg = {"model": {"backbone": "vgg16", "weights": None, "dropout": 0.0}, "data": {"image_size": [32, 32]}}
    built = tfft.build_model(cfg, num_classes=2)
    model = keras.Model(built.inputs, built.outputs, name="my_classifier")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")])
    schedule = FreezingSchedule(model, {"preset": "two_phase", "head_epochs": 1, "finetune_epochs": 1, "bn": "auto"},
                                pretrained=False)
    assert schedule.spec.name == "vgg16" and schedule.bn == "train"
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    history = model.fit(x, np.array([0, 1] * 2), batch_size=4, epochs=schedule.total_epochs,
                        callbacks=[schedule], verbose=0)
    assert "acc" in history.history and len(history.history["loss"]) == 2
    assert model.loss == "sparse_categorical_crossentropy"
