"""`tfft.train` as a library call: several runs in one process, extra callbacks, logits."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_BACKBONE, checkpoint_weights, tiny_config
from tfft.training.process_state import op_determinism
from tfft.training.run import train


def _deterministic():
    return tiny_config(data={"builtin_per_class": 8}, evaluate={"splits": ["val"]}, model={"backbone": TINY_BACKBONE},
                       training={"deterministic": True, "steps_per_epoch": 2, "save": "last"})


def test_two_deterministic_runs_in_one_process_are_bitwise_equal(tmp_path):
    before = (op_determinism(), keras.mixed_precision.global_policy().name,
              list(warnings.filters), keras.utils.get_file)
    first = train(_deterministic(), run_dir=str(tmp_path / "a"))
    between = (op_determinism(), keras.mixed_precision.global_policy().name,
               list(warnings.filters), keras.utils.get_file)
    second = train(_deterministic(), run_dir=str(tmp_path / "b"))
    assert between == before  # what a run sets process-wide, it restores
    # Variable paths carry per-process counters (seed_generator_1, ...): compare in saved order.
    a, b = checkpoint_weights(first.run_dir), checkpoint_weights(second.run_dir)
    assert len(a) == len(b)
    for (path, x), y in zip(a.items(), b.values()):
        assert np.array_equal(x, y), path
    assert first.metrics["val"]["loss"] == second.metrics["val"]["loss"]


def test_the_decoded_cache_changes_no_weight_and_no_validation_metric(tmp_path):
    """Three epochs: the training and the validation split decoded once and read from the decoded
    cache after (the default), against every epoch decoding: the same weights, the same history."""
    def config(cache: str) -> dict:
        return tiny_config(data={"builtin_per_class": 8}, model={"backbone": TINY_BACKBONE},
                           schedule={"preset": "full", "epochs": 3}, performance={"decoded_cache": cache},
                           training={"deterministic": True, "steps_per_epoch": 2, "save": "last"})

    cached, plain = train(config("on"), run_dir=str(tmp_path / "a")), train(config("off"), run_dir=str(tmp_path / "b"))
    assert [row["val_loss"] for row in cached.history] == [row["val_loss"] for row in plain.history]
    assert len(cached.history) == 3 and cached.metrics["val"] == plain.metrics["val"]
    for x, y in zip(checkpoint_weights(cached.run_dir).values(), checkpoint_weights(plain.run_dir).values()):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("schedule, started, reread", [
    ({"preset": "full", "epochs": 1}, False, False),  # one pass over train: a store would only be filled
    ({"preset": "full", "epochs": 2}, True, False),  # one stream of two epochs: the second gathers
    ({"preset": "two_phase", "head_epochs": 1, "finetune_epochs": 1}, True, True),  # phase 2 reads phase 1's
])
def test_auto_starts_no_decoded_store_for_the_runs_last_single_pass(schedule, started, reread, tmp_path,
                                                                    monkeypatch):
    from tfft.data import decoded_cache

    opened, read = [], []
    real = decoded_cache.store_for

    def recording(split, *args, **kwargs):
        store = real(split, *args, **kwargs)
        if store is not None:
            (read if store.have.any() else opened).append(split.name)
        return store

    monkeypatch.setattr(decoded_cache, "store_for", recording)
    cfg = tiny_config(data={"builtin_per_class": 8}, schedule=schedule, performance={"cache_features": "off"},
                      training={"steps_per_epoch": None})
    train(cfg, run_dir=str(tmp_path / "run"))
    assert ("train" in opened, "train" in read) == (started, reread)
    assert "val" in opened  # read by every epoch's validation: kept whatever the run's length


class _Stop(Exception):
    pass


class _Pruner(keras.callbacks.Callback):
    """What a tuner's pruner does: read each epoch's val metrics, raise to stop the trial."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append((epoch, dict(logs or {})))
        raise _Stop(f"pruned at epoch {epoch}")


def test_callbacks_see_every_epoch_and_their_exception_propagates(tmp_path):
    pruner = _Pruner()
    policy = keras.mixed_precision.global_policy().name
    cfg = tiny_config(data={"builtin_per_class": 8}, training={"steps_per_epoch": 1},
                      schedule={"preset": "two_phase", "head_epochs": 1, "finetune_epochs": 1},
                      performance={"cache_features": "off"}, model={"backbone": TINY_BACKBONE})
    with pytest.raises(_Stop, match="pruned at epoch 0"):
        train(cfg, run_dir=str(tmp_path / "run"), callbacks=[pruner])
    assert [epoch for epoch, _ in pruner.seen] == [0]
    assert {"loss", "val_loss", "val_accuracy"} <= set(pruner.seen[0][1])
    assert keras.mixed_precision.global_policy().name == policy
    # The epoch was recorded before the callback ran: the run can be resumed from it.
    assert (tmp_path / "run" / "checkpoints" / "last.npz").is_file()


def test_saved_model_ends_in_logits_then_probabilities(tmp_path):
    from tfft.config import ModelConfig
    from tfft.models.build import build_classifier, logits_model

    built = build_classifier(ModelConfig(backbone="mobilenet_v3_small", weights=None), 3, (32, 32))
    built.save(tmp_path / "model.keras")
    model = keras.models.load_model(tmp_path / "model.keras", compile=False)
    assert model.layers[-1].name == "probabilities" and model.layers[-2].name == "logits"
    assert model.get_layer("logits").get_config()["activation"] == "linear"
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    logits = logits_model(model).predict_on_batch(images)
    np.testing.assert_allclose(model.predict_on_batch(images), tf.nn.softmax(logits).numpy(), atol=1e-6)
