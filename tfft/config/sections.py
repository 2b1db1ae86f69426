"""The config's sections: one pydantic model per YAML section (`data`, `model`, `schedule`, ...).

Each builder receives its own section; `tfft.config.root.Config` gathers them into a whole run.
Pure data: no TensorFlow, no Keras.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tfft.errors import did_you_mean

UNFREEZE_PATTERN = re.compile(r"^(none|all|top:[1-9][0-9]*|from:.+)$")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
LR_SCHEDULES = ("constant", "cosine", "one_cycle", "step", "plateau")


class Section(BaseModel):
    """A config section: unknown keys are rejected, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
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


class ModelConfig(Section):
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


class LoraConfig(Section):
    """Low-rank adapters (`schedule.lora`, or a phase's `lora`): the Dense / EinsumDense layers of
    the blocks a phase unfreezes get adapters of this rank, scaled by `alpha / rank`, and the
    backbone's own weights stay frozen; the adapters merge into the kernels when the run ends."""

    rank: int = Field(ge=1, le=1024)
    alpha: Optional[float] = Field(None, gt=0)  # None: alpha = rank (scale 1)


class PhaseConfig(Section):
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


class ScheduleConfig(Section):
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


class AugmentConfig(Section):
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


class PerformanceConfig(Section):
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
    # cache ($TFFT_CACHE_DIR or ~/.cache/tfft, then decoded/), and not for the run's last pass over
    # train when no store holds it yet (filling one costs the first touch of its memory and nothing
    # would read it); `on` always, `off` never.
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


class DistributeConfig(Section):
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


class TrainingConfig(Section):
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


class EvaluateConfig(Section):
    """What is measured when training ends."""

    splits: list[str] = Field(default_factory=lambda: ["val", "test"])
    top_k: int = Field(5, ge=1)


class DistillConfig(Section):
    """Knowledge distillation: the run trains its model as a student of a finished run's model.

    loss = alpha x the task loss + (1 - alpha) x T^2 x KL(softmax(teacher / T) || softmax(student / T)).
    """

    teacher: Optional[str] = None  # a finished run directory (its model.keras is the teacher)
    temperature: float = Field(3.0, gt=0)
    alpha: float = Field(0.5, ge=0.0, le=1.0)  # weight of the ground-truth loss

