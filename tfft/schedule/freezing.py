"""Exact freezing: a phase trains the variables its `unfreeze` names and nothing else.

`unfreeze` is `none`, `all`, `top:N` (the last N blocks of the backbone, as the backbone's
`BackboneSpec.blocks` define them) or `from:LAYER_NAME` (that backbone layer and every one after
it). The head always trains; the preprocessing layers never do. With `bn: frozen`,
BatchNormalization layers stay non-trainable, which in Keras 3 also keeps them in inference mode,
so their moving statistics do not drift.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras

from tfft.errors import UserError, did_you_mean

_BATCH_NORMS = (keras.layers.BatchNormalization,)


@dataclasses.dataclass
class FreezeReport:
    """What a phase trains: parameter counts and the backbone layers that train."""

    trainable_params: int
    non_trainable_params: int
    trainable_backbone_layers: list[str]


def selected_layers(backbone: keras.Model, spec: Any, unfreeze: str) -> set[str]:
    """Names of the backbone layers that `unfreeze` selects (before the BatchNorm rule)."""
    names = [layer.name for layer in backbone.layers]
    if unfreeze == "none":
        return set()
    if unfreeze == "all":
        return set(names)
    kind, _, arg = unfreeze.partition(":")
    if kind == "top":
        blocks = spec.block_of_layers(backbone)
        total = len(spec.blocks)
        count = int(arg)
        if count > total:
            raise UserError("schedule.phases.unfreeze",
                            f"top:{count} asks for more blocks than {spec.name} has ({total})",
                            f"use top:1..top:{total} or all")
        return {name for name, block in blocks.items() if block >= total - count}
    if arg not in names:
        hint = did_you_mean(arg, names) or "run `tfft models` or model.summary() for layer names"
        raise UserError("schedule.phases.unfreeze", f"from:{arg}: no layer named {arg!r} in the backbone", hint)
    return set(names[names.index(arg):])


def apply_freezing(model: keras.Model, spec: Any, unfreeze: str, bn: str = "frozen") -> FreezeReport:
    """Set `trainable` on every layer of a tfft classifier for one phase.

    Args:
        model: a model from `tfft.models.build_classifier`.
        spec: its `BackboneSpec`.
        unfreeze: `none | all | top:N | from:LAYER_NAME`.
        bn: `frozen` keeps BatchNormalization non-trainable (and in inference mode); `train`
            lets those in unfrozen blocks learn.

    Returns:
        A `FreezeReport` with parameter counts.

    Example:
    >>> from tfft.config import ModelConfig
    >>> from tfft.models.build import build_classifier, resolve_backbone
    >>> cfg = ModelConfig(backbone="vgg16", weights=None)
    >>> model = build_classifier(cfg, 2, (32, 32))
    >>> apply_freezing(model, resolve_backbone(cfg), "top:1").trainable_backbone_layers[0]
    'block5_conv1'
    """
    from tfft.models.build import get_backbone

    backbone = get_backbone(model)
    chosen = selected_layers(backbone, spec, unfreeze)
    backbone.trainable = True  # a container's flag gates its layers'; set each layer below
    trained = []
    for layer in backbone.layers:
        trainable = layer.name in chosen
        if isinstance(layer, _BATCH_NORMS) and bn == "frozen":
            trainable = False
        layer.trainable = trainable
        if trainable and layer.weights:
            trained.append(layer.name)
    for layer in model.layers:
        if layer is backbone:
            continue
        # Preprocessing (and standardization) layers never train; the head always does.
        layer.trainable = not _is_input_side(model, layer)
    trainable = sum(int(keras.ops.size(v)) for v in model.trainable_weights)
    non_trainable = sum(int(keras.ops.size(v)) for v in model.non_trainable_weights)
    return FreezeReport(trainable, non_trainable, trained)


def _is_input_side(model: keras.Model, layer: keras.layers.Layer) -> bool:
    """True for layers between the input and the backbone (preprocessing)."""
    names = [item.name for item in model.layers]
    from tfft.models.build import BACKBONE_LAYER_NAME

    return names.index(layer.name) < names.index(BACKBONE_LAYER_NAME)
