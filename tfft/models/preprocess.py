"""In-model preprocessing: raw 0-255 RGB in, what the backbone's weights expect out.

`preprocessing_layers(spec)` returns built-in Keras layers only, so a saved model loads with
plain `keras.models.load_model` in a Python that never imports tfft. They reproduce
`keras.applications.<module>.preprocess_input` for each mode:

| mode | what `preprocess_input` does | layers |
| --- | --- | --- |
| `tf` | `x / 127.5 - 1` | `Rescaling(1/127.5, offset=-1)` |
| `torch` | `x / 255`, then `(x - mean) / std` per channel | `Rescaling` with per-channel scale and offset |
| `caffe` | RGB -> BGR, then minus the ImageNet mean (BGR) | a frozen `Dense(3)`: a permutation kernel, bias = -mean |
| `none` | nothing (the backbone rescales inside) | none |

The layers are non-trainable and compute in float32 whatever the global dtype policy (under
`mixed_float16`, a value such as 255 - 123.68 would otherwise lose its second decimal).
"""

from __future__ import annotations

from typing import Any, Union

import keras
import numpy as np

from tfft.errors import UserError

#: ImageNet channel statistics as `keras.applications.imagenet_utils` uses them.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

MODES = ("caffe", "tf", "torch", "none")
LAYER_NAME = "preprocess"


def _mode_of(spec: Union[str, Any]) -> str:
    mode = spec if isinstance(spec, str) else getattr(spec, "preprocess", None)
    if mode not in MODES:
        raise UserError("model.backbone", f"unknown preprocessing mode {mode!r}",
                        f"expected one of {', '.join(MODES)}")
    return mode


def preprocessing_layers(spec: Union[str, Any], name: str = LAYER_NAME) -> list[keras.layers.Layer]:
    """Built-in, non-trainable Keras layers that turn raw 0-255 RGB into the backbone's input.

    Args:
        spec: a `tfft.backbones.BackboneSpec` (its `preprocess` is used) or a mode string:
            `caffe`, `tf`, `torch` or `none`.
        name: the name of the (single) layer; unique within one model.

    Returns:
        A list of layers to apply in order: one layer, or none for mode `none`.

    Example:
    >>> import numpy as np
    >>> (layer,) = preprocessing_layers("tf")
    >>> np.asarray(layer(np.array([[0.0, 127.5, 255.0]], "float32"))).round(3).tolist()
    [[-1.0, 0.0, 1.0]]
    """
    mode = _mode_of(spec)
    if mode == "none":
        return []
    if mode == "tf":
        layer = keras.layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name=name, dtype="float32")
    elif mode == "torch":
        mean = np.asarray(IMAGENET_MEAN_RGB, dtype="float64")
        std = np.asarray(IMAGENET_STD_RGB, dtype="float64")
        layer = keras.layers.Rescaling(
            scale=[float(v) for v in 1.0 / (255.0 * std)],
            offset=[float(v) for v in -mean / std],
            name=name,
            dtype="float32",
        )
    else:  # caffe: out[..., j] = x[..., 2 - j] - mean_bgr[j]; a 0/1 matmul is exact in float32.
        kernel = np.zeros((3, 3), dtype="float32")
        for j in range(3):
            kernel[2 - j, j] = 1.0
        bias = -np.asarray(CAFFE_MEAN_BGR, dtype="float32")
        layer = keras.layers.Dense(3, name=name, dtype="float32")
        layer.build((None, 3))
        layer.set_weights([kernel, bias])
    layer.trainable = False
    return [layer]


def apply_preprocessing(x: Any, spec: Union[str, Any], name: str = LAYER_NAME) -> Any:
    """Apply `preprocessing_layers(spec)` to a tensor (symbolic or eager) and return the result.

    Example:
    >>> inputs = keras.Input((32, 32, 3))
    >>> apply_preprocessing(inputs, "caffe").shape
    (None, 32, 32, 3)
    """
    for layer in preprocessing_layers(spec, name=name):
        x = layer(x)
    return x
