"""Every private Keras / TensorFlow (and Python) name tfft touches, in one place.

Each function below reaches one name that Keras or TensorFlow does not export; the rest of tfft
calls these functions, never the private names. `missing()` lists the names this installation
lacks, and tests/test_compat.py fails on any of them, naming it and the versions, so that an
upgrade that removes one is found by the suite, not by a user.

A leaf: no tfft imports; Keras and TensorFlow are imported inside the functions.

Example:
>>> [where for where, _ in PRIVATE_NAMES][:2]
['tensorflow.python.framework.config', 'tensorflow.python.framework.config']
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# (module or object, attribute) of every private name below; `missing()` checks them all.
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    ("tensorflow.python.framework.config", "disable_op_determinism"),  # TF exports only the switch-on
    ("tensorflow.python.framework.config", "is_op_determinism_enabled"),
    ("keras.src.utils.file_utils", "get_file"),  # the downloader keras.utils.get_file re-exports
    ("keras.src.backend.config", "keras_home"),
    ("warnings", "_filters_mutated"),  # what warnings.filterwarnings itself calls after a change
    ("keras.Model", "_flatten_layers"),
    ("keras.Model", "_symbolic_build"),
    ("keras.Model()", "_distribute_strategy"),  # `X()`: an attribute of instances, not of the class
    ("keras.Model()", "_compile_metrics"),
    ("keras.Model()", "_compile_loss"),
    ("keras.Layer()", "_inbound_nodes"),
    ("keras.Layer()", "_outbound_nodes"),
    ("keras.Optimizer()", "_trainable_variables"),
    ("keras.Functional()", "_run_through_graph"),  # a KerasHub CNN preset re-run on a new input
    ("keras.KerasTensor()", "_keras_history"),  # the layer that made a tensor (a preset's pyramid)
    ("keras.Layer()", "_kernel"),  # LoRA: the Dense/EinsumDense kernel without its adapters
    ("keras.Layer()", "_tracker"),
    ("keras.Layer()", "_trainable_variables"),
    ("keras.Layer()", "_non_trainable_variables"),
)


def tf_framework_config() -> Any:
    """`tensorflow.python.framework.config`: op determinism's switch-off and its query."""
    from tensorflow.python.framework import config

    return config


def set_op_determinism(enabled: bool) -> None:
    """Turn TensorFlow's op determinism on or off (`tf.config.experimental` has no switch-off)."""
    config = tf_framework_config()
    if enabled:
        config.enable_op_determinism()
    else:
        config.disable_op_determinism()


def op_determinism() -> bool:
    """Whether TensorFlow's op determinism is on."""
    return bool(tf_framework_config().is_op_determinism_enabled())


def keras_file_utils() -> Any:
    """`keras.src.utils.file_utils`, whose `get_file` the Keras applications call for weights."""
    from keras.src.utils import file_utils

    return file_utils


def keras_home() -> str:
    """Keras' cache root (`KERAS_HOME`, read once at Keras' import), else `~/.keras`."""
    try:
        from keras.src.backend import config

        return str(config.keras_home())
    except (ImportError, AttributeError):  # a Keras without the module: its documented default
        return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def warnings_changed() -> None:
    """Tell the `warnings` module its filter list was replaced in place (clears its cache)."""
    import warnings

    warnings._filters_mutated()  # noqa: SLF001


def flatten_layers(model: Any) -> list[Any]:
    """`model` and every layer nested in it, depth first."""
    return list(model._flatten_layers(include_self=True))  # noqa: SLF001


def set_distribute_strategy(model: Any, strategy: Any) -> None:
    """The strategy a model's train/predict functions run under (Keras sets it at creation)."""
    model._distribute_strategy = strategy  # noqa: SLF001


def compiled_state_built(model: Any) -> bool:
    """Whether a compiled model's loss and metric state exist (Keras builds them in the first step)."""
    metrics, loss = getattr(model, "_compile_metrics", None), getattr(model, "_compile_loss", None)
    return metrics is not None and metrics.built and loss is not None and loss.built


