"""The whole run's config (`Config`, its sections gathered) and how it is written out as YAML."""

from __future__ import annotations

import re
from typing import Any

import yaml
from pydantic import Field, field_validator, model_validator

from tfft.config.sections import (
    AugmentConfig,
    DataConfig,
    DistillConfig,
    DistributeConfig,
    EvaluateConfig,
    ModelConfig,
    PerformanceConfig,
    ScheduleConfig,
    TrainingConfig,
    Section,
)


class Config(Section):
    """A whole tfft run. Every field has a default; see `tfft config show`."""

    name: str = "run"
    seed: int = 42
    # auto: multi_label when a `path,labels` manifest row has several labels (or none), or for
    # builtin:shapes-multi; single_label for folders and `path,label` manifests. Any name in
    # tfft.task.TASKS is accepted (checked by `load_config`, with a "did you mean").
    task: str = "auto"
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
        return plain(self.model_dump(mode="python"))

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


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value



def schema() -> dict[str, Any]:
    """The JSON schema of the config (for editors and docs)."""
    return Config.model_json_schema()
