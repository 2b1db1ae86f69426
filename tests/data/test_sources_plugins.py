"""Data sources as plug-ins: a toy source registered from a test trains; a `ram://` folder trains."""

from __future__ import annotations

import numpy as np
import pytest

import tfft
from tests.conftest import tiny_config, write_image_folder
from tfft.config import DataConfig
from tfft.data.sources import SOURCES, DataSource, DataSplits, Split, load_splits, source_of
from tfft.errors import UserError


class ToySource(DataSource):
    """`toy:N`: N generated images, dark (class 0) or light (class 1); its own element decoder."""

    name = "toy"
    prefix = "toy:"
    has_files = False

    def load(self, data_cfg, seed, task="auto"):
        ids = np.arange(int(self.location))
        cut = len(ids) * 3 // 4
        labels = (ids % 2).astype(np.int32)
        splits = {"train": Split(name="train", kind="toy", ids=ids[:cut], labels=labels[:cut]),
                  "val": Split(name="val", kind="toy", ids=ids[cut:], labels=labels[cut:])}
        return DataSplits(class_names=["dark", "light"], splits=splits, source=self.spec, kind="toy")

    def keys(self, split):
        return [f"{self.spec}#{int(i)}" for i in split.ids]

    def element_decoder(self, split, image_size, fast_decode=True):
        import tensorflow as tf

        labels = tf.constant(split.labels)

        def decode(index):
            label = tf.gather(labels, index)
            return tf.fill([40, 40, 3], tf.cast(60 + 120 * label, tf.uint8)), label

        return decode, len(split), False


def test_a_registered_toy_source_trains_and_leaves_no_trace(tmp_path):
    with SOURCES.registered("toy", ToySource):
        assert source_of("toy:24").has_files is False
        result = tfft.train(tiny_config(data={"source": "toy:24"}, training={"verbose": "quiet"}),
                            run_dir=str(tmp_path / "toy"))
        assert result.metrics["val"]["accuracy"] >= 0.0 and (result.run_dir / "model.keras").is_file()
        assert tfft.evaluate(str(result.run_dir))["accuracy"] == result.metrics["val"]["accuracy"]
        exported = tfft.export(str(result.run_dir), format="savedmodel", out=str(tmp_path / "saved"))
        assert exported.parity_top1 == 100.0  # its check images came through the toy source
    assert "toy" not in SOURCES.names()
    with pytest.raises(UserError, match="unknown source scheme 'toy:'"):
        source_of("toy:24")


def test_a_ram_folder_trains_and_lists_as_the_local_one(tmp_path):
    import tensorflow as tf

    local = write_image_folder(tmp_path / "photos", {"red": 8, "blue": 8}, size=32, fmt="jpg")
    for file in sorted(local.rglob("*.jpg")):
        tf.io.gfile.makedirs(f"ram://photos/{file.parent.name}")
        tf.io.gfile.copy(str(file), f"ram://photos/{file.parent.name}/{file.name}", overwrite=True)
    config = tiny_config(data={"source": "ram://photos"}, training={"verbose": "quiet", "deterministic": True,
                                                                   "steps_per_epoch": None})
    remote = tfft.train(config, run_dir=str(tmp_path / "ram"))
    assert tfft.evaluate(str(remote.run_dir))["accuracy"] == remote.metrics["val"]["accuracy"]  # read by gfile
    listed = load_splits(DataConfig(source="ram://photos"), seed=1)  # the local folder's split, file by file
    mirror = load_splits(DataConfig(source=str(local)), seed=1)
    for name in ("train", "val"):
        assert [p.replace("ram://photos/", "") for p in listed[name].paths] == \
            [str(p)[len(str(local)) + 1:] for p in mirror[name].paths]
        assert np.array_equal(listed[name].sizes, mirror[name].sizes)
    assert source_of("ram://photos").name == "folder" and source_of("ram://nowhere").has_files
    with pytest.raises(UserError, match="folder not found"):
        tfft.train(tiny_config(data={"source": "ram://nowhere"}))