def symbolic_build(model: Any, batch: Any) -> None:
    """Build a compiled model's loss and metric state from a batch of `keras.KerasTensor`s."""
    model._symbolic_build(data_batch=batch)  # noqa: SLF001


def inbound_nodes(layer: Any) -> list[Any]:
    """A layer's call sites in the functional graphs it belongs to (no public accessor)."""
    return list(layer._inbound_nodes)  # noqa: SLF001


def outbound_nodes(layer: Any) -> list[Any]:
    """The nodes that consume a layer's outputs."""
    return list(layer._outbound_nodes)  # noqa: SLF001


def optimizer_variables_of(optimizer: Any) -> list[Any]:
    """The model variables a built optimizer updates, in the order of its slot lists."""
    return list(optimizer._trainable_variables)  # noqa: SLF001


def run_through_graph(model: Any, inputs: Any) -> Any:
    """A functional model's graph applied to `inputs` with its layers shared (no new model)."""
    return model._run_through_graph(inputs, operation_fn=lambda operation: operation)  # noqa: SLF001


def producing_layer(tensor: Any) -> Any:
    """The layer (operation) whose call produced a symbolic `keras.KerasTensor`."""
    return tensor._keras_history.operation  # noqa: SLF001


def own_variables(layer: Any) -> list[Any]:
    """A layer's own variables (trainable, then not), without those of its sublayers."""
    return list(layer._trainable_variables) + list(layer._non_trainable_variables)  # noqa: SLF001


def base_kernel(layer: Any) -> Any:
    """A LoRA-enabled Dense/EinsumDense layer's kernel variable, adapters not added."""
    return layer._kernel  # noqa: SLF001


def delete_variable_attributes(layer: Any, names: list[str]) -> None:
    """Delete `layer`'s attributes `names` (variables already untracked by `untrack_variables`)
    without `keras.layers.Layer.__delattr__`, which runs a full `gc.collect()` after each variable:
    a tiny ViT's 24 adapters took 20 s of a 55 s LoRA run in those collections. The deletion goes
    on to the backend layer's `__delattr__` (TensorFlow's tracking); the caller collects once."""
    import keras

    for name in names:
        super(keras.layers.Layer, layer).__delattr__(name)


def untrack_variables(layer: Any, variables: list[Any]) -> None:
    """Remove `variables` from `layer`'s tracked variables (Keras has no `disable_lora`)."""
    layer._tracker.unlock()  # noqa: SLF001
    try:
        for tracked in (layer._trainable_variables, layer._non_trainable_variables):  # noqa: SLF001
            tracked[:] = [v for v in tracked if not any(v is gone for gone in variables)]
    finally:
        layer._tracker.lock()  # noqa: SLF001


def _instance(where: str) -> Any:
    import keras
    import numpy as np

    if where == "keras.Functional()":
        inputs = keras.Input((2,))
        return keras.Model(inputs, keras.layers.Dense(1)(inputs))
    if where == "keras.KerasTensor()":
        return keras.layers.Dense(1)(keras.Input((2,)))
    if where == "keras.Layer()":
        inputs = keras.Input((2,))
        layer = keras.layers.Dense(1)
        layer(inputs)
        return layer
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    if where == "keras.Optimizer()":
        optimizer = keras.optimizers.SGD()
        optimizer.build(model.trainable_variables)
        return optimizer
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    model.train_on_batch(np.zeros((1, 2), "float32"), np.zeros((1, 1), "float32"))
    return model


def missing() -> list[str]:
    """The private names of `PRIVATE_NAMES` this installation lacks, each as `where.name`.

    Example:
    >>> missing()  # doctest: +SKIP
    []
    """
    import keras

    gone = []
    for where, name in PRIVATE_NAMES:
        try:
            if where.endswith("()"):
                holder = _instance(where)
            elif where.startswith("keras.") and where.count(".") == 1:  # keras.Model: a public class
                holder = getattr(keras, where.split(".", 1)[1])
            else:
                holder = importlib.import_module(where)
        except (ImportError, AttributeError):
            gone.append(f"{where}.{name}")
            continue
        if not hasattr(holder, name):
            gone.append(f"{where}.{name}")
    return gone
