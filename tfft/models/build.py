"""Build the classifier: raw 0-255 RGB in, preprocessing, backbone, head, probabilities out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from tfft import backbones
from tfft.config import ModelConfig
from tfft.models.preprocess import preprocessing_layers

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
    if model_cfg.backbone.startswith("keras:"):
        return backbones.spec_for_keras_model(model_cfg.backbone)
    return backbones.get(model_cfg.backbone)


def build_classifier(
    model_cfg: ModelConfig,
    num_classes: int,
    image_size: Sequence[int],
    extra_input_layers: Sequence[keras.layers.Layer] = (),
    spec: Any = None,
) -> keras.Model:
    """Build the functional classifier that tfft trains and saves.

    The model takes raw RGB images in 0..255 (float32, `image_size`), applies the backbone's own
    `preprocess_input` with built-in layers, runs the backbone (a nested model named
    `backbone`), pools (avg | max | flatten), applies dropout and optional hidden Dense layers,
    and ends in a float32 softmax. It holds only built-in Keras layers, so `model.keras` loads
    with plain `keras.models.load_model`.

    Args:
        model_cfg: the `model` section of the config.
        num_classes: the number of output classes (at least 2).
        image_size: `(height, width)` of the input.
        extra_input_layers: built-in layers applied to the raw input before the backbone's
            preprocessing (featurewise standardization from `augment`).
        spec: the `BackboneSpec` already resolved from `model_cfg` (a `keras:` file is then
            not read again); default: resolved here.

    Example:
    >>> from tfft.config import ModelConfig
    >>> model = build_classifier(ModelConfig(backbone="mobilenet_v3_small", weights=None), 3, (32, 32))
    >>> model.output_shape
    (None, 3)
    """
    spec = spec if spec is not None else resolve_backbone(model_cfg)
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
    # The output stays float32 under mixed precision so probabilities and the loss are exact.
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"tfft_{spec.model_name}")


def get_backbone(model: keras.Model) -> keras.Model:
    """The nested backbone model inside a tfft classifier."""
    return model.get_layer(BACKBONE_LAYER_NAME)
