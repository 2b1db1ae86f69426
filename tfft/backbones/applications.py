"""The `keras.applications` family: one `BackboneSpec` row per image model, and its block tables.

Every image model constructor in `keras.applications` has one row here, named in snake_case
(`resnet50`, `efficientnet_v2_s`, `mobilenet_v3_small`, ...). `weights: imagenet` downloads
the weights once to the Keras cache (see `tfft.pretrained.weights` for the offline message).

Example:
>>> SPECS[0].name, SPECS[0].constructor
('resnet50', 'ResNet50')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

from tfft.backbones.catalog import FAMILIES
from tfft.backbones.spec import BackboneSpec, Block, Family, PreprocessMode

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


def efficientnet_blocks(stages: int) -> tuple[Block, ...]:
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


SPECS: tuple[BackboneSpec, ...] = (
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
    _spec("efficientnet_b0", "EfficientNetB0", "efficientnet", "none", 224, efficientnet_blocks(7), 4049571),
    _spec("efficientnet_b1", "EfficientNetB1", "efficientnet", "none", 240, efficientnet_blocks(7), 6575239),
    _spec("efficientnet_b2", "EfficientNetB2", "efficientnet", "none", 260, efficientnet_blocks(7), 7768569),
    _spec("efficientnet_b3", "EfficientNetB3", "efficientnet", "none", 300, efficientnet_blocks(7), 10783535),
    _spec("efficientnet_b4", "EfficientNetB4", "efficientnet", "none", 380, efficientnet_blocks(7), 17673823),
    _spec("efficientnet_b5", "EfficientNetB5", "efficientnet", "none", 456, efficientnet_blocks(7), 28513527),
    _spec("efficientnet_b6", "EfficientNetB6", "efficientnet", "none", 528, efficientnet_blocks(7), 40960143),
    _spec("efficientnet_b7", "EfficientNetB7", "efficientnet", "none", 600, efficientnet_blocks(7), 64097687),
    # EfficientNetV2 (preprocessing inside with include_preprocessing=True)
    _spec("efficientnet_v2_b0", "EfficientNetV2B0", "efficientnet_v2", "none", 224,
          efficientnet_blocks(6), 5919312, kwargs=_PREPROCESSING),
    _spec("efficientnet_v2_b1", "EfficientNetV2B1", "efficientnet_v2", "none", 240,
          efficientnet_blocks(6), 6931124, kwargs=_PREPROCESSING),
    _spec("efficientnet_v2_b2", "EfficientNetV2B2", "efficientnet_v2", "none", 260,
          efficientnet_blocks(6), 8769374, kwargs=_PREPROCESSING),
    _spec("efficientnet_v2_b3", "EfficientNetV2B3", "efficientnet_v2", "none", 300,
          efficientnet_blocks(6), 12930622, kwargs=_PREPROCESSING),
    _spec("efficientnet_v2_s", "EfficientNetV2S", "efficientnet_v2", "none", 384,
          efficientnet_blocks(6), 20331360, kwargs=_PREPROCESSING),
    _spec("efficientnet_v2_m", "EfficientNetV2M", "efficientnet_v2", "none", 480,
          efficientnet_blocks(7), 53150388, kwargs=_PREPROCESSING),
    _spec("efficientnet_v2_l", "EfficientNetV2L", "efficientnet_v2", "none", 480,
          efficientnet_blocks(7), 117746848, kwargs=_PREPROCESSING),
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

FAMILIES.register("applications", Family(rows=SPECS))
