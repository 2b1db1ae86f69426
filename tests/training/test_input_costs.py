"""The input pipeline's costs: said once when the data, not the model, is the slower side; quiet otherwise."""

from __future__ import annotations

import time

import numpy as np


def _dataset(delay_s: float, batches: int = 12):
    import tensorflow as tf

    def slow(i):
        time.sleep(delay_s)
        return np.float32(i)

    values = tf.data.Dataset.range(batches * 4).map(
        lambda i: tf.numpy_function(slow, [i], tf.float32, stateful=False))
    return values.map(lambda v: (tf.reshape(v, [1]), tf.reshape(v, [1]))).batch(4).repeat()


def _fit(dataset, step_delay_s: float, said: list):
    import keras

    from tfft.training.input_costs import report_for

    class Slow(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            time.sleep(step_delay_s)

    report = report_for(dataset, images=48, batch_size=4, batches_per_epoch=12, say=said.append)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(dataset, epochs=1, steps_per_epoch=8, verbose=0, callbacks=[Slow(), report])
    return report


def test_a_slow_pipeline_is_said_once_in_plain_words():
    said: list = []
    _fit(_dataset(0.02), 0.0, said)
    assert len(said) == 1 and said[0].startswith("input pipeline: the slower side")
    assert "an epoch of 48 images" in said[0] and "ms an image" in said[0]


def test_a_slow_model_keeps_it_quiet():
    said: list = []
    report = _fit(_dataset(0.0), 0.2, said)
    assert said == [] and report.step_s >= 0.2
