"""The `keras:` family: a user's own saved model as a backbone, `keras:path/to/model.keras[#layer]`.

The file is loaded in safe mode and cut at the named layer (default: the last 4-D output);
its blocks split the weighted layers into up to five equal contiguous groups `part1` ... `part5`.

Example:
>>> spec_for_keras_model("keras:my_model.keras#conv3").block_names  # doctest: +SKIP
['part1', 'part2', 'part3']
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from tfft.backbones.catalog import FAMILIES
from tfft.backbones.model_utils import load_saved_model, with_dtype_policy
from tfft.backbones.spec import BackboneSpec, Block, Family, load_weights_file, safe_model_name, weights_path
from tfft.errors import UserError, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    import keras

KERAS_PREFIX = "keras:"


@dataclass(frozen=True)
class KerasFileSpec(BackboneSpec):
    """A user's own saved model used as a backbone: `keras:path/to/model.keras[#layer_name]`.

    Built by `spec_for_keras_model`. Its blocks split the weighted layers of the cut model into
    up to five equal contiguous groups `part1` ... `part5`.
    """

    path: str = ""
    layer: str = ""
    input_shape: tuple[Optional[int], ...] = (None, None, 3)
    # The cut model `spec_for_keras_model` loaded, handed to the first `build()` so the file
    # is read once per run (a list so the frozen spec can give it away; not part of equality).
    _loaded: builtins.list[Any] = field(default_factory=builtins.list, compare=False, repr=False)

    @property
    def model_name(self) -> str:
        """The file's stem, made a valid Keras model / TF scope name (`my model.v2` -> `my_model.v2`)."""
        return safe_model_name(Path(self.path).stem)

    def _load_cut(self) -> "keras.Model":
        import keras

        if self._loaded:
            cut = self._loaded.pop()
            if not _in_distribution_scope():
                return cut
            # variables must be created inside the strategy's scope: read the file again there
        model = load_saved_model(self.path, "model.backbone", "the file loaded before: is it still in place?")
        return keras.Model(_single(model.inputs), model.get_layer(self.layer).output,
                           name=self.model_name)

    def build(
        self,
        input_shape: Optional[Sequence[Optional[int]]] = None,
        weights: Union[None, str, os.PathLike] = "imagenet",
    ) -> "keras.Model":
        """Load the saved model, cut at `layer`.

        Args:
            input_shape: `(height, width, 3)`; must agree with the saved model's input where
                that input has a fixed size.
            weights: `"imagenet"` (the config default) keeps the weights saved in the file;
                None re-initialises every layer; a path loads that weights file on top.

        Example:
        >>> spec = spec_for_keras_model("keras:my_model.keras#conv3")  # doctest: +SKIP
        >>> spec.build((64, 64, 3)).output.shape  # doctest: +SKIP
        (None, 16, 16, 64)
        """
        import keras

        if input_shape is not None:
            shape = self.check_size(input_shape)
            for want, have in zip(shape[:2], self.input_shape[:2]):
                if want is not None and have is not None and want != have:
                    raise UserError(
                        "data.image_size",
                        f"{self.path} takes {self.input_shape[0]}x{self.input_shape[1]} images, "
                        f"got {shape[0]}x{shape[1]}",
                        f"set data.image_size: {[self.input_shape[0], self.input_shape[1]]}",
                    )
        path = weights_path(weights)
        model = self._load_cut()
        if weights is None:
            model = keras.models.clone_model(model)  # fresh initialisation, same layer names
        model = _under_global_policy(model)
        if path is not None:
            load_weights_file(model, path, self.name)
        return model

    def _match_indices(self, layers: Sequence[Any]) -> list[Optional[int]]:
        weighted = [i for i, layer in enumerate(layers) if layer.weights]
        found: list[Optional[int]] = [None] * len(layers)
        parts = len(self.blocks)
        for rank, i in enumerate(weighted):
            found[i] = rank * parts // len(weighted)
        return found


def _single(inputs: Sequence[Any]) -> Any:
    return inputs[0] if len(inputs) == 1 else inputs


def _last_4d_layer(model: "keras.Model") -> Optional[str]:
    name = None
    for layer in model.layers:
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4:
            name = layer.name
    return name


