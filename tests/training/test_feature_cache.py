"""The frozen-feature cache: when it is used, and that it trains the same head as the full model."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from tests.conftest import tiny_config
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
    assert out.splitlines()[0] == "feature cache: val"
    assert out.splitlines()[-1].startswith("feature cache: val: 10/10 images in ")
    assert cache.val[0].shape == (10, 3)


def _run(tmp_path, name, cache, augment=None, copies=0, schedule=None):
    from tfft.training.run import train

    cfg = tiny_config(
        name=name,
        data={"builtin_per_class": 8, "batch_size": 16},
        schedule=schedule or {"preset": "two_phase", "head_epochs": 2, "finetune_epochs": 1, "lr": 5e-3},
        model={"dropout": 0.2},
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


def test_cached_head_phase_trains_what_the_full_model_trains(tmp_path, capsys):
    """No augmentation: the same batches in the same order, so the same weights (to float rounding),
    and the next phase (which unfreezes the backbone) goes back to the full model."""
    cached, cached_rows = _run(tmp_path, "cached", "auto")
    out = capsys.readouterr().out
    assert "feature cache: on" in out and "feature cache: off (the backbone trains" in out
    plain, plain_rows = _run(tmp_path, "plain", "off")
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
