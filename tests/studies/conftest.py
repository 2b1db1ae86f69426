"""Fixtures of the study tests: a tiny `keras:` backbone and a head-only config that trains in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import tiny_config


def _save_tiny_backbone(path: Path) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255, name="scale")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="stem_conv")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="top_conv")(x)
    keras.Model(inputs, x, name="tiny").save(str(path))
    keras.backend.clear_session()
    return path


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """A two-conv `.keras` backbone: fixed weights (so trials can share its features), instant to build."""
    return _save_tiny_backbone(tmp_path_factory.mktemp("backbone") / "tiny.keras")


def head_config(backbone: Path, **sections) -> dict:
    """A head-only config on builtin:shapes with the tiny backbone: one short phase, val only."""
    config = tiny_config(
        name="tune",
        data={"builtin_per_class": 8, "batch_size": 16},
        model={"backbone": f"keras:{backbone}", "weights": "imagenet"},
        schedule={"preset": "feature_extraction", "epochs": 1},
        training={"steps_per_epoch": None},
        evaluate={"splits": ["val"]},
    )
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config