def keras_model_file(path_spec: str) -> tuple[Path, str]:
    """The file and the layer name (or "") of `keras:PATH[#LAYER]`, checked to exist (no TensorFlow).

    Raises:
        UserError: `model.backbone` when the file is missing.

    Example:
    >>> keras_model_file("keras:/nonexistent.keras")
    Traceback (most recent call last):
    ...
    tfft.errors.UserError: model.backbone: saved model not found: /nonexistent.keras (hint: ...)
    """
    text = path_spec[len(KERAS_PREFIX):] if path_spec.startswith(KERAS_PREFIX) else path_spec
    path, _, layer = text.partition("#")
    file = Path(path).expanduser()
    if not path or not file.is_file():
        raise UserError("model.backbone", f"saved model not found: {path or '(empty path)'}",
                        "write keras:path/to/model.keras[#layer_name]; relative paths start "
                        f"in {os.getcwd()}")
    return file, layer


def spec_for_keras_model(path_spec: str) -> KerasFileSpec:
    """A backbone spec for a user's saved model: `keras:path/to/model.keras[#layer_name]`.

    The model is loaded with `keras.models.load_model(path, safe_mode=True, compile=False)` and
    cut at `layer_name` (that layer's output), by default at the last layer with a 4-D output
    (before any pooling or classifier). Its preprocessing is `none` (the model gets raw 0-255
    RGB), `min_size` is 32, and its blocks split the weighted layers of the cut model into up
    to five equal contiguous groups `part1` ... `part5`.

    Args:
        path_spec: `keras:PATH` or `keras:PATH#LAYER` (the `keras:` prefix is optional).

    Raises:
        UserError: `model.backbone` when the file is missing or unreadable, or the layer is
            unknown (with a "did you mean") or not 4-D.

    Example:
    >>> spec = spec_for_keras_model("keras:my_model.keras#conv3")  # doctest: +SKIP
    >>> spec.block_names  # doctest: +SKIP
    ['part1', 'part2', 'part3']
    """
    import keras

    file, layer = keras_model_file(path_spec)
    text = path_spec[len(KERAS_PREFIX):] if path_spec.startswith(KERAS_PREFIX) else path_spec
    path = text.partition("#")[0]
    model = load_saved_model(file, "model.backbone", "save it with model.save('model.keras') using built-in layers")
    layer_names = [lay.name for lay in model.layers]
    if not layer:
        layer = _last_4d_layer(model) or ""
        if not layer:
            raise UserError("model.backbone", f"{path} has no layer with a 4-D (image) output",
                            "a backbone must output a feature map (batch, height, width, channels)")
    elif layer not in layer_names:
        raise UserError("model.backbone", f"{path} has no layer {layer!r}",
                        did_you_mean(layer, layer_names)
                        or f"its layers: {', '.join(layer_names[:20])}"
                        + (" ..." if len(layer_names) > 20 else ""))
    output = model.get_layer(layer).output
    if len(output.shape) != 4:
        raise UserError("model.backbone", f"layer {layer!r} of {path} outputs shape "
                        f"{tuple(output.shape)}, not a 4-D feature map",
                        f"cut at a convolutional layer, e.g. #{_last_4d_layer(model)}")
    cut = keras.Model(_single(model.inputs), output, name=safe_model_name(file.stem))
    weighted = sum(1 for lay in cut.layers if lay.weights)
    parts = max(1, min(5, weighted))
    input_shape = tuple(cut.inputs[0].shape[1:])
    default = input_shape[0] if input_shape[0] is not None else 224
    spec = KerasFileSpec(
        name=KERAS_PREFIX + text, constructor="", module="", preprocess="none",
        default_size=int(default), min_size=32,
        blocks=tuple(Block(f"part{i + 1}", "") for i in range(parts)),
        parameters=int(cut.count_params()), path=str(file), layer=layer,
        input_shape=input_shape,
    )
    if not _in_distribution_scope():
        spec._loaded.append(cut)  # noqa: SLF001 (its own class)
    return spec


def _under_global_policy(model: "keras.Model") -> "keras.Model":
    """`model` with its float32 layers computing under the global dtype policy (mixed precision).

    A loaded file keeps the policy each layer was saved with (float32, usually), whatever the
    global one: under `performance.precision: mixed_float16` a `keras:` backbone would compute in
    float32 while the registry's backbones, built under the policy, compute in float16. Returns
    `model` itself when nothing changes; else a clone (same layer names) holding its weights.
    """
    import keras

    return with_dtype_policy(model, keras.config.dtype_policy().name, only="float32")


def _in_distribution_scope() -> bool:
    import tensorflow as tf

    return tf.distribute.has_strategy()



def _check(name: str, image_size: Sequence[int]) -> None:
    keras_model_file(name)


FAMILIES.register("keras", Family(prefix=KERAS_PREFIX, resolve=spec_for_keras_model, check=_check))

__all__ = ["KERAS_PREFIX", "KerasFileSpec", "keras_model_file", "spec_for_keras_model"]
