"""The frozen-feature cache: when it is used, and that it trains the same head as the full model."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from tests.conftest import TINY_BACKBONE, tiny_config
from tfft.errors import UserError
from tfft.training.feature_cache import decide


@pytest.mark.parametrize("setting, copies, frozen, augmenting, size, use, passes", [
    ("auto", 0, True, False, 576, True, 1),
    ("on", 0, True, False, 576, True, 1),
    ("off", 0, True, False, 576, False, 0),
    ("auto", 0, False, False, 576, False, 0),  # the backbone trains: nothing to cache
    ("on", 3, False, True, 576, False, 0),
    ("auto", 0, True, True, 576, False, 0),  # augmentation without copies: fresh images each epoch
    ("auto", 3, True, True, 576, True, 3),
    ("auto", 0, True, False, 10**9, False, 0),  # too large for auto
    ("on", 0, True, False, 10**9, True, 1),
])
def test_decide(setting, copies, frozen, augmenting, size, use, passes):
    decision = decide(setting, copies, backbone_frozen=frozen, augmenting=augmenting, feature_size=size,
                      num_examples=100)
    assert (decision.use, decision.copies) == (use, passes), decision.reason


@pytest.mark.parametrize("setting, copies, outcomes, use, passes, flips", [
    ("auto", 0, 2, True, 2, True),    # the default recipe: horizontal flips only
    ("on", 0, 4, True, 4, True),      # horizontal and vertical
    ("auto", 3, 2, True, 3, False),   # cache_augmented_copies set: the user's K wins
    ("off", 0, 2, False, 0, False),
])
def test_decide_flips_only(setting, copies, outcomes, use, passes, flips):
    decision = decide(setting, copies, backbone_frozen=True, augmenting=True, feature_size=576,
                      num_examples=100, flip_outcomes=outcomes)
    assert (decision.use, decision.copies, decision.flips) == (use, passes, flips), decision.reason


def test_flip_outcomes_are_what_the_augmenter_does():
    """Each image the augmenter yields is one of the cached flip versions, each about half the time."""
    import tensorflow as tf

    from tfft.augment import build_augmenter
    from tfft.config import AugmentConfig

    augmenter = build_augmenter(AugmentConfig(horizontal_flip=True), (8, 8), 2)
    assert augmenter.flip_outcomes == [(False, False), (True, False)]
    assert build_augmenter(AugmentConfig(horizontal_flip=True, zoom_range=0.1), (8, 8), 2).flip_outcomes == []
    images = tf.random.uniform((64, 8, 8, 3), 0, 255, seed=1)
    out, _ = augmenter(images, tf.zeros([64], tf.int32), tf.constant([3, 4]))
    same = np.all(out.numpy() == images.numpy(), axis=(1, 2, 3))
    flipped = np.all(out.numpy() == tf.reverse(images, [2]).numpy(), axis=(1, 2, 3))
    assert np.all(same | flipped) and 16 < flipped.sum() < 48


def test_flip_cache_holds_each_version_and_mixes_them_per_epoch():
    import keras
    import tensorflow as tf

    from tfft.config import ModelConfig
    from tfft.models.build import build_classifier
    from tfft.training.feature_cache import FeatureCache, split_model

    model = build_classifier(ModelConfig(backbone="mobilenet", weights=None), 3, (32, 32))
    model.get_layer("backbone").trainable = False
    features, head = split_model(model)
    images = tf.random.uniform((20, 32, 32, 3), 0, 255, seed=2)
    labels = tf.one_hot(tf.range(20) % 3, 3)
    cache = FeatureCache(features, head, seed=7, batch_size=8)
    cache.fill_flips(tf.data.Dataset.from_tensor_slices((images, labels)).batch(8), 20,
                     [(False, False), (True, False)])
    plain, mirrored = (copy for copy, _ in cache.copies)
    np.testing.assert_allclose(plain, features.predict(images, verbose=0), atol=1e-5)
    np.testing.assert_allclose(mirrored, features.predict(tf.reverse(images, [2]), verbose=0), atol=1e-5)
    rows, row_labels = cache._epoch_rows(3)
    again, _ = cache._epoch_rows(3)
    np.testing.assert_array_equal(rows, again)  # a function of (seed, epoch): resumable
    from_mirror = [any(np.array_equal(r, m) for m in mirrored) for r in rows]
    assert 3 <= sum(from_mirror) <= 17
    assert sorted(np.argmax(row_labels, 1)) == sorted(np.argmax(labels.numpy(), 1))
    keras.backend.clear_session()


def test_default_flip_recipe_gets_the_cache(tmp_path, capsys):
    schedule = {"preset": "feature_extraction", "epochs": 3, "lr": 5e-3}
    _, rows = _run(tmp_path, "flips", "auto", {"horizontal_flip": True}, schedule=schedule)
    out = capsys.readouterr().out
    assert "feature cache: on: backbone features of every flip" in out and "2 versions" in out
    assert len(rows) == 3 and all(np.isfinite(float(r["loss"])) for r in rows)


def test_on_with_augmentation_needs_a_copy_count():
    with pytest.raises(UserError, match="cache_augmented_copies"):
        decide("on", 0, backbone_frozen=True, augmenting=True, feature_size=8, num_examples=10)


def test_cache_progress_in_a_log_file_is_plain_lines(capsys):
    """Off a terminal (a log file, CI) no ANSI escapes or carriage returns: plain lines, as verbose=2."""
    import keras
    import tensorflow as tf

    from tfft.training.feature_cache import FeatureCache

    inputs = keras.Input((4,))
    features = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    head_in = keras.Input((3,))
    head = keras.Model(head_in, keras.layers.Dense(2, activation="softmax")(head_in))
    cache = FeatureCache(features, head, seed=0, batch_size=4)
    data = tf.data.Dataset.from_tensor_slices((np.ones((10, 4), "float32"), np.eye(2)[[0, 1] * 5])).batch(4)
    cache.fill_val(data, 10)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\b" not in out
    assert out.splitlines()[0] == "computing backbone features once (10 val images)"
    assert out.splitlines()[-1].startswith("computing backbone features once (10 val images): 10/10 in ")
    assert cache.val[0].shape == (10, 3)


def _run(tmp_path, name, cache, augment=None, copies=0, schedule=None, backbone=TINY_BACKBONE):
    from tfft.training.run import train

    cfg = tiny_config(
        name=name,
        data={"builtin_per_class": 8, "batch_size": 16},
        schedule=schedule or {"preset": "two_phase", "head_epochs": 2, "finetune_epochs": 1, "lr": 5e-3},
        model={"backbone": backbone, "dropout": 0.2},
        augment=augment or {"horizontal_flip": False},
        performance={"cache_features": cache, "cache_augmented_copies": copies},
        training={"steps_per_epoch": None, "deterministic": True, "save": "last"},
        evaluate={"splits": []},  # the history and the weights are what these tests compare
    )
    result = train(cfg, run_dir=str(tmp_path / name))
    import keras

    model = keras.models.load_model(result.run_dir / "model.keras")
    rows = list(csv.DictReader(open(result.run_dir / "history.csv")))
    return model, rows


def _fixed_size_backbone(folder) -> str:
    """Five convolution + BatchNorm blocks for 32x32 images, saved as a `keras:` file: its blocks
    part1..part5 are the pairs, so `top:1` unfreezes conv5 and its BatchNorm. A fixed input size
    below the cut, as MobileNet has (the two-convolution backbone's is dynamic: no partial cut)."""
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for i in range(1, 6):
        x = keras.layers.Conv2D(8 * min(i, 3), 3, strides=1 + (i % 2), padding="same", name=f"conv{i}",
                                kernel_initializer=keras.initializers.GlorotUniform(seed=i))(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization(name=f"bn{i}")(x))
    keras.Model(inputs, x, name="fixed").save(folder / "fixed.keras")
    keras.backend.clear_session()
    return f"keras:{folder / 'fixed.keras'}"


def test_cached_phases_train_what_the_full_model_trains(tmp_path, capsys):
    """No augmentation: the same batches in the same order, so the same weights (to float rounding),
    in the head phase (pooled features cached) and in the fine-tuning phase that unfreezes the
    top block (the frozen bottom's activations cached, the top block and its BatchNorm train on them)."""
    backbone = _fixed_size_backbone(tmp_path)
    cached, cached_rows = _run(tmp_path, "cached", "auto", backbone=backbone)
    out = capsys.readouterr().out
    assert out.count("feature cache: on") == 2, out
    # one pass of the frozen bottom serves both phases: the head's features derive from it
    starts = [line for line in out.splitlines() if line.startswith("computing backbone features once (")]
    assert [line for line in starts if ":" not in line] == ["computing backbone features once (48 images)",
                                                            "computing backbone features once (16 val images)"]
    assert "reusing the backbone features of the previous phase" in out
    # The details (layer names) are in the run's log (and `tfft --verbose`), not on the console.
    log = (tmp_path / "cached" / "run.log").read_text()
    for detail in ("caching the pooled backbone features", "caching the frozen backbone's activations entering "
                   "conv5", "reusing the activations entering conv5 from the previous phase"):
        assert detail in log and detail not in out
    plain, plain_rows = _run(tmp_path, "plain", "off", backbone=backbone)
    assert [r["phase"] for r in cached_rows] == ["head"] * 2 + ["finetune"]
    for a, b in zip(cached_rows, plain_rows):
        for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-4), (a["epoch"], key)
    for a, b in zip(cached.weights, plain.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4, err_msg=a.path)


