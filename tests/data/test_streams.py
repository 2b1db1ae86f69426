"""Every stream tfft hands to Keras or reads itself runs with `tfft.data.streams.options()`: the
autotuner off (under TF 2.21 deleting an autotuned iterator can wait for the autotuner's next
round, seconds to a minute), ordered."""

from __future__ import annotations

import numpy as np
import pytest

from tfft.config import DataConfig

CFG = DataConfig(source="builtin:shapes", image_size=(16, 16), batch_size=4, builtin_per_class=4)
KINDS = ["training", "evaluation", "files (evaluate, predict)"]


@pytest.fixture(scope="module")
def streams(tmp_path_factory) -> dict:
    """One stream of each kind tfft builds: make_dataset's training and evaluation, decoded_files."""
    from PIL import Image

    from tfft.data import load_splits, make_dataset
    from tfft.data.files import decoded_files

    splits = load_splits(CFG, seed=1)
    path = tmp_path_factory.mktemp("streams") / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return {
        "training": make_dataset(splits, "train", CFG, seed=1, training=True, epochs=range(0, 2)),
        "evaluation": make_dataset(splits, "val", CFG, seed=1, training=False),
        "files (evaluate, predict)": decoded_files([str(path)], (16, 16)).batch(2),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_streams_run_without_the_autotuner_and_in_order(streams, kind):
    stream = streams[kind]
    assert stream.options().autotune.enabled is False
    assert stream.options().deterministic is True
    assert len(list(stream)) >= 1  # and it still reads
