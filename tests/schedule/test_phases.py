"""Presets expand into the phases they promise; unset phase fields inherit."""

from __future__ import annotations

import math

import pytest

from tfft.config import ScheduleConfig, load_config
from tfft.schedule.phases import resolve_phases


def test_feature_extraction_and_full():
    (head,) = resolve_phases(ScheduleConfig(preset="feature_extraction", epochs=4), 5)
    assert (head.unfreeze, head.epochs) == ("none", 4)
    (full,) = resolve_phases(ScheduleConfig(preset="full", epochs=2), 5)
    assert full.unfreeze == "all"


def test_two_phase_lowers_the_rate_tenfold():
    head, finetune = resolve_phases(ScheduleConfig(preset="two_phase", lr=1e-3), 5)
    assert head.unfreeze == "none" and finetune.unfreeze == "top:1"
    assert finetune.lr == pytest.approx(1e-4)


def test_gradual_adds_one_block_per_stage_with_falling_rates():
    phases = resolve_phases(ScheduleConfig(preset="gradual", gradual_every=2, lr=1e-3), 5)
    assert [p.unfreeze for p in phases] == ["none", "top:1", "top:2", "top:3", "top:4", "top:5"]
    assert all(p.epochs == 2 for p in phases)
    rates = [p.lr for p in phases]
    assert rates == sorted(rates, reverse=True)
    assert math.isclose(rates[-1], 1e-4)


def test_explicit_phases_inherit_unset_fields():
    cfg = load_config({"schedule": {"optimizer": "sgd", "lr_schedule": "cosine", "weight_decay": 1e-4,
                                    "phases": [{"name": "a", "epochs": 1},
                                               {"name": "b", "epochs": 2, "optimizer": "adamw", "lr": 1e-5}]}})
    a, b = resolve_phases(cfg.schedule, 5)
    assert (a.optimizer, a.lr_schedule, a.weight_decay, a.lr) == ("sgd", "cosine", 1e-4, 1e-3)
    assert (b.optimizer, b.lr) == ("adamw", 1e-5)
