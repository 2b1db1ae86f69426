"""SPACE.yaml: read, checked against the config schema before any trial, applied to a config."""

from __future__ import annotations

import pytest

from tfft.config import load_config
from tfft.errors import UserError
from tfft.studies.space import apply_params, check_space, load_space


def test_load_space_reads_every_kind_in_file_order(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "schedule.lr: {log_uniform: [1.0e-4, 1.0e-2]}\n"
        "model.dropout: {uniform: [0.0, 0.5], step: 0.1}\n"
        "schedule.head_epochs: {int: [2, 8]}\n"
        "data.image_size: {choice: [[96, 96], [128, 128]]}\n")
    params = load_space(path)
    assert [(p.key, p.kind) for p in params] == [("schedule.lr", "log_uniform"), ("model.dropout", "uniform"),
                                                 ("schedule.head_epochs", "int"), ("data.image_size", "choice")]
    size = params[3]
    assert size.encoded_choices == ("[96, 96]", "[128, 128]")  # what Optuna stores and trials.csv shows
    assert size.to_config("[128, 128]") == [128, 128]
    assert params[2].to_config(5.0) == 5 and isinstance(params[2].to_config(5.0), int)


@pytest.mark.parametrize("spec, message", [
    ({"uniform": [0.5, 0.1]}, "low < high"),
    ({"log_uniform": [0.0, 1.0]}, "bounds > 0"),
    ({"int": [1.5, 4]}, "integers"),
    ({"uniform": [0, 1], "log_uniform": [1, 2]}, "exactly one"),
    ({"unifrom": [0, 1]}, "did you mean uniform"),
    ({"choice": []}, "non-empty list"),
    ({"choice": ["a", "a"]}, "twice"),
    ({"uniform": [0, 1], "steps": 0.1}, "'steps'"),
    ([0, 1], "expected a mapping"),
])
def test_malformed_distribution_names_the_key(spec, message):
    with pytest.raises(UserError) as info:
        load_space({"model.dropout": spec})
    assert info.value.where == "model.dropout"
    assert message in str(info.value)


def test_missing_or_empty_space_file(tmp_path):
    with pytest.raises(UserError, match="space file not found"):
        load_space(tmp_path / "nope.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(UserError, match="expected a mapping"):
        load_space(tmp_path / "empty.yaml")


@pytest.mark.parametrize("space, where, message", [
    ({"model.dropuot": {"uniform": [0.0, 0.5]}}, "model.dropuot", "did you mean dropout"),
    ({"modle.dropout": {"uniform": [0.0, 0.5]}}, "modle.dropout", "did you mean model"),
    ({"model.pooling": {"choice": ["avg", "mean"]}}, "model.pooling", "'mean'"),
    ({"model.dropout": {"uniform": [0.0, 1.5]}}, "model.dropout", "1.5"),
    ({"model.backbone": {"choice": ["resnet50", "resnet5"]}}, "model.backbone", "did you mean resnet50"),
    ({"schedule.phases[1].lr": {"log_uniform": [1e-5, 1e-3]}}, "schedule.phases[1].lr", "out of range"),
])
def test_check_space_refuses_what_the_config_schema_refuses(space, where, message):
    with pytest.raises(UserError) as info:
        check_space(load_space(space), load_config({}))
    assert info.value.where == where
    assert message in str(info.value)


def test_check_space_accepts_indexed_keys_of_given_phases():
    cfg = load_config({"schedule": {"phases": [{"name": "head", "epochs": 1}, {"name": "ft", "epochs": 1,
                                                                               "unfreeze": "top:1"}]}})
    params = load_space({"schedule.phases[1].lr": {"log_uniform": [1e-5, 1e-3]}})
    check_space(params, cfg)
    assert apply_params(cfg, {"schedule.phases[1].lr": 2e-4}).schedule.phases[1].lr == 2e-4
    assert cfg.schedule.phases[1].lr is None  # the base config is left as it was