def test_augmented_copies_reproduce_the_first_epochs_then_repeat(tmp_path, capsys):
    augment = {"horizontal_flip": True, "rotation_range": 20}
    schedule = {"preset": "feature_extraction", "epochs": 3, "lr": 5e-3}
    _, cached = _run(tmp_path, "copies", "auto", augment, copies=2, schedule=schedule)
    assert "feature cache: on" in capsys.readouterr().out
    _, plain = _run(tmp_path, "fresh", "auto", augment, schedule=schedule)
    assert "feature cache: off (augmentation" in capsys.readouterr().out
    for a, b in zip(cached[:2], plain[:2]):  # copies 0 and 1 are epochs 1 and 2's own batches
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), abs=1e-4)
    assert float(cached[2]["loss"]) != pytest.approx(float(plain[2]["loss"]), abs=1e-6)  # epoch 3 reuses a copy


def test_a_cached_last_phase_is_evaluated_on_its_features_as_the_saved_model_scores(tmp_path, cli_runner, capsys):
    """The val metrics of a run whose last phase trained on cached features come from those
    features (the backbone is not run over val again) and equal what model.keras scores."""
    import json

    from tfft.training.run import train

    cfg = tiny_config(name="cached-eval", data={"builtin_per_class": 8, "batch_size": 16},
                      schedule={"preset": "feature_extraction", "epochs": 2, "bn": "frozen", "lr": 5e-3},
                      training={"steps_per_epoch": None}, evaluate={"splits": ["val"]})
    result = train(cfg, run_dir=str(tmp_path / "run"))
    assert "val: scored on the cached backbone features" in capsys.readouterr().out
    assert cli_runner("evaluate", result.run_dir, "--split", "val").exit_code == 0
    again = json.loads((result.run_dir / "eval" / "val" / "metrics.json").read_text())["val"]
    assert result.metrics["val"]["accuracy"] == again["accuracy"]
    assert result.metrics["val"]["loss"] == pytest.approx(again["loss"], abs=1e-5)


