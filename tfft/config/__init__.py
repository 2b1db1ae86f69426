"""The run configuration: typed, defaulted, validated once at the edge.

A config is YAML (or a dict) with the sections `data`, `model`, `schedule`, `augment`,
`performance`, `distribute`, `training` and `evaluate`. Every field has a default, unknown keys
are rejected with a "did you mean", and `--set KEY=VALUE` overrides take dotted keys with list
indices (`schedule.phases[1].lr=1e-5`). Builders receive their own section; only the run and
the CLI see the whole `Config`.

In three modules: `sections` (a pydantic model per section), `root` (`Config`, the whole run,
and its YAML) and `loading` (YAML in, overrides, validation, paths made absolute). Import the
names from here: `from tfft.config import Config, load_config`.

This package imports neither TensorFlow nor Keras, so `tfft config show` answers at once.
"""

from __future__ import annotations

from tfft.config.loading import apply_override, load_config, set_key
from tfft.config.root import Config, schema
from tfft.config.sections import (
    LR_SCHEDULES,
    OPTIMIZERS,
    UNFREEZE_PATTERN,
    AugmentConfig,
    DataConfig,
    DistillConfig,
    DistributeConfig,
    EvaluateConfig,
    LoraConfig,
    ModelConfig,
    PerformanceConfig,
    PhaseConfig,
    ScheduleConfig,
    TrainingConfig,
)

__all__ = [
    "LR_SCHEDULES", "OPTIMIZERS", "UNFREEZE_PATTERN",
    "AugmentConfig", "Config", "DataConfig", "DistillConfig", "DistributeConfig", "EvaluateConfig",
    "LoraConfig", "ModelConfig", "PerformanceConfig", "PhaseConfig", "ScheduleConfig",
    "TrainingConfig", "apply_override", "load_config", "schema", "set_key",
]
