"""Model utilities every part uses: load a `.keras` file safely, walk nested layers, change the
dtype policy of a built model.

Example:
>>> import keras
>>> [layer.name for layer in all_layers(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")]))]
['d']
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional, Union

from tfft.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import keras


def load_saved_model(path: Union[str, os.PathLike], where: str, hint: str) -> "keras.Model":
    """Load a user's `.keras` file the one way tfft does: `safe_mode=True`, `compile=False`.

    Any failure (a missing or corrupt file, a `Lambda` or custom layer that safe mode refuses)
    is the file's problem, so it is a `UserError` (exit 2, one line) naming `where`: the config key
    or path the file came from (`model.backbone`, `distill.teacher`, a run's model.keras).

    Args:
        path: the `.keras` file.
        where: what the message is about.
        hint: how to fix it.

    Returns:
        The loaded `keras.Model`.

    Raises:
        UserError: the file does not load in safe mode.

    Example:
    >>> load_saved_model("runs/a/model.keras", "distill.teacher", "re-run tfft train")  # doctest: +SKIP
    """
    import keras

    _import_packages_named_in(path)
    try:
        model = keras.models.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001 - any load failure is the file's problem
        raise UserError(where, f"cannot load {path} as a Keras model in safe mode "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})", hint) from None
    if needs_keras_hub(path):
        loadable_hub_configs(model)  # so that it saves again
    return model


def needs_keras_hub(path: Union[str, os.PathLike]) -> bool:
    """Whether a `.keras` file holds KerasHub layers (its config names the `keras_hub` package).

    Example:
    >>> needs_keras_hub("/nonexistent.keras")
    False
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return '"keras_hub' in archive.read("config.json").decode("utf-8", "replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return False


def _import_packages_named_in(path: Union[str, os.PathLike]) -> None:
    """Import keras_hub before loading a file that holds its layers (it registers them)."""
    if not needs_keras_hub(path):
        return
    import importlib.util

    if importlib.util.find_spec("keras_hub") is None:
        raise UserError(str(path), "this model holds KerasHub layers and keras-hub is not installed",
                        "pip install 'tfft[hub]' (or keras-hub)")
    import keras_hub  # noqa: F401 - registers KerasHub's layer classes for deserialization


def loadable_hub_configs(model: Any) -> None:
    """Make the saved config of each KerasHub layer in `model` (nested ones too) one its class accepts.

    KerasHub 0.32's ViT layers write keys their `__init__` refuses (`num_patches`,
    `num_positions`, `key_dim`), so a model holding them would not load. Each such instance's
    `get_config` drops the keys neither its class nor `keras.layers.Layer` takes (the layers
    rebuild them from the others). Applied where a preset is wrapped and where a saved model is
    loaded, so a loaded hub model saves again (`tfft ensemble`, `tfft prune`).

    Example:
    >>> import keras
    >>> loadable_hub_configs(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    """
    import inspect

    import keras

    base = set(inspect.signature(keras.layers.Layer.__init__).parameters)
    for layer in all_layers(model):
        if not type(layer).__module__.startswith("keras_hub"):
            continue
        allowed = base | set(inspect.signature(type(layer).__init__).parameters)
        real = layer.get_config

        def get_config(real: Any = real, allowed: set[str] = allowed) -> dict[str, Any]:
            return {key: value for key, value in real().items() if key in allowed}

        object.__setattr__(layer, "get_config", get_config)


def all_layers(model: Any) -> list[Any]:
    """Every layer of `model`, nested models' layers included (each after its container), in order.

    Example:
    >>> import keras
    >>> inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")], name="inner")
    >>> [layer.name for layer in all_layers(keras.Sequential([keras.Input((4,)), inner]))]
    ['inner', 'd']
    """
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(all_layers(layer))
    return out


def with_dtype_policy(model: "keras.Model", policy: str, only: Optional[str] = None) -> "keras.Model":
    """`model`, nested models included, with its layers computing under `policy` (weights kept).

    Args:
        model: a functional model.
        policy: a Keras dtype policy name (`float32`, `mixed_float16`, `mixed_bfloat16`).
        only: change only the layers now under this policy (None: every layer).

    Returns:
        `model` itself when no layer changes; else a clone with the same layer names and weights.

    Example:
    >>> import keras
    >>> inputs = keras.Input((8, 8, 3))
    >>> plain = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    >>> with_dtype_policy(plain, "mixed_bfloat16").layers[-1].dtype_policy.name
    'mixed_bfloat16'
    """
    import keras

    def changes(layer: Any) -> bool:
        if isinstance(layer, keras.layers.InputLayer) or hasattr(layer, "layers"):
            return False
        return layer.dtype_policy.name != policy and (only is None or layer.dtype_policy.name == only)

    if not any(changes(layer) for layer in all_layers(model)):
        return model

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if changes(layer):
            config["dtype"] = policy
        return layer.__class__.from_config(config)

    cloned = keras.models.clone_model(model, clone_function=clone, recursive=True)
    cloned.set_weights(model.get_weights())
    return cloned


__all__ = ["all_layers", "load_saved_model", "loadable_hub_configs", "needs_keras_hub", "with_dtype_policy"]
