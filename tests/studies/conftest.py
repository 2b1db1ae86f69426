"""Fixtures of the study tests: a head-only config on the tiny `keras:` backbone (tests/conftest.py)
that trains in seconds."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import tiny_config


def head_config(backbone: Path, **sections) -> dict:
    """A head-only config on builtin:shapes with the tiny backbone: one short phase, val only."""
    config = tiny_config(
        name="tune",
        data={"builtin_per_class": 8, "batch_size": 16},
        model={"backbone": f"keras:{backbone}", "weights": "imagenet"},
        schedule={"preset": "feature_extraction", "epochs": 1},
        training={"steps_per_epoch": None},
        evaluate={"splits": ["val"]},
    )
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config
