"""A small finished run directory on pets-mini (64x64), trained once per session by `tfft.train`.

A real run (its config.yaml, labels.txt, history.csv, phases.json, data_report.json, metrics.json
are what `tfft train` writes), kept fast by a tiny two-convolution backbone given as a
`keras:` file, so that evaluate, predict and export are tested on what users have.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

IMAGE_SIZE = (64, 64)


def build_run_dir(root: Path, pets: Path) -> Path:
    """Train the tiny run into `root/run` (the backbone file beside it) and return its path."""
    import keras

    from tfft.training.run import train

    root.mkdir(parents=True, exist_ok=True)
    inputs = keras.Input((None, None, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu", name="conv2")(x)
    keras.Model(inputs, x, name="tiny").save(root / "tiny.keras")
    config = {
        "name": "fixture", "seed": 0,
        "data": {"source": str(pets), "image_size": list(IMAGE_SIZE), "batch_size": 32},
        "model": {"backbone": f"keras:{root / 'tiny.keras'}", "weights": None, "dropout": 0.0},
        "schedule": {"phases": [{"name": "head", "epochs": 1, "unfreeze": "none", "lr": 3e-3},
                                {"name": "finetune", "epochs": 3, "unfreeze": "all", "lr": 3e-3}]},
        "augment": {"horizontal_flip": False},
        "performance": {"cache_features": "off"},
        "training": {"save": "last", "verbose": "quiet"},
        "evaluate": {"splits": ["val"]},
    }
    return train(config, run_dir=str(root / "run")).run_dir


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, pets_mini) -> Path:
    """A finished run directory; tests that write into it use their own copy (`run_copy`)."""
    return build_run_dir(tmp_path_factory.mktemp("evaluate"), pets_mini)


@pytest.fixture
def run_copy(run_dir, tmp_path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


@pytest.fixture(scope="session")
def deployed(run_dir, tmp_path_factory) -> tuple[Path, str]:
    """`tfft export RUN --format all --out DEPLOY` of the tiny run, once per session: the folder
    (every installed format and quantization, export.json, README.md, labels.txt) and the CLI's output."""
    from click.testing import CliRunner

    from tfft.cli.main import cli

    folder = tmp_path_factory.mktemp("deploy") / "deploy"
    result = CliRunner().invoke(cli, ["export", str(run_dir), "--format", "all", "--out", str(folder)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return folder, result.output
