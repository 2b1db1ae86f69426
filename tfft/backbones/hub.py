"""The `hub:` family: KerasHub presets as backbones, `model.backbone: hub:PRESET`.

PRESET is what `keras_hub.models.Backbone.from_preset` takes: a built-in name
(`vit_base_patch16_224_imagenet`), a handle (`kaggle://...`, `hf://...`) or a local folder
written by `save_to_preset`. Needs the `tfft[hub]` extra (keras-hub), imported only when a
`hub:` backbone is resolved or listed.

The preset's backbone becomes one flat functional model, as every tfft backbone is:

- raw 0-255 RGB in; the preset's image converter (`x * scale + offset`, per channel) as a
  built-in `Normalization` layer named `hub_preprocess` (a preset without a converter: `x / 255`);
- the preset's layers, shared (its weights are the pretrained weights; `weights: null` builds
  the same architecture with fresh weights). A ViT's encoder is unrolled so that each encoder
  layer (`transformer_block_1` ...) is a layer of the model: those are its blocks for `top:N`
  (`embed` is the patch and position embedding). A CNN preset's blocks are its stages, one per
  level of its feature pyramid (`P2` ... `P5`), each ending at that level's output layer;
- a 4-D output the classifier pools: a token sequence is cut to its class token, reshaped to
  `(1, 1, dim)` (`pooling: class_token`), or, for a ViT without a class token, to the grid of patch
  tokens, whose global average is the mean of the patch tokens (`mean_tokens`); a CNN's feature
  map is pooled as any (`average`).

The saved `model.keras` holds KerasHub layer classes for transformers (`ViTEncoderBlock`, ...):
it loads where `keras_hub` is installed and imported (`tfft.backbones.load_saved_model` imports
it when the file names it).

Offline: built-in names and `kaggle://` / `hf://` handles download once into KerasHub's cache
(kagglehub: `$KAGGLEHUB_CACHE`, default `~/.cache/kagglehub`; Hugging Face: `$HF_HUB_CACHE`,
default `~/.cache/huggingface/hub`). Where that fails, the error names the handle, the cache
and how to copy a preset to this machine as a folder (`hub:/path/to/folder`).

Example:
>>> preset_of("hub:kaggle://keras/vit/keras/vit_base_patch16_224_imagenet/4")
'kaggle://keras/vit/keras/vit_base_patch16_224_imagenet/4'
"""

from __future__ import annotations

import builtins
import importlib.util
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from tfft import compat
from tfft.backbones.catalog import FAMILIES
from tfft.backbones.model_utils import loadable_hub_configs
from tfft.backbones.spec import BackboneSpec, Block, Family, load_weights_file, safe_model_name, weights_path
from tfft.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import keras

HUB_PREFIX = "hub:"
EXTRA = "pip install 'tfft[hub]'"
PREPROCESS_LAYER = "hub_preprocess"
#: Backbone classes whose output is a token sequence (pooled by the class token).
TOKEN_BACKBONES = ("ViTBackbone", "DINOV2Backbone", "DINOV3Backbone", "DeiTBackbone")


def keras_hub_module() -> Any:
    """`import keras_hub`, or a `UserError` naming the `tfft[hub]` extra.

    Example:
    >>> keras_hub_module().__name__  # doctest: +SKIP
    'keras_hub'
    """
    if importlib.util.find_spec("keras_hub") is None:
        raise UserError("model.backbone", "hub: backbones need keras-hub, which is not installed",
                        f"{EXTRA}, or use a keras.applications backbone (`tfft models`)")
    import keras_hub

    return keras_hub


def preset_of(name: str) -> str:
    """The preset of `hub:PRESET` (a local folder is made absolute and `~` expanded).

    Example:
    >>> preset_of("hub:vit_base_patch16_224_imagenet")
    'vit_base_patch16_224_imagenet'
    """
    preset = name[len(HUB_PREFIX):] if name.startswith(HUB_PREFIX) else name
    if not preset:
        raise UserError("model.backbone", "hub: names no preset",
                        "write hub:PRESET with a KerasHub preset name, a kaggle:// or hf:// handle, "
                        "or the folder save_to_preset wrote")
    local = Path(preset).expanduser()
    return str(local.resolve()) if _looks_local(preset) else preset


def _looks_local(preset: str) -> bool:
    return "://" not in preset and (os.sep in preset or preset.startswith((".", "~")) or Path(preset).exists())


def cache_folders() -> dict[str, str]:
    """Where KerasHub's downloads go: kagglehub's and Hugging Face's cache folders.

    Example:
    >>> sorted(cache_folders())
    ['hf', 'kaggle']
    """
    home = Path("~").expanduser()
    kaggle = os.environ.get("KAGGLEHUB_CACHE") or str(home / ".cache" / "kagglehub")
    hf = os.environ.get("HF_HUB_CACHE") or (
        str(Path(os.environ["HF_HOME"]) / "hub") if os.environ.get("HF_HOME")
        else str(home / ".cache" / "huggingface" / "hub"))
    return {"kaggle": kaggle, "hf": hf}


