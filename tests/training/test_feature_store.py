"""The persistent feature store: exact keys, only missing images computed, bounded, shared by runs."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from tests.conftest import tiny_config
from tfft.training.feature_store import DiskFeatureStore, StoredFeatures, image_digests, model_digest


def _feature_model(size: int = 16, seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    image = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0)(image)
    x = keras.layers.Conv2D(4, 3)(x)
    return keras.Model(image, keras.layers.GlobalAveragePooling2D()(x))


class _Counting:
    def __init__(self, model):
        self.model, self.images = model, 0

    def __call__(self, images):
        self.images += len(images)
        return self.model(np.asarray(images), training=False)


def _images(n: int, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def test_second_view_reads_what_the_first_computed(tmp_path):
    model = _feature_model()
    store = DiskFeatureStore(tmp_path / "store", 2**30)
    first = StoredFeatures(store, model, _Counting(model))
    images = _images(6)
    expected = np.asarray(model(images))
    np.testing.assert_allclose(first(images[:4]), expected[:4], atol=1e-6)
    assert "0 of 4 images read" in first.flush()
    again = StoredFeatures(store, model, _Counting(model))
    got = again(images[2:6])  # two stored, two new
    np.testing.assert_allclose(got, expected[2:6], atol=1e-6)
    assert again.compute.images == 2 and again.flush().endswith("2 computed")
    third = StoredFeatures(store, model, _Counting(model))
    third(images)
    assert third.compute.images == 0


def test_keys_change_with_pixels_weights_and_size():
    model = _feature_model()
    images = _images(2)
    changed = images.copy()
    changed[0, 0, 0, 0] += 1
    assert (image_digests(images)[1] == image_digests(changed)[1]).all()
    assert not (image_digests(images)[0] == image_digests(changed)[0]).all()
    key = model_digest(model)
    assert model_digest(_feature_model()) == key  # the same model built again: the same key
    other = _feature_model()
    other.layers[2].kernel.assign(other.layers[2].kernel + 1e-3)
    assert model_digest(other) != key
    assert model_digest(_feature_model(size=20)) != key
    assert model_digest(_feature_model(seed=1)) != key


def test_store_keeps_within_its_bound_dropping_least_recently_used(tmp_path):
    store = DiskFeatureStore(tmp_path, 10**9)
    keys = [image_digests(_images(50, seed=i)) for i in range(3)]
    for i, k in enumerate(keys):
        store.add(f"m{i}", k, np.ones((50, 256), np.float32))
        shard = next((tmp_path / f"m{i}").glob("*.npz"))
        os.utime(shard, (1000 + i, 1000 + i))
    assert len(store.load("m0")) == 50  # reading m0 makes it the most recently used
    one = next((tmp_path / "m0").glob("*.npz")).stat().st_size
    store.max_bytes = 2 * one + 10
    assert store.evict() > 0
    assert len(store.load("m1")) == 0 and len(store.load("m0")) == 50 and len(store.load("m2")) == 50
    assert store.size() <= store.max_bytes


@pytest.mark.slow
def test_a_second_run_reads_every_frozen_feature(tmp_path, capsys):
    from tfft.training.run import train

    cfg = tiny_config(name="stored", schedule={"preset": "feature_extraction", "epochs": 2, "lr": 1e-2},
                      performance={"feature_store": str(tmp_path / "store")},
                      training={"steps_per_epoch": None, "deterministic": True, "verbose": "quiet"},
                      evaluate={"splits": []})
    first = train(cfg, run_dir=str(tmp_path / "a"))
    out = capsys.readouterr().out
    assert "feature store: 0 of" in out
    second = train(cfg, run_dir=str(tmp_path / "b"))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("feature store:")]
    assert len(lines) == 2 and all(line.endswith(" 0 computed") for line in lines), lines
    rows = [list(csv.DictReader(open(r.run_dir / "history.csv"))) for r in (first, second)]
    assert [r["loss"] for r in rows[0]] == [r["loss"] for r in rows[1]]  # the same features, bit for bit


def test_a_pass_over_the_bound_is_kept_and_older_ones_go_first(tmp_path, caplog):
    import logging

    store = DiskFeatureStore(tmp_path, 10**9)
    keys = [image_digests(_images(40, seed=i)) for i in range(3)]
    features = [np.random.default_rng(i).normal(size=(40, 64)).astype(np.float32) for i in range(3)]
    store.add("m", keys[0], features[0])
    store.add("m", keys[1], features[1])
    shards = sorted((tmp_path / "m").glob("*.npz"), key=lambda p: p.stat().st_mtime_ns)
    os.utime(shards[0], (1000, 1000))
    os.utime(shards[1], (2000, 2000))
    one = shards[0].stat().st_size
    store.index("m").rows_at(store.index("m").find(keys[0][:1]))  # reading shard 0 makes it recent
    store.max_bytes = 2 * one + 10
    store.add("m", keys[2], features[2])  # over the bound: the least recently used (shard 1) goes
    index = store.index("m")
    assert (index.find(keys[1]) < 0).all() and (index.find(keys[0]) >= 0).all()
    np.testing.assert_array_equal(index.rows_at(index.find(keys[2][::-1])), features[2][::-1])
    store.max_bytes = one // 2  # one pass alone is larger than the bound: it stays, the rest goes
    with caplog.at_level(logging.WARNING, logger="tfft.training.feature_store"):
        store.add("m", keys[1], features[1])
    index = store.index("m")
    assert len(index.shards) == 1 and (index.find(keys[1]) >= 0).all() and len(index) == 40
    assert "alone is over the store's bound" in caplog.text


def test_a_view_reads_keys_at_open_and_rows_lazily(tmp_path):
    store = DiskFeatureStore(tmp_path, 10**9)
    for i in range(3):
        store.add("m", image_digests(_images(30, seed=i)), np.full((30, 8), i, np.float32))
    index = store.index("m")
    assert len(index) == 90 and index._features == {}  # nothing but keys read at open
    got = index.rows_at(index.find(image_digests(_images(30, seed=1))[[3, 1]]))
    assert got.tolist() == [[1.0] * 8] * 2
    assert len(index._features) == 1 and isinstance(next(iter(index._features.values())), np.memmap)
