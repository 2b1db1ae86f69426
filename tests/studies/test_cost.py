"""The expected cost a study prints before it starts: runs x each phase's epochs and what they run on."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import tiny_config
from tfft.studies.cost import study_cost


def _resolved(**sections):
    from tfft.training.assembly import resolve

    return resolve(tiny_config(**sections))


def test_two_phase_without_augmentation_runs_the_head_on_cached_features():
    run = _resolved(schedule={"preset": "two_phase", "head_epochs": 2, "finetune_epochs": 3})
    assert study_cost(run, 3, "fold") == (
        "3 folds x (2 head epochs on cached features + 3 finetune epochs (top:1) on cached activations of the "
        "frozen bottom, where the backbone allows a cut)")


@pytest.mark.parametrize("sections, why", [
    ({"augment": {"rotation_range": 10}}, "augmentation draws new images every epoch"),
    ({"performance": {"cache_features": "off"}}, "performance.cache_features: off"),
])
def test_what_keeps_the_cache_off_is_named(sections, why):
    run = _resolved(schedule={"preset": "feature_extraction", "epochs": 4}, **sections)
    assert study_cost(run, 1, "trial") == f"1 trial x (4 head epochs on the full model ({why}))"


def test_flips_only_and_full_fine_tuning():
    flips = _resolved(schedule={"preset": "feature_extraction", "epochs": 2}, augment={"horizontal_flip": True})
    assert study_cost(flips, 2, "fold") == "2 folds x (2 head epochs on cached features)"
    full = _resolved(schedule={"preset": "full", "epochs": 5})
    assert study_cost(full, 4, "trial", ["schedule.lr"]) == (
        "4 trials x (5 full epochs on the full model); the search space changes schedule.lr, so trials differ "
        "from this")


def test_cv_prints_the_expected_cost_before_it_plans_the_folds(tmp_path, cli_runner):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_config(schedule={"preset": "feature_extraction", "epochs": 2})))
    result = cli_runner("cv", config, "--folds", "500", "--run-dir", tmp_path / "cv")  # refused after the line
    assert result.exit_code == 2
    assert "cv: expected cost: 500 folds x (2 head epochs on cached features)" in result.output