def offline_error(preset: str, cause: BaseException) -> UserError:
    """The `model.backbone` error when a preset cannot be loaded (no internet, a bad handle).

    Example:
    >>> error = offline_error("vit_base_patch16_224_imagenet", OSError("no network"))
    >>> "save_to_preset" in error.hint and "KAGGLEHUB_CACHE" in error.hint
    True
    """
    reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    folders = cache_folders()
    if _looks_local(preset):
        return UserError("model.backbone", f"cannot load the KerasHub preset folder {preset} "
                         f"({type(cause).__name__}: {reason})",
                         "point hub: at a folder written by save_to_preset (config.json, "
                         "model.weights.h5)")
    local = re.sub(r"[^A-Za-z0-9_.-]", "_", preset.split("://")[-1])
    return UserError(
        "model.backbone",
        f"could not load the KerasHub preset {preset!r}: it is downloaded on first use and that "
        f"failed ({type(cause).__name__}: {reason})",
        f"KerasHub caches presets in {folders['kaggle']} (kagglehub; set KAGGLEHUB_CACHE) and "
        f"{folders['hf']} (hf://; set HF_HUB_CACHE); on a machine with internet run "
        f"python -c \"import keras_hub; keras_hub.models.Backbone.from_preset('{preset}')"
        f".save_to_preset('{local}'); keras_hub.layers.ImageConverter.from_preset('{preset}')"
        f".save_to_preset('{local}')\", copy the folder {local} here and set "
        f"model.backbone: hub:/path/to/{local} (or copy the whole cache folder and set "
        "KAGGLEHUB_CACHE to it)",
    )


def _read_config(preset: str) -> Optional[dict[str, Any]]:
    """A local preset's `config.json` (no TensorFlow), or None for a remote one."""
    if not _looks_local(preset):
        return None
    file = Path(preset) / "config.json"
    if not file.is_file():
        raise UserError("model.backbone", f"KerasHub preset folder not found: {preset} "
                        "(no config.json)", "write hub:PRESET with a folder save_to_preset wrote, "
                        "a KerasHub preset name or a kaggle:// / hf:// handle")
    return json.loads(file.read_text(encoding="utf-8"))


def check(name: str, image_size: Sequence[int]) -> None:
    """Preflight (no TensorFlow): the extra is installed, a local preset exists, and a transformer
    preset of a fixed size gets that size.

    Example:
    >>> check("hub:/nonexistent/preset", (32, 32))
    Traceback (most recent call last):
    ...
    tfft.errors.UserError: model.backbone: KerasHub preset folder not found: /nonexistent/preset (no config.json) (hint: ...)
    """
    preset = preset_of(name)
    config = _read_config(preset)
    if importlib.util.find_spec("keras_hub") is None:
        keras_hub_module()
    if config is None:
        return
    shape = (config.get("config") or {}).get("image_shape") or [None, None, 3]
    if config.get("class_name") in TOKEN_BACKBONES and shape[0] is not None:
        _check_fixed(name, tuple(image_size), (int(shape[0]), int(shape[1])))


def _check_fixed(name: str, got: Sequence[Optional[int]], fixed: tuple[int, int]) -> None:
    if tuple(got[:2]) != fixed:
        raise UserError("data.image_size", f"{name} takes {fixed[0]}x{fixed[1]} images (its "
                        f"position embeddings are that size), got {got[0]}x{got[1]}",
                        f"set data.image_size: {list(fixed)}")


@dataclass(frozen=True)
class HubSpec(BackboneSpec):
    """A KerasHub preset as a backbone (see the module docstring). Made by `spec_for_preset`."""

    preset: str = ""
    fixed_size: Optional[tuple[int, int]] = None
    # The wrapped preset `spec_for_preset` loaded, handed to the first `build()` with weights
    # (a list so the frozen spec can give it away; not part of equality).
    _loaded: builtins.list[Any] = field(default_factory=builtins.list, compare=False, repr=False)

    @property
    def model_name(self) -> str:
        return safe_model_name(Path(self.preset).name if _looks_local(self.preset) else self.preset)

    def check_size(self, input_shape: Sequence[Optional[int]]) -> tuple[Optional[int], ...]:
        shape = super().check_size(input_shape)
        if self.fixed_size is not None:
            _check_fixed(self.name, shape, self.fixed_size)
        return shape

    def build(
        self,
        input_shape: Optional[Sequence[Optional[int]]] = None,
        weights: Union[None, str, os.PathLike] = "imagenet",
    ) -> "keras.Model":
        """The wrapped preset: `weights: imagenet` (the default) keeps the preset's weights,
        None re-initialises, a path loads that weights file on top.

        Example:
        >>> spec_for_preset("hub:/tmp/tiny_vit").build((32, 32, 3)).output.shape  # doctest: +SKIP
        (None, 1, 1, 16)
        """
        import keras

        shape = self.check_size(input_shape or (self.default_size, self.default_size, 3))
        path = weights_path(weights)
        if self._loaded and weights is not None and self._loaded[0][0] == shape and \
                keras.config.dtype_policy().name == self._loaded[0][1]:
            model = self._loaded.pop()[2]
        else:
            self._loaded.clear()
            model = wrap(self.preset, shape, load_weights=weights is not None)[0]
        if path is not None:
            load_weights_file(model, path, self.name)
        return model