def test_a_fully_trained_backbone_has_no_cache_point_though_its_preprocessing_is_frozen():
    """`preset: full` freezes only what has nothing to train (Lite0's (x-127)/128 rescaling): caching
    'activations' entering the stem would store the pixels themselves (918 MiB for pets-mini at 224)."""
    from tfft.config import ModelConfig
    from tfft.models.build import build_classifier
    from tfft.training.feature_cache import cache_point

    model = build_classifier(ModelConfig(backbone="efficientnet_lite0", weights=None), 2, (32, 32))
    backbone = model.get_layer("backbone")
    backbone.trainable = True
    assert cache_point(model) is None
    for layer in backbone.layers[:backbone.layers.index(backbone.get_layer("stem_conv")) + 1]:
        layer.trainable = False  # the stem frozen too: now a real cut exists above it
    assert cache_point(model) is not None and cache_point(model).backbone_layer != "stem_conv"


@pytest.mark.slow
def test_a_shared_feature_store_never_serves_the_features_of_another_model_or_input(tmp_path, capsys):
    """`tfft tune`'s in-memory store: a trial that differs only in pooling or image size computes
    its own features (and so gets its own numbers); the same trial again reuses them. It once served
    the `avg` trial's features to the `max` one."""
    import keras

    from tfft.training.feature_cache import FeatureStore
    from tfft.training.run import train

    store = FeatureStore(max_entries=8)
    base = tiny_config(name="store", data={"builtin_per_class": 8},
                       schedule={"preset": "feature_extraction", "epochs": 1, "lr": 5e-3},
                       model={"backbone": TINY_BACKBONE, "weights": "imagenet"},
                       training={"verbose": "quiet"}, evaluate={"splits": ["val"]},
                       performance={"cache_features": "on", "feature_store": "off"})

    def trial(name, **sections):
        cfg = tiny_config(**{**base, **{k: {**base[k], **v} for k, v in sections.items()}})
        keras.backend.clear_session()
        result = train(cfg, run_dir=str(tmp_path / name), feature_store=store)
        reused = "reused the features an earlier run in this process computed" in capsys.readouterr().out
        return reused, result.metrics["val"]["loss"]

    reused, avg = trial("avg")
    assert not reused
    reused, top = trial("max", model={"pooling": "max"})
    assert not reused and top != pytest.approx(avg, abs=1e-6)
    reused, bigger = trial("size", data={"image_size": [40, 40]})
    assert not reused and bigger != pytest.approx(avg, abs=1e-6)
    reused, again = trial("avg-again")
    assert reused and again == pytest.approx(avg, abs=1e-6)
    assert (store.hits, store.misses) == (1, 3)


