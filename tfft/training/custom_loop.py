"""A `model.fit` replacement on tf.distribute for strategies Keras 3's `fit` cannot run.

Keras 3's `model.fit` fails under `MultiWorkerMirroredStrategy` (keras-team/keras#20585,
tensorflow/tensorflow#72388): its symbolic build takes a `PerReplica` batch from the distributed
iterator ("Attempt to convert a value (PerReplica ...) to a Tensor"), and once that is bypassed its
metric reduction fails ("Invalid reduction dimension 0 for input with 0 dimensions").

This loop keeps tf.distribute as the engine and Keras as the step: the batches come from
`strategy.experimental_distribute_dataset`, each replica runs the compiled model's own
`train_step`/`test_step` (the same loss, optimizer and metric objects `compile` set up) through
`strategy.run`, and the metrics are read back in cross-replica context (an all-reduce of their
sync-on-read variables), so every worker sees the same logs. The callbacks get the epoch hooks
with `loss`, `accuracy`, ..., `val_loss`, `val_accuracy`, as under `fit`.

`model.fit` stays the default for `none` and `mirrored`; this loop runs for `multi_worker`, or for
any strategy when the environment variable `TFFT_CUSTOM_LOOP=1` asks for it.

A training input given as `PerWorker` is made by each worker for itself
(`strategy.distribute_datasets_from_function`): a `tfrecord:` source then streams each worker's
own shard files (file-level sharding) instead of every worker making every batch.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

from tfft import compat
from tfft.data import streams

CUSTOM_LOOP_ENV = "TFFT_CUSTOM_LOOP"


def wanted(strategy: Any) -> bool:
    """True when this loop must (MultiWorkerMirroredStrategy) or is asked to replace `fit`."""
    if os.environ.get(CUSTOM_LOOP_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    return is_multi_worker(strategy)


def is_multi_worker(strategy: Any) -> bool:
    return "MultiWorker" in type(strategy).__name__ or "CollectiveAllReduce" in type(strategy).__name__


def _with_sample_weight(dataset: Any, class_weight: Optional[dict[int, float]]) -> Any:
    """Keras' `class_weight`, as fit applies it: a per-example weight from the one-hot label."""
    if not class_weight:
        return dataset
    import tensorflow as tf

    table = tf.constant([float(class_weight.get(i, 1.0)) for i in range(max(class_weight) + 1)], tf.float32)

    def add(x, y):
        return x, y, tf.gather(table, tf.argmax(y, axis=-1))

    return dataset.map(add, num_parallel_calls=streams.BATCH_PARALLEL, deterministic=True)


class PerWorker:
    """A training input each worker makes for itself: `make(input_context)` -> its dataset, in
    batches of the per-replica size (`tf.distribute.Strategy.distribute_datasets_from_function`).

    Example:
    >>> train = PerWorker(lambda ctx: asm.dataset("train", epochs, input_context=ctx))  # doctest: +SKIP
    """

    def __init__(self, make: Callable[[Any], Any]):
        self.make = make

    @property
    def element_spec(self) -> Any:
        """The spec of one worker's batches (a one-pipeline context makes them as a single worker would)."""
        import tensorflow as tf

        return self.make(tf.distribute.InputContext()).element_spec


def _distribute(strategy: Any, dataset: Any) -> Any:
    import tensorflow as tf

    if isinstance(dataset, PerWorker):
        return strategy.distribute_datasets_from_function(dataset.make)

    options = tf.data.Options()
    # The pipeline reads no files to shard by: every worker builds the same batches and keeps its part.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def build_compiled_state(model: Any, strategy: Any, dataset: Any) -> None:
    """Create the compiled loss/metric state from the dataset's spec (what fit's symbolic build does).

    Keras' `fit` builds it lazily inside the first step on the default strategy; a resumed epoch
    needs it earlier, to restore the epoch's metric totals before that step.
    """
    import keras

    if compat.compiled_state_built(model):
        return
    spec = dataset.element_spec  # a PerWorker's too

    def symbolic(s):
        return keras.KerasTensor(tuple(s.shape), s.dtype.name)

    batch = keras.tree.map_structure(symbolic, spec)
    with strategy.scope():
        compat.symbolic_build(model, batch)


def _logs(model: Any, prefix: str = "") -> dict[str, float]:
    results = model.get_metrics_result()
    return {f"{prefix}{k}": float(v) for k, v in results.items()}


def fit(model: Any, strategy: Any, dataset: Any, *, epochs: int, initial_epoch: int, steps_per_epoch: int,
        validation_data: Any = None, callbacks: Optional[list] = None, verbose: int = 1,
        class_weight: Optional[dict[int, float]] = None) -> dict[str, list[float]]:
    """Train `model` (compiled) over `dataset` as `model.fit(...)` with these arguments would.

    Args:
        model: the compiled `keras.Model`, built in `strategy.scope()`.
        strategy: the tf.distribute strategy the model's variables live in.
        dataset: batches of the GLOBAL batch size, `steps_per_epoch` of them per epoch, epochs
            `initial_epoch..epochs-1` back to back.
        validation_data: a finite dataset evaluated after every epoch (`val_` logs), or None.
        callbacks: Keras callbacks; they get the train/epoch hooks and `model.stop_training`.
        verbose: 0 silent, otherwise one line per epoch.
        class_weight: `{class_index: weight}` as in `fit`.

    Returns:
        The history: `{log name: [value per epoch]}`.
    """
    import keras
    import tensorflow as tf

    if isinstance(dataset, PerWorker):
        train: Any = PerWorker(lambda context: _with_sample_weight(dataset.make(context), class_weight))
    else:
        train = _with_sample_weight(dataset, class_weight)
    build_compiled_state(model, strategy, train)
    train_dist = _distribute(strategy, train)
    val_dist = _distribute(strategy, validation_data) if validation_data is not None else None

    @tf.function
    def train_step(batch):
        strategy.run(model.train_step, args=(batch,))

    @tf.function
    def test_step(batch):
        strategy.run(model.test_step, args=(batch,))

    callback_list = keras.callbacks.CallbackList(callbacks or [], add_history=False, add_progbar=False,
                                                 model=model, verbose=verbose, epochs=epochs,
                                                 steps=steps_per_epoch)
    history: dict[str, list[float]] = {}
    model.stop_training = False
    callback_list.on_train_begin()
    iterator = iter(train_dist)
    logs: dict[str, float] = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        exhausted = False
        for step in range(steps_per_epoch):
            try:
                batch = next(iterator)
            except StopIteration:
                exhausted = True
                break
            callback_list.on_train_batch_begin(step)
            train_step(batch)
            callback_list.on_train_batch_end(step)
        logs = _logs(model)
        if val_dist is not None:
            model.reset_metrics()
            for batch in val_dist:
                test_step(batch)
            logs.update(_logs(model, "val_"))
        callback_list.on_epoch_end(epoch, logs)
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in logs.items()), flush=True)
        if model.stop_training or exhausted:
            break
    callback_list.on_train_end(logs)
    return history