def _load_preset(preset: str, shape: Sequence[Optional[int]], load_weights: bool) -> Any:
    import keras

    keras_hub = keras_hub_module()
    kwargs: dict[str, Any] = {"dtype": keras.config.dtype_policy().name}
    try:
        cls = keras_hub.models.Backbone.from_preset  # the preset names its class
        backbone = cls(preset, load_weights=load_weights, **kwargs)
        if type(backbone).__name__ not in TOKEN_BACKBONES and tuple(shape[:2]) != (None, None):
            config = backbone.get_config()
            if tuple(config.get("image_shape", (None, None))[:2]) != tuple(shape[:2]):
                kwargs["image_shape"] = tuple(shape)  # a CNN takes any size: build it at this one
                backbone = cls(preset, load_weights=load_weights, **kwargs)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to get a preset is reported with the fix
        raise offline_error(preset, exc) from None
    return backbone


def _converter(preset: str) -> tuple[list[float], list[float]]:
    """The preset's image converter as per-channel `(scale, offset)`; `x / 255` without one."""
    keras_hub = keras_hub_module()
    scale: Any = 1 / 255
    offset: Any = 0.0
    if not _looks_local(preset) or (Path(preset) / "image_converter.json").is_file():
        try:
            converter = keras_hub.layers.ImageConverter.from_preset(preset)
            scale = converter.scale if converter.scale is not None else 1.0
            offset = converter.offset if converter.offset is not None else 0.0
        except (FileNotFoundError, ValueError):  # a remote preset without a converter
            pass

    def per_channel(value: Any) -> list[float]:
        values = [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]
        return values * 3 if len(values) == 1 else values

    return per_channel(scale), per_channel(offset)


def _unrolled(hub: Any, x: Any) -> Any:
    """Run the preset on `x` with its layers shared; a ViT's encoder unrolled into its blocks."""
    if type(hub).__name__ == "ViTBackbone":
        x = hub.get_layer("vit_patching_and_embedding")(x)
        encoder = hub.get_layer("vit_encoder")
        x = encoder.dropout(x)
        for block in encoder.encoder_layers:
            x = block(x)
        return encoder.layer_norm(x)
    return compat.run_through_graph(hub, x)