def test_the_feature_store_key_holds_the_settings_of_weightless_layers():
    """Two feature models with the same weights that differ in a preprocessing constant (a
    `Rescaling` scale, which holds no weight) never share a key."""
    import keras

    from tfft.training.feature_cache import FeatureStore

    def features(scale):
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Rescaling(scale)(inputs)
        x = keras.layers.Conv2D(2, 3, kernel_initializer=keras.initializers.Constant(0.1))(x)
        return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))

    store = FeatureStore()
    assert store.key(features(1 / 255), {}) == store.key(features(1 / 255), {})
    assert store.key(features(1 / 255), {}) != store.key(features(1 / 127.5), {})


def test_the_cache_holds_its_features_about_once():
    """Filling a flip cache and training epochs from it allocate little beyond the features: rows go
    into one array per flip, and batches are gathered by index (no shuffled or stacked copies)."""
    import tracemalloc

    import keras
    import tensorflow as tf

    from tfft.training.feature_cache import FeatureCache

    n, dim = 3000, 256
    inputs = keras.Input((2, 2, 3))
    features = keras.Model(inputs, keras.layers.Dense(dim)(keras.layers.Flatten()(inputs)))
    head_in = keras.Input((dim,))
    cache = FeatureCache(features, keras.Model(head_in, keras.layers.Dense(2)(head_in)), seed=3, batch_size=50)
    images = np.random.default_rng(0).uniform(0, 255, (n, 2, 2, 3)).astype(np.float32)
    labels = np.eye(2, dtype=np.float32)[np.arange(n) % 2]
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(500)
    stored = 2 * n * dim * 4
    tracemalloc.start()
    cache.fill_flips(data, n, [(False, False), (True, False)])
    filled = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    expected = cache._epoch_rows(2)  # all rows of epoch 2 at once: the batches must be these, in order
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    batches = list(cache._gather(*cache._epoch_plan(2), s, s + 50) for s in range(0, n, 50))
    gathered = tracemalloc.get_traced_memory()[1] - before - sum(f.nbytes + y.nbytes for f, y in batches)
    tracemalloc.stop()
    assert filled < 1.2 * stored, (filled, stored)
    assert gathered < 0.05 * stored, (gathered, stored)
    np.testing.assert_array_equal(np.concatenate([f for f, _ in batches]), expected[0])
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), expected[1])
    keras.backend.clear_session()
