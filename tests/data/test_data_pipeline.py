"""make_dataset / build: shapes, dtypes, stateless per-epoch order, resumability, augment seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfft.config import DataConfig
from tfft.data import load_splits

from tests.data.conftest import assert_as_tf_resizes, offset_steps

CFG = DataConfig(source="builtin:shapes", image_size=(32, 32), batch_size=8, builtin_per_class=5,
                 val_split=0.2)


@pytest.fixture(scope="module")
def splits():
    return load_splits(CFG, seed=5)


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_val_batches_shapes_dtypes_and_fixed_order(splits):
    from tfft.data import make_dataset

    ds = make_dataset(splits, "val", CFG, seed=5, training=False)
    batches = _batches(ds)
    n = len(splits.splits["val"])
    assert n == 8 and len(batches) == 1
    x, y = batches[0]
    assert x.shape == (8, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
    assert 0.0 <= x.min() and x.max() <= 255.0 and x.max() > 1.0
    np.testing.assert_array_equal(y, splits.splits["val"].labels)
    again = _batches(make_dataset(splits, "val", CFG, seed=99, training=False))
    np.testing.assert_array_equal(again[0][0], x)


def test_training_epochs_are_stateless_and_resumable(splits):
    from tfft.data import make_dataset, steps_per_epoch

    n = len(splits.splits["train"])  # 32
    steps = steps_per_epoch(splits, "train", 7)
    cfg = CFG.model_copy(update={"batch_size": 7})
    assert steps == math.ceil(n / 7) == 5
    full = _batches(make_dataset(splits, "train", cfg, seed=5, training=True, epochs=range(0, 3)))
    assert len(full) == 3 * steps
    assert [len(y) for _, y in full[:steps]] == [7, 7, 7, 7, 4]  # last partial batch kept, per epoch
    resumed = _batches(make_dataset(splits, "train", cfg, seed=5, training=True, epochs=range(2, 3)))
    for (xa, ya), (xb, yb) in zip(full[2 * steps:], resumed):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)
    labels = [np.concatenate([y for _, y in full[e * steps:(e + 1) * steps]]) for e in range(3)]
    for e in range(3):  # each epoch is a permutation of the whole split
        np.testing.assert_array_equal(np.sort(labels[e]), np.sort(splits.splits["train"].labels))
    assert not np.array_equal(labels[0], labels[1]) and not np.array_equal(labels[1], labels[2])
    other_seed = _batches(make_dataset(splits, "train", cfg, seed=6, training=True, epochs=range(0, 1)))
    assert not np.array_equal(np.concatenate([y for _, y in other_seed]), labels[0])


def test_augment_fn_gets_stateless_per_batch_seeds(splits):
    import tensorflow as tf

    from tfft.data import make_dataset

    def augment(images, labels, seed):
        # Encode the seed into the batch so the test can read it back.
        noise = tf.random.stateless_uniform(tf.shape(images), seed=seed, maxval=1.0)
        return images + noise, labels, seed

    cfg = CFG.model_copy(update={"batch_size": 16})
    ds = make_dataset(splits, "train", cfg, seed=5, training=True, epochs=range(1, 3), augment_fn=augment)
    seeds = [s.numpy().tolist() for _, _, s in ds]
    assert seeds == [[5, 100003], [5, 100004], [5, 200006], [5, 200007]]
    resumed = make_dataset(splits, "train", cfg, seed=5, training=True, epochs=range(2, 3), augment_fn=augment)
    a = [x.numpy() for x, _, _ in ds][2:]
    b = [x.numpy() for x, _, _ in resumed]
    for xa, xb in zip(a, b):
        np.testing.assert_array_equal(xa, xb)


@pytest.mark.parametrize("skip", [0, 2])
def test_on_decoded_step_equals_the_step_on_batches(splits, skip):
    from tfft.data import make_dataset

    on_decoded, batched = offset_steps(CFG.image_size)
    cfg = CFG.model_copy(update={"batch_size": 7})  # 32 training images: batches 7, 7, 7, 7, 4
    kwargs = dict(seed=5, training=True, epochs=range(1, 3), skip_batches=skip)
    a = _batches(make_dataset(splits, "train", cfg, augment_fn=batched, **kwargs))
    b = _batches(make_dataset(splits, "train", cfg, on_decoded=on_decoded, **kwargs))
    assert [len(y) for _, y in a] == [len(y) for _, y in b] == [7, 7, 7, 7, 4][skip:] + [7, 7, 7, 7, 4]
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)  # the same offset reached the same, identically resized image


def test_batches_resize_as_decode_resize_and_bound_their_memory(tmp_path):
    """Mixed sizes (up, down, one axis each way, the same) and a PNG too large to pass as decoded."""
    import tensorflow as tf
    from PIL import Image

    from tfft.data import decode, make_dataset

    rng = np.random.default_rng(0)
    sizes = {"up.png": (20, 30), "down.png": (60, 50), "mixed.png": (12, 200), "same.png": (32, 40),
             "large.png": (150, 130)}  # 150*130 pixels > 4 * 32*40: resized as it is decoded
    (tmp_path / "a").mkdir()
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / "a" / name)
    cfg = DataConfig(source=str(tmp_path), image_size=(32, 40), batch_size=3, val_split=0.0)
    splits = load_splits(cfg, seed=0)

    val = _batches(make_dataset(splits, "train", cfg, seed=0, training=False))  # the split's own order
    assert [x.shape for x, _ in val] == [(3, 32, 40, 3), (2, 32, 40, 3)]
    part = splits.splits["train"]
    by_tf = [decode.decode_path(tf.constant(path), tf.constant(route), (32, 40)).numpy()
             for path, route in zip(part.paths, part.routes)]
    assert_as_tf_resizes(np.concatenate([x for x, _ in val]), np.stack(by_tf))  # the large PNG included

    def layout(decoded, seed):  # per image: its height as passed, its batch's raw and resized widths
        n = tf.shape(decoded.shapes)[0]
        info = tf.stack([tf.cast(decoded.shapes[:, 0], tf.float32),
                         tf.fill([n], tf.cast(tf.shape(decoded.raw)[1], tf.float32)),
                         tf.fill([n], tf.cast(tf.shape(decoded.resized)[1], tf.float32))], 1)
        return tf.broadcast_to(info[:, None, None, :], [n, 32, 40, 3])

    epoch = make_dataset(splits, "train", cfg, seed=0, training=True, on_decoded=layout)
    info = np.concatenate([x[:, 0, 0] for x, _ in _batches(epoch)])
    assert sorted(info[:, 0].tolist()) == [0.0, 12.0, 20.0, 32.0, 60.0]  # large.png comes resized
    assert info[:, 1].max() <= 4 * 32 * 40 * 3  # no batch holds more raw values than its float32 output
    assert set(info[info[:, 0] == 0, 2].tolist()) == {32 * 40 * 3}


def test_folder_pipeline_with_odd_files(messy_folder):
    from tfft.data import make_dataset

    (messy_folder / "c").rmdir()
    cfg = DataConfig(source=str(messy_folder), image_size=(20, 24), batch_size=4, val_split=0.0)
    splits = load_splits(cfg, seed=0)
    batches = _batches(make_dataset(splits, "train", cfg, seed=0, training=True, epochs=range(0, 2)))
    assert sum(len(y) for _, y in batches) == 2 * 12
    assert all(x.shape[1:] == (20, 24, 3) for x, _ in batches)


def test_pets_mini_pipeline(pets_mini):
    from tfft.data import make_dataset

    cfg = DataConfig(source=str(pets_mini), image_size=(48, 48), batch_size=64, limit_per_class=40)
    splits = load_splits(cfg, seed=0)
    assert len(splits.splits["train"]) == 80 and len(splits.splits["val"]) == 80
    batches = _batches(make_dataset(splits, "val", cfg, seed=0, training=False))
    assert [len(y) for _, y in batches] == [64, 16]
    x = batches[0][0]
    assert x.shape == (64, 48, 48, 3) and 100 < x.mean() < 160


def test_build_public_api():
    import tfft.data
    from tfft.config import load_config

    cfg = load_config({"seed": 2, "data": {"source": "builtin:shapes", "image_size": [24, 24], "batch_size": 10,
                                          "builtin_per_class": 5}})
    x, y = next(iter(tfft.data.build(cfg, "val")))
    assert x.shape == (8, 24, 24, 3) and x.dtype.name == "float32" and y.dtype.name == "int32"
    e0 = np.concatenate([y.numpy() for _, y in tfft.data.build(cfg, "train", epoch=0)])
    e0b = np.concatenate([y.numpy() for _, y in tfft.data.build(cfg, "train", epoch=0)])
    e1 = np.concatenate([y.numpy() for _, y in tfft.data.build(cfg, "train", epoch=1)])
    assert len(e0) == 32 and np.array_equal(e0, e0b) and not np.array_equal(e0, e1)


def test_build_with_pipeline_augmentation():
    import tfft.data
    from tfft.config import load_config

    pytest.importorskip("tfft.augment")
    cfg = load_config({"seed": 2, "data": {"source": "builtin:shapes", "image_size": [24, 24], "batch_size": 8,
                                          "builtin_per_class": 3, "val_split": 0.0},
                       "augment": {"placement": "pipeline", "horizontal_flip": True, "rotation_range": 30}})
    plain_cfg = cfg.model_copy(update={"augment": cfg.augment.model_copy(update={"placement": "model"})})
    aug = [x.numpy() for x, _ in tfft.data.build(cfg, "train")]
    again = [x.numpy() for x, _ in tfft.data.build(cfg, "train")]
    plain = [x.numpy() for x, _ in tfft.data.build(plain_cfg, "train")]
    assert [a.shape for a in aug] == [p.shape for p in plain] == [(8, 24, 24, 3)] * 3
    assert all(np.array_equal(a, b) for a, b in zip(aug, again))  # stateless: same every time
    assert not all(np.allclose(a, p) for a, p in zip(aug, plain))
