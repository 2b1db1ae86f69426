"""Build the classifier: raw 0-255 RGB in, preprocessing, backbone, head, probabilities out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Optional

import keras

from tfft import backbones
from tfft.config import ModelConfig
from tfft.errors import UserError
from tfft.models.preprocess import preprocessing_layers
from tfft.task import LOGITS_LAYER, PROBABILITIES_LAYER, SingleLabel, Task

BACKBONE_LAYER_NAME = "backbone"


def resolve_backbone(model_cfg: ModelConfig) -> Any:
    """Return the `BackboneSpec` that `model.backbone` names (registry name or `keras:PATH`).

    Args:
        model_cfg: the `model` section of the config.

    Example:
    >>> from tfft.config import ModelConfig
    >>> resolve_backbone(ModelConfig(backbone="vgg16")).name
    'vgg16'
    """
    return backbones.get(model_cfg.backbone)


def build_classifier(
    model_cfg: ModelConfig,
    num_classes: int,
    image_size: Sequence[int],
    extra_input_layers: Sequence[keras.layers.Layer] = (),
    task: Optional[Task] = None,
    spec: Any = None,
) -> keras.Model:
    """Build the functional classifier that tfft trains and saves.

    The model takes raw RGB images in 0..255 (float32, `image_size`), applies the backbone's own
    `preprocess_input` with built-in layers, runs the backbone (a nested model named
    `backbone`), pools (avg | max | flatten), applies dropout and optional hidden Dense layers,
    and ends in a linear float32 Dense named `logits` followed by the task's activation as an
    `Activation` layer named `probabilities` (softmax for single-label), so `logits_model` gives
    the logits while the model itself outputs probabilities. It holds only built-in Keras layers,
    so `model.keras` loads with plain `keras.models.load_model`.

    Args:
        model_cfg: the `model` section of the config.
        num_classes: the number of output classes (at least 2).
        image_size: `(height, width)` of the input.
        extra_input_layers: built-in layers applied to the raw input before the backbone's
            preprocessing (featurewise standardization from `augment`).
        task: the `tfft.task.Task` (its activation ends the model); default single-label.
        spec: the resolved `BackboneSpec` (default: resolved from `model_cfg`).

    Example:
    >>> from tfft.config import ModelConfig
    >>> model = build_classifier(ModelConfig(backbone="mobilenet_v3_small", weights=None), 3, (32, 32))
    >>> model.output_shape
    (None, 3)
    """
    spec = spec if spec is not None else resolve_backbone(model_cfg)
    task = task if task is not None else SingleLabel()
    height, width = int(image_size[0]), int(image_size[1])
    backbone = spec.build((height, width, 3), weights=model_cfg.weights)
    backbone.name = BACKBONE_LAYER_NAME  # freezing finds it by this name
    if model_cfg.bn_momentum is not None:
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = model_cfg.bn_momentum

    inputs = keras.Input(shape=(height, width, 3), dtype="float32", name="image")
    x = inputs
    for layer in list(extra_input_layers) + list(preprocessing_layers(spec)):
        x = layer(x)
    x = backbone(x)
    if model_cfg.pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    elif model_cfg.pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
    else:
        x = keras.layers.Flatten(name="pool")(x)
    for i, units in enumerate(model_cfg.hidden_units):
        if model_cfg.dropout:
            x = keras.layers.Dropout(model_cfg.dropout, name=f"hidden{i + 1}_dropout")(x)
        x = keras.layers.Dense(units, activation="relu", name=f"hidden{i + 1}")(x)
    if model_cfg.dropout:
        x = keras.layers.Dropout(model_cfg.dropout, name="dropout")(x)
    # The head stays float32 under mixed precision so logits, probabilities and the loss are exact.
    logits = keras.layers.Dense(num_classes, activation=None, dtype="float32", name=LOGITS_LAYER)(x)
    outputs = keras.layers.Activation(task.activation, dtype="float32", name=PROBABILITIES_LAYER)(logits)
    # A `keras:path/to/file.keras` spec's name holds '/', which Keras refuses in a model name.
    return keras.Model(inputs, outputs, name="tfft_" + re.sub(r"[^A-Za-z0-9_.-]", "_", spec.name))


def logits_model(model: keras.Model) -> keras.Model:
    """The same model (shared layers and weights) ending at its `logits` layer.

    Example:
    >>> from tfft.config import ModelConfig
    >>> model = build_classifier(ModelConfig(backbone="mobilenet_v3_small", weights=None), 3, (32, 32))
    >>> logits_model(model).output_shape
    (None, 3)
    """
    return keras.Model(model.inputs, model.get_layer(LOGITS_LAYER).output, name=f"{model.name}_logits")


def backbone_spec_of(model: keras.Model) -> Any:
    """The registered `BackboneSpec` whose blocks describe a tfft classifier's nested backbone.

    Found from the backbone's layer names (the ones its blocks match), never from the model's
    name: the spec whose block patterns each match some layer and together match the most.
    Backbones of one family (resnet50 / resnet101) share their block patterns, so either is exact.

    Raises:
        UserError: no registered backbone's blocks describe these layers.

    Example:
    >>> from tfft.config import ModelConfig
    >>> model = build_classifier(ModelConfig(backbone="vgg16", weights=None), 2, (32, 32))
    >>> backbone_spec_of(keras.Model(model.inputs, model.outputs, name="mine")).blocks[0].name
    'block1'
    """
    names = [layer.name for layer in get_backbone(model).layers]
    best, best_count = None, 0
    for name in backbones.names():
        spec = backbones.get(name)
        patterns = [re.compile(block.pattern) for block in spec.blocks]
        hits = [sum(1 for n in names if rx.search(n)) for rx in patterns]
        if all(hits) and sum(hits) > best_count:
            best, best_count = spec, sum(hits)
    if best is None:
        raise UserError("backbone", f"no registered backbone's blocks match the layers of {model.name!r}",
                        "pass FreezingSchedule(..., backbone=NAME) with the config's model.backbone")
    return best


def get_backbone(model: keras.Model) -> keras.Model:
    """The nested backbone model inside a tfft classifier."""
    return model.get_layer(BACKBONE_LAYER_NAME)