def _pooled_map(hub: Any, tokens: Any) -> Any:
    """A token sequence as a 4-D map: the class token `(1, 1, dim)`, or the patch-token grid."""
    import keras

    count, dim = int(tokens.shape[1]), int(tokens.shape[2])
    if getattr(hub, "use_class_token", True):
        first = keras.layers.Cropping1D((0, count - 1), name="class_token")(tokens)
        return keras.layers.Reshape((1, 1, dim), name="token_map")(first)
    side = int(round(count ** 0.5))
    return keras.layers.Reshape((side, count // side, dim), name="token_map")(tokens)


def wrap(preset: str, shape: Sequence[Optional[int]], load_weights: bool = True) -> tuple["keras.Model", Any]:
    """The preset as a flat functional tfft backbone (raw 0-255 RGB in, 4-D map out), and the
    KerasHub backbone object whose layers it shares.

    Example:
    >>> wrap("/tmp/tiny_vit", (32, 32, 3))[0].layers[1].name  # doctest: +SKIP
    'hub_preprocess'
    """
    import keras

    hub = _load_preset(preset, shape, load_weights)
    scale, offset = _converter(preset)
    inputs = keras.Input(shape=tuple(shape), name="hub_image")
    # x * scale + offset == (x - mean) / sqrt(variance) with mean = -offset / scale
    x = keras.layers.Normalization(mean=[-o / s for o, s in zip(offset, scale)],
                                   variance=[1 / (s * s) for s in scale], name=PREPROCESS_LAYER)(inputs)
    x = _unrolled(hub, x)
    if len(x.shape) == 3:
        x = _pooled_map(hub, x)
    name = Path(preset).name if _looks_local(preset) else preset
    model = keras.Model(inputs, x, name=safe_model_name(name))
    loadable_hub_configs(model)
    return model, hub


def _blocks(model: Any, hub: Any) -> tuple[tuple[Block, ...], str, str]:
    """The blocks of a wrapped preset, `unmatched` and its pooling."""
    names = [layer.name for layer in model.layers]
    pooling = "average"
    if "token_map" in names:
        pooling = "class_token" if "class_token" in names else "mean_tokens"
    encoder = [n for n in names if re.fullmatch(r"transformer_block_\d+", n)]
    if encoder:
        blocks = (Block("embed", r"^vit_patching_and_embedding$"),) + tuple(
            Block(f"layer{i + 1}", f"^{re.escape(n)}$") for i, n in enumerate(encoder))
        return blocks, "previous", pooling
    pyramid = getattr(hub, "pyramid_outputs", None) or {}
    ends = [(level, compat.producing_layer(tensor).name) for level, tensor in pyramid.items()]
    ends = [(level, end) for level, end in ends if end in names]
    if ends:
        return tuple(Block(level, f"^{re.escape(end)}$") for level, end in ends), "next", pooling
    weighted = [n for n, layer in zip(names, model.layers) if layer.weights]
    parts = max(1, min(5, len(weighted)))
    chunks = [weighted[i * len(weighted) // parts:(i + 1) * len(weighted) // parts] for i in range(parts)]
    return tuple(Block(f"part{i + 1}", "^(" + "|".join(map(re.escape, chunk)) + ")$")
                 for i, chunk in enumerate(chunks)), "previous", pooling


def spec_for_preset(name: str) -> HubSpec:
    """The spec of `hub:PRESET`: the preset is loaded once (its weights handed to the first build).

    Raises:
        UserError: `model.backbone` when keras-hub is missing or the preset cannot be loaded
            (the offline message), `data.image_size` for a transformer at another size.

    Example:
    >>> spec_for_preset("hub:/tmp/tiny_vit").block_names  # doctest: +SKIP
    ['embed', 'layer1', 'layer2']
    """
    import keras

    preset = preset_of(name)
    config = _read_config(preset) or {}
    shape = tuple((config.get("config") or {}).get("image_shape") or (None, None, 3))
    probe = (shape[0] or 224, shape[1] or 224, 3)
    model, hub = wrap(preset, probe)
    blocks, unmatched, pooling = _blocks(model, hub)
    token = type(hub).__name__ in TOKEN_BACKBONES
    fixed = (int(probe[0]), int(probe[1])) if token else None
    spec = HubSpec(
        name=HUB_PREFIX + preset, constructor="", module="", preprocess="none",
        default_size=int(probe[0]), min_size=32 if not fixed else min(fixed),
        blocks=blocks, unmatched=unmatched, parameters=int(model.count_params()),
        pooling=pooling, preset=preset, fixed_size=fixed,
    )
    spec._loaded.append(((int(probe[0]), int(probe[1]), 3), keras.config.dtype_policy().name, model))  # noqa: SLF001 (its own class)
    return spec


def catalog() -> builtins.list[dict[str, Any]]:
    """`tfft models` rows for the presets KerasHub lists for its image classifiers' backbones
    (read from KerasHub's own tables: no download). Empty without keras-hub.

    Example:
    >>> rows = catalog()  # doctest: +SKIP
    >>> rows[0]["name"].startswith("hub:")  # doctest: +SKIP
    True
    """
    if importlib.util.find_spec("keras_hub") is None:
        return []
    keras_hub = keras_hub_module()
    rows = []
    seen = set()
    classes = builtins.list(keras_hub.models.ImageClassifier.__subclasses__())
    while classes:
        cls = classes.pop(0)
        classes.extend(cls.__subclasses__())
        backbone_cls = getattr(cls, "backbone_cls", None)
        if backbone_cls is None or backbone_cls in seen:
            continue
        seen.add(backbone_cls)
        for preset, info in sorted(backbone_cls.presets.items()):
            meta = info.get("metadata", {})
            rows.append({
                "name": HUB_PREFIX + preset, "parameters": meta.get("params"),
                "default_size": None, "min_size": None, "blocks": [],
                "constructor": backbone_cls.__name__, "preprocess": "none",
                "offline_weights": False, "weights_package": None,
                "pooling": "class_token" if backbone_cls.__name__ in TOKEN_BACKBONES else "average",
            })
    return rows


FAMILIES.register("hub", Family(prefix=HUB_PREFIX, resolve=spec_for_preset, check=check, catalog=catalog))

__all__ = ["HUB_PREFIX", "HubSpec", "cache_folders", "catalog", "check", "offline_error",
           "preset_of", "spec_for_preset", "wrap"]
