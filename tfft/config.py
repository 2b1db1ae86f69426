"""The run configuration: typed, defaulted, validated once at the edge.

A config is YAML (or a dict) with the sections `data`, `model`, `schedule`, `augment`,
`performance`, `distribute`, `training` and `evaluate`. Every field has a default, unknown keys
are rejected with a "did you mean", and `--set KEY=VALUE` overrides take dotted keys with list
indices (`schedule.phases[1].lr=1e-5`). Builders receive their own section; only the run and
the CLI see the whole `Config`.

This module imports neither TensorFlow nor Keras, so `tfft config show` answers at once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, Optional, Union

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tfft.config_messages import user_error
from tfft.errors import UserError, did_you_mean

UNFREEZE_PATTERN = re.compile(r"^(none|all|top:[1-9][0-9]*|from:.+)$")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
LR_SCHEDULES = ("constant", "cosine", "one_cycle", "step", "plateau")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where the images come from and how they are batched."""

    source: str = "builtin:shapes"
    image_size: tuple[int, int] = (224, 224)
    batch_size: int = Field(32, gt=0)
    val_split: float = Field(0.2, ge=0.0, lt=1.0)
    test_split: float = Field(0.0, ge=0.0, lt=1.0)
    on_bad_image: Literal["skip", "error"] = "skip"
    limit_per_class: Optional[int] = Field(None, gt=0)
    builtin_per_class: int = Field(120, gt=0)
    shuffle_buffer: int = Field(2048, gt=0)
    # auto: JPEGs larger than 1.5x image_size are decoded at 1/2, 1/4 or 1/8 scale in the DCT
    # domain (`tfft.data.decode.dct_ratio`), then resized as usual: several times faster on camera
    # photos, within 2-3 grey levels of a full decode. off: decode every pixel.
    fast_decode: Literal["auto", "off"] = "auto"

    @field_validator("fast_decode", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` as false (and `on` as true).
        return {False: "off", True: "auto"}.get(value, value) if isinstance(value, bool) else value

    # Cross-validation (`tfft cv` writes both into each fold's config): the source's train+val
    # images are re-split by `fold_file` (a CSV `path,label,fold`): fold `fold` is val, the rest train.
    fold_file: Optional[str] = None
    fold: Optional[int] = Field(None, ge=1)

    @field_validator("image_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        if isinstance(value, int):
            return (value, value)
        return value

    @field_validator("image_size")
    @classmethod
    def _positive_size(cls, value: tuple[int, int]) -> tuple[int, int]:
        if min(value) < 8:
            raise ValueError(f"expected [height, width] of at least 8 pixels, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _splits(self) -> "DataConfig":
        if self.val_split + self.test_split >= 1.0:
            raise ValueError(f"val_split {self.val_split:g} + test_split {self.test_split:g} leaves no images "
                             "for training: keep their sum below 1, e.g. val_split: 0.2, test_split: 0.1")
        if (self.fold_file is None) != (self.fold is None):
            raise ValueError("data.fold_file and data.fold go together: give both (a fold of a "
                             "cross-validation) or neither")
        return self


class ModelConfig(_Section):
    """The backbone and the classification head."""

    backbone: str = "resnet50"
    weights: Optional[str] = "imagenet"
    pooling: Literal["avg", "max", "flatten"] = "avg"
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    hidden_units: list[int] = Field(default_factory=list)
    # BatchNormalization momentum in the backbone; None keeps the architecture's (often 0.99 or
    # 0.999, too slow for short runs from scratch: the moving statistics never catch up).
    bn_momentum: Optional[float] = Field(None, gt=0, lt=1)

    @field_validator("weights", mode="before")
    @classmethod
    def _null_weights(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("null", "none", ""):
            return None
        return value

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        from tfft import backbones  # pure data, no TensorFlow

        if backbones.family_of(value) is not None:  # keras:PATH, hub:PRESET: checked in preflight
            return value
        if value not in backbones.names():
            hint = did_you_mean(value, backbones.names()) or "run `tfft models` for the list"
            raise ValueError(f"unknown backbone {value!r}; {hint}")
        return value


class LoraConfig(_Section):
    """Low-rank adapters (`schedule.lora`, or a phase's `lora`): the Dense / EinsumDense layers of
    the blocks a phase unfreezes get adapters of this rank, scaled by `alpha / rank`, and the
    backbone's own weights stay frozen; the adapters merge into the kernels when the run ends."""

    rank: int = Field(ge=1, le=1024)
    alpha: Optional[float] = Field(None, gt=0)  # None: alpha = rank (scale 1)


class PhaseConfig(_Section):
    """One phase of the freezing schedule; unset fields inherit from `schedule`."""

    name: str
    epochs: int = Field(ge=1)
    unfreeze: str = "none"
    lr: Optional[float] = Field(None, gt=0)
    optimizer: Optional[Literal["adam", "adamw", "sgd", "rmsprop"]] = None
    lr_schedule: Optional[Literal["constant", "cosine", "one_cycle", "step", "plateau"]] = None
    warmup_epochs: Optional[float] = Field(None, ge=0)
    weight_decay: Optional[float] = Field(None, ge=0)
    layer_decay: Optional[float] = Field(None, gt=0, le=1)
    early_stopping: Optional[int] = Field(None, ge=1)
    # LoRA in this phase: adapters in the blocks `unfreeze` names; `off` with `schedule.lora` set
    # fine-tunes those blocks' own weights instead. None: `schedule.lora`.
    lora: Optional[Union[LoraConfig, Literal["off"]]] = None

    @field_validator("unfreeze", mode="before")
    @classmethod
    def _unfreeze(cls, value: Any) -> Any:
        if value is None:
            return "none"
        value = str(value).strip()
        if not UNFREEZE_PATTERN.match(value):
            raise ValueError(
                f"expected none | all | top:N | from:LAYER_NAME, got {value!r}"
            )
        return value


class ScheduleConfig(_Section):
    """The freezing schedule: a preset, or explicit phases, plus defaults phases inherit."""

    preset: Literal["feature_extraction", "full", "two_phase", "gradual"] = "two_phase"
    phases: Optional[list[PhaseConfig]] = None
    # auto: `frozen` for pretrained weights (their statistics are worth keeping), `train` from
    # scratch (initial statistics would never move); `tfft config show` prints the resolved value.
    bn: Literal["auto", "frozen", "train"] = "auto"
    # Preset parameters.
    epochs: int = Field(5, ge=1)
    head_epochs: int = Field(3, ge=1)
    finetune_epochs: int = Field(5, ge=1)
    finetune_unfreeze: str = "top:1"
    finetune_factor: float = Field(10.0, ge=1.0)
    gradual_every: int = Field(1, ge=1)
    gradual_blocks: Optional[int] = Field(None, ge=1)
    # Defaults every phase inherits. `preset: full` on pretrained weights, lr not given: lr / finetune_factor.
    lr: float = Field(1e-3, gt=0)
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    lr_schedule: Literal["constant", "cosine", "one_cycle", "step", "plateau"] = "constant"
    warmup_epochs: float = Field(0.0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    layer_decay: float = Field(1.0, gt=0, le=1)
    step_every: int = Field(2, ge=1)
    step_factor: float = Field(0.1, gt=0, le=1)
    early_stopping: Optional[int] = Field(None, ge=1)
    carry_optimizer: bool = False
    # LoRA for every phase that unfreezes part of the backbone (see `LoraConfig`).
    lora: Optional[LoraConfig] = None

    @model_validator(mode="after")
    def _one_lora_rank(self) -> "ScheduleConfig":
        ranks = {self.lora.rank} if self.lora else set()
        for index, phase in enumerate(self.phases or []):
            if isinstance(phase.lora, LoraConfig):
                if phase.unfreeze == "none":
                    raise ValueError(f"phases[{index}] ({phase.name}) has lora but unfreeze: none; "
                                     "LoRA adapts the blocks unfreeze names (e.g. unfreeze: all)")
                ranks.add(phase.lora.rank)
        if len(ranks) > 1:
            raise ValueError(f"every phase's lora must have one rank (adapters are one set per "
                             f"layer), got ranks {sorted(ranks)}; alpha may differ per phase")
        return self

    @field_validator("finetune_unfreeze")
    @classmethod
    def _finetune_unfreeze(cls, value: str) -> str:
        return PhaseConfig._unfreeze(value)  # noqa: SLF001 - the same check, this module's PhaseConfig


class AugmentConfig(_Section):
    """ImageDataGenerator keywords (same names, same meanings) and modern policies."""

    rotation_range: float = Field(0.0, ge=0)
    width_shift_range: Union[float, list[float]] = 0.0
    height_shift_range: Union[float, list[float]] = 0.0
    shear_range: float = Field(0.0, ge=0)
    zoom_range: Union[float, tuple[float, float]] = 0.0
    horizontal_flip: bool = True
    vertical_flip: bool = False
    brightness_range: Optional[tuple[float, float]] = None
    channel_shift_range: float = Field(0.0, ge=0)
    fill_mode: Literal["constant", "nearest", "reflect", "wrap"] = "nearest"
    cval: float = 0.0
    rescale: Optional[float] = None
    featurewise_center: bool = False
    featurewise_std_normalization: bool = False
    samplewise_center: bool = False
    samplewise_std_normalization: bool = False
    zca_whitening: bool = False
    preprocessing_function: Optional[str] = None
    # Modern policies.
    random_resized_crop: Optional[tuple[float, float]] = None  # area scale range, e.g. [0.08, 1]
    color_jitter: float = Field(0.0, ge=0, le=1)
    rand_augment: Optional[tuple[int, int]] = None  # (N, M)
    mixup: float = Field(0.0, ge=0)  # Beta(alpha, alpha); 0 = off
    cutmix: float = Field(0.0, ge=0)
    random_erasing: float = Field(0.0, ge=0, le=1)
    placement: Literal["auto", "pipeline", "model"] = "auto"

    @field_validator("zca_whitening")
    @classmethod
    def _no_zca(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "zca_whitening is not supported: it needs a full covariance of the training set "
                "and harms pretrained backbones; remove it (the backbone's own preprocessing is "
                "inside the model)"
            )
        return value

    @field_validator("preprocessing_function")
    @classmethod
    def _no_function(cls, value: Optional[str]) -> Optional[str]:
        if value is not None:
            raise ValueError(
                "preprocessing_function cannot be given in YAML (nothing in a config is "
                "executed); use the Python API: tfft.build_data(...).map(your_function)"
            )
        return value


class PerformanceConfig(_Section):
    """Speed knobs that never change what is learned (beyond float rounding)."""

    # In a phase whose backbone is frozen, compute its features once and train the head on them
    # (tfft/training/feature_cache.py). `auto` caches when that is exact (no augmentation) or when
    # `cache_augmented_copies` says how many augmented passes to cache.
    cache_features: Literal["auto", "on", "off"] = "auto"
    cache_augmented_copies: int = Field(0, ge=0)
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    jit_compile: Literal["auto", "on", "off"] = "auto"
    steps_per_execution: int = Field(1, ge=1)
    # Frozen features that outlive the run (tfft/training/feature_store.py), keyed by the decoded
    # image and the feature model's weights: `auto` ($TFFT_CACHE_DIR or ~/.cache/tfft, then
    # features/), `off`, or a folder; least recently used entries go beyond `feature_store_max_gb`.
    feature_store: str = "auto"
    feature_store_max_gb: float = Field(2.0, gt=0)
    # Training keeps the train and val images as decoded (before resize and augmentation) after the
    # first epoch, so later epochs skip the decode (tfft/data/decoded_cache.py; bitwise the same
    # batches): `auto` when they fit `decoded_cache_max_gb` in memory or the rest fits the disk
    # cache ($TFFT_CACHE_DIR or ~/.cache/tfft, then decoded/), `on` always, `off` never.
    decoded_cache: Literal["auto", "on", "off"] = "auto"
    decoded_cache_max_gb: float = Field(2.0, gt=0)

    @field_validator("jit_compile", "cache_features", "feature_store", "decoded_cache", mode="before")
    @classmethod
    def _yaml_bools(cls, value: Any) -> Any:
        # YAML reads on/off as booleans.
        if value is True:
            return "on"
        if value is False:
            return "off"
        return value


class DistributeConfig(_Section):
    """Which tf.distribute strategy runs the training."""

    strategy: Literal["auto", "none", "mirrored", "multi_worker", "tpu"] = "auto"
    virtual_cpus: int = Field(0, ge=0)
    tpu_address: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _drop_scale_lr(cls, values: Any) -> Any:
        # `scale_lr` never changed a rate; configs that set it still load, with a warning.
        if isinstance(values, dict) and "scale_lr" in values:
            import warnings

            values = {k: v for k, v in values.items() if k != "scale_lr"}
            warnings.warn("distribute.scale_lr is deprecated and ignored (it never changed the learning rate); "
                          "remove it from the config", FutureWarning, stacklevel=2)
        return values


class TrainingConfig(_Section):
    """The loop: determinism, what is saved, regularisation that is not augmentation."""

    deterministic: bool = False
    save: Literal["best", "last"] = "best"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    class_weight: Literal["none", "balanced"] = "none"
    steps_per_epoch: Optional[int] = Field(None, ge=1)
    # Also commit a resumable checkpoint every N training steps inside an epoch (None: at epoch ends only).
    checkpoint_steps: Optional[int] = Field(None, ge=1)
    verbose: Literal["auto", "bar", "line", "quiet"] = "auto"
    runs_dir: str = "runs"


class EvaluateConfig(_Section):
    """What is measured when training ends."""

    splits: list[str] = Field(default_factory=lambda: ["val", "test"])
    top_k: int = Field(5, ge=1)


class DistillConfig(_Section):
    """Knowledge distillation: the run trains its model as a student of a finished run's model.

    loss = alpha x the task loss + (1 - alpha) x T^2 x KL(softmax(teacher / T) || softmax(student / T)).
    """

    teacher: Optional[str] = None  # a finished run directory (its model.keras is the teacher)
    temperature: float = Field(3.0, gt=0)
    alpha: float = Field(0.5, ge=0.0, le=1.0)  # weight of the ground-truth loss


class Config(_Section):
    """A whole tfft run. Every field has a default; see `tfft config show`."""

    name: str = "run"
    seed: int = 42
    # auto: multi_label when a `path,labels` manifest row has several labels (or none), or for
    # builtin:shapes-multi; single_label for folders and `path,label` manifests.
    task: Literal["auto", "single_label", "multi_label"] = "auto"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    distribute: DistributeConfig = Field(default_factory=DistributeConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", value):
            raise ValueError(
                f"expected letters, digits, '.', '_' or '-' (a folder name under runs/), got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _resolve_pretrained_defaults(self) -> "Config":
        pretrained = self.model.weights is not None or self.model.backbone.startswith("keras:")
        if self.schedule.bn == "auto":
            self.schedule.bn = "frozen" if pretrained else "train"
        schedule = self.schedule
        if (pretrained and schedule.preset == "full" and not schedule.phases
                and "lr" not in schedule.model_fields_set):
            # Every layer of a pretrained network at the head's 1e-3 wrecks its features (Lite0 on
            # pets-mini: val 0.50, chance; at 1e-4: 0.98, benchmarks/RESULTS.md). Written into the
            # resolved config, so `config show`, config.yaml and --resume all see the rate used.
            schedule.lr = schedule.lr / schedule.finetune_factor
        return self

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (lists, not tuples), ready for YAML."""
        return _plain(self.model_dump(mode="python"))

    def to_yaml(self) -> str:
        """The resolved config as block YAML, defaults included: one key a line, lists of scalars
        (`image_size: [224, 224]`) on theirs."""
        return yaml.dump(self.to_dict(), Dumper=_BlockDumper, sort_keys=False, default_flow_style=False)


class _BlockDumper(yaml.SafeDumper):
    """Mappings as blocks (a section of scalars would otherwise be one `{...}` blob), lists of
    scalars in flow style."""


def _represent_list(dumper: yaml.SafeDumper, value: list) -> yaml.Node:
    flow = all(not isinstance(item, (dict, list)) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_BlockDumper.add_representer(list, _represent_list)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_KEY_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[-?\d+\])*)")


def _parse_key(key: str, label: Optional[str] = None) -> list[Union[str, int]]:
    parts: list[Union[str, int]] = []
    for piece in key.split("."):
        match = _KEY_PART.fullmatch(piece.strip())
        if not match:
            raise UserError(
                label or f"--set {key}", "expected a dotted key such as data.batch_size or "
                "schedule.phases[1].lr", "write KEY=VALUE with no spaces around '='"
            )
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(-?\d+)\]", match.group(2)))
    return parts


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one `KEY=VALUE` override in place; VALUE is a YAML scalar or flow value.

    Args:
        raw: the config as plain data (from YAML).
        override: e.g. `data.image_size=[96,96]` or `schedule.phases[1].lr=1e-5`.

    Example:
    >>> raw = {}
    >>> apply_override(raw, "data.batch_size=16")
    >>> raw
    {'data': {'batch_size': 16}}
    """
    if "=" not in override:
        raise UserError(f"--set {override}", "expected KEY=VALUE", "e.g. --set data.batch_size=16")
    key, _, text = override.partition("=")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise UserError(f"--set {key}", f"cannot read {text!r} as a YAML value ({exc.problem})",
                        "quote strings; lists look like [96,96]") from None
    set_key(raw, key, value, label=f"--set {key}")


def set_key(raw: dict[str, Any], key: str, value: Any, label: Optional[str] = None) -> None:
    """Set the dotted `key` of a raw config to an already parsed `value`, in place (no validation).

    `apply_override` parses its text and calls this; `tfft tune` sets each trial's parameters
    with it. Validate the result with `load_config`.

    Args:
        raw: the config as plain data.
        key: a dotted key with optional list indices, e.g. `schedule.phases[1].lr`.
        value: the value to store.
        label: how error messages name the key (default `--set KEY`).

    Example:
    >>> raw = {}
    >>> set_key(raw, "model.dropout", 0.3)
    >>> raw
    {'model': {'dropout': 0.3}}
    """
    label = label or f"--set {key}"
    parts = _parse_key(key, label)
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                raise UserError(label, f"index [{part}] is out of range",
                                "the list has %d items" % (len(node) if isinstance(node, list) else 0))
            node = node[part]
            continue
        if not isinstance(node, dict):
            raise UserError(label, f"{part!r} is not inside a mapping")
        if node.get(part) is None:
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or not -len(node) <= last < len(node):
            raise UserError(label, f"index [{last}] is out of range")
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise UserError(label, f"{last!r} is not inside a mapping")


def _load_raw(source: Union[str, os.PathLike, dict, None]) -> tuple[dict[str, Any], Optional[Path]]:
    if source is None:
        return {}, None
    if isinstance(source, dict):
        return _plain(dict(source)), None
    text = str(source)
    path = Path(text).expanduser()
    is_path = isinstance(source, os.PathLike) or ("\n" not in text and (
        path.suffix in (".yaml", ".yml") or path.exists()))
    if is_path:
        if not path.is_file():
            raise UserError(str(path), "config file not found",
                            "give the path of a YAML file, e.g. configs/quickstart.yaml")
        text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path if is_path else 'config'}" + (f":{mark.line + 1}" if mark else "")
        raise UserError(where, f"YAML syntax error: {getattr(exc, 'problem', exc)}",
                        "check indentation and colons on that line") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(str(path) if is_path else "config", f"expected a YAML mapping at the top, got {type(raw).__name__}")
    return raw, (path if is_path else None)


def load_config(
    source: Union[str, os.PathLike, dict, Config, None] = None,
    overrides: Optional[list[str]] = None,
) -> Config:
    """Read, override and validate a config.

    Args:
        source: a YAML file path, YAML text, a dict, a `Config` (copied), or None (all defaults).
        overrides: `KEY=VALUE` strings applied in order, as `tfft train --set` does.

    Returns:
        A validated `Config` with every default filled in.

    Raises:
        UserError: naming the first bad key with what was expected.

    Example:
    >>> cfg = load_config({"data": {"source": "builtin:shapes"}}, overrides=["data.batch_size=16"])
    >>> cfg.data.batch_size
    16
    """
    if isinstance(source, Config):
        raw, path = source.to_dict(), None
    else:
        raw, path = _load_raw(source)
    for override in overrides or []:
        apply_override(raw, override)
    try:
        config = Config.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise user_error(exc, Config) from None
    return _resolve_relative_paths(config, path.parent if path is not None else None)


def _absolute(text: str, base: Optional[Path]) -> str:
    """`text` as an absolute path: from the current directory, or from `base` where only that has it."""
    path = Path(text).expanduser()
    if not path.is_absolute() and not path.exists() and base is not None and (base / path).exists():
        path = base / path
    return os.path.abspath(path)


def _resolve_relative_paths(config: Config, base: Optional[Path]) -> Config:
    """Make the config's file paths absolute, so a run's config.yaml works from any folder.

    Paths are relative to the current directory first, then to the config file (`base`):
    `data.source` (a folder or `csv:FILE`), `data.fold_file`, `model.backbone: keras:FILE[#LAYER]`,
    `model.weights` (a file) and `distill.teacher`. Schemes (`builtin:`, `tfds:`, `gs://`) are kept.
    """
    source = config.data.source
    for prefix in ("", "csv:", "tfrecord:"):  # the schemes whose location is a path (config imports no tfft.data)
        if source.startswith(prefix) and ":" not in source[len(prefix):].split("/")[0]:
            rel = source[len(prefix):].strip()
            if rel:
                config.data.source = prefix + _absolute(rel, base)
            break
    if config.data.fold_file:
        config.data.fold_file = _absolute(config.data.fold_file, base)
    if config.model.backbone.startswith("keras:"):
        file, sep, layer = config.model.backbone[len("keras:"):].partition("#")
        if file:
            config.model.backbone = "keras:" + _absolute(file, base) + sep + layer
    if config.model.weights is not None and config.model.weights != "imagenet":
        config.model.weights = _absolute(config.model.weights, base)
    if config.distill.teacher:
        config.distill.teacher = _absolute(config.distill.teacher, base)
    return config


def schema() -> dict[str, Any]:
    """The JSON schema of the config (for editors and docs)."""
    return Config.model_json_schema()
