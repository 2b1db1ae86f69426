"""Expand `schedule.preset` (or explicit `schedule.phases`) into fully resolved phases."""

from __future__ import annotations

import dataclasses
from typing import Optional

from tfft.config import PhaseConfig, ScheduleConfig

_INHERITED = ("optimizer", "lr_schedule", "warmup_epochs", "weight_decay", "layer_decay", "early_stopping")


@dataclasses.dataclass(frozen=True)
class Phase:
    """One resolved phase: every field set, nothing left to inherit."""

    name: str
    epochs: int
    unfreeze: str
    lr: float
    optimizer: str
    lr_schedule: str
    warmup_epochs: float
    weight_decay: float
    layer_decay: float
    early_stopping: Optional[int]
    momentum: float
    nesterov: bool
    step_every: int
    step_factor: float
    # LoRA: adapters of this rank (scaled alpha / rank) in the blocks `unfreeze` names, the
    # backbone's own weights frozen (`tfft.schedule.lora`). None: no adapters in this phase.
    lora_rank: Optional[int] = None
    lora_alpha: Optional[float] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def preset_phases(schedule: ScheduleConfig, num_blocks: int) -> list[PhaseConfig]:
    """The phases a preset stands for.

    - feature_extraction: the head alone for `epochs` at `lr`.
    - full: every layer for `epochs` at `lr` (on pretrained weights the config's default `lr` is
      already `1e-3 / finetune_factor`: see `tfft.config.Config`).
    - two_phase: the head for `head_epochs` at `lr`, then `finetune_unfreeze` (top:1) for
      `finetune_epochs` at `lr / finetune_factor` (the Keras transfer-learning guide's recipe).
    - gradual (ULMFiT): the head for `gradual_every` epochs, then one more block every
      `gradual_every` epochs (top:1, top:2, ...), the rate falling geometrically from `lr` to
      `lr / finetune_factor` as deeper blocks join.
    """
    lr = schedule.lr
    if schedule.preset == "feature_extraction":
        return [PhaseConfig(name="head", epochs=schedule.epochs, unfreeze="none", lr=lr)]
    if schedule.preset == "full":
        return [PhaseConfig(name="full", epochs=schedule.epochs, unfreeze="all", lr=lr)]
    if schedule.preset == "two_phase":
        return [
            PhaseConfig(name="head", epochs=schedule.head_epochs, unfreeze="none", lr=lr),
            PhaseConfig(name="finetune", epochs=schedule.finetune_epochs,
                        unfreeze=schedule.finetune_unfreeze, lr=lr / schedule.finetune_factor),
        ]
    blocks = min(schedule.gradual_blocks or num_blocks, num_blocks)
    phases = [PhaseConfig(name="head", epochs=schedule.gradual_every, unfreeze="none", lr=lr)]
    for k in range(1, blocks + 1):
        rate = lr / schedule.finetune_factor ** (k / blocks)
        phases.append(PhaseConfig(name=f"top{k}", epochs=schedule.gradual_every, unfreeze=f"top:{k}", lr=rate))
    return phases


def resolve_phases(schedule: ScheduleConfig, num_blocks: int) -> list[Phase]:
    """Resolve the schedule into phases with every field set.

    Args:
        schedule: the `schedule` section of the config.
        num_blocks: how many blocks the backbone has (for `gradual` and `top:N` checks).

    Returns:
        The phases in order. Explicit `schedule.phases` replace the preset's.

    Example:
    >>> from tfft.config import ScheduleConfig
    >>> [p.lr for p in resolve_phases(ScheduleConfig(preset="two_phase", lr=1e-3), 5)]
    [0.001, 0.0001]
    """
    configs = schedule.phases if schedule.phases else preset_phases(schedule, num_blocks)
    phases = []
    for config in configs:
        values = {key: getattr(config, key) for key in _INHERITED}
        for key, value in values.items():
            if value is None:
                values[key] = getattr(schedule, key)
        lora = config.lora if config.lora is not None else schedule.lora
        lora = lora if lora != "off" and config.unfreeze != "none" else None
        phases.append(Phase(
            name=config.name, epochs=config.epochs, unfreeze=config.unfreeze,
            lr=config.lr if config.lr is not None else schedule.lr,
            momentum=schedule.momentum, nesterov=schedule.nesterov,
            step_every=schedule.step_every, step_factor=schedule.step_factor,
            lora_rank=lora.rank if lora else None,
            lora_alpha=(lora.alpha or float(lora.rank)) if lora else None, **values,
        ))
    return phases
