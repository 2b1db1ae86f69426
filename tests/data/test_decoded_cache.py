"""The decoded cache: bitwise the batches of the uncached pipeline (epochs, resume), within its budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tfft.config import AugmentConfig, DataConfig

SIZE = (32, 32)
CFG = DataConfig(source="", image_size=SIZE, batch_size=5, val_split=0.0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two classes of 7 tiny photos: JPEGs small, DCT-reducible (256x192: 1/4) and one PNG too large to
    batch as decoded (100x100 > 4x 32x32), so every route of the decode is cached."""
    from PIL import Image

    root = tmp_path_factory.mktemp("decoded")
    rng = np.random.default_rng(0)
    sizes = [(40, 30), (64, 48), (256, 192), (33, 47), (256, 192), (50, 50)]
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir()
        for i, (w, h) in enumerate(sizes):
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.jpg", quality=90)
        Image.fromarray(rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)).save(root / name / "big.png")
    return root


@pytest.fixture(scope="module")
def setup(folder):
    from tfft.augment import build_augmenter
    from tfft.data import load_splits

    cfg = CFG.model_copy(update={"source": str(folder)})
    splits = load_splits(cfg, seed=1)
    augmenter = build_augmenter(AugmentConfig(rotation_range=30, zoom_range=0.2, horizontal_flip=True), SIZE,
                                splits.num_classes)
    return cfg, splits, augmenter.pipeline_steps()


def _batches(setup, epochs, skip=0, policy=None):
    from tfft.data import make_dataset

    cfg, splits, (on_decoded, augment_fn) = setup
    ds = make_dataset(splits, "train", cfg, seed=7, training=True, epochs=epochs, skip_batches=skip,
                      augment_fn=augment_fn, on_decoded=on_decoded, decoded_cache=policy)
    return [(x.numpy(), y.numpy()) for x, y in ds]


def _assert_same(a, b):
    assert [len(y) for _, y in a] == [len(y) for _, y in b]
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa, xb)


@pytest.fixture(scope="module")
def plain(setup):
    """Three epochs of the uncached pipeline."""
    return _batches(setup, range(0, 3))


def test_cached_batches_are_bitwise_the_uncached_ones_and_resume(setup, plain):
    from tfft.data import decoded_cache

    policy = decoded_cache.DecodedCachePolicy("auto")
    decoded_cache.release()
    assert [len(y) for _, y in plain] == [5, 5, 4] * 3  # 14 images in batches of 5, per epoch
    _assert_same(plain, _batches(setup, range(0, 3), policy=policy))  # the first epoch fills the store
    store = decoded_cache.store_for(setup[1].splits["train"], SIZE, True, policy)
    assert store.complete and store.bytes_on_disk == 0
    assert (store.shapes[:, 0] == 0).sum() == 2  # the two PNGs are kept resized, as the pipeline batches them
    _assert_same(plain, _batches(setup, range(0, 3), policy=policy))  # every epoch gathered from the store
    decoded_cache.release()
    _assert_same(plain[4:], _batches(setup, range(1, 3), skip=1, policy=policy))  # resumed inside epoch 1
    decoded_cache.release()


def test_one_stream_per_phase_is_the_epochs_back_to_back(setup, plain):
    for epoch in (0, 2):
        _assert_same(plain[3 * epoch:3 * epoch + 3], _batches(setup, range(epoch, epoch + 1)))


def test_the_budget_spills_to_disk_or_turns_auto_off(setup, plain, tmp_path, capsys):
    from tfft.data import decoded_cache

    split = setup[1].splits["train"]
    need = decoded_cache.estimate_bytes(split, SIZE, True)
    assert need == 2 * 3 * (40 * 30 + 64 * 48 + 2 * 64 * 48 + 33 * 47 + 50 * 50) + 2 * 32 * 32 * 3 * 4  # PNGs: resized
    decoded_cache.release()
    tiny = decoded_cache.DecodedCachePolicy("auto", max_gb=need / 3 / 2**30, spill_dir=tmp_path / "spill")
    _assert_same(plain[:6], _batches(setup, range(0, 2), policy=tiny))
    assert "kept in memory, the rest" in capsys.readouterr().out
    store = decoded_cache.store_for(split, SIZE, True, tiny)
    assert store.complete and 0 < store.bytes_in_memory <= tiny.max_bytes and store.bytes_on_disk > 0
    assert list((tmp_path / "spill").iterdir()) == []  # the spill file is unlinked: nothing is left behind
    decoded_cache.release()
    said = []
    no_room = decoded_cache.DecodedCachePolicy("auto", max_gb=1e-9, spill_dir=tmp_path)
    n = 100_000  # PNGs of 8000x8000 at 4096x4096: 192 MB each as decoded, 19 TB in all
    full_disk = type("Split", (), {"kind": "files", "__len__": lambda self: n, "paths": np.array(["a"] * n),
                                   "ids": None, "sizes": np.full((n, 2), 8000), "formats": np.array(["PNG"] * n)})()
    assert decoded_cache.store_for(full_disk, (4096, 4096), True, no_room, say=said.append) is None
    assert said and said[0].startswith("decoded cache: off:")
    assert decoded_cache.store_for(full_disk, SIZE, True, decoded_cache.DecodedCachePolicy("off")) is None
    decoded_cache.release()


def test_config_keys_are_validated_at_the_edge():
    from tfft.config import load_config
    from tfft.errors import UserError

    cfg = load_config({"performance": {"decoded_cache": False, "decoded_cache_max_gb": 0.5}})
    assert cfg.performance.decoded_cache == "off" and cfg.performance.decoded_cache_max_gb == 0.5
    assert load_config({}).performance.decoded_cache == "auto"
    with pytest.raises(UserError, match="decoded_cache"):
        load_config({"performance": {"decoded_cache": "sometimes"}})
    with pytest.raises(UserError, match="decoded_cache_max_gb"):
        load_config({"performance": {"decoded_cache_max_gb": 0}})


def test_the_validation_split_is_cached_too_with_the_same_batches(folder, tmp_path):
    """Each epoch's validation pass reads the store its first pass filled: the same batches (so the
    same metrics), even with the files gone; it shares the training split's memory budget."""
    import shutil

    from tfft.data import decoded_cache, load_splits, make_dataset

    copy = tmp_path / "photos"
    shutil.copytree(folder, copy)
    cfg = CFG.model_copy(update={"source": str(copy), "val_split": 0.4})
    splits = load_splits(cfg, seed=1)
    assert len(splits.splits["val"]) >= 4

    def val(policy=None):
        return [(x.numpy(), y.numpy()) for x, y in make_dataset(splits, "val", cfg, seed=7, training=False,
                                                                 decoded_cache=policy)]

    plain = val()
    decoded_cache.release()
    policy = decoded_cache.DecodedCachePolicy("auto")
    train_store = decoded_cache.store_for(splits.splits["train"], SIZE, True, policy)
    _assert_same(plain, val(policy))  # the first pass decodes and fills
    store = decoded_cache.store_for(splits.splits["val"], SIZE, True, policy)
    assert store.complete and store is not train_store and store.budget is train_store.budget
    assert decoded_cache.store_for(splits.splits["train"], SIZE, True, policy) is train_store  # both kept
    shutil.rmtree(copy)  # later passes read no file
    _assert_same(plain, val(policy))
    decoded_cache.release()
    assert store.budget.left == policy.max_bytes  # released: the whole budget back
