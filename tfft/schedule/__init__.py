"""Freezing schedules: presets expanded into phases, exact freezing, optimizers and rates."""

from tfft.schedule.callback import FreezingSchedule
from tfft.schedule.freezing import FreezeReport, apply_freezing
from tfft.schedule.optimizers import make_optimizer
from tfft.schedule.phases import Phase, resolve_phases

__all__ = ["FreezeReport", "FreezingSchedule", "Phase", "apply_freezing", "make_optimizer", "resolve_phases"]
